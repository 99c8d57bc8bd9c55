"""Sentinel-1 EW backscatter of the sample scenes: surface types, swath, noise floor, speckle.

Why these numbers: they carry what makes SAR SIC hard (DESIGN.md §3). Per ice
type (nilas/new dark, young, thin/thick FYI, old ice bright) HH falls -0.2
dB/deg with incidence; calm water is dark and steep (-0.75 dB/deg) while
wind-roughened water is brighter than ice in HH at near range; HV water sits at
the thermal-noise floor (~-28.5 dB, with EW sub-swath banding); land is bright
and textured. Mixed pixels are mixed in linear power; then multiplicative
Gamma speckle with ENL 4.4 (mean 1).
"""

import numpy as np

ENL = 4.4
NOISE_FLOOR_DB = (-31.0, -28.7)  # HH, HV additive thermal-noise residual after noise correction

# Surface types. Table columns: HH and HV dB at 35 deg, HH and HV slope dB/deg,
# SIGRID-3 stage of development code (SA) used in the chart's egg code.
WATER, NEW, YOUNG, THIN_FYI, THICK_FYI, OLD, BRASH, FAST, LAND = range(9)
N_TYPES = 9
TYPE_TABLE = np.array([
    # HH35   HV35   sHH    sHV    SA
    [-40.0, -45.0, 0.0, 0.0, -9],       # WATER (unused: the wind model instead)
    [-21.0, -29.0, -0.25, -0.15, 82],   # NEW: nilas / new ice in refrozen leads
    [-16.5, -26.0, -0.20, -0.12, 85],   # YOUNG: grey-white ice
    [-15.5, -25.0, -0.20, -0.12, 87],   # THIN_FYI
    [-13.5, -23.5, -0.20, -0.12, 93],   # THICK_FYI
    [-10.5, -19.5, -0.18, -0.10, 95],   # OLD: multi-year ice, volume scattering
    [-12.0, -21.0, -0.22, -0.12, 83],   # BRASH: brash / pancake, rough edges
    [-16.0, -25.5, -0.20, -0.12, 93],   # FAST: level first-year fast ice
    [-7.0, -15.0, -0.12, -0.08, -9],    # LAND
], dtype=np.float64)


def surface_db(surface, theta35):
    """HH, HV dB of ice or land types at incidence 35 deg + theta35 (no texture)."""
    table = TYPE_TABLE.astype(np.float32)
    return (table[surface, 0] + table[surface, 2] * theta35,
            table[surface, 1] + table[surface, 3] * theta35)


def water_db(wind, theta35):
    """HH, HV dB of open water: brighter and flatter with wind (CMOD-like), steep when calm."""
    wind = np.asarray(wind, np.float32)
    lw = np.log10(np.maximum(wind, np.float32(0.5)))
    hh = -30.0 + 16.0 * lw + (-0.8 + 0.03 * wind) * theta35
    hv = -42.0 + 10.0 * lw - 0.15 * theta35
    return hh.astype(np.float32), hv.astype(np.float32)


def backscatter_db(surface, incidence_deg, wind_ms=5.0):
    """Mean (HH, HV) backscatter in dB of a surface type before speckle and noise floor.

    `surface` is one of WATER, NEW, YOUNG, THIN_FYI, THICK_FYI, OLD, BRASH, FAST,
    LAND; `wind_ms` matters for WATER only. This is the model the scenes use
    (without per-floe offsets and texture), exposed so its physics can be tested.
    """
    theta35 = np.asarray(incidence_deg, np.float32) - np.float32(35.0)
    if surface == WATER:
        return water_db(np.broadcast_to(np.float32(wind_ms), theta35.shape), theta35)
    return surface_db(np.full(theta35.shape, surface, np.int8), theta35)


