"""Read SIGRID-3 ice charts (shapefile, zipped shapefile, GeoPackage) into a `Chart`.

Why a reader of its own: outside the AI4Arctic challenge, ice services deliver
their charts as SIGRID-3 vector files (JCOMM Technical Report No. 23,
WMO/TD-No. 1214, 2014 rev. 3), in their own polar projection, with a time
stamp in the file name. This module turns one file into the chart polygons
(in the file's CRS and order) and their egg codes as AI4Arctic
`polygon_codes` text, so `tfseaice.data.codes.parse_polygon_codes` gives the
SIC / SOD / FLOE labels exactly as it does for AI4Arctic files. Putting the
chart on a product grid is `sigrid3_raster`.

What the specification lets services vary, and how it is read (docs/sigrid3.md):
- field names in any case, padded or not; fields outside the 14 egg-code
  fields (AREA, PERIMETER, dates, ...) are ignored;
- codes as text or numbers, `'1'`, `'01'`, `' 01 '` or `1.0` alike; numeric
  codes are written back two-digit (`01`) as AI4Arctic does; a missing value
  (`-9`, empty, NULL) and an absent optional field are `-9`;
- `CT` and `POLY_TYPE` are mandatory: a file without CT has no SIGRID-3
  fields and is refused; without POLY_TYPE too.
Odd polygons are unlabelled with a warning, never fatal (as the AI4Arctic
reader does): a POLY_TYPE other than I/W (land, no data, shelf, or unreadable),
a CT or stage/form code that the SIGRID-3 tables do not list. `Chart.unlabelled`
says which and why.

Bad files raise `InputError(path, what)`: no `.prj`/CRS, no `.dbf`, a
truncated zip, no polygons, no CT field, and a self-intersecting polygon
(refused unless `repair=True`, which repairs it with shapely `make_valid`
and warns: a chart is a partition an analyst drew, and silently redrawing a
polygon moves labels, so the user decides).
"""

import dataclasses
import datetime
import os
import re
import zipfile

import numpy as np
import pyogrio
import pyproj
import shapely
from absl import logging

from tfseaice.data import codes
from tfseaice.errors import InputError

FIELDS = ("CT", "CA", "SA", "FA", "CB", "SB", "FB", "CC", "SC", "FC", "CN", "CD", "CF", "POLY_TYPE")
CODE_FIELDS = FIELDS[:12]          # two-digit numeric codes
MISSING = "-9"
POLY_TYPES = ("I", "W", "L", "N", "S")   # ice, water, land, no data, ice shelf (SIGRID-3)
UNREADABLE_TYPE = "N"              # an empty or non-letter POLY_TYPE: no data (unlabelled)
# SIGRID-3 codes that need no warning: the concentration (CT) codes the CT -> SIC table maps or knows
# as unlabelled, the stage (SA/SB/SC) and form (FA/FB/FC) codes of the specification's tables.
KNOWN_CT = {0, 1, 2, 55, 91, 92, 98, 99, *range(10, 91, 10)}
KNOWN_STAGE = {0, 80, 81, 82, 83, 84, 85, 86, 87, 88, 89, 91, 93, 95, 96, 97, 98, 99}
KNOWN_FORM = {*range(0, 11), 21, 22, 99}
SUFFIXES = (".shp", ".zip", ".gpkg")
_SHP_PARTS = (".shp", ".shx", ".dbf", ".prj")
# Time stamps in chart file names, most specific first (docs/sigrid3.md lists examples).
_TIME_PATTERNS = (
    re.compile(r"(?<!\d)(\d{4})-(\d{2})-(\d{2})[T_ ](\d{2})[:\-]?(\d{2})(?:[:\-]?(\d{2}))?Z?(?!\d)"),
    re.compile(r"(?<!\d)(\d{4})(\d{2})(\d{2})[T_](\d{2})(\d{2})(\d{2})?Z?(?!\d)"),
    re.compile(r"(?<!\d)(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(?!\d)"),
    re.compile(r"(?<!\d)(\d{4})-?(\d{2})-?(\d{2})(?!\d)"),
)


