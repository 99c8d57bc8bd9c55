"""The sample scene's grids (40 m pixels, 2 km cells) and smooth random fields on them.

Why one module: the layout is drawn on a coarse grid (at most 512 x 512) and
resampled to full resolution in row blocks, so every stage shares the same
resampling rule (pixel centres aligned) and the same noise generator.
"""

import numpy as np
from scipy import ndimage

PIXEL_SPACING_M = 40
GRID_2KM_M = 2000
BLOCK_PIXELS = 1 << 18  # pixels per row block: small enough for the CPU caches


def axis_weights(n_out, n_in, start=0, stop=None):
    """Source indices and weights to resample an axis linearly (pixel centres aligned)."""
    stop = n_out if stop is None else stop
    pos = (np.arange(start, stop, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5
    pos = np.clip(pos, 0, n_in - 1)
    i0 = np.minimum(np.floor(pos).astype(np.intp), max(n_in - 2, 0))
    i1 = np.minimum(i0 + 1, n_in - 1)
    return i0, i1, (pos - i0).astype(np.float32)


def resample(fields, n_rows, n_cols):
    """Bilinear resampling of coarse fields [..., h, w] to an n_rows x n_cols grid."""
    i0, i1, wy = axis_weights(n_rows, fields.shape[-2])
    rows = fields[..., i0, :] * (1 - wy)[:, None] + fields[..., i1, :] * wy[:, None]
    j0, j1, wx = axis_weights(n_cols, fields.shape[-1])
    return np.ascontiguousarray(rows[..., j0] * (1 - wx) + rows[..., j1] * wx, dtype=np.float32)


def nearest_index(n_out, n_in):
    """Nearest source index per output position (pixel centres aligned)."""
    return np.minimum(((np.arange(n_out) + 0.5) * (n_in / n_out)).astype(np.intp), n_in - 1)


def smooth_noise(rng, n, scale, aniso=(1.0, 1.0)):
    """Smooth Gaussian random field on an n x n grid, zero mean, unit std.

    `scale` is the correlation length as a fraction of the scene side. Large
    scales are drawn on a small grid and resampled, which keeps this cheap.
    """
    m = int(min(n, max(8, np.ceil(6.0 / scale))))
    white = rng.standard_normal((m, m)).astype(np.float32)
    sigma = (max(scale * m * aniso[0], 0.3), max(scale * m * aniso[1], 0.3))
    a = ndimage.gaussian_filter(white, sigma, mode="wrap")
    if m != n:
        a = resample(a, n, n)
    a -= a.mean()
    return (a / (a.std() + 1e-12)).astype(np.float32)


def fractal_noise(rng, n, scale, octaves):
    """Sum of `octaves` smooth fields, each half the scale and amplitude; unit std."""
    total = np.zeros((n, n), np.float32)
    for k in range(octaves):
        total += 0.5 ** k * smooth_noise(rng, n, scale / 2 ** k)
    return (total - total.mean()) / (total.std() + 1e-12)


def smoothstep(lo, hi, x):
    """0 below `lo`, 1 above `hi`, a smooth cubic ramp between."""
    t = np.clip((x - lo) / (hi - lo), 0.0, 1.0)
    return t * t * (3 - 2 * t)
