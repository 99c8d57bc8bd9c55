"""Realism statistics of SAR images (numpy): per-class mean, local speckle CV, lattice peak.

Images are on the 8-bit dB scale the glacier data use (values in [0, 1] =
gray / 255, gray = 1 + 254 * (dB - DB_MIN) / (DB_MAX - DB_MIN), 0 = no data;
tfseaice.simulate.glaciers).

* **local coefficient of variation** (std / mean in ``window`` x ``window``
  windows, 7 by default) is computed on *linear intensity* (gray -> dB ->
  10**(dB/10)): that is where fully developed speckle is Gamma(L, 1/L)
  distributed with CV = 1/sqrt(L) (L the equivalent number of looks, ENL =
  1/CV^2), the quantity SAR people estimate on homogeneous areas. On dB or
  gray values the CV would depend on the mean level. Only windows lying
  wholly inside one class are used (no class edges); the statistic per class is
  the median over those windows of all images (robust to layover, edges of
  icebergs, etc.).
* **lattice peak**: the 2-D power spectrum (|FFT|^2 of each mean-removed
  image, averaged over images) at the fundamental frequencies of a
  period x period lattice, (fx, fy) in {-1, 0, 1}^2 / period without (0, 0),
  divided by the mean power of their neighbours (2 bins either side along fx
  and fy; along the axis only for points on an axis). A pattern of that period (the transposed convolutions' dot lattice,
  or stripes) gives a ratio well above 1; speckle, texture and any smooth
  spectrum give about 1. The 2-D points and not an axial average: averaging
  over the other axis dilutes a dot lattice's peaks by period / size. Computed
  on the gray values; images must be square and of one size (patches).
"""

import numpy as np
from scipy import ndimage

from tfseaice.simulate.glaciers import DB_MAX, DB_MIN

DEFAULT_WINDOW = 7
DEFAULT_PERIOD = 32
PEAK_NEIGHBOURS = (-2, -1, 1, 2)


def unit_to_intensity(sar01):
    """Images in [0, 1] (gray / 255) -> linear intensity (gray 0 maps to DB_MIN - 1 gray step)."""
    gray = np.asarray(sar01, np.float64) * 255.0
    db = (gray - 1.0) * (DB_MAX - DB_MIN) / 254.0 + DB_MIN
    return 10.0 ** (db / 10.0)


def local_cv(intensity, region, window=DEFAULT_WINDOW):
    """std / mean of ``intensity`` [H,W] in every window x window window wholly inside ``region``
    (boolean [H,W]); returns the 1-D array of those windows' CVs (population std)."""
    x = np.asarray(intensity, np.float64)
    inside = ndimage.uniform_filter(np.asarray(region, np.float64), window, mode="constant", cval=0.0)
    m1 = ndimage.uniform_filter(x, window, mode="reflect")
    m2 = ndimage.uniform_filter(x * x, window, mode="reflect")
    keep = inside > 1.0 - 1e-9
    mean = m1[keep]
    std = np.sqrt(np.maximum(m2[keep] - mean * mean, 0.0))
    return std / np.maximum(mean, 1e-30)


def class_statistics(images01, classes, class_names, window=DEFAULT_WINDOW, skip=(0,)):
    """{class name: {"mean": mean of the [0, 1] values, "cv": median local CV, "windows": n}}.

    images01: [N,H,W] or [N,H,W,1] in [0, 1]; classes: [N,H,W] class indices;
    classes in ``skip`` (no data) are left out.
    """
    images01 = np.asarray(images01, np.float64)
    if images01.ndim == 4:
        images01 = images01[..., 0]
    classes = np.asarray(classes)
    out = {}
    for c, name in enumerate(class_names):
        if c in skip:
            continue
        values, cvs = [], []
        for img, cls in zip(images01, classes):
            sel = cls == c
            if not sel.any():
                continue
            values.append(img[sel])
            cvs.append(local_cv(unit_to_intensity(img), sel, window))
        vals = np.concatenate(values) if values else np.zeros(0)
        cvs = np.concatenate(cvs) if cvs else np.zeros(0)
        out[name] = {"mean": float(vals.mean()) if vals.size else float("nan"),
                     "cv": float(np.median(cvs)) if cvs.size else float("nan"), "windows": int(cvs.size)}
    return out


def power_spectrum(images):
    """Mean 2-D power spectrum |FFT|^2 of mean-removed, same-sized square images [N,H,W(,1)]."""
    images = np.asarray(images, np.float64)
    if images.ndim == 4:
        images = images[..., 0]
    if images.ndim != 3 or images.shape[1] != images.shape[2]:
        raise ValueError(f"power_spectrum needs square images [N,H,W], got shape {images.shape}")
    power = np.zeros(images.shape[1:])
    for img in images:
        power += np.abs(np.fft.fft2(img - img.mean())) ** 2
    return power / len(images)


def axial_spectrum(power):
    """(freqs in cycles/px 0..0.5, power averaged over the other axis, rows and columns alike)."""
    n = power.shape[0]
    axial = 0.5 * (power.mean(axis=0) + power.mean(axis=1))
    half = n // 2 + 1
    return np.arange(half) / n, axial[:half]


def lattice_peak(power, period=DEFAULT_PERIOD):
    """Power at the 8 fundamental frequencies of a period x period lattice ((+-1, 0, +-1) / period
    in fx, fy) over the mean power of their neighbours (PEAK_NEIGHBOURS bins along fx and fy)."""
    power = np.asarray(power, np.float64)
    if power.ndim == 3:                       # images, not a spectrum
        power = power_spectrum(power)
    n = power.shape[0]
    k = int(round(n / float(period)))
    if k + min(PEAK_NEIGHBOURS) < 1 or k + max(PEAK_NEIGHBOURS) >= n // 2:
        raise ValueError(f"period {period} px is not resolvable in {n}-px images")
    peak = neighbours = 0.0
    for a in (-1, 0, 1):
        for b in (-1, 0, 1):
            if a == b == 0:
                continue
            y, x = (a * k) % n, (b * k) % n
            peak += power[y, x]
            # Points on an axis are compared along that axis only: straight edges (patch
            # borders, no-data margins) put excess power on the whole fx = 0 / fy = 0 lines.
            near = [] if b == 0 else [power[y, (x + d) % n] for d in PEAK_NEIGHBOURS]
            near += [] if a == 0 else [power[(y + d) % n, x] for d in PEAK_NEIGHBOURS]
            neighbours += np.mean(near)
    return float(peak / max(neighbours, 1e-30))