class Swath:
    """One scene's EW swath: incidence angle across it and the banded noise floor.

    Incidence increases with sample index (about 19 to 46 deg) with a small tilt
    along lines; the noise floor varies per sub-swath (5 bands over samples).
    """

    def __init__(self, rng, size):
        self.size = size
        self.inc_near, self.inc_far = rng.uniform(18.9, 19.6), rng.uniform(45.8, 46.6)
        self.inc_tilt = rng.uniform(-0.3, 0.3)
        bounds = np.array([0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
        sub_off = rng.uniform(-0.6, 0.6, 5)
        xs = np.arange(size) / max(size - 1, 1)
        sub = np.clip(np.searchsorted(bounds, xs, side="right") - 1, 0, 4)
        pos = (xs - bounds[sub]) / np.diff(bounds)[sub]
        floor_pattern = (sub_off[sub] + 0.8 * (2 * pos - 1) ** 2).astype(np.float32)
        # Linear power, one row over samples.
        self.noise_hh = (10 ** ((NOISE_FLOOR_DB[0] + 0.5 * floor_pattern) / 10)).astype(np.float32)[None, :]
        self.noise_hv = (10 ** ((NOISE_FLOOR_DB[1] + floor_pattern) / 10)).astype(np.float32)[None, :]

    def incidence(self, line, sample):
        """Incidence angle (deg) at pixel positions (line, sample)."""
        size = self.size
        return (self.inc_near + (self.inc_far - self.inc_near) * sample / (size - 1)
                + self.inc_tilt * (line / (size - 1) - 0.5))

    def theta_across(self, x):
        """float32 incidence at line centre for samples x [1, w] (the tilt is added per block)."""
        size = self.size
        return (self.inc_near + (self.inc_far - self.inc_near) * x / (size - 1)).astype(np.float32)

    def theta35(self, theta_x, y):
        """Incidence minus 35 deg for rows y [h, 1], given `theta_across(x)`."""
        return theta_x + np.float32(self.inc_tilt) * (y / (self.size - 1) - 0.5) - 35.0


def speckled_sar(swath, typ, truth, land, nodata, theta, tex, surface_fields, speckle_rng):
    """HH, HV dB (speckled, NaN in no data) of one row block.

    `typ` is the surface type per pixel and `truth` its ice fraction (mixed with
    open water in linear power; land counts as fully covered). `tex` is the
    ridging texture; `surface_fields` = (off_hh, off_hv, ice_var, wind, streak,
    land_tex): per-floe offsets, large-scale ice variation, wind speed, wind
    streaks and land texture.
    """
    off_hh, off_hv, ice_var, wind, streak, land_tex = surface_fields
    ice_hh, ice_hv = surface_db(typ, theta)
    ice_hh += off_hh + tex + 0.8 * ice_var
    ice_hv += off_hv + 0.7 * tex + 0.6 * ice_var
    water_hh, water_hv = water_db(wind, theta)
    water_hh += 0.5 * streak
    water_hv += 0.3 * streak
    ice_hh[land] += 3.0 * land_tex[land] + 1.5 * tex[land]
    ice_hv[land] += 2.5 * land_tex[land] + 1.0 * tex[land]
    mix = np.where(land, 1.0, np.nan_to_num(truth)).astype(np.float32)
    s_hh = mix * 10 ** (ice_hh / 10) + (1 - mix) * 10 ** (water_hh / 10) + swath.noise_hh
    s_hv = mix * 10 ** (ice_hv / 10) + (1 - mix) * 10 ** (water_hv / 10) + swath.noise_hv
    s_hh *= speckle_rng.standard_gamma(ENL, s_hh.shape, dtype=np.float32) / np.float32(ENL)
    s_hv *= speckle_rng.standard_gamma(ENL, s_hv.shape, dtype=np.float32) / np.float32(ENL)
    hh_b = 10 * np.log10(s_hh)
    hv_b = 10 * np.log10(s_hv)
    hh_b[nodata] = np.nan
    hv_b[nodata] = np.nan
    return hh_b, hv_b
