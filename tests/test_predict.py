"""Whole-scene products: CF-1.8 netCDF on the scene grid and a Fig. 2-like PNG."""

import os
import struct
import subprocess
import sys

import keras
import netCDF4
import numpy as np
import pytest
import xarray as xr

from tfseaice.serving.sic_scene import predict_scene_file
from tfseaice.data import ai4arctic
from tfseaice.errors import InputError
from tfseaice.serving.scene_inference import predict_scene
from tfseaice.models.unet import build_sic_unet
from tfseaice.simulate.scenes import make_scene, raw_file_name
from tfseaice.simulate.writers import write_scene

INFO = {"channels": ["hh", "hv"], "downsample": 2, "source": "test model"}


def png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG file"
    return struct.unpack(">II", head[16:24])  # width, height


@pytest.fixture(scope="module")
def scene_path(tmp_path_factory):
    ds = make_scene(seed=5, size=136)   # 68 x 68 at 80 m: not a multiple of 16
    path = tmp_path_factory.mktemp("scenes") / raw_file_name(ds)
    write_scene(ds, path)
    return str(path)


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(0)
    return build_sic_unet(2, filters=(4, 8, 8, 8), norm_mean=[-14.5, -24.7], norm_std=[5.7, 4.8])


def test_netcdf_is_cf_with_all_products(scene_path, model, tmp_path):
    out = str(tmp_path / "pred" / "OUT.nc")
    predict_scene_file(model, INFO, scene_path, out, tile=32, overlap=8, history="pytest")
    scene = ai4arctic.read_scene(scene_path, ("hh", "hv"), 2)
    with xr.open_dataset(out) as ds:
        assert ds.attrs["Conventions"] == "CF-1.8"
        for key in ("title", "source", "history", "references"):
            assert ds.attrs[key]
        assert ds.attrs["source"] == "test model" and "pytest" in ds.attrs["history"]
        assert dict(ds.sizes) == {"sar_lines": 68, "sar_samples": 68}
        assert ds["sar_lines"].attrs["pixel_spacing"] == 80.0
        for name in ("sic", "ice_water", "polygon_sic", "chart_sic", "polygon_id", "sic_truth"):
            assert ds[name].dims == ("sar_lines", "sar_samples"), name
        sic = ds["sic"]
        assert sic.dtype == np.float32 and sic.attrs["units"] == "1"
        assert sic.attrs["standard_name"] == "sea_ice_area_fraction" and sic.attrs["long_name"]
        assert list(sic.attrs["valid_range"]) == [0.0, 1.0] and np.isnan(sic.encoding["_FillValue"])
        expected = predict_scene(model, scene.sar, tile=32, overlap=8)
        np.testing.assert_allclose(sic.values, expected, atol=1e-6)
        np.testing.assert_array_equal(np.isnan(sic.values), ~np.isfinite(scene.sar).all(-1))
        assert np.isnan(sic.values).any()  # sample scenes have land / no-data stripes
        np.testing.assert_array_equal(ds["chart_sic"].values, scene.chart_sic())
        # polygon_sic: each polygon's mean of sic.
        pid = int(scene.chart_ids[scene.valid_mask()][0])
        inside = (scene.chart_ids == pid)
        np.testing.assert_allclose(ds["polygon_sic"].values[inside], np.nanmean(expected[inside]), rtol=1e-5)
        ids = ds["polygon_id"].values  # decoded: the -1 fill becomes NaN
        np.testing.assert_array_equal(np.where(np.isnan(ids), -1, ids), np.where(scene.chart_ids >= 0, scene.chart_ids, -1))
        assert ds["lat"].attrs["units"] == "degrees_north" and ds["lon"].attrs["units"] == "degrees_east"
        assert np.isfinite(ds["lat"].values).all() and (np.abs(ds["lat"].values) <= 90).all()
    # Raw file: CF fill values and flags as written (not as decoded).
    with netCDF4.Dataset(out) as nc:
        iw = nc["ice_water"]
        assert iw.dtype == np.uint8 and iw._FillValue == 255
        assert list(iw.flag_values) == [0, 1] and iw.flag_meanings == "water ice"
        assert "lat" in nc["sic"].coordinates and "lon" in nc["sic"].coordinates
        iwv = np.ma.filled(iw[:], 255)
        sicv = np.ma.filled(nc["sic"][:], np.nan)
        assert ((iwv == 255) == np.isnan(sicv)).all()
        np.testing.assert_array_equal(iwv[~np.isnan(sicv)], (sicv[~np.isnan(sicv)] >= 0.5).astype(np.uint8))
    assert png_size(str(tmp_path / "pred" / "OUT.png")) == (1500, 900)
    assert os.path.getsize(tmp_path / "pred" / "OUT.png") > 20000  # a real picture, not an empty canvas
    assert not [p for p in os.listdir(tmp_path / "pred") if p.startswith(".")]  # no temp files left


def test_refuses_existing_outputs_and_channel_mismatch(scene_path, model, tmp_path):
    out = tmp_path / "OUT.nc"
    (tmp_path / "OUT.png").write_bytes(b"keep me")
    with pytest.raises(InputError, match="--overwrite"):
        predict_scene_file(model, INFO, scene_path, str(out), tile=32, overlap=8)
    assert (tmp_path / "OUT.png").read_bytes() == b"keep me" and not out.exists()
    with pytest.raises(InputError, match="2 channel"):
        predict_scene_file(model, INFO, scene_path, str(tmp_path / "x.nc"), channels=["hh"])


