"""SIGRID-3 charts: read (shp, zip, gpkg; any CRS; what services vary), rasterised onto a product grid.

The round trip: a sample scene's raster chart -> SIGRID-3 file in a polar
projection (tfseaice.simulate.sigrid3_files) -> read_chart -> rasterize_chart
on the same grid -> per polygon, the share of its pixels that come back with
its new id. Independent checks pin what a shared forward model could hide:
tie points map back to their own line/sample, and a tiny polygon drawn around
one pixel centre (lon/lat by tfseaice.data.scene_grids) lands on that pixel.
"""

import datetime
import os
import zipfile

import numpy as np
import pyogrio
import pyproj
import pytest
import shapely
import xarray as xr

from tfseaice.data import codes, scene_grids, sigrid3
from tfseaice.data.sigrid3_raster import chart_overlaps, product_grid, rasterize_chart
from tfseaice.errors import InputError
from tfseaice.simulate import sigrid3_files as sf
from tfseaice.simulate.scenes import make_scene

SIZE = 256


@pytest.fixture(scope="module")
def scene():
    return make_scene(3, size=SIZE)


def _source_ids(ds):
    src = ds["polygon_icechart"].values
    return src, sorted(int(i) for i in np.unique(src[np.isfinite(src)]))


def _per_polygon_hits(src, raster, pairs):
    """{source id: share of its pixels whose rasterised id is the chart id paired with it}."""
    return {s: float((raster[src == s] == c).mean()) for s, c in pairs}


def _write(path, geoms, fields, crs="EPSG:4326"):
    """A hand-made chart file: shapely geometries, {field: list of values}."""
    names = list(fields)
    data = [np.asarray(v, dtype=object if isinstance(v[0], str) or v[0] is None else None) for v in fields.values()]
    wkb = np.asarray([shapely.to_wkb(g) for g in geoms], dtype=object)
    pyogrio.raw.write(str(path), wkb, data, names, geometry_type="Polygon", crs=pyproj.CRS(crs).to_wkt())
    return str(path)


def _rows(n, **override):
    """n SIGRID-3 attribute columns: a 9/10 ice polygon each, `override` replaces columns."""
    base = {"CT": "90", "CA": "-9", "SA": "93", "FA": "05", "CB": "-9", "SB": "-9", "FB": "-9", "CC": "-9",
            "SC": "-9", "FC": "-9", "CN": "-9", "CD": "-9", "CF": "05-9", "POLY_TYPE": "I"}
    return {k: list(override.get(k, [v] * n)) for k, v in base.items()}


# ------------------------------------------------------------------ round trip

@pytest.mark.parametrize("fmt,crs", [("shp", "EPSG:3413"), ("zip", sf.CIS_LCC), ("gpkg", "EPSG:3413")])
def test_round_trip_puts_99_percent_of_each_polygon_where_the_chart_draws_it(scene, tmp_path, fmt, crs):
    path = sf.write_sigrid3(scene, tmp_path, fmt=fmt, crs=crs)
    chart = sigrid3.read_chart(path)
    assert pyproj.CRS(crs).equals(chart.crs)
    raster, polygon_codes = rasterize_chart(chart, scene)
    src, ids = _source_ids(scene)
    assert raster.dtype == np.float32 and raster.shape == src.shape
    hits = _per_polygon_hits(src, raster, zip(ids, chart.ids))
    assert min(hits.values()) >= 0.99, hits
    assert (np.isnan(raster) == np.isnan(src)).mean() >= 0.99   # outside the chart (land) stays NaN
    assert polygon_codes[0] == codes.HEADER and len(polygon_codes) == len(ids) + 1


def test_codes_give_the_source_charts_sic_sod_floe(scene, tmp_path):
    chart = sigrid3.read_chart(sf.write_sigrid3(scene, tmp_path, fmt="gpkg"))
    raster, polygon_codes = rasterize_chart(chart, scene)
    new = codes.parse_polygon_codes(polygon_codes, source="new")
    old = codes.parse_polygon_codes(scene["polygon_codes"].values, source="old")
    src, ids = _source_ids(scene)
    rows_new, rows_old = new.rows(chart.ids), old.rows(np.asarray(ids))
    np.testing.assert_array_equal(new.sic[rows_new], old.sic[rows_old])
    np.testing.assert_array_equal(new.sod_class[rows_new], old.sod_class[rows_old])
    np.testing.assert_array_equal(new.floe_class[rows_new], old.floe_class[rows_old])
    np.testing.assert_array_equal(new.sod_composition[rows_new], old.sod_composition[rows_old])
    np.testing.assert_array_equal(new.floe_composition[rows_new], old.floe_composition[rows_old])
    both = np.isfinite(raster) & np.isfinite(src)
    agree = new.lookup_class(np.where(np.isfinite(raster), raster, -1).astype(np.int64), "SOD") == \
        old.lookup_class(np.where(np.isfinite(src), src, -1).astype(np.int64), "SOD")
    assert agree[both].mean() >= 0.99


