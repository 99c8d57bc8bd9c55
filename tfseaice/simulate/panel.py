"""PNG panel of a raw sample scene: HH, HV, incidence, truth, chart SIC, polygon ids.

Why: one picture shows whether a scene looks like a real one (README, review).
matplotlib is imported inside the functions that draw, to keep importing the simulators cheap.
"""

import numpy as np

from tfseaice import io_utils
from tfseaice.simulate.charts import chart_sic, parse_rows
from tfseaice.simulate.grid import PIXEL_SPACING_M


def save_panel(ds, path, max_pixels=800):
    """PNG panel of a raw scene: HH, HV, incidence angle, sic_truth, chart SIC, polygon ids.

    Uses the Agg canvas directly, so it never touches the pyplot backend.
    Written atomically (io_utils.atomic_path).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    size = ds.sizes["sar_lines"]
    step = max(1, int(np.ceil(max(size, ds.sizes["sar_samples"]) / max_pixels)))
    sl = (slice(None, None, step), slice(None, None, step))
    fig = Figure(figsize=(15, 10), dpi=80)
    FigureCanvasAgg(fig)
    _draw(fig, ds, sl, step)
    fig.suptitle(f"{ds.attrs.get('scene_id', '')}  ({size} x {ds.sizes['sar_samples']} px at "
                 f"{ds.attrs.get('pixel_spacing', PIXEL_SPACING_M)} m, synthetic, seed {ds.attrs.get('seed', '')})")
    fig.tight_layout()
    with io_utils.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")


def _incidence_image(ds, shape, step):
    """Incidence angle (deg) at every `step`-th pixel, bilinear from the tie-point grid."""
    ul, us = np.unique(ds["sar_grid_line"].values), np.unique(ds["sar_grid_sample"].values)
    grid = ds["sar_grid_incidenceangle"].values.reshape(len(ul), len(us))
    lines = np.arange(shape[0]) * step
    samples = np.arange(shape[1]) * step
    along = np.stack([np.interp(samples, us, r) for r in grid])
    return np.stack([np.interp(lines, ul, along[:, j]) for j in range(along.shape[1])], axis=1)


def _boundaries(ids):
    """True where a pixel's polygon id differs from the next one down or right."""
    edge = np.zeros(ids.shape, bool)
    a = np.nan_to_num(ids, nan=-1)
    edge[:-1] |= a[:-1] != a[1:]
    edge[:, :-1] |= a[:, :-1] != a[:, 1:]
    return edge


def _draw(fig, ds, sl, step):
    """The six images with colour bars, polygon boundaries and poly_id;CT labels."""
    from matplotlib import colormaps

    hh = ds["nersc_sar_primary"].values[sl]
    ids = ds["polygon_icechart"].values[sl]
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
    show(axes[0, 1], ds["nersc_sar_secondary"].values[sl], "HV (dB)", cmap=gray, vmin=-32, vmax=-16)
    show(axes[0, 2], _incidence_image(ds, hh.shape, step), "incidence angle (deg)", cmap="viridis")
    show(axes[1, 0], ds["sic_truth"].values[sl], "sic_truth (grey: land / no data)", cmap=blues, vmin=0, vmax=1)
    chart = chart_sic(ds.isel(sar_lines=sl[0], sar_samples=sl[1]))
    show(axes[1, 1], np.ma.masked_invalid(chart), "chart SIC + polygon boundaries", cmap=blues, vmin=0, vmax=1)
    edge = _boundaries(ids)
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
        water = rows[pid]["POLY_TYPE"] if rows[pid]["POLY_TYPE"] == "W" else ""
        axes[1, 2].text(xx[ordr[j]], yy[ordr[j]], f"{pid};{rows[pid]['CT']}{water}",
                        fontsize=8, ha="center", va="center",
                        bbox={"facecolor": "white", "alpha": 0.7, "pad": 1, "lw": 0})
