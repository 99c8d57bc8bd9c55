"""AI4Arctic `polygon_codes` tables and the CT (total concentration) -> SIC rule.

Entry 0 of `polygon_codes` is the header
`poly_id;CT;CA;SA;FA;CB;SB;FB;CC;SC;FC;CN;CD;CF;POLY_TYPE`; every other entry is
one chart polygon. SIGRID-3 CT codes: 0, 1, 2, 55 ice free -> 0; 10..90 -> 0.1..0.9;
91 (9+/10) and 92 (10/10) -> 1.0; 98 (glacier), 99 (unknown), -9 (not filled)
and any other code -> unlabelled (NaN). POLY_TYPE `W` (water) is SIC 0 whatever CT says;
`I` (ice) takes its CT; any other SIGRID-3 type (L land, N no data, S shelf...) is
unlabelled, with a warning, rather than failing the scene. Older files name the
first column `id` instead of `poly_id`. The egg code's layers (CA..FC) give each
polygon its SOD and FLOE composition and dominant class (`egg_codes`).
"""

import dataclasses

import numpy as np
from absl import logging

from tfseaice.data import egg_codes
from tfseaice.errors import InputError

HEADER = "poly_id;CT;CA;SA;FA;CB;SB;FB;CC;SC;FC;CN;CD;CF;POLY_TYPE"
REQUIRED_COLUMNS = ("poly_id", "CT", "POLY_TYPE")
ID_ALIASES = ("poly_id", "id")   # the older header names the first column `id`
LABELLED_TYPES = ("I", "W")
SIC_CLASS_FILL = 255             # AutoICE SIC class of an unlabelled pixel
ICE_FREE_CODES = (0, 1, 2, 55)
FULL_ICE_CODES = (91, 92)
NOT_FILLED = -9
BAD_FIELD = -99                  # a non-integer egg-code field: no class table lists it, so it maps to none


def ct_to_sic(ct):
    """Map one SIGRID-3 CT code to SIC in [0, 1], NaN when it carries no label."""
    tenths = egg_codes.concentration_tenths(ct)
    return float("nan") if tenths is None else tenths / 10.0


@dataclasses.dataclass(frozen=True)
class PolygonTable:
    """One chart's polygons: ids, CT codes, polygon types, the derived SIC and SOD/FLOE labels.

    The SOD/FLOE fields default to unlabelled (a table without egg-code columns).
    """

    ids: np.ndarray        # int64 [P] the chart's poly_id
    ct: np.ndarray         # int64 [P] raw CT code (-9 = not filled)
    poly_type: np.ndarray  # <U1 [P] "I", "W" (labelled) or another SIGRID-3 type (unlabelled)
    sic: np.ndarray        # float32 [P] SIC in [0, 1], NaN = unlabelled
    sod_composition: np.ndarray = None   # float32 [P, 6] class shares (open water first), NaN row = unlabelled
    floe_composition: np.ndarray = None  # float32 [P, 7]
    sod_class: np.ndarray = None         # uint8 [P] AutoICE dominant class, 255 = unlabelled
    floe_class: np.ndarray = None        # uint8 [P]

    def __post_init__(self):
        p = len(self.ids)
        defaults = {"sod_composition": np.full((p, egg_codes.NUM_SOD), np.nan, np.float32),
                    "floe_composition": np.full((p, egg_codes.NUM_FLOE), np.nan, np.float32),
                    "sod_class": np.full(p, egg_codes.UNLABELLED, np.uint8),
                    "floe_class": np.full(p, egg_codes.UNLABELLED, np.uint8)}
        for name, value in defaults.items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)

    def __len__(self):
        return len(self.ids)

    def rows(self, chart_ids):
        """Row index in this table of each chart id (-1 for -1 and ids missing from the table)."""
        chart_ids = np.asarray(chart_ids)
        if len(self.ids) == 0:
            return np.full(chart_ids.shape, -1, np.int64)
        order = np.argsort(self.ids)
        sorted_ids = self.ids[order]
        pos = np.clip(np.searchsorted(sorted_ids, chart_ids), 0, len(sorted_ids) - 1)
        return np.where(sorted_ids[pos] == chart_ids, order[pos], -1)

    def lookup(self, chart_ids):
        """SIC for an array of chart ids (-1 or ids missing from the table -> NaN)."""
        rows = self.rows(chart_ids)
        if len(self.ids) == 0:
            return np.full(rows.shape, np.nan, np.float32)
        return np.where(rows >= 0, self.sic[rows], np.nan).astype(np.float32)

    def lookup_class(self, chart_ids, chart):
        """Dominant class raster (uint8; 255 where unlabelled or not in the table) for chart "SOD" or "FLOE"."""
        classes = {"SOD": self.sod_class, "FLOE": self.floe_class}[chart]
        rows = self.rows(chart_ids)
        if len(self.ids) == 0:
            return np.full(rows.shape, egg_codes.UNLABELLED, np.uint8)
        return np.where(rows >= 0, classes[rows], egg_codes.UNLABELLED).astype(np.uint8)

    def labelled_ids(self):
        return self.ids[np.isfinite(self.sic)]

    def odd_type_ids(self):
        """Ids of polygons whose POLY_TYPE is neither I nor W (unlabelled)."""
        return self.ids[~np.isin(self.poly_type, LABELLED_TYPES)]


