"""Sample-scene family B (`make_sample_scenes --family=B`): a second generator, written apart from family A.

Why: figures measured only on the scenes a model was tuned on say little about
a new kind of scene. Family B shares with family A only the file layout, the
surface types (so the stage codes and classes) and the analyst's rules that
turn per-polygon truth into egg codes (charts.ChartTally, draw_polygon_table),
so `sic_truth`, `sod_truth`, `floe_truth` and the charts mean the same thing
and evaluation runs unchanged. Everything else is its own:

* coast: a land band along one scene edge cut by 2-4 meandering fjords (A:
  a fractal coastline with islands), fast ice in the fjords and, sometimes, in
  a band along the coast;
* ice regime: patches of pack, marginal ice and open water from a large-scale
  field with a ramp towards or away from the coast (A: one wavy ice edge);
* floes: thresholded value noise at two physical scales (big floes, cell 28 px;
  medium floes, cell 6 px) whose ice fraction is the local concentration, ice
  cakes as fractional pixels (A: warped Voronoi floes in three layers);
* leads: 6-14 long, slightly curved leads in two conjugate directions
  cutting the pack, open, nilas or young ice (A: gated noise zero-crossings);
* stages: a smooth age field; thin first-year ice commoner than in A, young ice in the
  marginal zone's youngest parts and in refrozen leads;
* chart: elongated Voronoi cells stretched 2.5-4 x along the main lead
  direction, no concentration term in the metric (A: concentration-warped);
* SAR physics, wind and incidence: family_b_sar.py.
Three seeded streams (metadata, layout, speckle) from numpy's SeedSequence
of (seed, 0xB): family B never repeats a family A scene of the same seed.
"""

from types import SimpleNamespace

import numpy as np
from scipy import ndimage, special

from tfseaice.simulate import ancillary, charts, scenes, terrain
from tfseaice.simulate.backscatter import BRASH, FAST, LAND, NEW, OLD, THICK_FYI, THIN_FYI, WATER, YOUNG
from tfseaice.simulate.family_b_sar import ENL_B, SwathB, sar_block_b
from tfseaice.simulate.floes import FORM_BIG, FORM_CAKE, FORM_FAST, FORM_LEVEL, FORM_MEDIUM, FORM_NONE, FORM_VAST
from tfseaice.simulate.grid import (BLOCK_PIXELS, PIXEL_SPACING_M, axis_weights, fractal_noise, nearest_index,
                                    smooth_noise, smoothstep)

FAMILY = "B"
LATTICE = 512                     # wrapping value-noise lattice (floe shapes, cakes)
FLOE_CELLS_PX = (28.0, 6.0, 3.0)  # big floes, medium floes, ice cakes
PACK = 0.9                        # concentration from which ice is pack (vast floes cut by leads)
# Rows of the coarse field stack, resampled per row block.
F_C, F_LAND, F_FAST, F_WIND, F_ICE_VAR, F_DEFORMED, F_LAND_TEX, F_DIST = range(8)


def _rngs_b(seed):
    return [np.random.default_rng(s) for s in np.random.SeedSequence([int(seed), 0xB]).spawn(3)]


def scene_metadata(seed, ice_service=None):
    """(acquisition time `YYYYMMDDThhmmss`, ice service) of family B's scene `seed` (cheap: names first)."""
    meta = _rngs_b(seed)[0]
    t = np.datetime64("2019-01-01T00:00:00") + np.timedelta64(int(meta.integers(0, 3 * 365 * 86400)), "s")
    service = ("dmi", "cis")[int(meta.integers(0, 2))]
    return str(t).replace("-", "").replace(":", ""), (ice_service or service)


# ------------------------------------------------------------------ layout (coarse grid)

