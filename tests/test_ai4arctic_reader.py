"""The AI4Arctic reader on sample scenes: raw alone, and ready-to-train + raw."""

import os

import netCDF4
import numpy as np
import pytest
import xarray as xr

from tfseaice.data import ai4arctic
from tfseaice.data.patches import iter_patches
from tfseaice.errors import InputError

from sic_fixtures import write_scenes


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    d = tmp_path_factory.mktemp("scenes")
    raw, rtt = write_scenes(str(d), 1, size=256, seed=3, ready_to_train=True)
    return raw[0], rtt[0], str(d)


def test_raw_scene_full_resolution(scenes):
    raw, _, _ = scenes
    s = ai4arctic.read_scene(raw, ("hh", "hv", "incidence_angle"), downsample=1)
    with xr.open_dataset(raw) as ds:
        np.testing.assert_array_equal(s.sar[..., 0], ds["nersc_sar_primary"].values)
        ids = ds["polygon_icechart"].values
        np.testing.assert_array_equal(s.chart_ids, np.where(np.isfinite(ids), ids, -1))
        truth = ds["sic_truth"].values
    assert s.sar.shape == (256, 256, 3) and s.sar.dtype == np.float32
    assert s.pixel_spacing_m == 40 and s.sar_units == "dB"
    np.testing.assert_array_equal(s.sic_truth, truth)
    # Incidence angle increases across the swath and stays in the EW range.
    inc = s.sar[..., 2]
    assert np.all(np.diff(inc[128]) > 0) and 15 < inc.min() < inc.max() < 50
    # Valid = finite SAR and a labelled polygon: land (NaN ids) is never valid.
    valid = s.valid_mask()
    assert not valid[s.chart_ids < 0].any()
    assert np.isfinite(s.chart_sic()[valid]).all()


def test_downsampled_ids_are_chart_ids_never_averages(scenes):
    raw, _, _ = scenes
    full = ai4arctic.read_scene(raw, ("hh",), downsample=1)
    half = ai4arctic.read_scene(raw, ("hh",), downsample=2)
    assert half.chart_ids.shape == (128, 128) and half.pixel_spacing_m == 80
    assert set(np.unique(half.chart_ids)) <= set(np.unique(full.chart_ids))
    for i, j in [(0, 0), (40, 77), (127, 127), (64, 3)]:
        assert half.chart_ids[i, j] in full.chart_ids[2 * i:2 * i + 2, 2 * j:2 * j + 2]
    # SAR in linear power: the 2x2 mean of 10^(dB/10), back to dB.
    block = full.sar[20:22, 30:32, 0]
    if np.isfinite(block).all():
        expected = 10 * np.log10(np.mean(10 ** (block / 10)))
        assert half.sar[10, 15, 0] == pytest.approx(expected, abs=1e-4)


def test_ready_to_train_plus_raw_matches_raw(scenes):
    raw, rtt, d = scenes
    from_raw = ai4arctic.read_scene(raw, ("hh", "hv"), downsample=2)
    s = ai4arctic.read_scene(rtt, ("hh", "hv"), downsample=2, raw_glob=os.path.join(d, "S1*.nc"))
    assert s.scene_id == from_raw.scene_id
    assert s.sar_units == "standard_scaled" and s.pixel_spacing_m == 80
    np.testing.assert_array_equal(s.chart_ids, from_raw.chart_ids)
    np.testing.assert_array_equal(s.table.ids, from_raw.table.ids)
    # Ready-to-train SAR is the raw 2x2 power mean, standard-scaled (HH -14.5 +- 5.7 dB).
    ok = np.isfinite(from_raw.sar[..., 0]) & np.isfinite(s.sar[..., 0])
    np.testing.assert_allclose(s.sar[..., 0][ok], (from_raw.sar[..., 0][ok] + 14.5) / 5.7, atol=1e-3)