def sic_classes(sic):
    """AutoICE SIC classes (uint8 0..10, 255 = masked) of SIC values in [0, 1] (NaN = masked).

    Values between the tenths are rounded to the nearest class and clamped to
    0..10, as a prediction is scored.
    """
    sic = np.asarray(sic, np.float32)
    finite = np.isfinite(sic)
    classes = np.clip(np.rint(np.where(finite, sic, 0) * 10), 0, 10).astype(np.uint8)
    return np.where(finite, classes, SIC_CLASS_FILL).astype(np.uint8)


def _as_str(entry):
    if isinstance(entry, bytes):
        return entry.decode("utf-8", errors="replace")
    return str(entry)


def parse_polygon_codes(entries, source="polygon_codes"):
    """Parse the `polygon_codes` strings of one scene into a PolygonTable.

    `source` names the file in error messages. Raises InputError for a bad
    header, rows of the wrong width, a non-integer poly_id or CT, an unknown
    POLY_TYPE or duplicate ids. Unknown CT codes are unlabelled, not errors.
    The egg-code columns CA..FC give the SOD/FLOE labels (`egg_codes.polygon_labels`);
    an empty field is not filled (-9), a non-integer one leaves that polygon's
    SOD/FLOE unlabelled (warning); a header without those columns: all unlabelled.
    """
    entries = [_as_str(e).strip() for e in np.asarray(entries).ravel()]
    if not entries:
        raise InputError(source, "polygon_codes is empty (no header row)")
    header = entries[0].split(";")
    if "poly_id" not in header and header and header[0] in ID_ALIASES:
        header[0] = "poly_id"
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise InputError(source, f"polygon_codes header {entries[0]!r} lacks column(s) {', '.join(missing)}")
    i_id, i_ct, i_type = (header.index(c) for c in REQUIRED_COLUMNS)
    has_egg = all(c in header for c in egg_codes.EGG_COLUMNS)
    i_egg = [header.index(c) for c in egg_codes.EGG_COLUMNS] if has_egg else []
    ids, cts, types, eggs, bad_egg = [], [], [], [], []
    for row_no, row in enumerate(entries[1:], start=1):
        if not row:
            continue
        fields = row.split(";")
        if len(fields) != len(header):
            raise InputError(source, f"polygon_codes row {row_no} has {len(fields)} fields, header has {len(header)}: {row!r}")
        try:
            poly_id = int(fields[i_id])
        except ValueError:
            raise InputError(source, f"polygon_codes row {row_no}: poly_id {fields[i_id]!r} is not an integer") from None
        try:
            ct = int(fields[i_ct])
        except ValueError:
            raise InputError(source, f"polygon_codes row {row_no} (poly_id {poly_id}): CT {fields[i_ct]!r} is not an integer code") from None
        ptype = fields[i_type].strip().upper()
        if not ptype.isalpha():
            raise InputError(source, f"polygon_codes row {row_no} (poly_id {poly_id}): POLY_TYPE {fields[i_type]!r} is not a SIGRID-3 type letter")
        ids.append(poly_id)
        cts.append(ct)
        types.append(ptype)
        egg = [_egg_field(fields[i]) for i in i_egg]
        if BAD_FIELD in egg:
            bad_egg.append(poly_id)
        eggs.append(egg)
    ids = np.asarray(ids, np.int64)
    uniq, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        raise InputError(source, f"polygon_codes has duplicate poly_id(s) {uniq[counts > 1].tolist()[:5]}")
    cts = np.asarray(cts, np.int64)
    types = np.asarray(types, dtype="<U1")
    odd = ~np.isin(types, LABELLED_TYPES)
    if odd.any():
        logging.warning("%s: polygon(s) %s have a POLY_TYPE other than I/W (%s): unlabelled", source,
                        ids[odd][:10].tolist(), ",".join(sorted(set(types[odd].tolist()))))
    sic = np.array([0.0 if t == "W" else ct_to_sic(c) if t == "I" else np.nan for c, t in zip(cts, types)],
                   np.float32)
    if not has_egg:
        return PolygonTable(ids=ids, ct=cts, poly_type=types, sic=sic)
    if bad_egg:
        logging.warning("%s: polygon(s) %s have a non-integer egg-code field: their SOD/FLOE are unlabelled",
                        source, bad_egg[:10])
    sod_comp, floe_comp, sod_cls, floe_cls = egg_codes.polygon_labels(sic, np.asarray(eggs, np.int64).reshape(-1, 10))
    bad = np.isin(ids, bad_egg)
    sod_comp[bad], floe_comp[bad], sod_cls[bad], floe_cls[bad] = np.nan, np.nan, egg_codes.UNLABELLED, egg_codes.UNLABELLED
    return PolygonTable(ids=ids, ct=cts, poly_type=types, sic=sic, sod_composition=sod_comp,
                        floe_composition=floe_comp, sod_class=sod_cls, floe_class=floe_cls)


def _egg_field(text):
    """One egg-code field as an integer code: empty -> not filled (-9), not an integer -> BAD_FIELD."""
    text = text.strip()
    if not text:
        return egg_codes.NOT_FILLED
    try:
        return int(text)
    except ValueError:
        return BAD_FIELD
