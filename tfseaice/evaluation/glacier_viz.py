"""Glacier pictures: pix2pix checkpoint curves (paper Fig. 3), realism spectra, zone
predictions with their calving fronts, and the gain of zone models trained with synthetic SAR.

PNG files (matplotlib, Agg canvas, written atomically); the sea-ice panels and every
TensorBoard strip are in tfseaice.viz.
"""

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.figure import Figure

from tfseaice import io_utils


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


# ------------------------------------------------------ synthetic-data gain
def save_synthetic_gain_plot(rows, path, title="Zone U-Net: gain from synthetic training patches"):
    """PNG of the mIoU and MDE gain over F = 0 against the synthetic fraction F, one line per setting.

    `rows`: `tfseaice.evaluation.synthetic_gain.summarize` rows; error bars are
    the std of the per-seed paired gains (none for a single seed).
    """
    fig = Figure(figsize=(10, 4))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2)
    panels = ((axes[0], "miou", 100.0, "mIoU gain (percentage points)"),
              (axes[1], "mde_m", 1.0, "MDE change (m; negative = better)"))
    for setting in dict.fromkeys(r["setting"] for r in rows):
        sub = sorted((r for r in rows if r["setting"] == setting), key=lambda r: r["synthetic_fraction"])
        x = [r["synthetic_fraction"] for r in sub]
        for ax, key, scale, _ in panels:
            y = [_scaled(r[f"{key}_gain"], scale) for r in sub]
            err = [_scaled(r[f"{key}_gain_std"], scale, 0.0) for r in sub]
            ax.errorbar(x, y, yerr=err, marker="o", capsize=3, label=setting)
    for ax, _, _, label in panels:
        ax.axhline(0.0, color="gray", lw=0.8)
        ax.set_xlabel("synthetic fraction F")
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
    axes[0].legend()
    fig.suptitle(title)
    fig.tight_layout()
    with io_utils.atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")


# ------------------------------------------------------------ glacier zones
ZONE_COLOURS = ("#000000", "#8c6d46", "#d9eef7", "#1f4e8c")   # no data, rock, glacier, ocean


def save_zone_fronts_panel(images, path, zone_classes=3, max_pixels=600):
    """PNG: one row per image, SAR | true zones | predicted zones with the true (cyan) and predicted
    (magenta) calving fronts drawn as points (CaFFe's visualisation colours)."""
    fig = Figure(figsize=(12, 3.6 * len(images)), dpi=100)
    FigureCanvasAgg(fig)
    axes = np.atleast_2d(fig.subplots(len(images), 3))
    cmap = ListedColormap(ZONE_COLOURS)
    norm = BoundaryNorm(np.arange(-0.5, len(ZONE_COLOURS)), len(ZONE_COLOURS))
    for row, im in zip(axes, images):
        h, w = im["sar"].shape
        step = max(1, int(np.ceil(max(h, w) / max_pixels)))
        sl = (slice(None, None, step), slice(None, None, step))
        row[0].imshow(im["sar"][sl], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        row[0].set_title(im["name"], fontsize=8)
        row[1].imshow(im["true"][sl], cmap=cmap, norm=norm, interpolation="nearest")
        row[1].set_title("true zones")
        row[2].imshow(im["pred"][sl], cmap=cmap, norm=norm, interpolation="nearest")
        miou = "n/a" if im["miou"] is None or np.isnan(im["miou"]) else f"{im['miou']:.3f}"
        mde = "n/a" if im["mde_m"] is None else f"{im['mde_m']:.0f} m"
        row[2].set_title(f"predicted ({zone_classes} zone classes): mIoU {miou}, MDE {mde}", fontsize=9)
        for key, colour in (("true_front", "cyan"), ("pred_front", "magenta")):
            r, c = np.nonzero(im[key])
            row[2].scatter(c / step, r / step, s=2.0, c=colour, marker=".", linewidths=0)
        for ax in row:
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_xlim(-0.5, (w - 1) / step + 0.5)
            ax.set_ylim((h - 1) / step + 0.5, -0.5)
    fig.suptitle("zones: black no data, brown rock, light glacier, blue ocean; "
                 "fronts: cyan true, magenta predicted", fontsize=10)
    fig.tight_layout()
    with io_utils.atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")


def _scaled(value, scale, missing=float("nan")):
    return missing if value is None else value * scale


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
