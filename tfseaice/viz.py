"""Sea-ice pictures as PNG panels (matplotlib, Agg canvas, written atomically): a sample scene
file, the SIC/SOD/FLOE products of a scene (paper Fig. 2), confusion matrices.

numpy and matplotlib only, so that the scripts drawing them (make_sample_scenes) start without
TensorFlow. The TensorBoard strips, drawn with TF ops inside callbacks, are in
tfseaice.tensorboard_panels; glacier PNGs in tfseaice.evaluation.glacier_viz.
"""

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.figure import Figure

from tfseaice import io_utils
from tfseaice.data import codes
from tfseaice.data.ai4arctic import RAW_SPACING_M
from tfseaice.data.egg_codes import FLOE_CLASSES, SOD_CLASSES, UNLABELLED
from tfseaice.data.scene_grids import gcp_grid, interp_separable


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
                 f"{ds.attrs.get('pixel_spacing', RAW_SPACING_M)} m, synthetic, seed {ds.attrs.get('seed', '')})")
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
    table = codes.parse_polygon_codes(ds["polygon_codes"].values, source=ds.attrs.get("scene_id", "polygon_codes"))
    chart = table.lookup(np.nan_to_num(ids, nan=-1).astype(np.int64))
    show(axes[1, 1], np.ma.masked_invalid(chart), "chart SIC + polygon boundaries", cmap=blues, vmin=0, vmax=1)
    edge = _boundaries(ids)
    axes[1, 1].imshow(np.ma.masked_where(~edge, edge), cmap="autumn", interpolation="nearest")
    uniq = np.unique(ids[np.isfinite(ids)]).astype(int)
    remap = np.full(ids.shape, np.nan, np.float32)
    colour = np.random.default_rng(0).permutation(max(len(uniq), 1))
    for k, pid in enumerate(uniq):
        remap[ids == pid] = colour[k] % 20
    tab = colormaps["tab20"].copy()
    tab.set_bad("0.55")
    show(axes[1, 2], np.ma.masked_invalid(remap), "polygon ids (poly_id; CT)", cmap=tab, vmin=0, vmax=19)
    for pid in uniq:
        yy, xx = np.nonzero(ids == pid)
        j = len(yy) // 2
        ordr = np.lexsort((xx, yy))
        row = table.rows(pid)
        water = "W" if row >= 0 and table.poly_type[row] == "W" else ""
        ct = table.ct[row] if row >= 0 else "?"
        axes[1, 2].text(xx[ordr[j]], yy[ordr[j]], f"{pid};{ct}{water}",
                        fontsize=8, ha="center", va="center",
                        bbox={"facecolor": "white", "alpha": 0.7, "pad": 1, "lw": 0})


# ------------------------------------------------------------- SIC products
FIG_SIZE_IN = (15.0, 9.0)
FIG_DPI = 100   # the PNG is 1500 x 900 pixels


# Categorical colours of the AutoICE classes: water dark blue, then thin to thick/old ice; FLOE small to
# vast, bergs red.
SOD_COLOURS = ("#16325c", "#9ecae1", "#74c476", "#fdd0a2", "#f16913", "#7f2704")
FLOE_COLOURS = ("#16325c", "#c6dbef", "#9e9ac8", "#6a51a3", "#fdae6b", "#d94801", "#e31a1c")
CLASS_PANELS = (("sod", "floe", "predicted"), ("sod_truth", "floe_truth", "truth"))   # (row 0, row 1, label)


def class_colours(names):
    """(ListedColormap with grey for no data, BoundaryNorm) of len(names) categories."""
    colours = SOD_COLOURS if len(names) == len(SOD_CLASSES) else FLOE_COLOURS
    cmap = ListedColormap(list(colours[:len(names)])).with_extremes(bad="0.8")
    return cmap, BoundaryNorm(np.arange(len(names) + 1) - 0.5, len(names))


def _class_panel(fig, ax, classes, names, title):
    """One categorical class map (UNLABELLED grey) with a colour bar naming the classes."""
    a = np.asarray(classes).astype(np.float32)
    a[classes == UNLABELLED] = np.nan
    cmap, norm = class_colours(names)
    im = ax.imshow(a, cmap=cmap, norm=norm, interpolation="nearest")
    cb = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, ticks=np.arange(len(names)))
    cb.ax.set_yticklabels([n.replace("_", " ") for n in names], fontsize=6)
    ax.set_title(title)


def save_sic_products_panel(scene, products, path, max_pixels=1000, title=None):
    """PNG like paper Fig. 2: HH, HV, chart SIC, pixel SIC, ice/water, polygon SIC (+ colour bars).

    Without a chart (no `chart_sic` product) the chart column is left out: HH, HV, pixel SIC, ice/water.
    An ice-chart model's `sod`/`floe` maps add a column (SOD above FLOE), and their truth
    (`sod_truth`/`floe_truth`) one more; each column is 500 px wide.
    """
    h, w = scene.shape
    step = max(1, int(np.ceil(max(h, w) / max_pixels)))
    sl = (slice(None, None, step), slice(None, None, step))
    with_chart = "chart_sic" in products
    class_cols = [c for c in CLASS_PANELS if c[0] in products or c[1] in products]
    ncols = (3 if with_chart else 2) + len(class_cols)
    fig = Figure(figsize=(FIG_SIZE_IN[0] * ncols / 3, FIG_SIZE_IN[1]), dpi=FIG_DPI)
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, ncols)
    for k, (sod, floe, label) in enumerate(class_cols, ncols - len(class_cols)):
        for row, key, names in ((0, sod, SOD_CLASSES), (1, floe, FLOE_CLASSES)):
            if key in products:
                _class_panel(fig, axes[row, k], products[key][sl], names, f"{key.split('_')[0].upper()} {label}")
            else:
                axes[row, k].axis("off")
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


def save_confusion_matrix(counts, names, path, title):
    """PNG of a confusion matrix (rows = reference class, columns = predicted), each row normalised
    to 1 and annotated with its share; rows without pixels stay empty."""
    counts = np.asarray(counts, np.float64)
    totals = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, totals, out=np.full(counts.shape, np.nan), where=totals > 0)
    n = len(names)
    fig = Figure(figsize=(2.0 + 0.8 * n, 1.6 + 0.7 * n), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    im = ax.imshow(np.ma.masked_invalid(share), cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="share of the reference class")
    for i in range(n):
        for j in range(n):
            if np.isfinite(share[i, j]):
                ax.text(j, i, f"{share[i, j]:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if share[i, j] > 0.5 else "black")
    labels = [s.replace("_", " ") for s in names]
    ax.set_xticks(range(n), labels, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(n), [f"{lab} ({int(t)})" for lab, t in zip(labels, totals[:, 0])], fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("reference (pixels)")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    with io_utils.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
