"""SIGRID-3 chart files (shapefile, zipped shapefile, GeoPackage) made from the sample scenes' charts.

Why: the readers of issue 23 need charts the way ice services deliver them,
with a known answer. A sample scene's chart is a raster of polygon ids with
`polygon_codes`; here each id's pixels are vectorised
(`rasterio.features.shapes`, pixel edges), the outlines densified in the image
(4 pixels) and taken to lon/lat through the scene's tie-point grid
(`tfseaice.data.sigrid3_raster.ProductGrid`, the model the reader inverts), then
to a polar projection (EPSG:3413 NSIDC polar stereographic by default, or
`CIS_LCC`, a Lambert conformal conic like the Canadian Ice Service's), and
written with pyogrio under SIGRID-3 field names and a time-stamped file name.

`style` varies what services vary (docs/sigrid3.md): field-name case,
unpadded codes ('1' for '01'), empty instead of '-9', codes padded with
spaces, numeric (integer) fields, extra fields (`SRC_ID`, the source poly_id;
`AREA`; `SOURCE`). Feature order is `order` (default: by source poly_id).
"""

import datetime
import os
import shutil
import tempfile
import zipfile

import numpy as np
import pyogrio
import pyproj
import rasterio.features
import shapely
from affine import Affine

from tfseaice.data.sigrid3 import FIELDS
from tfseaice.data.sigrid3_raster import product_grid

CIS_LCC = ("+proj=lcc +lat_0=49 +lon_0=-95 +lat_1=49 +lat_2=77 +x_0=0 +y_0=0 +datum=WGS84 +units=m +no_defs")
FORMATS = ("shp", "zip", "gpkg")
DEFAULT_STYLE = {"case": "upper", "two_digit": True, "missing": "-9", "pad": 0, "numeric": False, "extra": True}
DENSIFY_PIXELS = 4.0


def chart_polygons(ds):
    """{source poly_id: polygon in (lon, lat)} of a raw-layout scene's `polygon_icechart`."""
    ids = ds["polygon_icechart"].values
    finite = np.isfinite(ids)
    raster = np.where(finite, ids, 0).astype(np.int32)
    pieces = {}
    for geojson, value in rasterio.features.shapes(raster, mask=finite, connectivity=4, transform=Affine.identity()):
        pieces.setdefault(int(value), []).append(shapely.geometry.shape(geojson))
    grid = product_grid(ds)

    def to_lonlat(coords):  # image x = sample + 0.5, y = line + 0.5
        lon, lat = grid.lonlat(coords[:, 1] - 0.5, coords[:, 0] - 0.5)
        return np.column_stack([lon, lat])

    out = {}
    for pid in sorted(pieces):
        geom = shapely.segmentize(shapely.union_all(pieces[pid]), DENSIFY_PIXELS)
        out[pid] = shapely.transform(geom, to_lonlat)
    return out


def source_rows(ds):
    """{source poly_id: {field: text}} from a scene's `polygon_codes`."""
    entries = [str(e) for e in np.asarray(ds["polygon_codes"].values).ravel()]
    header = entries[0].split(";")
    return {int(r.split(";")[0]): dict(zip(header, r.split(";"))) for r in entries[1:] if r}


def chart_time(ds, offset_hours=0.0):
    """The chart's time: the scene's acquisition hour minus `offset_hours` (UTC)."""
    t = datetime.datetime.strptime(str(ds.attrs["acquisition_time"]), "%Y%m%dT%H%M%S")
    return t.replace(minute=0, second=0, tzinfo=datetime.timezone.utc) - datetime.timedelta(hours=offset_hours)


def chart_file_name(time, service="cis", fmt="shp"):
    """A service-like name with the time stamp: `cis_SGRDREA_20210301T1200Z_pl_a.shp`, `dmi_2021-03-01T1200Z_sigrid3.gpkg`."""
    ext = {"shp": ".shp", "zip": ".zip", "gpkg": ".gpkg"}[fmt]
    if service == "dmi":
        return f"dmi_{time:%Y-%m-%dT%H%M}Z_sigrid3{ext}"
    return f"{service}_SGRDREA_{time:%Y%m%dT%H%M}Z_pl_a{ext}"


