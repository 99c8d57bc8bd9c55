"""AI4Arctic `polygon_codes` tables and the CT (total concentration) -> SIC rule.

Entry 0 of `polygon_codes` is the header
`poly_id;CT;CA;SA;FA;CB;SB;FB;CC;SC;FC;CN;CD;CF;POLY_TYPE`; every other entry is
one chart polygon. SIGRID-3 CT codes: 0, 1, 2, 55 ice free -> 0; 10..90 -> 0.1..0.9;
91 (9+/10) and 92 (10/10) -> 1.0; 98 (glacier), 99 (unknown), -9 (not filled)
and any other code -> unlabelled (NaN). POLY_TYPE `W` (water) is SIC 0 whatever CT says;
`I` (ice) takes its CT; any other SIGRID-3 type (L land, N no data, S shelf...) is
unlabelled, with a warning, rather than failing the scene. Older files name the
first column `id` instead of `poly_id`.
"""

import dataclasses

import numpy as np
from absl import logging

from tfseaice.errors import InputError

HEADER = "poly_id;CT;CA;SA;FA;CB;SB;FB;CC;SC;FC;CN;CD;CF;POLY_TYPE"
REQUIRED_COLUMNS = ("poly_id", "CT", "POLY_TYPE")
ID_ALIASES = ("poly_id", "id")   # the older header names the first column `id`
LABELLED_TYPES = ("I", "W")
SIC_CLASS_FILL = 255             # AutoICE SIC class of an unlabelled pixel
ICE_FREE_CODES = (0, 1, 2, 55)
FULL_ICE_CODES = (91, 92)
NOT_FILLED = -9


def ct_to_sic(ct):
    """Map one SIGRID-3 CT code to SIC in [0, 1], NaN when it carries no label."""
    ct = int(ct)
    if ct in ICE_FREE_CODES:
        return 0.0
    if 10 <= ct <= 90 and ct % 10 == 0:
        return ct / 100.0
    if ct in FULL_ICE_CODES:
        return 1.0
    return float("nan")


@dataclasses.dataclass(frozen=True)
class PolygonTable:
    """One chart's polygons: ids, CT codes, polygon types and the derived SIC."""

    ids: np.ndarray        # int64 [P] the chart's poly_id
    ct: np.ndarray         # int64 [P] raw CT code (-9 = not filled)
    poly_type: np.ndarray  # <U1 [P] "I", "W" (labelled) or another SIGRID-3 type (unlabelled)
    sic: np.ndarray        # float32 [P] SIC in [0, 1], NaN = unlabelled

    def __len__(self):
        return len(self.ids)

    def lookup(self, chart_ids):
        """SIC for an array of chart ids (-1 or ids missing from the table -> NaN)."""
        chart_ids = np.asarray(chart_ids)
        order = np.argsort(self.ids)
        sorted_ids = self.ids[order]
        pos = np.clip(np.searchsorted(sorted_ids, chart_ids), 0, max(len(sorted_ids) - 1, 0))
        if len(sorted_ids) == 0:
            return np.full(chart_ids.shape, np.nan, np.float32)
        found = sorted_ids[pos] == chart_ids
        out = np.where(found, self.sic[order][pos], np.nan).astype(np.float32)
        return out

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
    ids, cts, types = [], [], []
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
    return PolygonTable(ids=ids, ct=cts, poly_type=types, sic=sic)
