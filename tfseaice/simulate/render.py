"""The full-resolution pass of a sample scene: truth, SAR, chart raster and ice-type truth in row blocks.

Why row blocks: a 10000 x 10000 scene must fit in a few GB, so every coarse
field is resampled, every floe located and every pixel speckled one block of
rows (float32) at a time; the chart and 2 km tallies are summed on the way.
"""

from types import SimpleNamespace

import numpy as np
from scipy import ndimage

from tfseaice.simulate import terrain as T
from tfseaice.simulate.backscatter import BRASH, FAST, LAND, NEW, WATER, speckled_sar
from tfseaice.simulate.charts import pixel_classes
from tfseaice.simulate.floes import FORM_CAKE, FORM_FAST, FORM_LEVEL, FORM_NONE, value_noise
from tfseaice.simulate.grid import BLOCK_PIXELS, PIXEL_SPACING_M, axis_weights

F_DISTANCE = T.F_LEAD_WIDTH + 1  # extra coarse row: distance to land (km)


def _coarse_columns(size, lay):
    """Layout fields plus distance to land, columns already resampled to full width.

    Each row block then only mixes two coarse rows.
    """
    n = lay["n"]
    dist_km = ndimage.distance_transform_edt(~(lay["land"] > 0)).astype(np.float32) * (size / n) * PIXEL_SPACING_M / 1000
    coarse = np.concatenate([lay["fields"], dist_km[None]])
    j0, j1, wx = axis_weights(size, n)
    return np.ascontiguousarray(coarse[..., j0] * (1 - wx) + coarse[..., j1] * wx)


def _block_fields(coarse, size, n, r0, r1, f_buf, g_buf):
    """Coarse fields at full resolution for rows r0:r1 (a view of f_buf)."""
    i0, i1, wy = axis_weights(size, n, r0, r1)
    f, g = f_buf[:, :r1 - r0], g_buf[:, :r1 - r0]
    np.take(coarse, i0, axis=1, out=f)
    f *= (1 - wy)[:, None]
    np.take(coarse, i1, axis=1, out=g)
    g *= wy[:, None]
    f += g
    return f


def _floe_cover(fl, f, y, x, zones):
    """Floes and brash of one block: truth, type, form, per-floe offsets, and the vast-floe cells.

    A vast floe owns its whole cell: between its edge and the cell edge is a crack.
    """
    zb, zm, zs = zones
    big, med, small = fl.big, fl.med, fl.small
    big_warp, small_warp = fl.big_warp, fl.small_warp
    kb, eb = big.locate_in(y + big_warp * f[T.F_WARP_BIG_Y], x + big_warp * f[T.F_WARP_BIG_X], zb)
    km, em = med.locate_in(y + small_warp * f[T.F_WARP_SMALL_Y], x + small_warp * f[T.F_WARP_SMALL_X], zm)
    ks, es = small.locate_in(y + 0.6 * small_warp * f[T.F_WARP_SMALL_X],
                             x + 0.6 * small_warp * f[T.F_WARP_SMALL_Y], zs)
    in_big = big.present[kb]
    ice_b = in_big & (eb > big.gap[kb])
    ice_m = ~in_big & med.present[km] & (em > med.gap[km])
    ice_s = ~in_big & small.present[ks] & (es > small.gap[ks])

    typ = np.where(ice_b, big.type[kb], np.where(ice_m, med.type[km], small.type[ks])).astype(np.int8)
    form = np.where(ice_b, big.form, np.where(ice_m, med.form, small.form)).astype(np.int8)
    off_hh = np.where(ice_b, big.off_hh[kb], np.where(ice_m, med.off_hh[km], small.off_hh[ks]))
    off_hv = np.where(ice_b, big.off_hv[kb], np.where(ice_m, med.off_hv[km], small.off_hv[ks]))
    floe = ice_b | ice_m | ice_s
    truth = floe.astype(np.float32)
    typ[~floe] = WATER
    form[~floe] = FORM_NONE

    # Brash and ice cakes between floes in the MIZ: fractional pixels (pieces well under a pixel).
    c = f[T.F_CONC]
    brash = small.brash[ks] * 2.4 * c * (1 - c)
    brash_px = ~floe & ~in_big & (brash > 0.02)
    truth = np.where(brash_px, np.minimum(brash, 1.0), truth)
    typ[brash_px] = BRASH
    form[brash_px] = FORM_CAKE
    crack = in_big & ~ice_b
    return SimpleNamespace(truth=truth, typ=typ, form=form, off_hh=off_hh, off_hv=off_hv, crack=crack)


