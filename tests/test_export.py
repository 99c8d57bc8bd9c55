"""SavedModel export for TF Serving: signature, dtypes, round trip, NaN, refusals."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfseaice.errors import InputError
from tfseaice.serving.saved_model import describe_saved_model, serving_instructions
from tfseaice.serving.scene_inference import predict_scene
from tfseaice.serving.sic_export import export_sic
from tfseaice.models.unet import build_sic_unet

INFO = {"channels": ["hh", "hv"], "downsample": 2, "pixel_spacing_m": 80,
        "normalization": {"mean": [-14.5, -24.7], "std": [5.7, 4.8]}}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    keras.utils.set_random_seed(0)
    model = build_sic_unet(2, filters=(4, 8, 8, 8), norm_mean=[-14.5, -24.7], norm_std=[5.7, 4.8])
    # Non-trivial BatchNorm statistics, so that inference mode matters.
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.moving_mean.assign(np.full(layer.moving_mean.shape, 0.1, np.float32))
            layer.moving_variance.assign(np.full(layer.moving_variance.shape, 2.0, np.float32))
    path = str(tmp_path_factory.mktemp("export") / "sic")
    summary = export_sic(model, path, INFO)
    return model, path, summary


def _sar(shape, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal([-14.5, -24.7], [5.7, 4.8], size=(*shape, 2)).astype(np.float32)


def test_signature_names_and_dtypes(exported):
    _, path, summary = exported
    sig = tf.saved_model.load(path).signatures["serving_default"]
    args, kwargs = sig.structured_input_signature
    assert args == () and list(kwargs) == ["sar"]
    assert kwargs["sar"].dtype == tf.float32 and kwargs["sar"].shape.as_list() == [None, None, None, 2]
    outs = sig.structured_outputs
    assert set(outs) == {"sic", "ice_water"}
    assert outs["sic"].dtype == tf.float32 and outs["sic"].shape.rank == 3
    assert outs["ice_water"].dtype == tf.uint8 and outs["ice_water"].shape.rank == 3
    assert "inputs['sar']" in summary and "DT_FLOAT" in summary and "DT_UINT8" in summary
    assert "shape: (-1, -1, -1, 2)" in summary and summary == describe_saved_model(path)
    meta = json.load(open(os.path.join(path, "assets.extra", "tfseaice.json")))
    assert meta["channels"] == ["hh", "hv"] and meta["downsample"] == 2


def test_reloaded_predictions_equal_keras(exported):
    model, path, _ = exported
    sig = tf.saved_model.load(path).signatures["serving_default"]
    for shape in ((32, 48), (64, 16)):
        x = _sar((2, *shape))
        out = sig(sar=tf.constant(x))
        expected = model(x, training=False).numpy()[..., 0]
        np.testing.assert_allclose(out["sic"].numpy(), expected, atol=1e-5, rtol=0)
        np.testing.assert_array_equal(out["ice_water"].numpy(), (expected >= 0.5).astype(np.uint8))
    # Keras 3 reload path (TFSMLayer) and whole-scene tiled inference through it.
    layer = keras.layers.TFSMLayer(path, call_endpoint="serving_default")
    scene = _sar((70, 90), seed=2)
    expected = predict_scene(model, scene, tile=48, overlap=16)
    np.testing.assert_allclose(predict_scene(layer, scene, tile=48, overlap=16), expected, atol=1e-5)
    loaded = tf.saved_model.load(path)  # the tf.saved_model.load object works too
    np.testing.assert_allclose(predict_scene(loaded, scene, tile=48, overlap=16), expected, atol=1e-5)


def test_nan_input_masked_output(exported):
    model, path, _ = exported
    sig = tf.saved_model.load(path).signatures["serving_default"]
    x = _sar((1, 32, 32))
    x[0, 5:9, 7:12, :] = np.nan
    x[0, 20, 20, 1] = np.nan          # one channel only
    out = sig(sar=tf.constant(x))
    sic, iw = out["sic"].numpy()[0], out["ice_water"].numpy()[0]
    nodata = ~np.isfinite(x[0]).all(-1)
    assert np.isnan(sic[nodata]).all() and (iw[nodata] == 255).all()
    assert np.isfinite(sic[~nodata]).all() and set(np.unique(iw[~nodata])) <= {0, 1}
    assert ((sic[~nodata] >= 0) & (sic[~nodata] <= 1)).all()


def test_wrong_channel_count_size_and_dtype_fail(exported):
    _, path, _ = exported
    sig = tf.saved_model.load(path).signatures["serving_default"]
    with pytest.raises(tf.errors.InvalidArgumentError, match="2 channels"):
        sig(sar=tf.zeros([1, 32, 32, 3]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="multiples of 16"):
        sig(sar=tf.zeros([1, 30, 32, 2]))
    with pytest.raises((TypeError, ValueError, tf.errors.InvalidArgumentError)):
        sig(sar=tf.zeros([1, 32, 32, 2], tf.float64))


def test_refuses_existing_and_overwrites(exported, tmp_path):
    model, path, _ = exported
    with pytest.raises(InputError, match="--overwrite"):
        export_sic(model, path, INFO)
    target = tmp_path / "again"
    target.mkdir()
    (target / "stale.txt").write_text("x")
    export_sic(model, str(target), INFO, overwrite=True)
    assert (target / "saved_model.pb").exists() and not (target / "stale.txt").exists()
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".")]  # no temp dirs left


def test_serving_instructions_name_the_mount_and_signature(exported):
    _, path, _ = exported
    text = serving_instructions(path, "sic", 2)
    assert "tensorflow/serving" in text and f"source={os.path.abspath(path)},target=/models/sic/1" in text
    assert '"signature_name": "serving_default"' in text and '"sar"' in text


def test_export_cli_from_model_dir(tmp_path):
    from tfseaice.training.config import TrainConfig
    from tfseaice.training.model_dir import save_weights_atomic, write_task_file
    from tfseaice.tasks import get_task

    cfg = TrainConfig(task="sic_regional", data_dir=str(tmp_path), model_dir=str(tmp_path / "m"),
                               extra={"filters": [4, 8, 8, 8]})
    info = {**INFO, "kind": "sic", "num_channels": 2}
    model = get_task("sic_regional").build_model(cfg, info)
    os.makedirs(tmp_path / "m" / "checkpoints")
    save_weights_atomic(model, str(tmp_path / "m" / "checkpoints" / "best.weights.h5"))
    write_task_file(cfg, info, "complete")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    cmd = [sys.executable, "-m", "tfseaice.export", f"--model_dir={tmp_path / 'm'}",
           f"--export_dir={tmp_path / 'exp'}"]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "signature_def['serving_default']" in res.stdout and "docker run" in res.stdout
    sig = tf.saved_model.load(str(tmp_path / "exp")).signatures["serving_default"]
    x = _sar((1, 32, 32))
    np.testing.assert_allclose(sig(sar=tf.constant(x))["sic"].numpy(),
                               model(x, training=False).numpy()[..., 0], atol=1e-5)
    again = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert again.returncode == 1 and "--overwrite" in again.stderr and "Traceback" not in again.stderr