def test_a_polygon_around_one_pixel_centre_lands_on_that_pixel(scene, tmp_path):
    """The pixel-centre convention, checked against the package's own GCP interpolation."""
    lat, lon = scene_grids.gcp_lat_lon(scene, "scene", (SIZE, SIZE), 1)
    pixels = [(100, 37), (3, 250), (200, 128)]
    geoms = []
    for i, j in pixels:  # a square of +-0.3 pixel around the centre, corners from neighbouring centres
        dl = np.array([lon[i + 1, j] - lon[i, j], lat[i + 1, j] - lat[i, j]]) if i + 1 < SIZE else \
            np.array([lon[i, j] - lon[i - 1, j], lat[i, j] - lat[i - 1, j]])
        ds = np.array([lon[i, j + 1] - lon[i, j], lat[i, j + 1] - lat[i, j]]) if j + 1 < SIZE else \
            np.array([lon[i, j] - lon[i, j - 1], lat[i, j] - lat[i, j - 1]])
        c = np.array([lon[i, j], lat[i, j]], np.float64)
        geoms.append(shapely.Polygon([c + 0.3 * (a * dl + b * ds) for a, b in ((-1, -1), (-1, 1), (1, 1), (1, -1))]))
    chart = sigrid3.read_chart(_write(tmp_path / "cis_SGRDREA_20200101T0000Z_pl_a.shp", geoms, _rows(3)))
    raster, _ = rasterize_chart(chart, scene)
    assert np.isfinite(raster).sum() == 3
    for k, (i, j) in enumerate(pixels):
        assert raster[i, j] == k + 1


def test_tie_points_map_back_to_their_line_and_sample(scene):
    g = product_grid(scene)
    lines, samples, lat, lon = scene_grids.gcp_points(scene, "scene")
    line, sample = g.lonlat_to_image(lon, lat)
    assert np.abs(line - lines).max() < 1e-4 and np.abs(sample - samples).max() < 1e-4
    lat_i, lon_i = scene_grids.gcp_lat_lon(scene, "scene", (SIZE, SIZE), 1)
    glon, glat = g.lonlat(*np.meshgrid(np.arange(SIZE), np.arange(SIZE), indexing="ij"))
    assert np.abs(glat - lat_i).max() < 1e-4 and np.abs(glon - lon_i).max() < 1e-4


def _polar_scene(scene):
    """The sample scene moved so that the North Pole and the antimeridian lie inside it."""
    ps = pyproj.Transformer.from_crs("+proj=stere +lat_0=90 +lon_0=0 +ellps=WGS84", "EPSG:4326", always_xy=True)
    line, sample = scene["sar_grid_line"].values, scene["sar_grid_sample"].values
    a = np.radians(30)
    dx, dy = (sample - SIZE / 2) * 40.0, (line - SIZE / 2) * 40.0
    x = -1500.0 + dx * np.cos(a) - dy * np.sin(a)
    y = -2500.0 + dx * np.sin(a) + dy * np.cos(a)
    lon, lat = ps.transform(x, y)
    return scene.assign(sar_grid_latitude=("sar_grid_points", lat), sar_grid_longitude=("sar_grid_points", lon))


def test_round_trip_at_the_pole_and_across_the_antimeridian(scene, tmp_path):
    polar = _polar_scene(scene)
    lon = polar["sar_grid_longitude"].values
    assert lon.min() < -170 and lon.max() > 170 and polar["sar_grid_latitude"].values.max() > 89.9
    g = product_grid(polar)
    line, sample = g.lonlat_to_image(lon, polar["sar_grid_latitude"].values)
    assert np.abs(line - polar["sar_grid_line"].values).max() < 1e-4
    chart = sigrid3.read_chart(sf.write_sigrid3(polar, tmp_path, fmt="shp", crs="EPSG:3413"))
    raster, _ = rasterize_chart(chart, polar)
    src, ids = _source_ids(polar)
    assert min(_per_polygon_hits(src, raster, zip(ids, chart.ids)).values()) >= 0.99


