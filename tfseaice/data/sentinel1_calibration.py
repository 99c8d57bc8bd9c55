"""Look-up tables of a Sentinel-1 GRD product, interpolated bilinearly onto blocks of image lines.

Why blocks: a full IW GRDH is ~26,000 x 16,700 samples; a LUT brought to every
pixel at once would be gigabytes. Each table is first interpolated along its
pixel vector to the full width (a few dozen rows x width, small), then
linearly between the two vector lines that bracket each image line, one line
block at a time (float32). Outside the first/last vector line the edge row is
kept (the products' vectors normally reach past both ends).

The `sigmaNought` table comes from xarray-sentinel's calibration group (it
checks that all vectors share one pixel grid, as the calibration vectors of
GRD products do; the noise vectors do not, sentinel1_noise.py); see
docs/sentinel1.md for the formula sigma0 = (DN^2 - noise) / A^2.
"""

import numpy as np

from tfseaice.errors import InputError


class LineInterpolator:
    """A table given on vector lines, already at full width: rows [G, W]; `at(lines)` -> [B, W] float32."""

    def __init__(self, vector_lines, rows):
        order = np.argsort(vector_lines, kind="stable")
        self.lines = np.asarray(vector_lines, np.float64)[order]
        self.rows = np.asarray(rows, np.float32)[order]

    def at(self, lines):
        lines = np.asarray(lines, np.float64)
        if len(self.lines) == 1:
            return np.repeat(self.rows[:1], len(lines), axis=0)
        i = np.clip(np.searchsorted(self.lines, lines, side="right") - 1, 0, len(self.lines) - 2)
        span = self.lines[i + 1] - self.lines[i]
        t = np.clip((lines - self.lines[i]) / np.where(span > 0, span, 1.0), 0.0, 1.0).astype(np.float32)[:, None]
        out = self.rows[i] * (1 - t)
        out += self.rows[i + 1] * t
        return out


def along_pixels(pixels, values, width):
    """One vector (values at `pixels`) linearly interpolated to samples 0..width-1 (edges held)."""
    return np.interp(np.arange(width, dtype=np.float64), np.asarray(pixels, np.float64),
                     np.asarray(values, np.float64)).astype(np.float32)


def sigma_nought(product, group, width):
    """LineInterpolator of the `sigmaNought` LUT (A, not squared) of one polarisation group."""
    cal = product.open_group(f"{group}/calibration", "calibration table")
    if "sigmaNought" not in cal:
        raise InputError(product.path, f"calibration of {group} has no sigmaNought vectors")
    pixels = cal["pixel"].values
    table = cal["sigmaNought"].values
    if table.size == 0 or not np.isfinite(table).all() or (table <= 0).any():
        raise InputError(product.path, f"calibration of {group}: sigmaNought is empty or not positive")
    rows = np.stack([along_pixels(pixels, row, width) for row in table])
    return LineInterpolator(cal["line"].values, rows)