@dataclasses.dataclass
class Chart:
    """One SIGRID-3 chart: polygons in the file's CRS and order, normalised egg codes, time.

    `ids[k]` is the feature's 1-based position in the file: deterministic, and
    feature k of the file in a GIS. Features without a polygon are skipped
    (warning), so ids may have gaps.
    """

    path: str
    crs: pyproj.CRS
    geometries: list            # shapely Polygon / MultiPolygon, file order
    rows: list                  # per polygon: tuple of 14 str in FIELDS order
    ids: np.ndarray             # int64 [P]
    time: datetime.datetime | None  # UTC (aware), from the file name; None when the name has none
    unlabelled: dict = dataclasses.field(default_factory=dict)  # reason -> ids

    def __len__(self):
        return len(self.geometries)

    def polygon_codes(self, ids=None):
        """AI4Arctic `polygon_codes` entries: the real header, then one row per polygon (`ids`: a subset)."""
        keep = None if ids is None else set(int(i) for i in ids)
        rows = [f"{pid};" + ";".join(row) for pid, row in zip(self.ids.tolist(), self.rows)
                if keep is None or pid in keep]
        return [codes.HEADER] + rows

    def table(self):
        """The chart's PolygonTable (SIC, SOD/FLOE) through the AI4Arctic parser."""
        return codes.parse_polygon_codes(self.polygon_codes(), source=self.path)


# ------------------------------------------------------------------ time

def parse_chart_time(name):
    """UTC time stamp in a chart file name, or None.

    Forms (first match wins): `2021-03-01T12:00:00Z`, `2021-03-01T1200`,
    `20210301T1200Z`, `20210301T120000`, `20210301_1200`, `202103011200`,
    and a date alone (`20210301`, `2021-03-01`) at 00:00 UTC.
    """
    base = os.path.basename(str(name))
    for pattern in _TIME_PATTERNS:
        for m in pattern.finditer(base):
            parts = [int(g) if g else 0 for g in m.groups()]
            parts += [0] * (6 - len(parts))
            try:
                return datetime.datetime(*parts, tzinfo=datetime.timezone.utc)
            except ValueError:
                continue
    return None


def time_offset_hours(chart_time, when):
    """|chart_time - when| in hours, or None when either is unknown.

    `when`: a datetime (naive = UTC) or text holding a time stamp (an
    acquisition time `20210301T120000`, a product name), read as chart names are.
    """
    if isinstance(when, str):
        when = parse_chart_time(when)
    if chart_time is None or when is None:
        return None
    utc = lambda t: t if t.tzinfo else t.replace(tzinfo=datetime.timezone.utc)  # noqa: E731
    return abs((utc(chart_time) - utc(when)).total_seconds()) / 3600.0


# ------------------------------------------------------------------ files

def _siblings(path):
    """{lower-case suffix: path} of the files beside a .shp with the same stem (any case)."""
    folder, base = os.path.split(os.path.abspath(path))
    stem = os.path.splitext(base)[0]
    out = {}
    for name in os.listdir(folder or "."):
        s, ext = os.path.splitext(name)
        if s == stem:
            out[ext.lower()] = os.path.join(folder, name)
    return out


def _require_parts(path, have, where):
    for ext, what in ((".dbf", "attributes"), (".prj", "CRS")):
        if ext not in have:
            raise InputError(path, f"shapefile has no {ext} ({what}) {where}; SIGRID-3 charts need .shp, .dbf and .prj")


def _source(path):
    """(what pyogrio opens, layer) for a .shp, a .zip holding one shapefile, or a .gpkg."""
    if not os.path.exists(path):
        raise InputError(path, "file does not exist")
    ext = os.path.splitext(path)[1].lower()
    if ext == ".shp":
        _require_parts(path, _siblings(path), "beside it")
        return path, None
    if ext == ".zip":
        return _zip_source(path), None
    if ext == ".gpkg":
        try:
            layers = pyogrio.list_layers(path)
        except Exception as exc:
            raise InputError(path, f"cannot be read as a GeoPackage ({_first_line(exc)})") from None
        polys = [str(n) for n, g in layers if g and "POLYGON" in str(g).upper()]
        if not polys:
            raise InputError(path, "GeoPackage has no polygon layer (no polygons)")
        for name in polys:  # the first polygon layer with a CT field; else the first (refused below)
            fields = pyogrio.read_info(path, layer=name)["fields"]
            if any(str(f).strip().upper() == "CT" for f in fields):
                return path, name
        return path, polys[0]
    raise InputError(path, f"not a SIGRID-3 chart file (expected one of {', '.join(SUFFIXES)})")


def _zip_members(path, zf):
    bad = zf.testzip()
    if bad is not None:
        raise InputError(path, f"zip member {bad} is corrupt (CRC check failed)")
    return [n for n in zf.namelist() if not n.startswith("__MACOSX")]