def test_long_edges_follow_the_chart_crs_not_straight_image_lines(tmp_path):
    """A 400 km scene and a lon/lat box: its edges along parallels are curves in the image (~15 pixels)."""
    n, spacing = 500, 800.0
    to_ll = pyproj.Transformer.from_crs("+proj=stere +lat_0=75.5 +lon_0=-40 +ellps=WGS84", "EPSG:4326", always_xy=True)
    g = np.linspace(0, n - 1, 21)
    line, sample = (a.ravel() for a in np.meshgrid(g, g, indexing="ij"))
    lon, lat = to_ll.transform((sample - n / 2) * spacing, (n / 2 - line) * spacing)
    box = shapely.box(-50.0, 74.5, -30.0, 76.2)
    chart = sigrid3.read_chart(_write(tmp_path / "c.shp", [box], _rows(1)))
    raster, _ = rasterize_chart(chart, (line, sample, lat, lon), (n, n))
    ds = xr.Dataset({"sar_grid_line": ("p", line), "sar_grid_sample": ("p", sample),
                     "sar_grid_latitude": ("p", lat), "sar_grid_longitude": ("p", lon)})
    plat, plon = scene_grids.gcp_lat_lon(ds, "grid", (n, n), 1)   # pixel centres, the package's interpolation
    inside = (plon >= -50) & (plon <= -30) & (plat >= 74.5) & (plat <= 76.2)
    assert 0.2 < inside.mean() < 0.8
    assert (np.isfinite(raster) == inside).mean() >= 0.999


# ------------------------------------------------------------------ attributes, ids

@pytest.mark.parametrize("style", [
    {"case": "lower", "two_digit": False, "missing": "", "pad": 3},
    {"case": "mixed", "numeric": True},
    {"case": "upper", "missing": None, "extra": False},
])
def test_attributes_are_normalised_to_the_ai4arctic_text(scene, tmp_path, style):
    path = sf.write_sigrid3(scene, tmp_path, fmt="gpkg" if style.get("missing", "-9") is None else "shp", style=style)
    chart = sigrid3.read_chart(path)
    src_rows = sf.source_rows(scene)
    _, ids = _source_ids(scene)
    assert len(chart.rows) == len(ids)
    for sid, row in zip(ids, chart.rows):
        assert row == tuple(src_rows[sid][f] for f in sigrid3.FIELDS)


def test_absent_optional_fields_are_not_filled(tmp_path):
    fields = {k: v for k, v in _rows(1).items() if k in ("CT", "POLY_TYPE")}
    fields["ct"] = fields.pop("CT")
    fields["Extra"] = ["x"]
    chart = sigrid3.read_chart(_write(tmp_path / "c.shp", [shapely.box(0, 70, 1, 71)], fields))
    assert chart.rows == [("90",) + ("-9",) * 12 + ("I",)]


def test_polygon_ids_follow_the_file_order(scene, tmp_path):
    _, ids = _source_ids(scene)
    order = ids[::-1]
    a = sigrid3.read_chart(sf.write_sigrid3(scene, tmp_path / "a", fmt="shp", order=order))
    b = sigrid3.read_chart(sf.write_sigrid3(scene, tmp_path / "b", fmt="shp", order=order))
    np.testing.assert_array_equal(a.ids, np.arange(1, len(ids) + 1))
    ra, ca = rasterize_chart(a, scene)
    rb, cb = rasterize_chart(b, scene)
    np.testing.assert_array_equal(ra, rb)
    assert ca == cb
    src, _ = _source_ids(scene)
    hits = _per_polygon_hits(src, ra, zip(order, a.ids))
    assert min(hits.values()) >= 0.99