def test_ready_to_train_alone_is_a_scene_without_polygon_chart(scenes):
    raw, rtt, d = scenes
    s = ai4arctic.read_scene(rtt, ("hh", "hv", "incidence_angle"), downsample=2)
    assert not s.has_chart and s.chart_ids is None and np.isnan(s.chart_sic()).all()
    with xr.open_dataset(rtt) as ds:
        sic, hh, hv = ds["SIC"].values, ds["nersc_sar_primary"].values, ds["nersc_sar_secondary"].values
        inc = ds["sar_incidenceangle"].values
    np.testing.assert_array_equal(s.class_charts["SIC"], sic)
    # Zero-filled no data (every SAR variable exactly 0) is NaN in every channel; nothing else is.
    nodata = (hh == 0) & (hv == 0)
    assert nodata.any() and np.isnan(s.sar[nodata]).all() and np.isfinite(s.sar[~nodata]).all()
    # The 80 m incidence angle is the file's own variable, not the raw GCPs'.
    np.testing.assert_array_equal(s.sar[..., 2][~nodata], inc[~nodata])
    with pytest.raises(InputError, match="no ice chart"):
        next(iter_patches(s, 32, 32))
    with pytest.raises(InputError, match="no raw file matching"):
        ai4arctic.read_scene(rtt, downsample=2, raw_glob=os.path.join(d, "nothing*.nc"))


def test_raw_scene_without_a_chart_reads_sar_only(scenes, tmp_path):
    raw, _, _ = scenes
    bare = _copy_with(raw, str(tmp_path / os.path.basename(raw)),
                      lambda ds: ds.drop_vars(["polygon_icechart"]).drop_vars("polygon_codes"))
    s = ai4arctic.read_scene(bare, ("hh", "hv"), downsample=2)
    full = ai4arctic.read_scene(raw, ("hh", "hv"), downsample=2)
    assert not s.has_chart and full.has_chart
    np.testing.assert_array_equal(s.sar, full.sar)


def test_land_of_distance_map_leaves_the_chart(scenes, tmp_path):
    raw, _, _ = scenes
    # Mark a sea band as land (class 0): it must leave the chart unless --land_mask=none.
    def edit(ds):
        dist = ds["distance_map"].values.copy()
        dist[100:120, :] = 0
        return ds.assign(distance_map=(ds["distance_map"].dims, dist))
    path = _copy_with(raw, str(tmp_path / os.path.basename(raw)), edit)
    masked = ai4arctic.read_scene(path, ("hh",), downsample=1)
    kept = ai4arctic.read_scene(path, ("hh",), downsample=1, land_mask="none")
    band = (slice(100, 120), slice(None))
    assert (masked.chart_ids[band] == -1).all() and (kept.chart_ids[band] >= 0).any()
    outside = np.ones(masked.shape, bool)   # elsewhere land is where the chart has no polygon anyway
    outside[100:120] = False
    np.testing.assert_array_equal(masked.chart_ids[outside], kept.chart_ids[outside])
    with pytest.raises(InputError, match="--land_mask"):
        ai4arctic.read_scene(path, ("hh",), downsample=2, land_mask="coast")


def _copy_with(src, dst, edit):
    with xr.open_dataset(src) as ds:
        ds = edit(ds.load())
        ds.to_netcdf(dst)
    return dst


@pytest.mark.parametrize("edit,message", [
    (lambda ds: ds.drop_vars("nersc_sar_secondary"), "missing required variable nersc_sar_secondary"),
    (lambda ds: ds.drop_vars("polygon_icechart"), "has polygon_codes but no polygon_icechart"),
    (lambda ds: ds.assign_coords(polygon_codes=("polygon_codes", np.array(
        ["poly_id;CT;POLY_TYPE"] + ["x;y;I"] * (ds.sizes["polygon_codes"] - 1), dtype=object))),
     "poly_id 'x' is not an integer"),
    (lambda ds: ds.assign(nersc_sar_primary=ds["nersc_sar_primary"] * np.nan,
                          nersc_sar_secondary=ds["nersc_sar_secondary"] * np.nan), "all NaN"),
])
def test_bad_scenes_give_one_line_naming_the_file(scenes, tmp_path, edit, message):
    raw, _, _ = scenes
    bad = _copy_with(raw, str(tmp_path / os.path.basename(raw)), edit)
    with pytest.raises(InputError) as err:
        ai4arctic.read_scene(bad, ("hh", "hv"), downsample=2)
    assert err.value.path == bad
    assert message in err.value.what and "\n" not in str(err.value)


