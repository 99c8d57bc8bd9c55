"""Egg codes -> the AutoICE SOD and FLOE classes, per polygon: compositions and dominant classes.

The class tables are the AI4Arctic starter pack's (`utils.py`, `SOD_LOOKUP`
and `FLOE_LOOKUP`; docs/ai4arctic.md): stages of development (SA, SB, SC)
map to 6 SOD classes, floe forms (FA, FB, FC) to 7 FLOE classes. Glacier ice
(98), unknown (99), and the forms the challenge leaves out (pancake 22,
shuga / small cake 01, fast ice 08, level ice 21) are unlabelled (255), as is
every code the table does not list.

Per polygon (`polygon_labels`), from CT and the layers A, B, C of its egg code:
- a composition vector per chart (`composition`): the share of the polygon in
  each class, open water 1 - SIC; what the regional loss matches;
- the dominant class per chart (`dominant_class`): the starter pack's
  `convert_raw_icechart.py` rule, which gives the AutoICE reference charts.
Partial concentrations are read in tenths (`concentration_tenths`, the CT
table of the starter pack applied to CA, CB, CC too), so thresholds compare
exactly.
"""

import numpy as np

UNLABELLED = 255
SOD_CLASSES = ("open_water", "new_ice", "young_ice", "thin_first_year_ice", "thick_first_year_ice", "old_ice")
FLOE_CLASSES = ("open_water", "cake_ice", "small_floe", "medium_floe", "big_floe", "vast_floe", "bergs")
NUM_SOD = len(SOD_CLASSES)
NUM_FLOE = len(FLOE_CLASSES)

# SIGRID-3 stage of development (SA/SB/SC) -> SOD class.
SOD_OF_STAGE = {0: 0, 80: 0, 81: 1, 82: 1, 83: 2, 84: 2, 85: 2, 86: 4, 87: 3, 88: 3, 89: 3,
                91: 4, 93: 4, 95: 5, 96: 5, 97: 5, 98: UNLABELLED, 99: UNLABELLED}
# SIGRID-3 form of ice (FA/FB/FC) -> FLOE class.
FLOE_OF_FORM = {0: 0, 22: UNLABELLED, 1: UNLABELLED, 2: 1, 3: 2, 4: 3, 5: 4, 6: 5, 7: 5,
                8: UNLABELLED, 9: 6, 10: 6, 21: UNLABELLED}

NOT_FILLED = -9
EGG_COLUMNS = ("CT", "CA", "SA", "FA", "CB", "SB", "FB", "CC", "SC", "FC")
# Dominant class: the largest class share of a polygon must reach this percentage of CT. The starter pack's
# code (utils.py SOD_LOOKUP / FLOE_LOOKUP 'threshold': 0.7, 0.5); its introduction.ipynb text says 65 %.
SOD_THRESHOLD_PCT = 70
FLOE_THRESHOLD_PCT = 50
SUM_TOLERANCE_TENTHS = 1  # partials may miss CT by one tenth (9+/10, rounding) and are scaled to CT
# chart -> (code table, number of classes, dominance threshold %, index of the code in a layer)
_CHARTS = {"SOD": (SOD_OF_STAGE, NUM_SOD, SOD_THRESHOLD_PCT, 1), "FLOE": (FLOE_OF_FORM, NUM_FLOE, FLOE_THRESHOLD_PCT, 2)}


def sod_class(stage_code):
    """SOD class 0..5 of one SIGRID-3 stage code; UNLABELLED for 98, 99, -9 and unknown codes."""
    return SOD_OF_STAGE.get(int(stage_code), UNLABELLED)


def floe_class(form_code):
    """FLOE class 0..6 of one SIGRID-3 form code; UNLABELLED for fast ice, pancake, level ice, -9, unknown."""
    return FLOE_OF_FORM.get(int(form_code), UNLABELLED)


def class_lut(table, size=256):
    """A uint8 lookup array [size]: code -> class (UNLABELLED where the table has no entry)."""
    lut = np.full(size, UNLABELLED, np.uint8)
    for code, cls in table.items():
        if 0 <= code < size:
            lut[code] = cls
    return lut


def concentration_tenths(code):
    """A SIGRID-3 concentration code (CT, CA, CB, CC) in tenths: 0, 1, 2, 55 -> 0; 10..90 -> 1..9; 91, 92 -> 10.

    None for every other code (98 glacier, 99 unknown, -9 not filled, ...).
    """
    code = int(code)
    if code in (0, 1, 2, 55):
        return 0
    if 10 <= code <= 90 and code % 10 == 0:
        return code // 10
    if code in (91, 92):
        return 10
    return None


def egg_layers(egg):
    """The filled layers of one egg code `[CT, CA, SA, FA, CB, SB, FB, CC, SC, FC]` (raw integer codes).

    Returns [(tenths or None, stage code, form code)] for layers A, B, C with
    any of their three codes given. CA = CT when CA is not filled and CT > 0
    (the starter pack's rule: a chart with one ice type leaves CA empty).
    """
    ct_tenths = concentration_tenths(egg[0])
    layers = []
    for k in range(3):
        conc, stage, form = (int(v) for v in egg[1 + 3 * k: 4 + 3 * k])
        tenths = concentration_tenths(conc)
        if k == 0 and conc == NOT_FILLED and (ct_tenths or 0) > 0:
            tenths = ct_tenths
        elif conc == NOT_FILLED and stage == NOT_FILLED and form == NOT_FILLED:
            continue
        layers.append((tenths, stage, form))
    return layers