def test_odd_poly_types_and_unknown_codes_are_unlabelled_with_a_warning(scene, tmp_path, caplog):
    rows = sf.source_rows(scene)
    _, ids = _source_ids(scene)
    ice = [i for i in ids if rows[i]["POLY_TYPE"] == "I" and rows[i]["SA"] != "-9"]
    land, blank, ct45, ctxx, sa77 = ice[:5]
    rows = {k: dict(v) for k, v in rows.items()}
    rows[land]["POLY_TYPE"], rows[blank]["POLY_TYPE"] = "L", "?"
    rows[ct45]["CT"], rows[ctxx]["CT"], rows[sa77]["SA"] = "45", "xx", "77"
    path = sf.write_sigrid3(scene, tmp_path, fmt="zip", rows=rows)
    chart = sigrid3.read_chart(path)
    new_id = dict(zip(ids, chart.ids.tolist()))
    assert chart.unlabelled == {"poly_type_not_i_or_w": [new_id[land]], "poly_type_unreadable": [new_id[blank]],
                                "ct_unknown": [new_id[ct45]], "ct_not_a_code": [new_id[ctxx]],
                                "sa_unknown": [new_id[sa77]]}
    table = codes.parse_polygon_codes(rasterize_chart(chart, scene)[1], source=path)
    sic = dict(zip(table.ids.tolist(), table.sic))
    for pid in (land, blank, ct45, ctxx):
        assert np.isnan(sic[new_id[pid]])
    assert np.isfinite(sic[new_id[sa77]]) and table.sod_class[table.rows([new_id[sa77]])[0]] == 255
    old = codes.parse_polygon_codes(scene["polygon_codes"].values, source="old")
    old_sic = dict(zip(old.ids.tolist(), old.sic))
    for sid in set(ids) - {land, blank, ct45, ctxx}:   # the others keep their SIC
        np.testing.assert_equal(sic[new_id[sid]], old_sic[sid])
    messages = [r.getMessage() for r in caplog.records]
    for reason in ("poly type not i or w", "poly type unreadable", "ct unknown", "ct not a code", "sa unknown"):
        assert any(reason in m and path in m for m in messages), reason


def test_zips_as_archives_hold_them_nested_or_beside_a_line_file(scene, tmp_path):
    """CIS archive zips hold a zip; SIGRID-3 v3 packs polygon (_pl_) and line (_ln_) shapefiles together."""
    plain = sf.write_sigrid3(scene, tmp_path / "src", fmt="zip")
    reference = sigrid3.read_chart(plain)
    nested = str(tmp_path / "nested_20200713T1300Z.zip")
    with zipfile.ZipFile(nested, "w") as zf:
        zf.write(plain, "inner/" + os.path.basename(plain))
    both = str(tmp_path / "both_20200713T1300Z.zip")
    with zipfile.ZipFile(plain) as src, zipfile.ZipFile(both, "w") as dst:
        for n in src.namelist():
            dst.writestr(n, src.read(n))
            dst.writestr(n.replace("_pl_", "_ln_"), src.read(n))
    for path in (nested, both):
        chart = sigrid3.read_chart(path)
        assert chart.rows == reference.rows and len(chart) == len(reference)
        assert all(a.equals(b) for a, b in zip(chart.geometries, reference.geometries))


# ------------------------------------------------------------------ bad input

def _shp(scene, tmp_path):
    return sf.write_sigrid3(scene, tmp_path, fmt="shp")


def _no_prj(scene, tmp_path):
    p = _shp(scene, tmp_path)
    os.remove(p[:-4] + ".prj")
    return p, ".prj"


def _no_dbf(scene, tmp_path):
    p = _shp(scene, tmp_path)
    os.remove(p[:-4] + ".dbf")
    return p, ".dbf"