def draw_layout_b(rng, size):
    """Coast with fjords, fast ice, concentration, wind with katabatic jets, stages, texture fields."""
    n = min(size, 512)
    v, u = (np.mgrid[0:n, 0:n].astype(np.float32) + 0.5) / n
    side = int(rng.integers(0, 4))
    d, along = ((v, u), (1 - v, u), (u, v), (1 - u, v))[side]   # d: distance from the coast edge
    depth = rng.uniform(0.1, 0.2)
    coast = depth + 0.025 * fractal_noise(rng, n, 0.2, 3)
    fjord = np.zeros((n, n), bool)
    mouths = []
    for _ in range(int(rng.integers(2, 5))):
        c0, width = rng.uniform(0.1, 0.9), rng.uniform(0.008, 0.02)
        amp, freq, phase = rng.uniform(0.01, 0.05), rng.uniform(1.0, 4.0), rng.uniform(0, 2 * np.pi)
        head = rng.uniform(0.0, 0.5) * depth
        path = c0 + amp * np.sin(2 * np.pi * freq * d + phase)
        fjord |= (np.abs(along - path) < width * (0.6 + 0.4 * d / depth)) & (d > head)
        mouths.append(c0)
    land_mask = (d < coast) & ~fjord
    land = np.where(land_mask, np.maximum(coast - d, 1e-3), -1e-2).astype(np.float32)
    d_land = ndimage.distance_transform_edt(~land_mask).astype(np.float32) / n

    fast_mask = fjord & (d < coast) & (rng.random() < 0.85)
    if rng.random() < 0.5:
        fast_mask |= ~land_mask & (d_land < rng.uniform(0.01, 0.03))
    fast = np.where(fast_mask, 1.0, -1.0).astype(np.float32)

    water_frac, miz_frac = rng.uniform(0.15, 0.4), rng.uniform(0.2, 0.3)
    g = 0.9 * smooth_noise(rng, n, 0.3) + rng.choice([-2.5, 2.5]) * (d - 0.5)
    lo, hi = np.quantile(g[~land_mask], [water_frac, min(water_frac + miz_frac, 0.95)])
    c = np.where(fast_mask, 1.0, smoothstep(lo, hi, g)).astype(np.float32)

    wind = rng.uniform(3.0, 10.0) + 2.5 * smooth_noise(rng, n, 0.08)
    for c0 in mouths:  # katabatic jets out of the fjords, fading offshore
        off = np.maximum(d - coast, 0)
        wind = wind + (rng.uniform(6, 12) * np.exp(-((along - c0) / (0.03 + 0.3 * off)) ** 2)
                       * np.exp(-off / 0.25) * (off > 0))
    wind = np.clip(wind, 0.5, 25.0).astype(np.float32)
    wind_dir = np.full((n, n), (np.pi / 2, -np.pi / 2, 0.0, np.pi)[side], np.float32)

    age = smooth_noise(rng, n, 0.15)
    has_old = rng.random() < 0.5
    pack_stage = np.where(age > 0.8, OLD if has_old else THICK_FYI, np.where(age > -0.3, THICK_FYI, THIN_FYI))
    miz_stage = np.where(age > 0.6, THICK_FYI, np.where(age > -0.4, THIN_FYI, YOUNG))
    deformed = special.ndtr(1.5 * smooth_noise(rng, n, 0.05) + 2 * (c - 0.8))
    dist_km = d_land * (size * PIXEL_SPACING_M / 1000)
    fields = np.stack([c, land, fast, wind, smooth_noise(rng, n, 0.06), deformed,
                       fractal_noise(rng, n, 0.05, 4), dist_km]).astype(np.float32)
    return {"n": n, "c": c, "land": land, "wind": wind, "wind_dir": wind_dir, "fields": fields,
            "stages": np.stack([pack_stage, miz_stage]).astype(np.int8), "lead_angle": rng.uniform(0, np.pi)}


def draw_leads(rng, size, angle):
    """Leads as (x0, y0, cos, sin, half width px, half length px, bend, state): 0 open, 1 nilas, 2 young ice."""
    leads = []
    for i in range(int(rng.integers(6, 15))):
        a = angle + (0 if i % 2 == 0 else rng.uniform(0.7, 1.2)) + rng.normal(0, 0.2)
        leads.append((rng.uniform(0, size), rng.uniform(0, size), np.cos(a), np.sin(a), rng.uniform(0.5, 3.0),
                      rng.uniform(0.2, 0.7) * size, rng.normal(0, 0.3) / size, int(rng.choice(3, p=[0.5, 0.3, 0.2]))))
    return leads


def draw_partition_b(rng, lay, size):
    """Chart polygons: Voronoi cells stretched along the main lead direction; water cells; one fast-ice polygon."""
    nc = min(size, 2048)
    idx = nearest_index(nc, lay["n"])
    c, land = lay["c"][idx][:, idx], lay["land"][idx][:, idx] > 0
    fast = lay["fields"][F_FAST][idx][:, idx] > 0
    water = (c < 0.02) & ~fast & ~land
    icy = ~water & ~fast & ~land
    a, stretch = lay["lead_angle"], rng.uniform(2.5, 4.0)
    y, x = np.mgrid[0:nc, 0:nc].astype(np.float32) / nc
    scale = float(np.clip(np.sqrt(size / 1024), 1, 3))
    kinds, labels = [], np.zeros((nc, nc), np.int64)

    def cells(region, k, aniso):
        pool = np.flatnonzero(region)
        if len(pool) == 0:
            return None
        best = np.full((nc, nc), np.inf, np.float32)
        out = np.zeros((nc, nc), np.int64)
        for s in rng.choice(pool, size=min(k, len(pool)), replace=False):
            sy, sx = divmod(int(s), nc)
            dy, dx = y - sy / nc, x - sx / nc
            al, ac = dx * np.cos(a) + dy * np.sin(a), -dx * np.sin(a) + dy * np.cos(a)
            dist = (al / stretch) ** 2 + ac ** 2 if aniso else al ** 2 + ac ** 2
            take = dist < best
            best[take], out[take] = dist[take], len(kinds)
            kinds.append("ice" if aniso else "water")
        return out

    ice_cells = cells(icy, int(round(rng.integers(5, 12) * scale)), True)
    if ice_cells is not None:
        labels = ice_cells
    if water.mean() >= 0.02:
        water_cells = cells(water, int(rng.integers(1, 3)), False)
        labels = np.where(water, water_cells, labels)
    if ice_cells is None and not water.any():
        kinds.append("ice")
    if fast.any():
        labels[fast] = len(kinds)
        kinds.append("fast")
    return labels, len(kinds), np.array(kinds)


