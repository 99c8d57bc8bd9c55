"""Every picture tfseaice draws: PNG panels and TensorBoard image strips.

PNG panels (matplotlib, Agg canvas, written atomically): a sample scene file,
the SIC products of a scene (paper Fig. 2), pix2pix checkpoint curves (paper
Fig. 3). TensorBoard strips (TF ops, drawn inside callbacks): SIC patches and
pix2pix triples.
"""

import numpy as np
import tensorflow as tf
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.figure import Figure

from tfseaice import io_utils
from tfseaice.data import glacier
from tfseaice.data.scene_grids import gcp_grid, interp_separable
from tfseaice.simulate.charts import chart_sic, parse_rows
from tfseaice.simulate.grid import PIXEL_SPACING_M


# ------------------------------------------------------------- sample scenes
def save_sample_scene_panel(ds, path, max_pixels=800):
    """PNG panel of a raw (sample) scene file: HH, HV, incidence angle, sic_truth, chart SIC, polygon ids.

    Uses the Agg canvas directly, so it never touches the pyplot backend.
    Written atomically (io_utils.atomic_path).
    """
    size = ds.sizes["sar_lines"]
    step = max(1, int(np.ceil(max(size, ds.sizes["sar_samples"]) / max_pixels)))
    sl = (slice(None, None, step), slice(None, None, step))
    fig = Figure(figsize=(15, 10), dpi=80)
    FigureCanvasAgg(fig)
    _draw_sample_scene(fig, ds, sl, step)
    fig.suptitle(f"{ds.attrs.get('scene_id', '')}  ({size} x {ds.sizes['sar_samples']} px at "
                 f"{ds.attrs.get('pixel_spacing', PIXEL_SPACING_M)} m, synthetic, seed {ds.attrs.get('seed', '')})")
    fig.tight_layout()
    with io_utils.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")


def _incidence_image(ds, shape, step):
    """Incidence angle (deg) at every `step`-th pixel, bilinear from the tie-point grid."""
    ul, us, grid = gcp_grid(ds, "sar_grid_incidenceangle", ds.attrs.get("scene_id", "scene"))
    return interp_separable(ul, us, grid, shape, step)


def _boundaries(ids):
    """True where a pixel's polygon id differs from the next one down or right."""
    edge = np.zeros(ids.shape, bool)
    a = np.nan_to_num(ids, nan=-1)
    edge[:-1] |= a[:-1] != a[1:]
    edge[:, :-1] |= a[:, :-1] != a[:, 1:]
    return edge


def _draw_sample_scene(fig, ds, sl, step):
    """The six images with colour bars, polygon boundaries and poly_id;CT labels."""
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


# ------------------------------------------------------------- SIC products
FIG_SIZE_IN = (15.0, 9.0)
FIG_DPI = 100   # the PNG is 1500 x 900 pixels


def save_sic_products_panel(scene, products, path, max_pixels=1000, title=None):
    """PNG like paper Fig. 2: HH, HV, chart SIC, pixel SIC, ice/water, polygon SIC (+ colour bars).

    Without a chart (no `chart_sic` product) the chart column is left out: HH, HV, pixel SIC, ice/water.
    """
    h, w = scene.shape
    step = max(1, int(np.ceil(max(h, w) / max_pixels)))
    sl = (slice(None, None, step), slice(None, None, step))
    with_chart = "chart_sic" in products
    fig = Figure(figsize=FIG_SIZE_IN if with_chart else (FIG_SIZE_IN[0] * 2 / 3, FIG_SIZE_IN[1]), dpi=FIG_DPI)
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, 3 if with_chart else 2)
    sic_cmap = colormaps["viridis"].with_extremes(bad="0.8")

    def sar_panel(ax, k, label):
        if k is None:
            ax.set_title(f"({'ab'[label]}) no {'HH' if label == 0 else 'HV'} channel")
            ax.axis("off")
            return
        a = np.asarray(scene.sar[sl[0], sl[1], k], np.float32)
        finite = a[np.isfinite(a)]
        lo, hi = (np.percentile(finite, [2, 98]) if finite.size else (0.0, 1.0))
        im = ax.imshow(a, cmap=colormaps["gray"].with_extremes(bad="0.8"), vmin=lo, vmax=hi,
                       interpolation="nearest")
        unit = "dB" if scene.sar_units == "dB" else scene.sar_units
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label=unit)
        ax.set_title(f"({'ab'[label]}) {scene.channels[k].upper()}")

    names = list(scene.channels)
    sar_panel(axes[0, 0], names.index("hh") if "hh" in names else (0 if names else None), 0)
    sar_panel(axes[0, 1], names.index("hv") if "hv" in names else (1 if len(names) > 1 else None), 1)
    maps = [(axes[1, 0], "sic", "(e) pixel SIC")]
    if with_chart:
        maps += [(axes[0, 2], "chart_sic", "(c) chart SIC"), (axes[1, 2], "polygon_sic", "(g) polygon SIC")]
    for ax, key, label in maps:
        im = ax.imshow(products[key][sl], cmap=sic_cmap, vmin=0.0, vmax=1.0, interpolation="nearest")
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="SIC")
        ax.set_title(label)
    iw = products["ice_water"][sl].astype(np.float32)
    iw[iw == 255] = np.nan
    cmap = ListedColormap(["#16325c", "#f2f2f2"]).with_extremes(bad="0.8")
    im = axes[1, 1].imshow(iw, cmap=cmap, norm=BoundaryNorm([-0.5, 0.5, 1.5], 2), interpolation="nearest")
    cb = fig.colorbar(im, ax=axes[1, 1], fraction=0.046, pad=0.04, ticks=[0, 1])
    cb.ax.set_yticklabels(["water", "ice"])
    axes[1, 1].set_title("(f) ice/water")
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title or f"{scene.scene_id}  ({scene.pixel_spacing_m:g} m pixels, {h} x {w})")
    fig.subplots_adjust(left=0.02, right=0.96, top=0.92, bottom=0.03, wspace=0.25, hspace=0.18)
    with io_utils.atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=FIG_DPI, format="png")


