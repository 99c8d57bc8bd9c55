"""run_training end to end on tiny converted sample scenes: history, TensorBoard, checkpoints,
reload, refusals, reproducibility."""

import csv
import glob
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfseaice.serving.loading import load_trained
from tfseaice.training.config import TrainConfig
from tfseaice.train_lib import run_training
from tfseaice.data import pipeline
from tfseaice.errors import InputError

from sic_fixtures import convert_tiny

EPOCHS, STEPS, BATCH = 2, 3, 4


def tiny_config(data_dir, model_dir, **kw):
    args = dict(task="sic_regional", data_dir=data_dir, model_dir=str(model_dir), epochs=EPOCHS,
                steps_per_epoch=STEPS, batch_size=BATCH, learning_rate=3e-3, seed=1, image_every=1,
                precision="fp32",  # the same numbers on every CPU (auto would pick bf16 on AMX machines)
                extra={"filters": [4, 8, 8, 8], "augment": True})
    args.update(kw)
    return TrainConfig(**args)


def read_history(model_dir):
    with open(os.path.join(model_dir, "history.csv"), newline="") as f:
        return list(csv.DictReader(f))


class PredictEachEpoch(keras.callbacks.Callback):
    """The model's predictions on one fixed batch at the end of every epoch: {epoch (1-based): array}."""

    def __init__(self, sar):
        super().__init__()
        self.sar = sar
        self.by_epoch = {}

    def on_epoch_end(self, epoch, logs=None):
        self.by_epoch[epoch + 1] = self.model(self.sar, training=False).numpy()


def val_batch(cfg):
    return next(iter(pipeline.sic_dataset(cfg.data_dir, "val", 4, training=False)))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    data_dir, info = convert_tiny(root)
    cfg = tiny_config(data_dir, root / "model")
    predict = PredictEachEpoch(val_batch(cfg)["sar"])  # inference only: training is unchanged
    history = run_training(cfg, extra_callbacks=[predict])
    history.val_predictions = predict.by_epoch  # what the best/latest checkpoints must reproduce
    return cfg, history, info


def test_history_csv_has_one_row_per_epoch_with_train_and_validation_metrics(run):
    cfg, history, _ = run
    rows = read_history(cfg.model_dir)
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    for key in ("loss", "polygon_rmse", "polygon_r2", "val_loss", "val_polygon_rmse", "val_polygon_r2"):
        assert [float(r[key]) for r in rows] == pytest.approx(history.history[key], rel=1e-6), key
        assert all(np.isfinite(float(r[key])) for r in rows)
    meta = json.load(open(os.path.join(cfg.model_dir, "task.json")))
    assert meta["state"] == "complete" and meta["task"] == "sic_regional" and meta["epochs_done"] == EPOCHS


def _events(log_dir):
    """{(tag, plugin): {step: value}} from every event file under log_dir."""
    out = {}
    for path in glob.glob(os.path.join(log_dir, "**", "events.out.tfevents.*"), recursive=True):
        for event in tf.compat.v1.train.summary_iterator(path):
            for v in event.summary.value:
                plugin = v.metadata.plugin_data.plugin_name
                value = tf.make_ndarray(v.tensor) if v.HasField("tensor") else v.simple_value
                out.setdefault((os.path.relpath(os.path.dirname(path), log_dir), v.tag, plugin), {})[event.step] = value
    return out


def test_tensorboard_holds_train_and_validation_scalars_and_image_panels(run):
    cfg, history, info = run
    events = _events(os.path.join(cfg.model_dir, "logs"))
    for split, prefix in (("train", ""), ("validation", "val_")):
        for name in ("loss", "polygon_rmse"):
            series = events[(split, f"epoch_{name}", "scalars")]
            assert sorted(series) == [0, 1], (split, name)
            got = [float(series[s]) for s in (0, 1)]
            assert got == pytest.approx(history.history[prefix + name], rel=1e-6), (split, name)
    images = [(k, v) for k, v in events.items() if k[2] == "images"]
    assert images, f"no image summary in {sorted(events)}"
    (_, tag, _), steps = images[0]
    assert "hh|chart|predicted|truth" in tag and sorted(steps) == [1, 2]
    # An image summary tensor: [width, height, PNG bytes...] of panels 4 strips wide.
    width, height = (int(x) for x in steps[2][:2])
    assert height == info["patch_size"] and width > 4 * info["patch_size"]