def _open_leads(cover, f, fast, lead_w):
    """Leads in the pack and cracks between vast floes, open or refrozen (level new ice) (in place)."""
    lw1, lw2 = lead_w
    in_pack = (f[T.F_CONC] > 0.85) & ~fast
    lead = in_pack & (f[T.F_LEAD_GATE] > 0) & ((np.abs(f[T.F_LEAD1]) < lw1 * f[T.F_LEAD_WIDTH])
                                               | (np.abs(f[T.F_LEAD2]) < lw2 * f[T.F_LEAD_WIDTH]))
    lead |= cover.crack
    frozen = lead & (f[T.F_REFROZEN] > 0)
    cover.truth[lead] = 0.0
    cover.truth[frozen] = 1.0
    cover.typ[lead] = WATER
    cover.typ[frozen] = NEW
    cover.form[lead] = FORM_NONE
    cover.form[frozen] = FORM_LEVEL
    cover.off_hh[lead] = 0.0
    cover.off_hv[lead] = 0.0


def _fast_ice_and_land(cover, fast, land, nodata):
    """Fast ice is fully covered; land and no data have no truth (NaN) (in place)."""
    cover.truth[fast] = 1.0
    cover.typ[fast] = FAST
    cover.form[fast] = FORM_FAST
    cover.typ[land] = LAND
    cover.truth[land | nodata] = np.nan


def render(size, lay, nodata_params, fl, swath, chart, grid2, speckle_rng):
    """HH, HV (dB), chart label index (NaN on land), truth, distance (km), SOD and FLOE truth, each [size, size].

    Fills the `chart` (charts.ChartTally) and `grid2` (ancillary.Grid2Tally) sums.
    Only `speckle_rng` is drawn from, in row-block order. `sod`/`floe` (uint8)
    are the AutoICE classes of each pixel's surface type and floe form
    (charts.pixel_classes): no random draw, so they leave the SAR untouched.
    """
    n = lay["n"]
    hh = np.empty((size, size), np.float32)
    hv = np.empty((size, size), np.float32)
    labels = np.empty((size, size), np.float32)
    truth_out = np.empty((size, size), np.float32)
    distance = np.empty((size, size), np.float32)
    sod = np.empty((size, size), np.uint8)
    floe = np.empty((size, size), np.uint8)
    coarse = _coarse_columns(size, lay)

    x = np.arange(size, dtype=np.float32)[None, :]
    theta_x = swath.theta_across(x)
    block = max(4, min(size, BLOCK_PIXELS // size))
    f_buf = np.empty((coarse.shape[0], block, size), np.float32)
    g_buf = np.empty_like(f_buf)
    for r0 in range(0, size, block):
        r1 = min(size, r0 + block)
        y = np.arange(r0, r1, dtype=np.float32)[:, None]
        f = _block_fields(coarse, size, n, r0, r1, f_buf, g_buf)
        land = f[T.F_LAND] > 0
        fast = f[T.F_FAST] > 0
        nodata = T.nodata_mask(nodata_params, size, y, x)

        zones = fl.zones[:, fl.zone_rows[r0:r1][:, None], fl.zone_cols[None, :]] & ~land
        cover = _floe_cover(fl, f, y, x, zones)
        _open_leads(cover, f, fast, lay["lead_w"])
        _fast_ice_and_land(cover, fast, land, nodata)
        truth = cover.truth

        # Backscatter: ridging texture (damped on level fast ice), then the SAR model.
        theta = swath.theta35(theta_x, y)
        tex = value_noise(fl.ridging, y + fl.small_warp * f[T.F_WARP_SMALL_Y],
                          x + fl.small_warp * f[T.F_WARP_SMALL_X], 8.0)
        tex[cover.typ == FAST] *= 0.3
        surface_fields = (cover.off_hh, cover.off_hv, f[T.F_ICE_VAR], f[T.F_WIND], f[T.F_STREAK],
                          f[T.F_LAND_TEX])
        hh[r0:r1], hv[r0:r1] = speckled_sar(swath, cover.typ, truth, land, nodata, theta, tex,
                                            surface_fields, speckle_rng)
        truth_out[r0:r1] = truth
        f[F_DISTANCE][land] = 0.0
        distance[r0:r1] = f[F_DISTANCE]
        sod[r0:r1], floe[r0:r1] = pixel_classes(cover.typ, cover.form, truth)

        ok = np.isfinite(truth)
        lab = chart.add_block(r0, r1, land, ok, truth, cover.typ, cover.form)
        labels[r0:r1] = np.where(land, np.nan, lab)
        grid2.add_block(r0, r1, land, ok, truth)
    return SimpleNamespace(hh=hh, hv=hv, labels=labels, truth=truth_out, distance=distance, sod=sod, floe=floe,
                           block=block)
