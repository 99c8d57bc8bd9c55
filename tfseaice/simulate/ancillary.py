"""Ancillary fields of the sample scenes: AMSR2 and ERA5 on the 2 km grid, SAR tie points.

Why: real raw AI4Arctic files carry them, and models can use AMSR2 as an input;
their values follow the scene's true ice cover (tallied while rendering) so a
model that uses them sees consistent data.
"""

import numpy as np
from scipy import ndimage

from tfseaice.simulate.grid import GRID_2KM_M, PIXEL_SPACING_M, resample, smooth_noise

N_GCP = 21
BTEMP_NAMES = tuple(f"btemp_{f}{p}" for f in ("6_9", "7_3", "10_7", "18_7", "23_8", "36_5", "89_0")
                    for p in ("h", "v"))
ERA5_NAMES = ("u10m_rotated", "v10m_rotated", "t2m", "skt", "tcwv", "tclw")
# AMSR2 brightness temperature (K): water V, water H, ice V, ice H (before wind/vapour terms).
_TB = {
    "6_9": (161, 82, 250, 232), "7_3": (162, 83, 250, 232), "10_7": (167, 88, 249, 231),
    "18_7": (183, 108, 246, 228), "23_8": (200, 130, 244, 226), "36_5": (212, 145, 237, 218),
    "89_0": (245, 200, 228, 210),
}
_TB_BLUR_KM = {"6_9": 18, "7_3": 18, "10_7": 12, "18_7": 8, "23_8": 8, "36_5": 4, "89_0": 2}
_TB_LAND = (252.0, 242.0)