# ------------------------------------------------------------------ the full-resolution pass

def _lattice(table, y, x, cell):
    """Value noise on a wrapping LATTICE x LATTICE table, smoothstep-interpolated (cells of `cell` px)."""
    fy, fx = y / np.float32(cell), x / np.float32(cell)
    iy, ix = np.floor(fy), np.floor(fx)
    wy, wx = fy - iy, fx - ix
    wy, wx = wy * wy * (3 - 2 * wy), wx * wx * (3 - 2 * wx)
    iy, ix = iy.astype(np.int64) % LATTICE, ix.astype(np.int64) % LATTICE
    iy1, ix1 = (iy + 1) % LATTICE, (ix + 1) % LATTICE
    t = table.reshape(LATTICE, LATTICE)
    top = t[iy, ix] * (1 - wx) + t[iy, ix1] * wx
    return (top * (1 - wy) + (t[iy1, ix] * (1 - wx) + t[iy1, ix1] * wx) * wy).astype(np.float32)


def _lead_cover(leads, y, x):
    """State per pixel of the lead it lies in (-1 none), for rows y [h, 1] and samples x [1, w]."""
    state = np.full(np.broadcast_shapes(y.shape, x.shape), -1, np.int8)
    for x0, y0, ca, sa, half_w, half_l, bend, s in leads:
        al = (x - x0) * ca + (y - y0) * sa
        ac = -(x - x0) * sa + (y - y0) * ca + bend * al * al
        width = half_w * (1 + 0.5 * np.sin(al / 37.0 + x0))
        state[(np.abs(ac) < width) & (np.abs(al) < half_l)] = s
    return state


def _cover(f, stages, y, x, tables, leads):
    """Truth, surface type and floe form of one block from its coarse fields `f` and stage maps."""
    c, fast = f[F_C], f[F_FAST] > 0
    big = _lattice(tables[0], y, x, FLOE_CELLS_PX[0])
    med = _lattice(tables[1], y, x, FLOE_CELLS_PX[1])
    use_big = c >= 0.55
    z = np.where(use_big, big, med)
    ice = z < special.ndtri(np.clip(c, 1e-4, 1 - 1e-4)) * tables[3]    # ice fraction ~ c
    ice &= c > 0
    pack = c >= PACK
    ice |= pack
    truth = ice.astype(np.float32)
    typ = np.where(pack, stages[0], stages[1]).astype(np.int8)
    form = np.where(pack, FORM_VAST, np.where(use_big, FORM_BIG, FORM_MEDIUM)).astype(np.int8)
    cake = np.clip(4 * c * (1 - c) * (0.5 + _lattice(tables[2], y, x, FLOE_CELLS_PX[2])), 0, 0.6)
    cake_px = ~ice & (cake > 0.03) & (c > 0.05)
    truth[cake_px] = cake[cake_px]
    typ[~ice] = WATER
    typ[cake_px] = NEW
    form[~ice] = FORM_NONE
    form[cake_px] = FORM_CAKE
    lead = _lead_cover(leads, y, x)
    lead[~pack | fast] = -1
    truth[lead >= 0] = np.where(lead[lead >= 0] == 0, 0.0, 1.0)
    typ[lead >= 0] = np.array([WATER, NEW, YOUNG], np.int8)[lead[lead >= 0]]
    form[lead >= 0] = np.where(lead[lead >= 0] == 0, FORM_NONE, FORM_LEVEL)
    truth[fast], typ[fast], form[fast] = 1.0, FAST, FORM_FAST
    typ[(typ == YOUNG) & ~pack & (z < -2.0 * tables[3])] = BRASH   # rubble at floe centres of young MIZ ice
    return truth, typ, form, (lead >= 0)