def _truncated_zip(scene, tmp_path):
    p = sf.write_sigrid3(scene, tmp_path, fmt="zip")
    with open(p, "r+b") as f:
        f.truncate(os.path.getsize(p) // 2)
    return p, "zip"


def _zip_without_prj(scene, tmp_path):
    p = sf.write_sigrid3(scene, tmp_path / "src", fmt="zip")
    out = str(tmp_path / os.path.basename(p))
    with zipfile.ZipFile(p) as src, zipfile.ZipFile(out, "w") as dst:
        for n in src.namelist():
            if not n.endswith(".prj"):
                dst.writestr(n, src.read(n))
    return out, ".prj"


def _no_polygons(scene, tmp_path):
    line = shapely.LineString([(0, 70), (1, 71)])
    p = str(tmp_path / "c.gpkg")
    pyogrio.raw.write(p, np.asarray([shapely.to_wkb(line)], dtype=object), [np.asarray(["90"], object),
                      np.asarray(["I"], object)], ["CT", "POLY_TYPE"], geometry_type="LineString",
                      crs=pyproj.CRS("EPSG:4326").to_wkt())
    return p, "polygon"


def _self_intersecting(scene, tmp_path):
    bowtie = shapely.Polygon([(0, 70), (1, 71), (1, 70), (0, 71)])
    return _write(tmp_path / "c.shp", [shapely.box(2, 70, 3, 71), bowtie], _rows(2)), "feature 2"


def _no_ct(scene, tmp_path):
    return _write(tmp_path / "c.shp", [shapely.box(0, 70, 1, 71)], {"NAME": ["a"], "POLY_TYPE": ["I"]}), "CT"


def _not_a_chart(scene, tmp_path):
    p = str(tmp_path / "c.kml")
    open(p, "w").write("<kml/>")
    return p, ".shp"


def _missing(scene, tmp_path):
    return str(tmp_path / "nothing.shp"), "does not exist"


@pytest.mark.parametrize("make", [_no_prj, _no_dbf, _truncated_zip, _zip_without_prj, _no_polygons,
                                  _self_intersecting, _no_ct, _not_a_chart, _missing])
def test_bad_charts_give_one_line_naming_the_file(scene, tmp_path, make):
    path, what = make(scene, tmp_path)
    with pytest.raises(InputError) as err:
        sigrid3.read_chart(path)
    assert err.value.path == path and what in err.value.what and "\n" not in str(err.value)


def test_self_intersecting_polygon_is_repaired_on_request(scene, tmp_path, caplog):
    path, _ = _self_intersecting(scene, tmp_path)
    chart = sigrid3.read_chart(path, repair=True)
    assert len(chart) == 2 and all(g.is_valid for g in chart.geometries)
    assert abs(chart.geometries[1].area - 0.5) < 1e-9   # both triangles of the bow tie kept
    assert any("make_valid" in r.getMessage() and path in r.getMessage() for r in caplog.records)


# ------------------------------------------------------------------ pairing

def test_chart_overlaps_measures_the_covered_share_of_a_footprint(scene, tmp_path):
    chart = sigrid3.read_chart(sf.write_sigrid3(scene, tmp_path, fmt="shp"))
    g = product_grid(scene)
    src, _ = _source_ids(scene)
    full = chart_overlaps(chart, g.footprint_lonlat((SIZE, SIZE)))
    assert abs(full - np.isfinite(src).mean()) < 0.02
    wide = chart_overlaps(chart, g.footprint_lonlat((SIZE, 2 * SIZE)))   # the scene and as much again beside it
    assert abs(wide - full / 2) < 0.02
    far = g.footprint_lonlat((SIZE, SIZE)) + [40.0, 0.0]   # 40 degrees of longitude away
    assert chart_overlaps(chart, far) == 0.0


@pytest.mark.parametrize("name,expected", [
    ("cis_SGRDREA_20210301T1200Z_pl_a.shp", (2021, 3, 1, 12, 0, 0)),
    ("dmi_2021-03-01T12:00:00Z_sigrid3.gpkg", (2021, 3, 1, 12, 0, 0)),
    ("dmi_2021-03-01T1230Z_sigrid3.gpkg", (2021, 3, 1, 12, 30, 0)),
    ("chart_20210301_180500.zip", (2021, 3, 1, 18, 5, 0)),
    ("ice_202103011800.shp", (2021, 3, 1, 18, 0, 0)),
    ("nic_arctic_20210301.zip", (2021, 3, 1, 0, 0, 0)),
    ("no_time_here.shp", None),
    ("bad_20211345T9999.shp", None),
])
def test_chart_time_from_the_file_name(name, expected):
    t = sigrid3.parse_chart_time(name)
    if expected is None:
        assert t is None
    else:
        assert t == datetime.datetime(*expected, tzinfo=datetime.timezone.utc)
    if t is not None:
        assert sigrid3.time_offset_hours(t, datetime.datetime(*expected) + datetime.timedelta(hours=5)) == 5
        later = (datetime.datetime(*expected) - datetime.timedelta(hours=30)).strftime("%Y%m%dT%H%M%S")
        assert sigrid3.time_offset_hours(t, f"S1A_EW_GRDM_1SDH_{later}_x.SAFE") == 30
    assert sigrid3.time_offset_hours(t, "no time") is None
