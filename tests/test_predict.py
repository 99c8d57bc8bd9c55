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
from tfseaice.data import ai4arctic, samples
from tfseaice.errors import InputError
from tfseaice.serving.scene_inference import predict_scene
from tfseaice.models.unet import build_sic_unet

INFO = {"channels": ["hh", "hv"], "downsample": 2, "source": "test model"}


def png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG file"
    return struct.unpack(">II", head[16:24])  # width, height


@pytest.fixture(scope="module")
def scene_path(tmp_path_factory):
    ds = samples.make_scene(seed=5, size=136)   # 68 x 68 at 80 m: not a multiple of 16
    path = tmp_path_factory.mktemp("scenes") / samples.raw_file_name(ds)
    samples.write_scene(ds, path)
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