def test_checkpoints_exist_and_reload_with_equal_predictions(run):
    cfg, history, _ = run
    ckpt = os.path.join(cfg.model_dir, "checkpoints")
    assert os.path.exists(os.path.join(ckpt, "latest.weights.h5"))
    assert os.path.exists(os.path.join(ckpt, "best.weights.h5"))
    assert not os.path.exists(os.path.join(ckpt, "backup")), "the resume backup outlived a finished run"
    assert not [f for f in os.listdir(ckpt) if f.startswith(".")], "temporary files left behind"
    best = json.load(open(os.path.join(ckpt, "best.json")))
    rmse = history.history["val_polygon_rmse"]
    assert best["metric"] == "val_polygon_rmse" and best["value"] == pytest.approx(min(rmse))
    assert best["epoch"] == 1 + int(np.argmin(rmse))

    batch = val_batch(cfg)
    expected = history.model(batch["sar"], training=False).numpy()
    np.testing.assert_array_equal(history.val_predictions[EPOCHS], expected)
    model, meta = load_trained(cfg.model_dir, "latest", expect_task="sic_regional")
    np.testing.assert_allclose(model(batch["sar"], training=False).numpy(), expected, rtol=1e-5, atol=1e-6)
    assert meta["config"]["seed"] == cfg.seed
    # `best` reproduces the predictions of its own epoch, which the checkpoints of the other epochs do not.
    best_model, _ = load_trained(cfg.model_dir, "best")
    got = best_model(batch["sar"], training=False).numpy()
    np.testing.assert_allclose(got, history.val_predictions[best["epoch"]], rtol=1e-5, atol=1e-6)
    for epoch, other in history.val_predictions.items():
        if epoch != best["epoch"]:
            assert np.abs(other - history.val_predictions[best["epoch"]]).max() > 1e-3, epoch


def test_model_dir_of_another_task_or_a_finished_run_is_refused(run, tmp_path):
    cfg, _, _ = run
    with pytest.raises(InputError, match="holds a 'sic_regional' model; this run trains 'sic_pixel'") as e:
        run_training(tiny_config(cfg.data_dir, cfg.model_dir, task="sic_pixel"))
    assert e.value.path == cfg.model_dir
    with pytest.raises(InputError, match="holds a finished training; pass --overwrite") as e:
        run_training(cfg)
    assert e.value.path == cfg.model_dir
    foreign = tmp_path / "notes"
    foreign.mkdir()
    (foreign / "README.txt").write_text("mine")
    with pytest.raises(InputError, match="not a tfseaice model folder"):
        run_training(tiny_config(cfg.data_dir, foreign))
    assert os.listdir(foreign) == ["README.txt"]


def test_global_batch_must_split_evenly_over_replicas(run, tmp_path):
    cfg, _, _ = run
    with pytest.raises(InputError, match="multiple of the 2 replicas") as e:
        run_training(tiny_config(cfg.data_dir, tmp_path / "m", strategy="mirrored",
                                          num_cpu_replicas=2, batch_size=3))
    assert e.value.path == "--batch_size"
    assert not (tmp_path / "m").exists()


def test_same_seed_gives_the_same_history_after_overwrite(run):
    """--overwrite retrains a finished folder from scratch; the same seed gives the same numbers."""
    cfg, _, _ = run
    first = read_history(cfg.model_dir)
    run_training(tiny_config(cfg.data_dir, cfg.model_dir, overwrite=True))
    again = read_history(cfg.model_dir)
    assert again == first  # every value, as written
    steps = [event.step for path in glob.glob(os.path.join(cfg.model_dir, "logs", "train", "events.*"))
             for event in tf.compat.v1.train.summary_iterator(path)
             for v in event.summary.value if v.tag == "epoch_loss"]
    assert sorted(steps) == [0, 1], "--overwrite kept the old run's logs"