# ------------------------------------------------------------ pix2pix curves
def save_checkpoint_curves(curves, path, title):
    """PNG of Dice and SSIM against the epoch of each generator checkpoint (paper Fig. 3)."""
    epochs = [c["epoch"] for c in curves]
    fig = Figure(figsize=(6, 6))
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, 1, sharex=True)
    for ax, key, label in ((axes[0], "dice", "non-binary Dice"), (axes[1], "ssim", "SSIM")):
        ax.plot(epochs, [c[key] for c in curves], marker="o")
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
    axes[1].set_xlabel("epoch")
    axes[0].set_title(title)
    fig.tight_layout()
    with io_utils.atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")


# ------------------------------------------------------ TensorBoard strips
def _colour(x, lo=0.0, hi=1.0, cmap="viridis"):
    """[B,H,W] values -> [B,H,W,3] RGB in [0,1] (NaN -> grey)."""
    table = tf.constant(colormaps[cmap](np.linspace(0, 1, 256))[:, :3], tf.float32)
    finite = tf.math.is_finite(x)
    idx = tf.cast(tf.clip_by_value((tf.where(finite, x, lo) - lo) / (hi - lo), 0, 1) * 255, tf.int32)
    rgb = tf.gather(table, idx)
    return tf.where(finite[..., None], rgb, 0.5)


def sic_panels(batch, pred):
    """One RGB strip per example: HH (2-98 % stretch), chart SIC, predicted SIC, truth."""
    hh = batch["sar"][..., 0]
    finite = tf.boolean_mask(hh, tf.math.is_finite(hh))
    lo = tfp_percentile(finite, 2.0)
    hi = tfp_percentile(finite, 98.0)
    ids = batch["polygon_ids"]
    chart = tf.where(ids >= 0, tf.gather(batch["polygon_sic"], tf.maximum(ids, 0), batch_dims=1), np.nan)
    strips = [_colour(hh, lo, hi + 1e-6, "gray"), _colour(chart), _colour(tf.cast(pred, tf.float32)),
              _colour(batch.get("sic_truth", tf.fill(tf.shape(hh), np.nan)))]
    sep = tf.ones_like(strips[0][:, :, :2])
    out = []
    for s in strips:
        out += [s, sep]
    return tf.concat(out[:-1], axis=2)


def tfp_percentile(x, q):
    """Percentile of a 1-D tensor by sorting (no tensorflow-probability dependency)."""
    n = tf.size(x)
    if n == 0:
        return tf.constant(0.0)
    s = tf.sort(x)
    i = tf.cast(tf.round(q / 100.0 * tf.cast(n - 1, tf.float32)), tf.int32)
    return s[i]


def zones_gray(classes):
    """Class indices -> zone gray values in [0, 1] for display."""
    lut = tf.constant([v / 255.0 for v in glacier.ZONE_VALUES], tf.float32)
    return tf.gather(lut, tf.cast(classes, tf.int32))[..., None]


def pix2pix_grid(classes, target01, fake01):
    """[1, n*H, 3*W, 1] panel: rows of mask | target | generated, images in [0, 1]."""
    mask = zones_gray(classes)
    rows = tf.concat([mask, target01, fake01], axis=2)
    return tf.reshape(rows, [1, -1, tf.shape(rows)[2], 1])


# ------------------------------------------------------------ pix2pix realism
def save_realism_figure(spectra, realism, path, period, title="pix2pix realism"):
    """PNG: axial power spectra (generated vs real, 1/period marked) and per-class local CV bars.

    spectra: {label: (freqs, power)}; realism: {class: {"cv_gen", "cv_real"}}.
    """
    fig = Figure(figsize=(10, 4))
    FigureCanvasAgg(fig)
    ax_s, ax_c = fig.subplots(1, 2)
    for label, (freqs, power) in spectra.items():
        ax_s.semilogy(freqs[1:], power[1:], label=label, lw=1)
    for k in range(1, int(period) // 2 + 1):
        ax_s.axvline(k / float(period), color="grey", lw=0.5, ls=":" if k > 1 else "--")
    ax_s.set_xlabel("frequency (cycles / px)")
    ax_s.set_ylabel("axial power")
    ax_s.set_title(f"power spectrum (dashed: 1/{period} px)")
    ax_s.legend()
    names = list(realism)
    x = np.arange(len(names))
    ax_c.bar(x - 0.2, [realism[n]["cv_real"] for n in names], 0.4, label="real")
    ax_c.bar(x + 0.2, [realism[n]["cv_gen"] for n in names], 0.4, label="generated")
    ax_c.set_xticks(x, names)
    ax_c.set_ylabel("median local CV (7x7, intensity)")
    ax_c.set_title("speckle: local coefficient of variation")
    ax_c.legend()
    fig.suptitle(title)
    fig.tight_layout()
    with io_utils.atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
