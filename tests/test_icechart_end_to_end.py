"""Ice-chart tasks end to end: converted sample scenes (schema 2) -> run_training -> the evaluate,
predict and export entry points on the trained model folder."""

import glob
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
import xarray as xr

from tfseaice.data import ai4arctic
from tfseaice.serving.loading import load_trained
from tfseaice.serving.scene_inference import predict_scene_charts
from tfseaice.training.config import TrainConfig
from tfseaice.train_lib import run_training

from sic_fixtures import convert_tiny

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


def run_cli(*args):
    res = subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, env=ENV, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    return res


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("icechart")
    data_dir, info = convert_tiny(root)
    assert sum(info["polygon_classes"]["SOD"].values()) > 0   # the converter counted dominant classes
    models = {}
    for task in ("icechart_regional", "icechart_pixel"):
        cfg = TrainConfig(task=task, data_dir=data_dir, model_dir=str(root / task), epochs=1, steps_per_epoch=3,
                          batch_size=4, learning_rate=3e-3, seed=1, image_every=1, precision="fp32",
                          extra={"filters": [4, 8, 8, 8], "augment": True})
        run_training(cfg)
        models[task] = str(root / task)
    return root, models


def test_both_tasks_train_on_converted_records_and_log_every_chart(trained):
    _, models = trained
    for task, model_dir in models.items():
        with open(os.path.join(model_dir, "history.csv")) as f:
            header = f.readline().strip().split(",")
        for key in ("loss", "sic_loss", "sod_loss", "floe_loss", "val_loss", "val_sod_accuracy"):
            assert key in header, (task, header)
        assert glob.glob(os.path.join(model_dir, "logs", "images", "*"))   # TensorBoard panels


def test_evaluate_predict_export_on_an_icechart_model_folder(trained):
    root, models = trained
    model_dir = models["icechart_regional"]
    scene = sorted(glob.glob(str(root / "scenes" / "*.nc")))[0]
    metrics = root / "eval" / "metrics.json"
    run_cli("tfseaice.evaluate", "--task=sic", f"--model_dir={model_dir}", f"--scenes_glob={scene}",
            "--downsample=2", "--tile=64", "--overlap=16", f"--output={metrics}")
    result = json.load(open(metrics))
    for key in ("truth_sod_f1", "truth_floe_f1", "truth_sic_from_sod_r2", "sic_sod_gap_rmse"):
        assert result[key] is not None, key
    assert 0 <= result["truth_sod_f1"] <= 1 and {"sod_f1", "floe_f1", "score"} <= set(result["autoice"])
    assert os.path.exists(root / "eval" / "metrics_confusion_truth_SOD.png")

    out = root / "pred" / "OUT.nc"
    run_cli("tfseaice.predict", f"--model_dir={model_dir}", f"--scene={scene}", "--downsample=2",
            "--tile=64", "--overlap=16", "--precision=fp32", f"--out={out}")
    model, _ = load_trained(model_dir)   # fp32: "auto" would be bf16 on a CPU with AMX
    sc = ai4arctic.read_scene(scene, ("hh", "hv"), 2)
    heads = predict_scene_charts(model, sc.sar, tile=64, overlap=16)
    with xr.open_dataset(out, mask_and_scale=False) as ds:
        np.testing.assert_array_equal(ds["sod"].values, heads["sod"])
        np.testing.assert_array_equal(ds["floe"].values, heads["floe"])
        assert ds["sod"].attrs["flag_meanings"].split()[0] == "open_water"
        assert ds.attrs["inference_precision"] == "fp32"

    export_dir = root / "sm" / "1"
    run_cli("tfseaice.export", f"--model_dir={model_dir}", f"--export_dir={export_dir}")
    served = tf.saved_model.load(str(export_dir)).signatures["serving_default"]
    tile = np.nan_to_num(sc.sar[:64, :64], nan=-20.0)[None].astype(np.float32)
    outputs = served(sar=tf.constant(tile))
    expected = model(tile, training=False)
    np.testing.assert_array_equal(outputs["sod"].numpy(), np.argmax(expected["sod"], -1))
    np.testing.assert_array_equal(outputs["floe"].numpy(), np.argmax(expected["floe"], -1))
