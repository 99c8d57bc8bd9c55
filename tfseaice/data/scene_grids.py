"""A scene's coarse grids brought to its pixels: GCPs (incidence angle, lat/lon) and the 2 km grid.

Positions are in raw 40 m pixel units; the centre of output pixel i at
40 m x f lies at raw line i * f + (f - 1) / 2. Interpolation is bilinear and
separable (rows, then columns in chunks), so memory stays one output array.
- GCPs: AI4Arctic raw files hold a 21 x 21 grid (`sar_grid_line`,
  `sar_grid_sample`, `sar_grid_latitude`, `sar_grid_longitude`,
  `sar_grid_incidenceangle`) on the 40 m grid.
- 2 km grid (AMSR2 `btemp_*`, ERA5): cell (i, j) covers raw lines
  [50 i, 50 i + 50) and samples [50 j, 50 j + 50) from the scene's origin (the
  starter pack's `amsrenv_delta` = 2000 m / pixel spacing); its value sits at
  the cell centre. It is not stretched to the SAR extent.
"""

import numpy as np

from tfseaice.errors import InputError

GRID_2KM_RAW_PIXELS = 50
_COLUMN_CHUNK = 4096


def pixel_centres(n, f):
    """Raw-grid coordinates of the centres of `n` output pixels of f raw pixels each."""
    return np.arange(n) * f + (f - 1) / 2.0


def interp_separable(lines, samples, grid, shape, f):
    """Bilinear interpolation of `grid` [len(lines), len(samples)] (raw coordinates) to [H, W] float32.

    Outside the grid's extent the edge values are kept (np.interp clamps).
    """
    out_lines, out_samples = pixel_centres(shape[0], f), pixel_centres(shape[1], f)
    along = np.stack([np.interp(out_samples, samples, row) for row in grid])      # [G, W]
    full = np.empty(shape, np.float32)
    for j0 in range(0, shape[1], _COLUMN_CHUNK):
        block = along[:, j0:j0 + _COLUMN_CHUNK]
        full[:, j0:j0 + _COLUMN_CHUNK] = np.stack(
            [np.interp(out_lines, lines, block[:, j]) for j in range(block.shape[1])], axis=1)
    return full


def gcp_grid(ds, name, path):
    """(unique lines, unique samples, values [L, S]) of GCP variable `name`."""
    missing = [n for n in ("sar_grid_line", "sar_grid_sample", name) if n not in ds.variables]
    if missing:
        raise InputError(path, f"missing required variable {', '.join(missing)}")
    lines = ds["sar_grid_line"].values.astype(np.float64)
    samples = ds["sar_grid_sample"].values.astype(np.float64)
    values = ds[name].values.astype(np.float64)
    ul, us = np.unique(lines), np.unique(samples)
    if len(ul) * len(us) != len(values):
        raise InputError(path, f"GCPs do not form a regular grid ({len(ul)} lines x {len(us)} samples != "
                               f"{len(values)} points)")
    grid = np.full((len(ul), len(us)), np.nan)
    grid[np.searchsorted(ul, lines), np.searchsorted(us, samples)] = values
    return ul, us, grid


def incidence_angle(ds, path, shape, f):
    """Incidence angle [H, W] (degrees) from the GCPs, bilinear to the output pixel centres."""
    ul, us, grid = gcp_grid(ds, "sar_grid_incidenceangle", path)
    if not np.isfinite(grid).all():
        raise InputError(path, "incidence angle GCP grid has gaps")
    return interp_separable(ul, us, grid, shape, f)


def gcp_lat_lon(ds, path, shape, f):
    """(lat, lon) float32 [H, W] from the GCPs, or None if the file has none (or gaps)."""
    names = ("sar_grid_line", "sar_grid_sample", "sar_grid_latitude", "sar_grid_longitude")
    if any(n not in ds.variables for n in names):
        return None
    ul, us, lat = gcp_grid(ds, "sar_grid_latitude", path)
    _, _, lon = gcp_grid(ds, "sar_grid_longitude", path)
    if not (np.isfinite(lat).all() and np.isfinite(lon).all()):
        return None
    # Across the antimeridian: unwrap, interpolate, wrap back to [-180, 180).
    lon = np.unwrap(np.unwrap(lon, period=360.0, axis=1), period=360.0, axis=0)
    lat_i = interp_separable(ul, us, lat, shape, f)
    lon_i = interp_separable(ul, us, lon, shape, f)
    lon_i = ((lon_i + 180.0) % 360.0 - 180.0).astype(np.float32)
    return lat_i, lon_i


def grid_2km(values, path, name, shape, f):
    """A 2 km variable [G_lines, G_samples] on the output grid [H, W] (cells of 50 raw pixels).

    Missing cells take the variable's mean, so they do not spread NaN.
    """
    a = np.asarray(values, np.float32)
    if a.ndim != 2:
        raise InputError(path, f"variable {name} is not 2-D")
    finite = np.isfinite(a)
    filled = np.where(finite, a, np.nanmean(a) if finite.any() else 0.0).astype(np.float64)
    centres = lambda n: np.arange(n) * GRID_2KM_RAW_PIXELS + (GRID_2KM_RAW_PIXELS - 1) / 2.0  # noqa: E731
    return interp_separable(centres(a.shape[0]), centres(a.shape[1]), filled, shape, f)


def gcp_points(ds, path):
    """(lines, samples, lat, lon) of the raw file's GCPs on the 40 m grid, or None if it has none."""
    names = ("sar_grid_line", "sar_grid_sample", "sar_grid_latitude", "sar_grid_longitude")
    if any(n not in ds.variables for n in names):
        return None
    lines, samples, lat, lon = (np.asarray(ds[n].values, np.float64) for n in names)
    keep = np.isfinite(lines) & np.isfinite(samples) & np.isfinite(lat) & np.isfinite(lon)
    return lines[keep], samples[keep], lat[keep], lon[keep]
