"""Glacier SAR images' gray <-> dB convention and their speckle statistics (numpy).

The glacier images are 8-bit gray on a dB scale: values in [0, 1] = gray / 255,
gray = 1 + 254 * (dB - DB_MIN) / (DB_MAX - DB_MIN), 0 = no data (the sample
glaciers are written this way; real CaFFe images are read with the same scale).

The **local coefficient of variation** (std / mean in ``window`` x ``window``
windows, 7 by default) is computed on *linear intensity* (gray -> dB ->
10**(dB/10)): that is where fully developed speckle is Gamma(L, 1/L)
distributed with CV = 1/sqrt(L) (L the equivalent number of looks, ENL =
1/CV^2), the quantity SAR people estimate on homogeneous areas. On dB or
gray values the CV would depend on the mean level. Only windows lying
wholly inside one class are used (no class edges); the statistic per class is
the median over those windows of all images (robust to layover, edges of
icebergs, etc.). Used by the speckle head (looks from the training images)
and by the realism evaluation.
"""

import numpy as np
from scipy import ndimage

DB_MIN, DB_MAX = -25.0, 7.0
DEFAULT_WINDOW = 7


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
