"""The decoder-lattice statistic of generated SAR images (numpy): the 2-D power spectrum's peak.

The 2-D power spectrum (|FFT|^2 of each mean-removed image, averaged over
images) at the fundamental frequencies of a period x period lattice, (fx, fy)
in {-1, 0, 1}^2 / period without (0, 0), divided by the mean power of their
neighbours (2 bins either side along fx and fy; along the axis only for points
on an axis). A pattern of that period (the transposed convolutions' dot
lattice, or stripes) gives a ratio well above 1; speckle, texture and any
smooth spectrum give about 1. The 2-D points and not an axial average:
averaging over the other axis dilutes a dot lattice's peaks by period / size.
Computed on the gray values; images must be square and of one size (patches).
"""

import numpy as np

DEFAULT_PERIOD = 32
PEAK_NEIGHBOURS = (-2, -1, 1, 2)


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
