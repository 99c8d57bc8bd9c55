"""Ice charts of the sample scenes, drawn as an analyst would (read back by tfseaice.data.codes).

Why coarse polygons: a real chart is a partition of the sea that follows the
ice regime (water / MIZ / pack / fast ice), not each floe, and gives each
polygon one egg code. Here: random non-contiguous poly_ids; CT = the polygon's
mean truth rounded to tens, 91 for [0.95, 0.99), 92 for >= 0.99, water polygons
(W) for mean < 0.05, and sometimes one polygon left unknown (99) or marked
glacier (98). The CT -> SIC rule itself lives in tfseaice.data.codes, the
stage/form -> SOD/FLOE class tables in tfseaice.data.egg_codes: the chart's
classes and the per-pixel `sod_truth`/`floe_truth` (`pixel_classes`) use the same ones.
"""

import numpy as np
from scipy import ndimage

from tfseaice.data import egg_codes
from tfseaice.simulate.backscatter import LAND, N_TYPES, TYPE_TABLE, WATER
from tfseaice.simulate.floes import FORM_CODE, FORM_NONE, N_FORMS
from tfseaice.simulate.grid import nearest_index, resample

CHART_FILL = egg_codes.UNLABELLED  # 255
# Surface type -> SOD class (its SA code through egg_codes; water 0, land no truth).
SOD_OF_TYPE = np.array([0 if t == WATER else egg_codes.UNLABELLED if t == LAND else
                        egg_codes.sod_class(TYPE_TABLE[t, 4]) for t in range(N_TYPES)], np.uint8)
# Floe form index -> FLOE class (its SIGRID-3 form code through egg_codes; no floe = open water).
FLOE_OF_FORM_INDEX = np.array([0 if i == FORM_NONE else egg_codes.floe_class(code)
                               for i, code in enumerate(FORM_CODE)], np.uint8)


# ------------------------------------------------------------------ drawing

def draw_partition(rng, lay, size):
    """Analyst polygons on a chart grid: Voronoi cells warped by concentration.

    Water, MIZ/pack and fast ice get their own seeds; the metric adds the
    difference in target concentration so cells stretch along the ice edge.
    Returns (labels [nc, nc] int64, number of labels, kind per label).
    """
    nc = min(size, 2048)
    f = resample(lay["fields"][:3], nc, nc)
    c, land, fast = f[0], f[1] > 0, f[2] > 0
    water = (c < 0.02) & ~fast
    icy = ~water & ~fast
    sea = ~land
    scale = float(np.clip(np.sqrt(size / 1024), 1, 3))
    kinds = []

    def pick(region, k, weight=None):
        idx = np.flatnonzero(region & sea)
        if len(idx) == 0 or k <= 0:
            return []
        p = None
        if weight is not None:
            w = weight.ravel()[idx].astype(np.float64)
            p = w / w.sum()
        return list(rng.choice(idx, size=min(k, len(idx)), replace=False, p=p))

    n_water = 0 if (water & sea).mean() < 0.02 else int(round(rng.integers(1, 3) * np.sqrt(scale)))
    n_ice = int(round(rng.integers(6, 15) * scale))
    w_seeds = pick(water, n_water)
    i_seeds = pick(icy, n_ice, 0.3 + 4 * c * (1 - c)) or pick(np.ones_like(sea), 1)
    axis = np.arange(nc, dtype=np.float32) / nc
    k_c = np.float32(rng.uniform(0.4, 0.8))

    def nearest(seeds, use_c):
        """Label of the nearest seed per pixel; the metric adds k_c * concentration difference."""
        labels = np.zeros((nc, nc), np.int32)
        best = np.full((nc, nc), np.inf, np.float32)
        d = np.empty((nc, nc), np.float32)
        take = np.empty((nc, nc), bool)
        for s in seeds:
            sy, sx = divmod(int(s), nc)
            if use_c:
                np.subtract(c, c[sy, sx], out=d)
                d *= d
                d *= k_c * k_c
            else:
                d.fill(0)
            d += ((axis - sy / nc) ** 2)[:, None]
            d += ((axis - sx / nc) ** 2)[None, :]
            np.less(d, best, out=take)
            np.copyto(best, d, where=take)
            np.copyto(labels, np.int32(len(kinds)), where=take)
            kinds.append("water" if not use_c else "ice")
        return labels

    labels = nearest(i_seeds, True)
    if w_seeds:
        labels = np.where(water, nearest(w_seeds, False), labels)
    if fast.any():
        labels[fast] = len(kinds)
        kinds.append("fast")
    return labels.astype(np.int64), len(kinds), np.array(kinds)


class ChartTally:
    """The chart raster of a scene, built row block by row block, and per-label truth sums.

    The sums (pixels rasterised, truth sum and count, truth per surface type and
    floe form) decide each polygon's egg code once the whole scene is drawn.
    """

    def __init__(self, partition, size):
        self.labels, self.n_labels, self.kind = partition
        nc = self.labels.shape[0]
        self.row_nearest = nearest_index(size, nc)
        self.col_nearest = nearest_index(size, nc)
        self.raster_count = np.zeros(self.n_labels)
        self.sum_truth = np.zeros(self.n_labels)
        self.count = np.zeros(self.n_labels)
        self.comp = np.zeros(self.n_labels * N_TYPES * N_FORMS)

    def add_block(self, r0, r1, land, ok, truth, typ, form):
        """Label index per pixel of rows r0:r1 (nearest from the chart grid); adds to the sums."""
        lab = self.labels[self.row_nearest[r0:r1][:, None], self.col_nearest[None, :]]
        n_labels = self.n_labels
        self.raster_count += np.bincount(lab[~land], minlength=n_labels)
        lab_ok = lab[ok]
        self.sum_truth += np.bincount(lab_ok, weights=truth[ok], minlength=n_labels)
        self.count += np.bincount(lab_ok, minlength=n_labels)
        self.comp += np.bincount((lab_ok * N_TYPES + typ[ok]) * N_FORMS + form[ok], weights=truth[ok],
                                 minlength=self.comp.size)
        return lab