def test_predict_cli_with_saved_model(scene_path, model, tmp_path):
    from tfseaice.serving.sic_export import export_sic

    exported = str(tmp_path / "export")
    export_sic(model, exported, {"channels": ["hh", "hv"], "downsample": 2})
    out = tmp_path / "cli" / "OUT.nc"
    cmd = [sys.executable, "-m", "tfseaice.predict", f"--saved_model={exported}", f"--scene={scene_path}",
           f"--out={out}", "--tile=32", "--overlap=8"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    scene = ai4arctic.read_scene(scene_path, ("hh", "hv"), 2)
    with xr.open_dataset(out) as ds:
        np.testing.assert_allclose(ds["sic"].values, predict_scene(model, scene.sar, tile=32, overlap=8),
                                   atol=1e-5)
        assert "SavedModel" in ds.attrs["source"] and "tfseaice.predict" in ds.attrs["history"]
        assert ds.attrs["inference_precision"] == "fp32"   # a SavedModel is float32 (--precision=auto)
    assert png_size(str(tmp_path / "cli" / "OUT.png")) == (1500, 900)


# ---------------------------------------------------------- scenes without a chart, GeoTIFF
@pytest.fixture(scope="module")
def chartless(tmp_path_factory, scene_path):
    """The scene without its chart (raw layout), and its ready-to-train twin alone."""
    from tfseaice.simulate.ready_to_train import make_ready_to_train
    from tfseaice.simulate.scenes import ready_file_name

    d = tmp_path_factory.mktemp("chartless")
    with xr.open_dataset(scene_path) as ds:
        ds = ds.load()
    raw = str(d / os.path.basename(scene_path))
    ds.drop_vars(["polygon_icechart", "polygon_codes"]).to_netcdf(raw)
    prep = str(d / ready_file_name(ds))
    write_scene(make_ready_to_train(ds), prep)
    return raw, prep


def test_raw_scene_without_chart_gets_sic_and_ice_water_only(chartless, model, tmp_path):
    raw, _ = chartless
    out = str(tmp_path / "OUT.nc")
    predict_scene_file(model, INFO, raw, out, tile=32, overlap=8)
    with xr.open_dataset(out) as ds:
        assert set(ds.data_vars) == {"sic", "ice_water", "sic_truth"}
        assert np.isfinite(ds["lat"].values).all()                # the raw file has its GCPs
        scene = ai4arctic.read_scene(raw, ("hh", "hv"), 2)
        np.testing.assert_allclose(ds["sic"].values, predict_scene(model, scene.sar, tile=32, overlap=8), atol=1e-6)
    assert png_size(str(tmp_path / "OUT.png")) == (1000, 900)     # HH, HV / SIC, ice-water: no chart column


def test_ready_to_train_file_alone_is_mapped_with_zero_filled_pixels_missing(chartless, model, tmp_path):
    _, prep = chartless
    out = str(tmp_path / "OUT.nc")
    predict_scene_file(model, INFO, prep, out, tile=32, overlap=8)
    with xr.open_dataset(prep) as src:
        nodata = (src["nersc_sar_primary"].values == 0) & (src["nersc_sar_secondary"].values == 0)
    assert nodata.any() and not nodata.all()
    with xr.open_dataset(out) as ds:
        assert set(ds.data_vars) == {"sic", "ice_water", "sic_truth"} and "lat" not in ds.coords
        sic = ds["sic"].values
        assert np.isnan(sic[nodata]).all() and np.isfinite(sic[~nodata]).all()
    with netCDF4.Dataset(out) as nc:
        iw = np.ma.filled(nc["ice_water"][:], 255)
        assert (iw[nodata] == 255).all() and (iw[~nodata] <= 1).all()


def test_geotiffs_are_placed_by_the_scenes_ground_control_points(scene_path, model, tmp_path):
    import rasterio

    out = str(tmp_path / "OUT.nc")
    predict_scene_file(model, INFO, scene_path, out, tile=32, overlap=8, formats=("netcdf", "geotiff"))
    with xr.open_dataset(scene_path) as raw:
        lines, samples = raw["sar_grid_line"].values, raw["sar_grid_sample"].values
        lat, lon = raw["sar_grid_latitude"].values, raw["sar_grid_longitude"].values
    with xr.open_dataset(out) as ds:
        products = {name: ds[name].values for name in ds.data_vars}
        grid_lat, grid_lon = ds["lat"].values, ds["lon"].values
    assert set(products) == {"sic", "ice_water", "polygon_sic", "chart_sic", "polygon_id", "sic_truth"}
    for name, values in products.items():
        with rasterio.open(str(tmp_path / f"OUT_{name}.tif")) as tif:
            band = tif.read(1)
            gcps, crs = tif.gcps
            assert crs.to_epsg() == 4326 and len(gcps) == len(lines) == 441
            if name == "sic":
                np.testing.assert_array_equal(np.isnan(band), np.isnan(values))
                np.testing.assert_allclose(band[np.isfinite(band)], values[np.isfinite(values)])
    # Each GCP: the raw file's lon/lat at its raw pixel, moved to the 80 m grid ((L + 0.5) / 2).
    for g, line, sample, y, x in zip(gcps, lines, samples, lat, lon):
        assert g.row == pytest.approx((line + 0.5) / 2) and g.col == pytest.approx((sample + 0.5) / 2)
        assert (g.y, g.x) == pytest.approx((y, x))
        i, j = int(np.clip(np.floor(g.row), 0, grid_lat.shape[0] - 1)), int(np.clip(np.floor(g.col), 0, grid_lat.shape[1] - 1))
        # ... and the netCDF's interpolated lat/lon of the pixel holding the point agree with it.
        assert abs(grid_lat[i, j] - y) < 0.02 and abs(grid_lon[i, j] - x) < 0.05