def _pick_shapefile(path, names, where):
    """The one shapefile among zip members; several: the SIGRID-3 polygon one (`_pl` in its name)."""
    shps = sorted(n for n in names if n.lower().endswith(".shp"))
    if len(shps) > 1:
        polygons = [n for n in shps if re.search(r"_pl(?:_|\.)", os.path.basename(n).lower())]
        shps = polygons if len(polygons) == 1 else shps
    if len(shps) != 1:
        raise InputError(path, f"{where} holds {len(shps)} shapefiles, expected one ({', '.join(shps[:5])})")
    stem = os.path.splitext(shps[0])[0]
    have = {os.path.splitext(n)[1].lower() for n in names if os.path.splitext(n)[0] == stem}
    _require_parts(path, have, f"in the zip next to {shps[0]}")
    return shps[0]


def _zip_source(path):
    """GDAL path of the shapefile in a zip, or in the one zip inside it (CIS archives nest them)."""
    outer = f"/vsizip/{os.path.abspath(path)}"
    try:
        with zipfile.ZipFile(path) as zf:
            names = _zip_members(path, zf)
            inner = [n for n in names if n.lower().endswith(".zip")]
            if any(n.lower().endswith(".shp") for n in names) or len(inner) != 1:
                return f"{outer}/{_pick_shapefile(path, names, 'zip')}"
            with zf.open(inner[0]) as f, zipfile.ZipFile(f) as nested:
                shp = _pick_shapefile(path, _zip_members(path, nested), f"zip {inner[0]} in the zip")
            return f"/vsizip/{{{outer}/{inner[0]}}}/{shp}"
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise InputError(path, f"cannot be read as a zip file (truncated or corrupt: {exc})") from None


def _first_line(exc):
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _read_raw(path):
    src, layer = _source(path)
    try:
        info = pyogrio.read_info(src, layer=layer)
    except Exception as exc:
        raise InputError(path, f"cannot be read as a SIGRID-3 chart ({_first_line(exc)})") from None
    if not info.get("crs"):
        raise InputError(path, "chart declares no CRS (.prj missing or empty)")
    try:
        crs = pyproj.CRS.from_user_input(info["crs"])
    except pyproj.exceptions.CRSError as exc:
        raise InputError(path, f"chart CRS cannot be read ({_first_line(exc)})") from None
    fields = {}
    for f in info["fields"]:  # case-insensitive, padded names; the first of duplicates wins
        fields.setdefault(str(f).strip().upper(), str(f))
    if "CT" not in fields:
        raise InputError(path, f"no SIGRID-3 fields (no CT; fields: {', '.join(map(str, info['fields'][:12]))})")
    if "POLY_TYPE" not in fields:
        raise InputError(path, "no POLY_TYPE field (SIGRID-3 requires it)")
    wanted = [fields[name] for name in FIELDS if name in fields]  # extra fields are never read (nor decoded)
    try:
        meta, _, wkb, values = pyogrio.raw.read(src, layer=layer, columns=wanted)
    except Exception as exc:
        raise InputError(path, f"cannot be read as a SIGRID-3 chart ({_first_line(exc)})") from None
    by_name = dict(zip(map(str, meta["fields"]), values))   # in the file's field order
    columns = {name: (by_name[fields[name]] if name in fields else None) for name in FIELDS}
    return crs, wkb, columns


# ------------------------------------------------------------------ attributes

def _code(value, width=2):
    """One numeric SIGRID-3 code as AI4Arctic text: '-9' when missing, zero-padded integer, else stripped text."""
    if value is None:
        return MISSING
    if isinstance(value, (bytes, bytearray)):
        value = value.decode("utf-8", errors="replace")
    if isinstance(value, (int, np.integer, float, np.floating)):
        if not np.isfinite(value):
            return MISSING
        if float(value) != int(value):
            return str(value)
        v = int(value)
    else:
        text = str(value).strip().replace(";", " ")
        if text == "" or text == MISSING:
            return MISSING
        m = re.fullmatch(r"[+-]?\d+(?:\.0*)?", text)
        if not m:
            return text
        v = int(float(text))
    return MISSING if v == int(MISSING) else f"{v:0{width}d}" if v >= 0 else str(v)


def _cf(value):
    """CF (predominant and secondary form, e.g. '0805', '08-9') as text; numbers zero-padded to 4."""
    if value is None or isinstance(value, (int, np.integer, float, np.floating)):
        return _code(value, width=4)
    if isinstance(value, (bytes, bytearray)):
        value = value.decode("utf-8", errors="replace")
    text = str(value).strip().replace(";", " ")
    return MISSING if text in ("", MISSING) else text


def _poly_type(value):
    text = "" if value is None else str(value).strip().upper()
    return text if len(text) == 1 and text.isalpha() else None


