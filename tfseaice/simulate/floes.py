"""Floes of the sample scenes: warped Voronoi cells at three sizes, and ridging texture.

Why three layers: vast pack floes split by cracks, medium floes nearer the pack
in the MIZ and small floes near the open water give the floe-size range that
makes pixel SIC hard. Floe sizes are physical (40 m pixels); where they occur
follows the layout's target concentration. Each pixel also gets a floe form
(FORM_* index): the WMO size class of its floe (`form_of_floe_size`; the
layers "big", "med", "small" are vast, big and medium floes at the usual
scene sizes), ice cakes between floes, fast ice, or level ice in refrozen leads.
"""

from types import SimpleNamespace

import numpy as np
from scipy import ndimage, special

from tfseaice.simulate.backscatter import OLD, THICK_FYI, THIN_FYI, WATER, YOUNG
from tfseaice.simulate.grid import PIXEL_SPACING_M, nearest_index, smoothstep

RIDGE_GRID = 1024  # lattice size of the ridging texture (wraps)

# Floe form per pixel (index) and its SIGRID-3 form code (FA/FB/FC of the egg code).
FORM_NONE, FORM_CAKE, FORM_SMALL, FORM_MEDIUM, FORM_BIG, FORM_VAST, FORM_FAST, FORM_LEVEL = range(8)
FORM_CODE = np.array([-9, 2, 3, 4, 5, 6, 8, 21])  # none, ice cake, small/medium/big/vast floe, fast, level
N_FORMS = len(FORM_CODE)
# WMO floe sizes (upper bounds, m): ice cake < 20, small floe 20-100, medium 100-500, big 500-2000, vast above.
FLOE_SIZE_EDGES_M = (20.0, 100.0, 500.0, 2000.0)


def form_of_floe_size(diameter_m):
    """FORM_* index of a floe `diameter_m` across (WMO sizes: cake, small, medium, big, vast)."""
    return FORM_CAKE + int(np.searchsorted(FLOE_SIZE_EDGES_M, float(diameter_m), side="right"))