def pixel_classes(typ, form, truth):
    """(SOD, FLOE) uint8 truth of pixels from their surface type, floe form and ice fraction.

    The class of what covers the pixel: a pixel less than half ice (brash and
    ice cakes in open water) is open water (0), one without truth (NaN: land,
    no data) is 255.
    """
    water = ~(truth >= 0.5)  # NaN compares False: no truth, set below
    sod = SOD_OF_TYPE[typ]
    floe = FLOE_OF_FORM_INDEX[form]
    sod[water] = 0
    floe[water] = 0
    missing = np.isnan(truth)
    sod[missing] = egg_codes.UNLABELLED
    floe[missing] = egg_codes.UNLABELLED
    return sod, floe


def _labels_touching_land(labels_c, lay, n_labels):
    nc = labels_c.shape[0]
    land = resample(lay["fields"][1], nc, nc) > 0
    near = ndimage.binary_dilation(land, iterations=2) & ~land
    out = np.zeros(n_labels, bool)
    out[np.unique(labels_c[near])] = True
    return out


def draw_polygon_table(rng, tally, lay, size):
    """(`polygon_codes` rows, label index -> poly_id lookup with NaN for absent labels)."""
    n_labels = tally.n_labels
    present = tally.raster_count > 0
    poly_ids = np.zeros(n_labels, np.int64)
    poly_ids[present] = rng.choice(np.arange(1, 1000), int(present.sum()), replace=False)
    touches_land = _labels_touching_land(tally.labels, lay, n_labels)
    rows = _polygon_rows(rng, poly_ids, present, tally.sum_truth, tally.count,
                         tally.comp.reshape(n_labels, N_TYPES, N_FORMS), tally.kind, touches_land, size)
    lut = np.full(n_labels, np.nan, np.float32)
    lut[present] = poly_ids[present]
    return rows, lut


def _ct_code(mean):
    """CT code for a polygon's mean truth: tens, 91 for [0.95, 0.99), 92 for >= 0.99."""
    if mean >= 0.99:
        return 92
    if mean >= 0.95:
        return 91
    return int(np.floor(mean * 10 + 0.5)) * 10


def _fmt(v):
    return "-9" if v is None or v < 0 else f"{int(v):02d}"


def _polygon_rows(rng, poly_ids, present, sum_truth, count, comp, kind, touches_land, size):
    """`polygon_codes` rows (egg code) for the labels present in the raster."""
    labels = [int(i) for i in np.flatnonzero(present)]
    special_ct = {}  # an analyst's unknown (99) or glacier (98) polygon, now and then
    ice_labels = [i for i in labels if kind[i] == "ice" and count[i] > 0]
    if ice_labels and rng.random() < 0.6:
        special_ct[int(rng.choice(ice_labels))] = 99
    coastal = [i for i in ice_labels if touches_land[i] and i not in special_ct]
    if coastal and rng.random() < 0.25:
        special_ct[int(rng.choice(coastal))] = 98
    min_pixels = max(20, int(2e-4 * size * size))
    rows = []
    for i in labels:
        pid = int(poly_ids[i])
        mean = sum_truth[i] / count[i] if count[i] > 0 else np.nan
        if i in special_ct or not np.isfinite(mean) or count[i] < min_pixels:
            ct = special_ct.get(i, 99)
            rows.append(f"{pid};{ct};" + ";".join(["-9"] * 12) + ";I")
            continue
        ct = _ct_code(mean)
        if ct == 0:
            ct = int(rng.choice([0, 1, 1, 2]))
            rows.append(f"{pid};{_fmt(ct)};" + ";".join(["-9"] * 12) + ";W")
            continue
        # Partial concentrations by stage (thickest first) and their main floe form.
        by_sa = {}
        for t in range(1, N_TYPES - 1):
            sa = int(TYPE_TABLE[t, 4])
            by_sa.setdefault(sa, np.zeros(N_FORMS))
            by_sa[sa] += comp[i, t]
        stages = [(sa, v) for sa, v in by_sa.items() if v.sum() / count[i] >= 0.05]
        if not stages:  # only traces of each stage: name the largest
            stages = [max(by_sa.items(), key=lambda kv: kv[1].sum())]
        stages = sorted(stages, key=lambda kv: kv[0], reverse=True)[:3]
        cols = []
        for sa, v in stages:
            partial = max(10, int(np.floor(v.sum() / count[i] * 10 + 0.5)) * 10)
            fa = int(FORM_CODE[int(np.argmax(v[1:])) + 1]) if v[1:].sum() > 0 else -9
            cols.append((partial if len(stages) > 1 else -9, sa, fa))
        cols += [(-9, -9, -9)] * (3 - len(cols))
        forms = [fa for _, _, fa in cols if fa >= 0]
        cf = "-9" if not forms else _fmt(forms[0]) + (_fmt(forms[1]) if len(forms) > 1 and forms[1] != forms[0] else "-9")
        fields = [str(pid), _fmt(ct)] + [_fmt(v) for col in cols for v in col] + ["-9", "-9", cf, "I"]
        rows.append(";".join(fields))
    return rows