def test_not_a_netcdf_and_truncated_files(scenes, tmp_path):
    raw, _, _ = scenes
    junk = tmp_path / "S1A_20200101T000000_junk_icechart_dmi.nc"
    junk.write_text("not a netCDF file")
    with pytest.raises(InputError, match="cannot be read as netCDF"):
        ai4arctic.read_scene(str(junk))
    cut = tmp_path / os.path.basename(raw)
    data = open(raw, "rb").read()
    cut.write_bytes(data[: len(data) // 3])
    with pytest.raises(InputError):
        ai4arctic.read_scene(str(cut))


def test_raster_id_missing_from_table_is_unlabelled_not_fatal(scenes, tmp_path, caplog):
    raw, _, _ = scenes
    dst = str(tmp_path / os.path.basename(raw))
    _copy_with(raw, dst, lambda ds: ds)
    with netCDF4.Dataset(dst, "a") as nc:
        v = nc["polygon_icechart"]
        a = v[:]
        a[5:9, 5:9] = 123456
        v[:] = a
    s = ai4arctic.read_scene(dst)
    good = ai4arctic.read_scene(raw)
    assert (s.chart_ids[5:9, 5:9] == -1).all() and 123456 not in s.chart_ids
    outside = np.ones(s.shape, bool)
    outside[5:9, 5:9] = False
    np.testing.assert_array_equal(s.chart_ids[outside], good.chart_ids[outside])
    assert any("123456" in r.getMessage() and dst in r.getMessage() for r in caplog.records)


def test_scene_smaller_than_a_patch(scenes):
    raw, _, _ = scenes
    s = ai4arctic.read_scene(raw, downsample=2)
    with pytest.raises(InputError, match="smaller than one 256x256 patch"):
        list(iter_patches(s, 256, 256))


def test_patches_have_patch_local_ids_and_tables(scenes):
    raw, _, _ = scenes
    s = ai4arctic.read_scene(raw, downsample=2)
    stats = {}
    patches = list(iter_patches(s, 64, 32, stats))
    assert stats["kept"] == len(patches) > 0 and stats["kept"] + stats["dropped_unlabelled"] == 9
    usable = s.valid_mask()
    for p in patches:
        r, c = p.offset
        k = len(p.polygon_sic)
        assert set(np.unique(p.polygon_ids)) <= set(range(-1, k))
        np.testing.assert_array_equal(p.polygon_ids >= 0, usable[r:r + 64, c:c + 64])
        # Local id -> the chart's poly_id -> the chart SIC, and the pixel counts add up.
        gid = np.where(p.polygon_ids >= 0, p.polygon_global_id[np.maximum(p.polygon_ids, 0)], -1)
        np.testing.assert_array_equal(gid[p.polygon_ids >= 0], s.chart_ids[r:r + 64, c:c + 64][p.polygon_ids >= 0])
        np.testing.assert_allclose(p.polygon_sic, s.table.lookup(p.polygon_global_id))
        assert p.polygon_pixel_count.tolist() == [int((p.polygon_ids == i).sum()) for i in range(k)]


@pytest.mark.parametrize("downsample", [1, 2, 4])
def test_single_pixel_id_missing_from_the_table_is_reported_at_any_downsampling(scenes, tmp_path, downsample,
                                                                                 caplog):
    """A one-pixel polygon is outvoted by the 2x2/4x4 majority vote; it must still be checked (and warned of)."""
    raw, _, _ = scenes
    with xr.open_dataset(raw) as ds:
        ds = ds.load()
    chart = ds["polygon_icechart"].values.copy()
    r, c = np.argwhere(np.isfinite(chart))[len(chart) // 2]
    chart[r, c] = 777
    path = str(tmp_path / os.path.basename(raw))
    ds.assign(polygon_icechart=(ds["polygon_icechart"].dims, chart)).to_netcdf(path)
    scene = ai4arctic.read_scene(path, ("hh", "hv"), downsample=downsample)
    assert 777 not in scene.chart_ids
    assert any("id(s) [777] that polygon_codes lacks" in r.getMessage() and path in r.getMessage()
               for r in caplog.records)
    # the same file with the pixel given back to its polygon reads
    chart[r, c] = ds["polygon_icechart"].values[r, c]
    ok = str(tmp_path / ("ok_" + os.path.basename(raw)))
    ds.assign(polygon_icechart=(ds["polygon_icechart"].dims, chart)).to_netcdf(ok)
    assert ai4arctic.read_scene(ok, ("hh", "hv"), downsample=downsample).chart_ids.shape[0] == 256 // downsample