class Grid2Tally:
    """Per 2 km cell: truth sum and count, land and pixel counts, built row block by row block."""

    def __init__(self, size):
        self.n2 = n2 = max(2, int(np.ceil(size * PIXEL_SPACING_M / GRID_2KM_M)))
        self.cell2 = GRID_2KM_M // PIXEL_SPACING_M
        self.col2 = np.minimum(np.arange(size) // self.cell2, n2 - 1)
        self.tb_sum = np.zeros(n2 * n2)
        self.tb_cnt = np.zeros(n2 * n2)
        self.land_cnt = np.zeros(n2 * n2)
        self.px_cnt = np.zeros(n2 * n2)

    def add_block(self, r0, r1, land, ok, truth):
        """Add rows r0:r1 (`ok`: pixels with a finite truth)."""
        n2 = self.n2
        idx2 = (np.minimum(np.arange(r0, r1) // self.cell2, n2 - 1)[:, None] * n2 + self.col2[None, :])
        self.tb_sum += np.bincount(idx2[ok], weights=truth[ok], minlength=n2 * n2)
        self.tb_cnt += np.bincount(idx2[ok], minlength=n2 * n2)
        self.land_cnt += np.bincount(idx2[land], minlength=n2 * n2)
        self.px_cnt += np.bincount(idx2.ravel(), minlength=n2 * n2)


def grid_2km(rng, lay, tally):
    """AMSR2 brightness temperatures and ERA5 fields on the 2 km grid (from a filled Grid2Tally)."""
    dims = ("2km_grid_lines", "2km_grid_samples")
    n2 = tally.n2
    c2 = resample(lay["c"], n2, n2)
    sic = np.where(tally.tb_cnt > 0, tally.tb_sum / np.maximum(tally.tb_cnt, 1), c2.ravel()).reshape(n2, n2)
    land = (tally.land_cnt / np.maximum(tally.px_cnt, 1)).reshape(n2, n2)
    wind = resample(lay["wind"], n2, n2)
    wdir = resample(lay["wind_dir"], n2, n2)
    era_sigma = 7.0  # ERA5 is ~30 km
    wind = ndimage.gaussian_filter(wind, era_sigma, mode="nearest")
    sic_s = ndimage.gaussian_filter(sic, era_sigma, mode="nearest")
    t2m = 272.0 - 14.0 * sic_s + 0.8 * smooth_noise(rng, n2, 0.5)
    tcwv = np.clip(5.0 - 2.0 * sic_s + 1.0 * smooth_noise(rng, n2, 0.5), 0.5, None)
    tclw = np.clip(0.04 + 0.03 * smooth_noise(rng, n2, 0.4), 0.0, None)
    out = {}
    for name in BTEMP_NAMES:
        freq, pol = name[len("btemp_"):-1], name[-1]
        wv, wh, iv, ih = _TB[freq]
        tw = (wv + 0.6 * (wind - 5)) if pol == "v" else (wh + 1.2 * (wind - 5))
        ti = iv if pol == "v" else ih
        if freq == "23_8":
            tw = tw + 1.5 * tcwv
        tl = _TB_LAND[0] if pol == "v" else _TB_LAND[1]
        tb = (1 - land) * ((1 - sic) * tw + sic * ti) + land * tl
        tb = ndimage.gaussian_filter(tb, _TB_BLUR_KM[freq] / 2.0, mode="nearest")
        tb = tb + rng.normal(0, 0.3, tb.shape)
        out[name] = (dims, tb.astype(np.float32), {"units": "K", "long_name": f"AMSR2 {freq.replace('_', '.')} GHz {pol.upper()} brightness temperature"})
    skt = (1 - sic_s) * 271.35 + sic_s * (t2m - 2.0)
    era = {
        "u10m_rotated": (wind * np.cos(wdir), "m s-1", "ERA5 10 m wind along sar_samples"),
        "v10m_rotated": (wind * np.sin(wdir), "m s-1", "ERA5 10 m wind along sar_lines"),
        "t2m": (t2m, "K", "ERA5 2 m temperature"),
        "skt": (skt, "K", "ERA5 skin temperature"),
        "tcwv": (tcwv, "kg m-2", "ERA5 total column water vapour"),
        "tclw": (tclw, "kg m-2", "ERA5 total column cloud liquid water"),
    }
    for name, (a, units, long_name) in era.items():
        out[name] = (dims, np.asarray(a, np.float32), {"units": units, "long_name": long_name})
    return out


def gcps(rng, size, incidence, service, lay):
    """21 x 21 tie points: line, sample, lat, lon, incidence angle, height."""
    g = np.linspace(0, size - 1, N_GCP)
    line, sample = [a.ravel() for a in np.meshgrid(g, g, indexing="ij")]
    if service == "dmi":
        lat0, lon0 = rng.uniform(62, 80), rng.uniform(-40, -10)
    else:
        lat0, lon0 = rng.uniform(58, 76), rng.uniform(-90, -55)
    heading = rng.uniform(0, 2 * np.pi)
    dy = (line - size / 2) * PIXEL_SPACING_M
    dx = (sample - size / 2) * PIXEL_SPACING_M
    north = dy * np.cos(heading) - dx * np.sin(heading)
    east = dy * np.sin(heading) + dx * np.cos(heading)
    lat = lat0 + north / 111320.0
    lon = lon0 + east / (111320.0 * np.cos(np.radians(lat0)))
    n = lay["n"]
    land = ndimage.map_coordinates(lay["land"], [line / size * n, sample / size * n], order=1, mode="nearest")
    height = rng.uniform(20, 60) + np.where(land > 0, np.minimum(2e4 * land, 1200), 0.0)
    dim = ("sar_grid_points",)
    return {
        "sar_grid_line": (dim, line.astype(np.float32), {"long_name": "GCP line (row) in sar_lines pixels"}),
        "sar_grid_sample": (dim, sample.astype(np.float32), {"long_name": "GCP sample (column) in sar_samples pixels"}),
        "sar_grid_latitude": (dim, lat, {"units": "degrees_north"}),
        "sar_grid_longitude": (dim, lon, {"units": "degrees_east"}),
        "sar_grid_incidenceangle": (dim, incidence(line, sample).astype(np.float32), {"units": "degrees"}),
        "sar_grid_height": (dim, height.astype(np.float32), {"units": "m"}),
    }