def _nan_row(n):
    return np.full(n, np.nan, np.float32)


def composition(ice_tenths, layers, chart):
    """Composition (float32 [NUM_SOD] or [NUM_FLOE], sums to 1) of one polygon; a NaN row when it cannot be mapped.

    `ice_tenths`: the polygon's SIC in tenths (0 for W polygons and ice-free CT,
    None when SIC is unlabelled); `layers`: `egg_layers`; `chart`: "SOD" or
    "FLOE". Open water takes 1 - SIC, each layer its partial concentration at
    its stage's (SOD) or form's (FLOE) class; layers of one class add up.
    SIC 0 is pure open water whatever the layers say. NaN (this chart only):
    SIC unlabelled; no layer; a layer without a concentration code, or whose
    stage/form is not filled, unknown or class-less (98, 99; fast ice,
    pancake, level ice, shuga for FLOE). Partials that add up to CT within one
    tenth are scaled to CT (9+/10 is SIC 1.0; tenths round). Partials that fall
    short by more (e.g. CT 8/10 with only CA 5/10 given) leave ice of no
    charted type, and partials over CT contradict it: both NaN.
    """
    table, n, _, field = _CHARTS[chart]
    if ice_tenths is None:
        return _nan_row(n)
    out = np.zeros(n, np.float64)
    out[0] = (10 - ice_tenths) / 10
    if ice_tenths == 0:
        return out.astype(np.float32)
    parts = [(layer[0], table.get(layer[field], UNLABELLED)) for layer in layers]
    if not parts or any(t is None or c == UNLABELLED for t, c in parts):
        return _nan_row(n)
    total = sum(t for t, _ in parts)
    if total == 0 or abs(total - ice_tenths) > SUM_TOLERANCE_TENTHS:
        return _nan_row(n)
    for t, c in parts:
        out[c] += t / total * ice_tenths / 10
    return out.astype(np.float32)


def dominant_class(ice_tenths, layers, chart):
    """The AutoICE class of one polygon (the starter pack's `convert_raw_icechart.py` rule); UNLABELLED = masked.

    SIC 0 -> open water (0). Otherwise the layers' partials are added per class;
    the largest sum (ties: the class of the earlier layer) is the polygon's
    class when it reaches SOD 70 % / FLOE 50 % of CT, else the polygon is
    masked, as it is when that class is unlabelled or the layer's code not
    filled. FLOE: a layer whose form maps to no class (fast ice 08, pancake,
    level ice, shuga) masks the polygon. Layers without a concentration code
    take no part. One difference, on purpose: the starter pack's pairwise
    addition counts only A + C when all three layers share a class; here
    A + B + C.
    """
    table, _, pct, field = _CHARTS[chart]
    if ice_tenths is None:
        return UNLABELLED
    if ice_tenths == 0:
        return 0
    if chart == "FLOE" and any(table.get(layer[field]) == UNLABELLED for layer in layers):
        return UNLABELLED
    groups = {}  # class (or the layer, for a code without class) -> [summed tenths, first layer, class]
    for i, (tenths, *codes) in enumerate(layers):
        if tenths is None:
            continue
        cls = table.get(codes[field - 1])
        g = groups.setdefault(("layer", i) if cls is None else cls, [0, i, UNLABELLED if cls is None else cls])
        g[0] += tenths
    if not groups:
        return UNLABELLED
    share, _, cls = max(groups.values(), key=lambda g: (g[0], -g[1]))
    return cls if share * 100 >= pct * ice_tenths else UNLABELLED


def polygon_labels(sic, egg):
    """SOD/FLOE labels of a chart's polygons.

    `sic` float [P] (NaN = unlabelled; W polygons 0) as `codes.parse_polygon_codes`
    derives it, `egg` int [P, 10] raw `EGG_COLUMNS` codes. Returns
    (sod_composition float32 [P, 6], floe_composition float32 [P, 7],
    sod_class uint8 [P], floe_class uint8 [P]); NaN rows and 255 = unlabelled.
    """
    sic = np.asarray(sic, np.float64)
    egg = np.asarray(egg, np.int64).reshape(len(sic), len(EGG_COLUMNS))
    comp = {c: np.empty((len(sic), _CHARTS[c][1]), np.float32) for c in _CHARTS}
    cls = {c: np.empty(len(sic), np.uint8) for c in _CHARTS}
    for i, (s, row) in enumerate(zip(sic, egg)):
        ice = int(round(s * 10)) if np.isfinite(s) else None
        layers = egg_layers(row)
        for c in _CHARTS:
            comp[c][i] = composition(ice, layers, c)
            cls[c][i] = dominant_class(ice, layers, c)
    return comp["SOD"], comp["FLOE"], cls["SOD"], cls["FLOE"]


def class_counts(classes, chart):
    """{class name: count} of dominant classes (uint8, 255 = "unlabelled") for "SOD" or "FLOE", every class listed."""
    names = SOD_CLASSES if chart == "SOD" else FLOE_CLASSES
    classes = np.asarray(classes, np.int64).ravel()
    counts = np.bincount(classes[classes < len(names)], minlength=len(names))
    return {**{n: int(c) for n, c in zip(names, counts)}, "unlabelled": int((classes >= len(names)).sum())}