def _as_int(text):
    try:
        return int(text)
    except ValueError:
        return None


def normalise_rows(columns, n, ids, path):
    """Rows of 14 normalised strings (FIELDS order) and {reason: ids} of polygons left unlabelled."""
    rows, odd = [], {}
    for k in range(n):
        row = []
        for name in FIELDS:
            col = columns[name]
            v = None if col is None else col[k]
            row.append(_poly_type(v) if name == "POLY_TYPE" else _cf(v) if name == "CF" else _code(v))
        pid = int(ids[k])
        if row[-1] is None:
            odd.setdefault("poly_type_unreadable", []).append(pid)
            row[-1] = UNREADABLE_TYPE
        elif row[-1] not in ("I", "W"):
            odd.setdefault("poly_type_not_i_or_w", []).append(pid)
        ct = _as_int(row[0])
        if ct is None:  # parse_polygon_codes refuses a non-integer CT: the polygon goes unlabelled instead
            if row[-1] == "I":  # (a W polygon is SIC 0 whatever CT says)
                odd.setdefault("ct_not_a_code", []).append(pid)
            row[0] = MISSING
        elif ct != int(MISSING) and ct not in KNOWN_CT and row[-1] == "I":
            odd.setdefault("ct_unknown", []).append(pid)
        for i, known in ((2, KNOWN_STAGE), (5, KNOWN_STAGE), (8, KNOWN_STAGE), (3, KNOWN_FORM), (6, KNOWN_FORM),
                         (9, KNOWN_FORM)):
            v = _as_int(row[i])
            if row[i] != MISSING and (v is None or v not in known):
                odd.setdefault(f"{FIELDS[i].lower()}_unknown", []).append(pid)
        rows.append(tuple(row))
    for reason, pids in odd.items():
        logging.warning("%s: polygon(s) %s: %s; unlabelled%s", path, pids[:10], reason.replace("_", " "),
                        "" if reason.startswith(("ct", "poly")) else " for SOD/FLOE")
    return rows, odd


# ------------------------------------------------------------------ geometry

def polygonal(geom):
    """The polygonal part of a geometry (make_valid may return a collection with lines), or None."""
    if geom is None or geom.is_empty:
        return None
    if isinstance(geom, (shapely.Polygon, shapely.MultiPolygon)):
        return geom
    parts = [g for g in getattr(geom, "geoms", []) if isinstance(g, (shapely.Polygon, shapely.MultiPolygon))]
    polys = [p for g in parts for p in (g.geoms if isinstance(g, shapely.MultiPolygon) else [g])]
    return shapely.MultiPolygon(polys) if polys else None


def _geometries(path, wkb, repair):
    geoms = shapely.force_2d(shapely.from_wkb(np.asarray(wkb, dtype=object), on_invalid="warn"))
    keep, out = [], []
    for k, g in enumerate(geoms):
        poly = polygonal(g)
        if poly is None:
            continue
        if not poly.is_valid:
            reason = shapely.is_valid_reason(poly)
            if not repair:
                raise InputError(path, f"feature {k + 1} is not a valid polygon ({reason}); "
                                       "repair it, or read with repair=True (shapely make_valid)")
            poly = polygonal(shapely.make_valid(poly))
            logging.warning("%s: feature %d was not a valid polygon (%s): repaired with make_valid",
                            path, k + 1, reason)
            if poly is None:
                continue
        keep.append(k)
        out.append(poly)
    if len(keep) < len(geoms):
        logging.warning("%s: %d feature(s) without a polygon skipped", path, len(geoms) - len(keep))
    return np.asarray(keep, np.int64), out


def read_chart(path, repair=False):
    """Read a SIGRID-3 chart (`.shp` with `.dbf`/`.prj`, a `.zip` holding one, or a `.gpkg`).

    Returns a `Chart`. `repair=True` repairs invalid (self-intersecting)
    polygons with shapely `make_valid` and warns, instead of refusing the file.
    """
    path = str(path)
    crs, wkb, columns = _read_raw(path)
    keep, geoms = _geometries(path, wkb if wkb is not None else [], repair)
    if not geoms:
        raise InputError(path, "chart has no polygons")
    ids = keep + 1
    sub = {k: (None if v is None else np.asarray(v, dtype=object)[keep]) for k, v in columns.items()}
    rows, odd = normalise_rows(sub, len(keep), ids, path)
    return Chart(path=path, crs=crs, geometries=geoms, rows=rows, ids=ids, time=parse_chart_time(path),
                 unlabelled=odd)