def _value(text, name, style):
    """One attribute as the style writes it (text, or int for numeric code fields)."""
    missing = text in ("-9", "")
    if style["numeric"] and name not in ("CF", "POLY_TYPE"):
        return -9 if missing else int(text)
    if missing:
        return style["missing"]
    if name not in ("CF", "POLY_TYPE") and not style["two_digit"]:
        text = str(int(text))
    return text.rjust(style["pad"]) if style["pad"] else text


def _field_data(pids, rows, geoms, style):
    names, data = [], []
    for name in FIELDS:
        values = [_value(rows[p].get(name, "-9"), name, style) for p in pids]
        numeric = style["numeric"] and name not in ("CF", "POLY_TYPE")
        names.append(name.lower() if style["case"] == "lower" else name.capitalize() if style["case"] == "mixed"
                     else name)
        data.append(np.asarray(values, np.int32 if numeric else object))
    if style["extra"]:
        names += ["SRC_ID", "AREA", "SOURCE"]
        data += [np.asarray(pids, np.int32), np.asarray([g.area for g in geoms], np.float64),
                 np.asarray(["tfseaice sample chart"] * len(pids), object)]
    return names, data


def write_sigrid3(ds, out_dir, fmt="shp", crs="EPSG:3413", service=None, time=None, style=None, order=None,
                  rows=None):
    """Write a scene's chart as a SIGRID-3 file in `out_dir`; returns its path.

    `fmt`: "shp" (.shp/.shx/.dbf/.prj/.cpg), "zip" (those in one .zip) or
    "gpkg". `rows` ({poly_id: {field: text}}) overrides the scene's codes
    (tests write odd codes); `order` lists the source poly_ids in file order.
    """
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {FORMATS}, got {fmt!r}")
    style = {**DEFAULT_STYLE, **(style or {})}
    service = service or str(ds.attrs.get("ice_service", "cis"))
    time = time or chart_time(ds)
    polys = chart_polygons(ds)
    rows = rows or source_rows(ds)
    pids = list(order) if order is not None else sorted(polys)
    to_chart = pyproj.Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    geoms = [shapely.transform(polys[p], lambda c: np.column_stack(to_chart.transform(c[:, 0], c[:, 1])))
             for p in pids]
    names, data = _field_data(pids, rows, geoms, style)
    wkb = np.asarray([shapely.to_wkb(shapely.MultiPolygon(_parts(g))) for g in geoms], dtype=object)
    wkt = pyproj.CRS.from_user_input(crs).to_wkt()
    os.makedirs(out_dir, exist_ok=True)
    name = chart_file_name(time, service, fmt)
    final = os.path.join(out_dir, name)
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".sigrid3.") as tmp:
        inner = os.path.join(tmp, name if fmt != "zip" else name[:-4] + ".shp")
        driver = "GPKG" if fmt == "gpkg" else "ESRI Shapefile"
        pyogrio.raw.write(inner, wkb, data, names, driver=driver, geometry_type="MultiPolygon", crs=wkt,
                          encoding="UTF-8" if driver != "GPKG" else None, **({"layer": "sigrid3"} if fmt == "gpkg" else {}))
        if fmt == "gpkg":
            os.replace(inner, final)
        elif fmt == "zip":
            tmp_zip = os.path.join(tmp, name)
            with zipfile.ZipFile(tmp_zip, "w", zipfile.ZIP_DEFLATED) as zf:
                for part in sorted(os.listdir(tmp)):
                    if part != name:
                        zf.write(os.path.join(tmp, part), part)
            os.replace(tmp_zip, final)
        else:
            stem = name[:-4]
            for part in os.listdir(tmp):
                if part.startswith(stem):
                    shutil.move(os.path.join(tmp, part), os.path.join(out_dir, part))
    return final


def _parts(geom):
    return list(geom.geoms) if isinstance(geom, shapely.MultiPolygon) else [geom]
