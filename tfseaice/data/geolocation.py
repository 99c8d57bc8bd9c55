"""Geolocation of a scene's pixels from the ground control points its netCDF file carries.

AI4Arctic raw files hold a 21 x 21 grid of GCPs (`sar_grid_line`,
`sar_grid_sample`, `sar_grid_latitude`, `sar_grid_longitude`) on the 40 m grid.
"""

import numpy as np

from tfseaice.data.ai4arctic import open_dataset
from tfseaice.errors import InputError


def _gcp_grid(ds, name, path):
    lines = ds["sar_grid_line"].values.astype(np.float64)
    samples = ds["sar_grid_sample"].values.astype(np.float64)
    values = ds[name].values.astype(np.float64)
    ul, us = np.unique(lines), np.unique(samples)
    if len(ul) * len(us) != len(values):
        raise InputError(path, f"GCPs do not form a regular grid ({len(ul)} x {len(us)} != {len(values)})")
    grid = np.full((len(ul), len(us)), np.nan)
    grid[np.searchsorted(ul, lines), np.searchsorted(us, samples)] = values
    return ul, us, grid


def _interp_grid(ul, us, grid, shape, f):
    """Separable linear interpolation of a GCP grid to output pixel centres."""
    out_lines = np.arange(shape[0]) * f + (f - 1) / 2.0
    out_samples = np.arange(shape[1]) * f + (f - 1) / 2.0
    along = np.stack([np.interp(out_samples, us, row) for row in grid])           # [G, W]
    full = np.empty(shape, np.float32)
    for j0 in range(0, shape[1], 4096):
        block = along[:, j0:j0 + 4096]
        full[:, j0:j0 + 4096] = np.stack([np.interp(out_lines, ul, block[:, j]) for j in range(block.shape[1])], axis=1)
    return full


def gcp_lat_lon(raw_path, shape, downsample):
    """(lat, lon) float32 [H, W] from the raw file's 21 x 21 GCPs, or None if it has none."""
    names = ("sar_grid_line", "sar_grid_sample", "sar_grid_latitude", "sar_grid_longitude")
    with open_dataset(raw_path) as ds:
        if any(n not in ds.variables for n in names):
            return None
        ul, us, lat = _gcp_grid(ds, "sar_grid_latitude", raw_path)
        _, _, lon = _gcp_grid(ds, "sar_grid_longitude", raw_path)
    if not (np.isfinite(lat).all() and np.isfinite(lon).all()):
        return None
    # Across the antimeridian: unwrap, interpolate, wrap back to [-180, 180).
    lon = np.unwrap(np.unwrap(lon, period=360.0, axis=1), period=360.0, axis=0)
    lat_i = _interp_grid(ul, us, lat, shape, downsample)
    lon_i = _interp_grid(ul, us, lon, shape, downsample)
    lon_i = ((lon_i + 180.0) % 360.0 - 180.0).astype(np.float32)
    return lat_i, lon_i
