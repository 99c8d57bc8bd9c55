"""Whole-scene inference precision: a bf16 twin agrees with fp32, the precision used (and whether
tiles were flip-averaged) is recorded in the products and metrics, and an unknown precision is
refused naming the flag."""

import json
import os
import subprocess
import sys

import keras
import netCDF4
import numpy as np
import pytest
import xarray as xr

from tfseaice import precision
from tfseaice.errors import InputError
from tfseaice.evaluation.sic import evaluate_model_dir
from tfseaice.models.unet import build_sic_unet
from tfseaice.serving.autoice_submission import write_upload_package
from tfseaice.serving.loading import load_sic_model, resolve_precision
from tfseaice.serving.scene_inference import predict_scene
from tfseaice.serving.sic_export import export_sic
from tfseaice.serving.sic_scene import predict_scene_file
from tfseaice.simulate.scenes import make_scene, raw_file_name
from tfseaice.simulate.writers import write_scene

NORM = dict(norm_mean=[-14.5, -24.7], norm_std=[5.7, 4.8])


def tiny_unet():
    keras.utils.set_random_seed(4)
    return build_sic_unet(2, filters=(4, 8, 8, 8), **NORM)


def structured_sar(h=150, w=170, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w]
    sar = rng.normal([-14.5, -24.7], [5.7, 4.8], size=(h, w, 2)).astype(np.float32)
    sar[..., 0] += 8 * np.sin(yy / 17.0) * np.cos(xx / 11.0)
    sar[10:20, 30:60] = np.nan
    sar[70, 90, 1] = np.nan
    return sar


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A tiny trained-looking sic_regional model folder (weights as initialised)."""
    from tfseaice.tasks import get_task
    from tfseaice.training.config import TrainConfig
    from tfseaice.training.model_dir import save_weights_atomic, write_task_file

    root = tmp_path_factory.mktemp("model")
    info = {"kind": "sic", "channels": ["hh", "hv"], "num_channels": 2, "downsample": 2,
            "normalization": {"mean": [-14.5, -24.7], "std": [5.7, 4.8]}}
    cfg = TrainConfig(task="sic_regional", data_dir=str(root), model_dir=str(root / "m"),
                      extra={"filters": [4, 8, 8, 8]})
    keras.utils.set_random_seed(2)
    model = get_task("sic_regional").build_model(cfg, info)
    os.makedirs(root / "m" / "checkpoints")
    save_weights_atomic(model, str(root / "m" / "checkpoints" / "best.weights.h5"))
    write_task_file(cfg, info, "complete")
    return str(root / "m")


@pytest.fixture(scope="module")
def scene_path(tmp_path_factory):
    ds = make_scene(seed=6, size=128)
    path = tmp_path_factory.mktemp("scenes") / raw_file_name(ds)
    write_scene(ds, path)
    return str(path)


def test_bf16_twin_agrees_with_fp32_and_keeps_float32_output_and_nan():
    fp32 = tiny_unet()
    bf16 = precision.twin(fp32, tiny_unet, "bf16")
    assert precision.twin(fp32, tiny_unet, "fp32") is fp32
    assert bf16.dtype_policy.compute_dtype == "bfloat16" and fp32.dtype_policy.compute_dtype == "float32"
    assert (precision.model_precision(fp32), precision.model_precision(bf16)) == ("fp32", "bf16")
    for a, b in zip(fp32.get_weights(), bf16.get_weights()):
        np.testing.assert_array_equal(a, b)
    sar = structured_sar()
    a = predict_scene(fp32, sar, tile=64, overlap=16, batch_size=3)
    b = predict_scene(bf16, sar, tile=64, overlap=16, batch_size=3)
    assert a.dtype == b.dtype == np.float32
    np.testing.assert_array_equal(np.isnan(b), ~np.isfinite(sar).all(-1))
    np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
    d = np.abs(a - b)[np.isfinite(a)]
    assert np.nanstd(a) > 1e-3                       # the comparison is not vacuous
    assert 0 < d.max() < 0.03 and d.mean() < 0.005   # bf16 really ran, and agrees (8-bit mantissa)


def test_model_dir_in_bf16_is_recorded_in_products_metrics_and_upload(model_dir, scene_path, tmp_path):
    model, info = load_sic_model(model_dir, precision="bf16")
    ref, ref_info = load_sic_model(model_dir, precision="fp32")
    assert (info["precision"], ref_info["precision"]) == ("bf16", "fp32")
    assert precision.model_precision(model) == "bf16" and precision.model_precision(ref) == "fp32"
    for a, b in zip(model.get_weights(), ref.get_weights()):
        np.testing.assert_array_equal(a, b)
    for m, i, name in ((model, info, "bf16"), (ref, ref_info, "fp32")):
        out = str(tmp_path / f"{name}.nc")
        predict_scene_file(m, i, scene_path, out, tile=32, overlap=8)
        with xr.open_dataset(out) as ds:
            assert ds.attrs["inference_precision"] == name and name in ds.attrs["inference"]
            assert ds["sic"].dtype == np.float32
    with xr.open_dataset(tmp_path / "bf16.nc") as b, xr.open_dataset(tmp_path / "fp32.nc") as a:
        assert np.nanmax(np.abs(a["sic"].values - b["sic"].values)) < 0.03
    evaluate_model_dir(model_dir, [scene_path], str(tmp_path / "metrics.json"), tile=32, overlap=8,
                       precision="bf16")
    with open(tmp_path / "metrics.json") as f:
        assert json.load(f)["settings"]["precision"] == "bf16"
    write_upload_package(model, info, [scene_path], str(tmp_path / "upload.nc"), tile=32, overlap=8)
    with netCDF4.Dataset(tmp_path / "upload.nc") as nc:
        assert nc.getncattr("inference_precision") == "bf16"


def test_auto_follows_the_cpu_and_a_saved_model_is_fp32(model_dir, tmp_path):
    _, info = load_sic_model(model_dir)   # default: auto
    assert info["precision"] == precision.resolve("auto")
    exported = str(tmp_path / "export")
    export_sic(tiny_unet(), exported, {"channels": ["hh", "hv"], "downsample": 2})
    _, sm_info = load_sic_model(saved_model=exported, precision="auto")
    assert sm_info["precision"] == "fp32"
    with pytest.raises(InputError) as exc:
        load_sic_model(saved_model=exported, precision="bf16")
    assert exc.value.path == "--precision" and "SavedModel" in exc.value.what


def test_flip_averaging_is_recorded_in_products_metrics_and_upload(model_dir, scene_path, tmp_path):
    model, info = load_sic_model(model_dir, precision="fp32", flip_tta=True)
    plain, plain_info = load_sic_model(model_dir, precision="fp32")
    assert (info["flip_tta"], plain_info["flip_tta"]) == (True, False)
    for m, i, name in ((model, info, "flips"), (plain, plain_info, "plain")):
        predict_scene_file(m, i, scene_path, str(tmp_path / f"{name}.nc"), tile=32, overlap=8)
    with xr.open_dataset(tmp_path / "flips.nc") as a, xr.open_dataset(tmp_path / "plain.nc") as b:
        assert (a.attrs["inference_flips"], b.attrs["inference_flips"]) == (4, 1)
        assert "4 flips" in a.attrs["inference"] and "flips" not in b.attrs["inference"]
        d = np.abs(a["sic"].values - b["sic"].values)
        assert np.nanmax(d) > 1e-4   # the averaged model really ran
    evaluate_model_dir(model_dir, [scene_path], str(tmp_path / "metrics.json"), tile=32, overlap=8,
                       precision="fp32", flip_tta=True)
    with open(tmp_path / "metrics.json") as f:
        assert json.load(f)["settings"]["flip_tta"] is True
    write_upload_package(model, info, [scene_path], str(tmp_path / "upload.nc"), tile=32, overlap=8)
    with netCDF4.Dataset(tmp_path / "upload.nc") as nc:
        assert nc.getncattr("inference_flips") == 4
    exported = str(tmp_path / "export")
    export_sic(tiny_unet(), exported, {"channels": ["hh", "hv"], "downsample": 2})
    with pytest.raises(InputError) as exc:
        load_sic_model(saved_model=exported, flip_tta=True)
    assert exc.value.path == "--flip_tta" and "--model_dir" in exc.value.what


def test_unknown_precision_is_refused_naming_the_flag(model_dir):
    for call in (lambda: resolve_precision("fp8"), lambda: load_sic_model(model_dir, precision="fp8")):
        with pytest.raises(InputError) as exc:
            call()
        assert exc.value.path == "--precision" and "fp8" in exc.value.what


def test_cli_refuses_unknown_precision_in_one_line(tmp_path):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    res = subprocess.run([sys.executable, "-m", "tfseaice.predict", "--model_dir=m", "--scene=s.nc",
                          f"--out={tmp_path / 'o.nc'}", "--precision=fp16"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 1
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("ERROR: --precision=fp16:") and "bf16" in last and "Traceback" not in res.stderr
