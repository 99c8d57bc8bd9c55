"""Sample-scene family B: its SAR physics (swath, backscatter table, wind, texture, speckle), apart from family A's.

Why a second physics: a model trained on family A (backscatter.py) and
evaluated only on family A can learn that simulator's constants. Family B
keeps the same surface types (so the same SIGRID-3 stage codes and SOD
classes) but draws its SAR from other numbers and other mechanisms:

* the swath looks the other way: incidence *falls* with sample index (about
  44.5 deg at sample 0 to 20.5 deg at the last), with 3 sub-swath blocks whose
  noise floor steps at the seams instead of A's five parabolic bands;
* ice is flatter with incidence (-0.08 to -0.15 dB/deg, A about -0.2), young ice
  is bright (frost flowers), thin FYI darker than thick FYI by 1.5 dB, levels
  given at 30 deg, not 35;
* open water follows a steeper, more wind-sensitive law, and the wind comes
  from katabatic jets out of the fjords over a gusty background (layout);
* HV noise floor about -26 dB, 2.7 dB above A's; ENL 3.0 (A: 4.4);
* deformed ice has K-distributed texture (Gamma texture of shape 6 times the
  speckle), A has a smooth ridging lattice.
Everything random comes from the generator passed in; no global state.
"""

import numpy as np

from tfseaice.simulate.backscatter import BRASH, FAST, LAND, NEW, N_TYPES, OLD, THICK_FYI, THIN_FYI, WATER, YOUNG

ENL_B = 3.0
NOISE_FLOOR_B_DB = (-29.5, -26.0)   # HH, HV thermal-noise residual
REFERENCE_INCIDENCE_B = 30.0
TEXTURE_SHAPE_B = 6.0               # Gamma shape of the deformed-ice texture (K distribution)

# Per surface type: HH and HV dB at 30 deg, HH and HV slope dB/deg. Types (and so SA codes) as family A's.
TYPE_TABLE_B = np.zeros((N_TYPES, 4), np.float32)
TYPE_TABLE_B[WATER] = (-40.0, -45.0, 0.0, 0.0)          # unused: water_db_b
TYPE_TABLE_B[NEW] = (-23.5, -31.0, -0.10, -0.06)        # nilas: dark, flat
TYPE_TABLE_B[YOUNG] = (-14.0, -24.0, -0.12, -0.08)      # grey-white ice with frost flowers: bright HH
TYPE_TABLE_B[THIN_FYI] = (-17.5, -26.5, -0.15, -0.09)
TYPE_TABLE_B[THICK_FYI] = (-16.0, -25.0, -0.14, -0.08)
TYPE_TABLE_B[OLD] = (-10.0, -18.5, -0.08, -0.05)        # multi-year ice
TYPE_TABLE_B[BRASH] = (-13.0, -22.5, -0.15, -0.08)
TYPE_TABLE_B[FAST] = (-18.5, -27.5, -0.13, -0.08)       # smooth fjord fast ice
TYPE_TABLE_B[LAND] = (-6.0, -13.5, -0.05, -0.03)


def backscatter_db_b(surface, incidence_deg, wind_ms=5.0):
    """Mean (HH, HV) dB of a surface type in family B before texture, speckle and noise floor."""
    theta = np.asarray(incidence_deg, np.float32) - np.float32(REFERENCE_INCIDENCE_B)
    if surface == WATER:
        return water_db_b(np.broadcast_to(np.float32(wind_ms), theta.shape), theta)
    hh30, hv30, shh, shv = TYPE_TABLE_B[surface]
    return hh30 + shh * theta, hv30 + shv * theta


def water_db_b(wind, theta):
    """HH, HV dB of open water at incidence 30 deg + `theta`: steep when calm, bright in strong wind."""
    wind = np.maximum(np.asarray(wind, np.float32), np.float32(0.5))
    lw = np.log10(wind / np.float32(5.0))
    hh = -24.0 + 22.0 * lw + (-1.0 + 0.045 * np.minimum(wind, 18.0)) * theta
    hv = -39.0 + 7.0 * lw - 0.1 * theta
    return hh.astype(np.float32), hv.astype(np.float32)


class SwathB:
    """Family B's swath: incidence falling across samples, 3 sub-swath blocks with stepped noise floors."""

    def __init__(self, rng, size):
        self.size = size
        self.inc_high, self.inc_low = rng.uniform(44.0, 45.0), rng.uniform(20.0, 21.0)
        self.inc_tilt = rng.uniform(-0.5, 0.5)
        steps = rng.uniform(-0.8, 0.8, 3)
        xs = np.arange(size) / max(size - 1, 1)
        block = np.minimum((xs * 3).astype(int), 2)
        floor = (steps[block] + 0.3 * (xs * 3 - block)).astype(np.float32)  # a small ramp inside each block
        self.noise_hh = (10 ** ((NOISE_FLOOR_B_DB[0] + 0.5 * floor) / 10)).astype(np.float32)[None, :]
        self.noise_hv = (10 ** ((NOISE_FLOOR_B_DB[1] + floor) / 10)).astype(np.float32)[None, :]

    def incidence(self, line, sample):
        """Incidence angle (deg) at pixel positions (line, sample)."""
        size = self.size
        return (self.inc_high - (self.inc_high - self.inc_low) * sample / (size - 1)
                + self.inc_tilt * (line / (size - 1) - 0.5))

    def theta(self, y, x):
        """Incidence minus the 30 deg reference, float32 [h, w], for rows y [h, 1] and samples x [1, w]."""
        return (self.incidence(y, x) - REFERENCE_INCIDENCE_B).astype(np.float32)


def sar_block_b(swath, typ, truth, land, nodata, theta, fields, rng):
    """HH, HV dB (NaN in no data) of one row block of family B.

    `fields` = (wind, ice_var, deformed, land_tex): wind speed (m/s), a
    large-scale ice brightness variation (unit std), the share of deformed ice
    (0..1, scales the K texture) and land texture. Ice and water mix in linear
    power by the pixel's ice fraction; texture, then speckle multiply.
    """
    wind, ice_var, deformed, land_tex = fields
    table = TYPE_TABLE_B
    ice_hh = table[typ, 0] + table[typ, 2] * theta + 1.1 * ice_var
    ice_hv = table[typ, 1] + table[typ, 3] * theta + 0.8 * ice_var
    ice_hh[land] += 3.5 * land_tex[land]
    ice_hv[land] += 3.0 * land_tex[land]
    water_hh, water_hv = water_db_b(wind, theta)
    mix = np.where(land, 1.0, np.nan_to_num(truth)).astype(np.float32)
    texture = rng.standard_gamma(TEXTURE_SHAPE_B, typ.shape).astype(np.float32) / np.float32(TEXTURE_SHAPE_B)
    texture = 1.0 + np.clip(deformed, 0, 1) * (texture - 1.0)        # K-distributed where deformed
    s_hh = mix * texture * 10 ** (ice_hh / 10) + (1 - mix) * 10 ** (water_hh / 10) + swath.noise_hh
    s_hv = mix * texture * 10 ** (ice_hv / 10) + (1 - mix) * 10 ** (water_hv / 10) + swath.noise_hv
    s_hh *= rng.standard_gamma(ENL_B, s_hh.shape).astype(np.float32) / np.float32(ENL_B)
    s_hv *= rng.standard_gamma(ENL_B, s_hv.shape).astype(np.float32) / np.float32(ENL_B)
    hh, hv = 10 * np.log10(s_hh), 10 * np.log10(s_hv)
    hh[nodata] = np.nan
    hv[nodata] = np.nan
    return hh.astype(np.float32), hv.astype(np.float32)