def render_b(size, lay, nodata_params, leads, tables, swath, chart, grid2, speckle_rng):
    """Family B's full-resolution pass: the same outputs and tallies as render.render, its own rules."""
    n = lay["n"]
    out = {k: np.empty((size, size), dt) for k, dt in (("hh", np.float32), ("hv", np.float32), ("labels", np.float32),
                                                      ("truth", np.float32), ("distance", np.float32),
                                                      ("sod", np.uint8), ("floe", np.uint8))}
    j0, j1, wx = axis_weights(size, n)
    cols = lay["fields"][..., j0] * (1 - wx) + lay["fields"][..., j1] * wx
    stage_cols = lay["stages"][..., nearest_index(size, n)]
    rows_nearest = nearest_index(size, n)
    x = np.arange(size, dtype=np.float32)[None, :]
    block = max(4, min(size, BLOCK_PIXELS // size))
    for r0 in range(0, size, block):
        r1 = min(size, r0 + block)
        y = np.arange(r0, r1, dtype=np.float32)[:, None]
        i0, i1, wy = axis_weights(size, n, r0, r1)
        f = cols[:, i0] * (1 - wy)[:, None] + cols[:, i1] * wy[:, None]
        stages = stage_cols[:, rows_nearest[r0:r1]]
        land = f[F_LAND] > 0
        nodata = terrain.nodata_mask(nodata_params, size, y, x)
        truth, typ, form, in_lead = _cover(f, stages, y, x, tables, leads)
        typ[land] = LAND
        truth[land | nodata] = np.nan
        deformed = np.where((typ == FAST) | (typ == NEW) | in_lead, 0.0, f[F_DEFORMED])
        fields = (f[F_WIND], f[F_ICE_VAR], deformed, f[F_LAND_TEX])
        out["hh"][r0:r1], out["hv"][r0:r1] = sar_block_b(swath, typ, truth, land, nodata, swath.theta(y, x), fields,
                                                         speckle_rng)
        out["truth"][r0:r1] = truth
        out["distance"][r0:r1] = np.where(land, 0.0, np.maximum(f[F_DIST], 0.01))
        out["sod"][r0:r1], out["floe"][r0:r1] = charts.pixel_classes(typ, form, truth)
        ok = np.isfinite(truth)
        lab = chart.add_block(r0, r1, land, ok, truth, typ, form)
        out["labels"][r0:r1] = np.where(land, np.nan, lab)
        grid2.add_block(r0, r1, land, ok, truth)
    return SimpleNamespace(block=block, **out)


def make_scene(seed, size=1024, *, ice_service=None):
    """A family B sample scene (40 m, size x size) in the raw AI4Arctic layout, with the same truth variables.

    Deterministic in (seed, size); write it with `writers.write_scene`.
    The draws below come from the layout stream in this order; reordering them changes every scene.
    """
    size = int(size)
    if size < 64:
        raise ValueError(f"size must be >= 64, got {size}")
    seed = int(seed)
    acq_time, service = scene_metadata(seed, ice_service)
    _, rng, speckle_rng = _rngs_b(seed)
    lay = draw_layout_b(rng, size)
    leads = draw_leads(rng, size, lay["lead_angle"])
    nodata_params = terrain.draw_nodata_stripes(rng, size)
    tables = [rng.standard_normal(LATTICE * LATTICE).astype(np.float32) for _ in range(2)]
    tables.append(rng.random(LATTICE * LATTICE).astype(np.float32) - 0.5)
    probe = _lattice(tables[0], rng.uniform(0, LATTICE * 28, 4096), rng.uniform(0, LATTICE * 28, 4096), 28)
    tables.append(np.float32(probe.std()))   # the lattice fields' std, so the ice fraction follows c
    swath = SwathB(rng, size)
    chart = charts.ChartTally(draw_partition_b(rng, lay, size), size)
    grid2 = ancillary.Grid2Tally(size)
    image = render_b(size, lay, nodata_params, leads, tables, swath, chart, grid2, speckle_rng)
    rows, lut = charts.draw_polygon_table(rng, chart, lay, size)
    scenes._labels_to_poly_ids(image.labels, lut, image.block)
    grid2_vars = ancillary.grid_2km(rng, lay, grid2)
    gcp_vars = ancillary.gcps(rng, size, swath.incidence, service, lay)
    ds = scenes._dataset(image, rows, gcp_vars, grid2_vars, seed, acq_time, service)
    ds.attrs.update(speckle_enl=ENL_B, sample_family=FAMILY,
                    synthetic=scenes.SYNTHETIC_NOTE + " (family B: tfseaice.simulate.family_b)")
    return ds
