"""PNG panel of a raw sample scene: HH, HV, incidence, truth, chart SIC, polygon ids.

Why: one picture shows whether a scene looks like a real one (README, review).
matplotlib is imported inside save_panel only, to keep importing the simulators cheap.
"""

import os
import tempfile

import numpy as np

from tfseaice.simulate.charts import chart_sic, parse_rows
from tfseaice.simulate.grid import PIXEL_SPACING_M
from tfseaice.simulate.writers import publish


def save_panel(ds, path, max_pixels=800):
    """PNG panel of a raw scene: HH, HV, incidence angle, sic_truth, chart SIC, polygon ids.

    Uses the Agg canvas directly, so it never touches the pyplot backend.
    """
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    size = ds.sizes["sar_lines"]
    step = max(1, int(np.ceil(max(size, ds.sizes["sar_samples"]) / max_pixels)))
    sl = (slice(None, None, step), slice(None, None, step))
    hh = ds["nersc_sar_primary"].values[sl]
    hv = ds["nersc_sar_secondary"].values[sl]
    truth = ds["sic_truth"].values[sl]
    ids = ds["polygon_icechart"].values[sl]
    chart = chart_sic(ds.isel(sar_lines=sl[0], sar_samples=sl[1]))
    g_line = ds["sar_grid_line"].values
    g_samp = ds["sar_grid_sample"].values
    g_inc = ds["sar_grid_incidenceangle"].values
    ul, us = np.unique(g_line), np.unique(g_samp)
    grid = g_inc.reshape(len(ul), len(us))
    lines = np.arange(hh.shape[0]) * step
    samples = np.arange(hh.shape[1]) * step
    along = np.stack([np.interp(samples, us, r) for r in grid])
    inc = np.stack([np.interp(lines, ul, along[:, j]) for j in range(along.shape[1])], axis=1)
    edge = np.zeros(ids.shape, bool)
    a = np.nan_to_num(ids, nan=-1)
    edge[:-1] |= a[:-1] != a[1:]
    edge[:, :-1] |= a[:, :-1] != a[:, 1:]

    fig = Figure(figsize=(15, 10), dpi=80)
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, 3)
    blues = colormaps["Blues_r"].copy()
    blues.set_bad("0.55")
    gray = colormaps["gray"].copy()
    gray.set_bad("k")

    def show(ax, img, title, **kw):
        im = ax.imshow(img, interpolation="nearest", **kw)
        ax.set_title(title)
        ax.set_xticks([])
        ax.set_yticks([])
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02)

    show(axes[0, 0], hh, "HH (dB)", cmap=gray, vmin=-26, vmax=-4)
    show(axes[0, 1], hv, "HV (dB)", cmap=gray, vmin=-32, vmax=-16)
    show(axes[0, 2], inc, "incidence angle (deg)", cmap="viridis")
    show(axes[1, 0], truth, "sic_truth (grey: land / no data)", cmap=blues, vmin=0, vmax=1)
    shown = np.ma.masked_invalid(chart)
    show(axes[1, 1], shown, "chart SIC + polygon boundaries", cmap=blues, vmin=0, vmax=1)
    axes[1, 1].imshow(np.ma.masked_where(~edge, edge), cmap="autumn", interpolation="nearest")
    uniq = np.unique(ids[np.isfinite(ids)]).astype(int)
    remap = np.full(ids.shape, np.nan, np.float32)
    colour = np.random.default_rng(0).permutation(max(len(uniq), 1))
    rows = parse_rows(ds["polygon_codes"].values)
    for k, pid in enumerate(uniq):
        remap[ids == pid] = colour[k] % 20
    tab = colormaps["tab20"].copy()
    tab.set_bad("0.55")
    show(axes[1, 2], np.ma.masked_invalid(remap), "polygon ids (poly_id; CT)", cmap=tab, vmin=0, vmax=19)
    for pid in uniq:
        yy, xx = np.nonzero(ids == pid)
        j = len(yy) // 2
        ordr = np.lexsort((xx, yy))
        axes[1, 2].text(xx[ordr[j]], yy[ordr[j]], f"{pid};{rows[pid]['CT']}{rows[pid]['POLY_TYPE'] if rows[pid]['POLY_TYPE'] == 'W' else ''}",
                        fontsize=8, ha="center", va="center",
                        bbox={"facecolor": "white", "alpha": 0.7, "pad": 1, "lw": 0})
    fig.suptitle(f"{ds.attrs.get('scene_id', '')}  ({size} x {ds.sizes['sar_samples']} px at "
                 f"{ds.attrs.get('pixel_spacing', PIXEL_SPACING_M)} m, synthetic, seed {ds.attrs.get('seed', '')})")
    fig.tight_layout()
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp.png", dir=folder)
    os.close(fd)
    try:
        fig.savefig(tmp, format="png")
        publish(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