class FloeLayer:
    """Floes as jittered-grid Voronoi (Worley) cells of side `cell` pixels.

    Each cell is one floe, present or not as a whole (decided from the target
    concentration at its centre), with its own crack width, ice type and
    backscatter offsets. The cell grid is padded by `pad` cells so warped
    positions just outside the scene need no wrap-around.
    """

    def __init__(self, rng, size, cell, c_field, presence, types, type_probs, type_field, gap,
                 offset_db, form, max_warp):
        self.cell = float(cell)
        self.pad = int(np.ceil(max_warp / cell)) + 1
        self.ny = self.nx = int(np.ceil(size / cell)) + 2 * self.pad + 1
        k = self.ny * self.nx
        self.jy = rng.random(k, dtype=np.float32)
        self.jx = rng.random(k, dtype=np.float32)
        cy = (np.arange(k) // self.nx - self.pad + self.jy) * cell  # feature points, pixels
        cx = (np.arange(k) % self.nx - self.pad + self.jx) * cell

        def at(f):
            return ndimage.map_coordinates(
                f, [np.clip(cy / size * f.shape[0] - 0.5, 0, f.shape[0] - 1),
                    np.clip(cx / size * f.shape[1] - 0.5, 0, f.shape[1] - 1)], order=1)

        self.present = rng.random(k) < presence(at(c_field))
        # Ice types cluster in space: a smooth field at the centre plus a random part.
        score = special.ndtr(0.8 * at(type_field) + 0.6 * rng.standard_normal(k))
        edges = np.cumsum(type_probs)[:-1]
        self.type = np.asarray(types, np.int8)[np.searchsorted(edges, score)]
        self.gap = rng.uniform(gap[0], gap[1], k).astype(np.float32)
        self.off_hh = rng.normal(0.0, offset_db, k).astype(np.float32)
        self.off_hv = (0.7 * self.off_hh + rng.normal(0.0, 0.5 * offset_db, k)).astype(np.float32)
        self.brash = np.where(rng.random(k) < 0.45, 0.0, rng.random(k)).astype(np.float32)
        self.form = form
        # One extra "no floe" cell for pixels outside the layer's zone.
        self.none = k
        self.present = np.append(self.present, False)
        self.type = np.append(self.type, np.int8(WATER))
        self.gap = np.append(self.gap, np.float32(np.inf))
        self.off_hh = np.append(self.off_hh, np.float32(0))
        self.off_hv = np.append(self.off_hv, np.float32(0))
        self.brash = np.append(self.brash, np.float32(0))

    def locate_in(self, y, x, zone):
        """`locate` for the pixels in `zone` only; elsewhere the "no floe" cell (saves time)."""
        if zone.all():
            return self.locate(y, x)
        k = np.full(zone.shape, self.none, np.int32)
        e = np.zeros(zone.shape, np.float32)
        if zone.any():
            k[zone], e[zone] = self.locate(y[zone], x[zone])
        return k, e

    def locate(self, y, x):
        """Cell index and distance to the cell edge (pixels) for pixel positions y, x."""
        fy = y * np.float32(1.0 / self.cell)
        fx = x * np.float32(1.0 / self.cell)
        cy = np.floor(fy)
        cx = np.floor(fx)
        fy -= cy
        fx -= cx
        lo, hi = 1 - self.pad, self.ny - self.pad - 2
        base = (np.clip(cy, lo, hi).astype(np.int32) + self.pad) * np.int32(self.nx)
        base += np.clip(cx, lo, hi).astype(np.int32) + self.pad
        del cy, cx
        ry = [fy + np.float32(1), fy, fy - np.float32(1)]  # offset of the pixel from each neighbour row
        rx = [fx + np.float32(1), fx, fx - np.float32(1)]
        d1 = np.full(fy.shape, np.inf, np.float32)
        d2 = np.full(fy.shape, np.inf, np.float32)
        k1 = np.zeros(fy.shape, np.int32)
        d = np.empty(fy.shape, np.float32)
        e = np.empty(fy.shape, np.float32)
        k = np.empty(fy.shape, np.int32)
        closer = np.empty(fy.shape, bool)
        for iy, dy in enumerate((-1, 0, 1)):
            for ix, dx in enumerate((-1, 0, 1)):
                np.add(base, np.int32(dy * self.nx + dx), out=k)
                np.take(self.jy, k, out=d)
                d -= ry[iy]
                d *= d
                np.take(self.jx, k, out=e)
                e -= rx[ix]
                e *= e
                d += e
                np.less(d, d1, out=closer)
                np.minimum(d2, d, out=d2)
                np.copyto(d2, d1, where=closer)
                np.copyto(k1, k, where=closer)
                np.copyto(d1, d, where=closer)
        np.sqrt(d2, out=d2)
        np.sqrt(d1, out=d1)
        d2 -= d1
        d2 *= np.float32(0.5 * self.cell)
        return k1, d2


def value_noise(table, y, x, cell):
    """Bilinear value noise on a wrapping lattice of `cell` pixels: ridging texture."""
    m = RIDGE_GRID
    fy = y / np.float32(cell)
    fx = x / np.float32(cell)
    iy = np.floor(fy)
    ix = np.floor(fx)
    wy = fy - iy
    wx = fx - ix
    iy = iy.astype(np.int64) % m
    ix = ix.astype(np.int64) % m
    iy1 = (iy + 1) % m * m
    ix1 = (ix + 1) % m
    iy = iy * m
    top = table[iy + ix] * (1 - wx) + table[iy + ix1] * wx
    bottom = table[iy1 + ix] * (1 - wx) + table[iy1 + ix1] * wx
    return (top * (1 - wy) + bottom * wy).astype(np.float32)


def _medium_presence(c):
    """Chance of a medium floe at target concentration c: MIZ nearer the pack, not in it."""
    m = c * smoothstep(0.3, 0.75, c)
    return np.clip(m / 0.75, 0, 1) * (1 - smoothstep(0.85, 0.97, c))


def _small_presence(c):
    """Chance of a small floe where medium floes leave room: MIZ near the open water."""
    m = c * smoothstep(0.3, 0.75, c)
    s = 1 - (1 - c) / np.maximum(1 - m, 1e-6)
    return np.clip(s / 0.55, 0, 1) * (1 - smoothstep(0.85, 0.97, c))


def draw_floes(rng, size, lay):
    """The three floe layers, their warp amplitudes, the ridging table and where each layer matters.

    MIZ floes: bigger ones nearer the pack, small ones near the open water; both
    fade out in the pack, where vast floes and leads take over.
    Returns a namespace: big, med, small (FloeLayer), big_warp, small_warp
    (domain warp amplitudes in pixels: irregular floes), ridging (texture table),
    zones (bool [3, n, n] coarse), zone_rows, zone_cols (full-res -> coarse index).
    """
    n = lay["n"]
    big_cell = float(np.clip(size / 4, 16, 250))
    c_field, tf = lay["c"], lay["type_field"]
    has_old = rng.random() < 0.4
    big_warp, small_warp = 0.12 * big_cell, 3.0
    big = FloeLayer(
        rng, size, big_cell, c_field, lambda c: smoothstep(0.8, 0.95, c),
        [YOUNG, THIN_FYI, THICK_FYI, OLD], [0.1, 0.2, 0.5, 0.2] if has_old else [0.1, 0.25, 0.65, 0.0],
        tf, gap=(0.5, 3.5), offset_db=1.2, form=form_of_floe_size(big_cell * PIXEL_SPACING_M),
        max_warp=4 * big_warp)
    med_cell = min(40.0, big_cell / 2)
    med = FloeLayer(rng, size, med_cell, c_field, _medium_presence,
                    [YOUNG, THIN_FYI, THICK_FYI, OLD], [0.2, 0.35, 0.35, 0.1] if has_old else [0.2, 0.4, 0.4, 0.0],
                    tf, gap=(1.0, 2.5), offset_db=1.0, form=form_of_floe_size(med_cell * PIXEL_SPACING_M),
                    max_warp=4 * small_warp)
    small = FloeLayer(rng, size, 8.0, c_field, _small_presence,
                      [YOUNG, THIN_FYI, THICK_FYI], [0.4, 0.4, 0.2], tf, gap=(0.8, 1.6),
                      offset_db=0.8, form=form_of_floe_size(8.0 * PIXEL_SPACING_M), max_warp=4 * small_warp)
    ridging = rng.normal(0.0, 0.7, RIDGE_GRID ** 2).astype(np.float32)

    # Where each floe layer can matter (coarse grid, dilated by a cell and the warp).
    def zone(mask, reach_px):
        r = int(np.ceil(reach_px * n / size)) + 1
        return ndimage.maximum_filter(mask, size=2 * r + 1)

    zones = np.stack([
        zone(c_field > 0.8, big_cell + 4 * big_warp),
        zone(_medium_presence(c_field) > 0, med.cell + 4 * small_warp),
        zone((c_field > 0) & (c_field < 1), small.cell + 4 * small_warp),
    ])
    return SimpleNamespace(
        big=big, med=med, small=small, big_warp=big_warp, small_warp=small_warp, ridging=ridging,
        zones=zones, zone_rows=nearest_index(size, n), zone_cols=nearest_index(size, n))
