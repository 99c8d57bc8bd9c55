"""distance_map from the GSHHG coastline (tfseaice.data.land) on scenes placed at known places."""

import numpy as np
import pyproj
import pytest
import xarray as xr

from tfseaice.data import land
from tfseaice.data.ai4arctic import DISTANCE_CLASS_EDGES_KM, LAND_CLASS
from tfseaice.errors import InputError


def gcp_dataset(lat0, lon0, shape, n=11, spacing_m=40.0):
    """A raw-layout Dataset (GCPs only) of a north-up scene of `shape` 40 m pixels centred on (lat0, lon0)."""
    crs = pyproj.CRS.from_proj4(f"+proj=aeqd +lat_0={lat0} +lon_0={lon0} +datum=WGS84 +units=m")
    to_ll = pyproj.Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    ul, us = np.linspace(0, shape[0] - 1, n), np.linspace(0, shape[1] - 1, n)
    lines, samples = (a.ravel() for a in np.meshgrid(ul, us, indexing="ij"))
    lon, lat = to_ll.transform((samples - shape[1] / 2) * spacing_m, -(lines - shape[0] / 2) * spacing_m)
    pts = ("sar_grid_points",)
    return xr.Dataset({"sar_grid_line": (pts, lines), "sar_grid_sample": (pts, samples),
                       "sar_grid_latitude": (pts, np.asarray(lat)), "sar_grid_longitude": (pts, np.asarray(lon)),
                       "nersc_sar_primary": (("sar_lines", "sar_samples"), np.zeros(shape, np.float32))})


def brute_force_km(lat, lon, radius_km=15.0, step_m=75.0):
    """Distance (km) from a point to the nearest GSHHG land sample on a dense local grid (independent of land.py)."""
    crs = pyproj.CRS.from_proj4(f"+proj=aeqd +lat_0={lat} +lon_0={lon} +datum=WGS84 +units=m")
    to_ll = pyproj.Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    r = np.arange(-radius_km * 1e3, radius_km * 1e3 + 1, step_m)
    x, y = np.meshgrid(r, r)
    glon, glat = to_ll.transform(x, y)
    hit = land.landmask().contains_many(np.ascontiguousarray(np.ravel(glon)), np.ascontiguousarray(np.ravel(glat)))
    hit = np.asarray(hit).reshape(x.shape)
    return float(np.hypot(x[hit], y[hit]).min() / 1e3) if hit.any() else np.inf


def test_greenland_ice_sheet_is_land_and_the_open_greenland_sea_is_far_from_it():
    sheet = land.distance_map(gcp_dataset(72.5, -40.0, (120, 120)), "sheet")
    sea = land.distance_map(gcp_dataset(75.0, -5.0, (120, 120)), "sea")
    assert sheet.dtype == np.float32 and sheet.shape == (120, 120)
    assert (sheet == LAND_CLASS).all()
    assert (sea == len(DISTANCE_CLASS_EDGES_KM) + 1).all()   # class 41: over 300 km from any coast


def test_classes_near_a_coast_match_a_brute_force_distance():
    """East Greenland coast (Cape Brewster, Scoresby Sund mouth): every sampled pixel's class is the brute-force one, within a bin."""
    shape = (500, 500)   # 20 km x 20 km
    ds = gcp_dataset(70.1, -22.2, shape)
    dmap = land.distance_map(ds, "coast")
    assert (dmap == LAND_CLASS).any() and (dmap > 5).any(), "the scene should hold land and water"
    lat, lon = ds["sar_grid_latitude"].values, ds["sar_grid_longitude"].values
    lines, samples = ds["sar_grid_line"].values, ds["sar_grid_sample"].values
    rng = np.random.default_rng(0)
    picks = rng.choice(len(lat), 16, replace=False)
    off = 0
    for k in picks:
        i, j = int(round(lines[k])), int(round(samples[k]))
        km = brute_force_km(lat[k], lon[k])
        if not np.isfinite(km):   # no land within 15 km: a class beyond the 15 km bin
            assert dmap[i, j] >= 16
            continue
        if km == 0.0:
            assert dmap[i, j] == LAND_CLASS or km < 0.3, (lat[k], lon[k])
            continue
        expected = 1 + np.searchsorted(DISTANCE_CLASS_EDGES_KM, km, side="left")
        off = max(off, abs(int(dmap[i, j]) - int(expected)))
    assert off <= 1


def test_a_downsampled_grid_matches_the_40m_map():
    ds = gcp_dataset(70.1, -22.2, (400, 400))
    full = land.distance_map(ds, "coast")
    half = land.distance_map(ds, "coast", f=2)
    assert half.shape == (200, 200)
    agree = (half == full[1::2, 1::2]).mean()
    assert agree > 0.95


def test_a_gcp_grid_with_gaps_is_refused():
    ds = gcp_dataset(70.1, -22.2, (100, 100))
    ds["sar_grid_latitude"].values[3] = np.nan
    with pytest.raises(InputError, match="gaps"):
        land.distance_map(ds, "gappy.nc")
