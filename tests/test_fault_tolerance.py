"""Fault tolerance: a SIGKILLed training resumes; weights are never half-written;
an interrupted or finished conversion is never taken for a new complete one."""

import csv
import dataclasses
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf

from data_prep.ai4arctic_to_tfrecord import convert
from tfseaice.training.callbacks import HistoryCSV, TrainingBackup
from tfseaice.training.config import TrainConfig
from tfseaice.train_lib import run_training
from tfseaice.training.model_dir import read_backup, restore_backup, save_weights_atomic
from tfseaice.data import dataset_info, pipeline
from tfseaice.errors import InputError

from sic_fixtures import write_scenes

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONVERT_ARGS = dict(channels=("hh", "hv"), patch_size=32, stride=32, downsample=2, val_fraction=0.34, seed=1,
                    num_shards=2)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("ft")
    write_scenes(str(root / "scenes"), 3, size=256, seed=3)
    convert(str(root / "scenes" / "*.nc"), str(root / "records"), **CONVERT_ARGS)
    return root


def _env():
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")


def _history(model_dir):
    path = os.path.join(model_dir, "history.csv")
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _backup_epoch(model_dir):
    path = os.path.join(model_dir, "checkpoints", "backup", "state.json")
    try:
        with open(path) as f:
            return json.load(f)["epoch"]
    except (OSError, ValueError):
        return 0


def _sigkill_when(proc, ready, timeout_s, what, poll_s=0.05, log=None):
    """SIGKILL `proc` as soon as `ready()` holds; fail if it ends first or `timeout_s` passes."""
    deadline = time.time() + timeout_s
    try:
        while not ready():
            if proc.poll() is not None:
                tail = ":\n" + log.read_text()[-3000:] if log is not None else ""
                pytest.fail(f"{what} ended before it could be killed{tail}")
            assert time.time() < deadline, f"{what}: not ready to be killed within {timeout_s} s"
            time.sleep(poll_s)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# The optimizers a model may hold, by attribute (pix2pix has one per network).
OPTIMIZERS = ("optimizer", "gen_optimizer", "disc_optimizer")


def _optimizers(model):
    found = {}
    for name in OPTIMIZERS:
        opt = getattr(model, name, None)
        if opt is not None and all(opt is not o for o in found.values()):
            found[name] = opt
    return found


def _state(model):
    """Every model variable and every optimizer variable (Adam step, moments), as numpy arrays."""
    return [keras.ops.convert_to_numpy(v) for v in model.weights] + [
        keras.ops.convert_to_numpy(v) for opt in _optimizers(model).values() for v in opt.variables]


def _assert_same_state(got, expected, what):
    assert len(got) == len(expected), what
    for i, (a, b) in enumerate(zip(got, expected)):
        np.testing.assert_array_equal(a, b, err_msg=f"{what}: variable {i}")


def _signature(arrays):
    return hashlib.sha1(b"".join(str(a.shape).encode() + np.ascontiguousarray(a).tobytes() for a in arrays)).hexdigest()


def _assert_holds_file(model, path):
    """Every variable of `model` and of its optimizers equals the weights file `path`, read with h5py.

    Independent of Keras' loader: each optimizer's `NAME/vars/i` must equal
    `model.NAME.variables[i]`; each layer group `.../vars/i` must equal the
    variables of one layer (matched as a multiset, the file names layers by class).
    """
    groups = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: groups.setdefault(name.rsplit("/", 2)[0], {}).__setitem__(
            int(name.rsplit("/", 1)[1]), np.asarray(obj)) if isinstance(obj, h5py.Dataset) else None)
    optimizers = _optimizers(model)
    opt_groups = {g: d for g, d in groups.items() if g.rsplit("/", 1)[-1] in OPTIMIZERS}
    assert set(opt_groups) == set(optimizers), (sorted(opt_groups), sorted(optimizers))
    for name, stored in opt_groups.items():
        live = optimizers[name].variables
        assert len(live) == len(stored), f"{name}: {len(live)} variables, the file holds {len(stored)}"
        for i, v in enumerate(live):
            np.testing.assert_array_equal(keras.ops.convert_to_numpy(v), stored[i],
                                          err_msg=f"{name} variable {i} ({v.path})")
    layer_groups = [d for g, d in groups.items() if g not in opt_groups]
    leaves = [layer for layer in model._flatten_layers(include_self=False)
              if layer.weights and not list(layer._flatten_layers(include_self=False))]
    assert sum(len(d) for d in layer_groups) == len(model.weights)
    in_file = sorted(_signature([d[i] for i in sorted(d)]) for d in layer_groups)
    live = sorted(_signature([keras.ops.convert_to_numpy(v) for v in layer.weights]) for layer in leaves)
    assert in_file == live, "model variables differ from the file"


def _assert_same_h5(path_a, path_b):
    """Two weights files hold the same datasets with the same values, bit for bit."""
    def read(path):
        out = {}
        with h5py.File(path, "r") as f:
            f.visititems(lambda n, o: out.__setitem__(n, np.asarray(o)) if isinstance(o, h5py.Dataset) else None)
        return out

    a, b = read(path_a), read(path_b)
    assert sorted(a) == sorted(b)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


class _Snapshots(keras.callbacks.Callback):
    """The whole training state when training (re)starts and after every epoch.

    With `backup`: asserts, before the first step, that the state equals that weights file.
    """

    def __init__(self, backup=None):
        super().__init__()
        self.backup = backup
        self.at_start = None
        self.after_epoch = {}

    def on_train_begin(self, logs=None):
        self.at_start = _state(self.model)
        if self.backup:
            _assert_holds_file(self.model, self.backup)

    def on_epoch_end(self, epoch, logs=None):
        self.after_epoch[epoch + 1] = _state(self.model)


class _CopyFolderAt(keras.callbacks.Callback):
    """Copy the model folder `src` to `dst` when epoch `epoch` (1-based) begins."""

    def __init__(self, epoch, src, dst):
        super().__init__()
        self.epoch, self.src, self.dst = epoch, src, dst

    def on_epoch_begin(self, epoch, logs=None):
        if epoch + 1 == self.epoch:
            shutil.copytree(self.src, self.dst)


class _Interrupted(Exception):
    pass


class _InterruptAt(keras.callbacks.Callback):
    """Stop training by an exception when epoch `epoch` (1-based) would begin."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch + 1 == self.epoch:
            raise _Interrupted


# ------------------------------------------------------------------ training

def test_sigkilled_training_resumes_after_its_last_finished_epoch(data, tmp_path):
    epochs, steps = 5, 3
    model_dir = tmp_path / "model"
    cmd = [sys.executable, "-m", "tfseaice.train", "--task=sic_regional", f"--data_dir={data / 'records'}",
           f"--model_dir={model_dir}", f"--epochs={epochs}", f"--steps_per_epoch={steps}", "--batch_size=4",
           "--filters=4,8,8,8", "--learning_rate=0.003", "--image_every=1", "--seed=3"]
    log1 = open(tmp_path / "run1.log", "w")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=_env(), stdout=log1, stderr=subprocess.STDOUT)
    try:
        # Kill as soon as the second epoch is fully done (history row and backup written).
        _sigkill_when(proc, lambda: len(_history(model_dir)) >= 2 and _backup_epoch(model_dir) >= 2, 240,
                      "training", log=tmp_path / "run1.log")
    finally:
        log1.close()
    killed_rows = _history(model_dir)
    resumed_from = _backup_epoch(model_dir)
    assert 2 <= resumed_from < epochs
    assert json.loads((model_dir / "task.json").read_text())["state"] == "training"
    best_before = json.loads((model_dir / "checkpoints" / "best.json").read_text())
    twin = tmp_path / "twin"  # the killed folder, resumed a second time below
    shutil.copytree(model_dir, twin)
    backup = shutil.copy(model_dir / "checkpoints" / "backup" / f"epoch_{resumed_from:04d}.weights.h5",
                         tmp_path / "backup.weights.h5")

    # The same command again.
    run2 = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=240)
    out = run2.stdout + run2.stderr
    assert run2.returncode == 0, out[-3000:]
    assert f"resuming after epoch {resumed_from} of {epochs}" in out
    assert f"Epoch {resumed_from + 1}/{epochs}" in out and "Epoch 1/5" not in out
    rows = _history(model_dir)
    assert [int(r["epoch"]) for r in rows] == list(range(1, epochs + 1))  # each epoch exactly once
    for old, new in zip(killed_rows[:resumed_from], rows[:resumed_from]):
        assert old == new  # the finished epochs were not trained again
    # best.json kept its value across the kill and is the best over the whole history.
    best = json.loads((model_dir / "checkpoints" / "best.json").read_text())
    rmse = [float(r["val_polygon_rmse"]) for r in rows]
    assert best["value"] <= best_before["value"]
    assert best["value"] == pytest.approx(min(rmse)) and best["epoch"] == 1 + int(np.argmin(rmse))
    # The optimizer state was restored: its step counter covers all epochs.
    with h5py.File(model_dir / "checkpoints" / "latest.weights.h5") as f:
        assert int(np.asarray(f["optimizer/vars/0"])) == epochs * steps
    meta = json.loads((model_dir / "task.json").read_text())
    assert meta["state"] == "complete" and meta["epochs_done"] == epochs
    assert not (model_dir / "checkpoints" / "backup").exists()
    # Resumed again from the same killed folder (in this process, same config): it starts from the
    # backup's exact state and ends bit for bit where the command did. (Not compared with an
    # uninterrupted run: a resumed run reseeds its shuffle, see the test after this one.)
    cfg = TrainConfig.from_json(json.loads((twin / "task.json").read_text())["config"])
    snaps = _Snapshots(backup=backup)
    run_training(dataclasses.replace(cfg, model_dir=str(twin)), extra_callbacks=[snaps])
    assert sorted(snaps.after_epoch) == list(range(resumed_from + 1, epochs + 1))
    _assert_same_h5(twin / "checkpoints" / "latest.weights.h5", model_dir / "checkpoints" / "latest.weights.h5")
    assert _history(twin) == rows
    # A third run of the same command: the folder holds a finished training.
    run3 = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=120)
    assert run3.returncode == 1
    assert run3.stderr.strip().splitlines()[-1] == (
        f"ERROR: {model_dir}: holds a finished training; pass --overwrite to train again from scratch")


def _one_example_data(src, dst, copies=8):
    """`src` (converted data) with a training split of one example `copies` times: every order of it
    gives the same batches."""
    info = dataset_info.load(str(src))
    first = next(iter(tf.data.TFRecordDataset(dataset_info.shard_paths(str(src), info, "train")))).numpy()
    dst.mkdir()
    with tf.io.TFRecordWriter(str(dst / "train-00000-of-00001.tfrecord")) as w:
        for _ in range(copies):
            w.write(first)
    for name in info["splits"]["val"]["shards"]:
        shutil.copy(src / name, dst / name)
    info["splits"]["train"].update(shards=["train-00000-of-00001.tfrecord"], num_examples=copies)
    (dst / dataset_info.FILENAME).write_text(json.dumps(info))
    return str(dst)


def test_resumed_training_starts_from_the_backup_and_continues_as_if_never_interrupted(data, tmp_path):
    """Resumed from the folder a kill after epoch 1 leaves, a run ends epoch 2 in the state of an uninterrupted run.

    A resumed run reseeds its input pipeline (seed + 7919 * start_epoch, see
    tfseaice.train_lib._input_pipelines) and no flag turns the training shuffle off, so
    on varied data its epoch 2 sees other batches than the uninterrupted run's
    epoch 2. Here the data order cannot matter: the training split is one
    example 8 times and augmentation is off. What remains is the state: model
    and optimizer variables (Adam step and moments) must come back exactly.
    """
    data_dir = _one_example_data(data / "records", tmp_path / "one")

    def cfg(name):
        return TrainConfig(task="sic_regional", data_dir=data_dir, model_dir=str(tmp_path / name),
                                    epochs=2, steps_per_epoch=2, batch_size=4, learning_rate=3e-3, seed=3,
                                    image_every=0, precision="fp32", validation_steps=1,
                                    extra={"filters": [4, 8, 8, 8], "augment": False})

    straight = _Snapshots()
    # The folder as a kill just before epoch 2 would leave it: epoch 1 finished and backed up.
    killed = _CopyFolderAt(2, tmp_path / "straight", tmp_path / "resumed")
    run_training(cfg("straight"), extra_callbacks=[straight, killed])
    epoch, weights = read_backup(str(tmp_path / "resumed" / "checkpoints" / "backup"))
    assert epoch == 1
    backup = shutil.copy(weights, tmp_path / "backup.weights.h5")  # removed once the resumed run finishes
    resumed = _Snapshots(backup=backup)  # asserts at the start of the resumed run: state == backup file
    history = run_training(cfg("resumed"), extra_callbacks=[resumed])
    assert history.epoch == [1]
    _assert_same_state(resumed.at_start, straight.after_epoch[1], "state at resume vs uninterrupted epoch 1")
    _assert_same_state(resumed.after_epoch[2], straight.after_epoch[2], "epoch 2: resumed vs uninterrupted")
    assert _history(tmp_path / "resumed") == _history(tmp_path / "straight")


def _tiny_model():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer="adam", loss="mse")
    model.optimizer.build(model.trainable_variables)
    return model


def test_a_failed_save_never_replaces_a_checkpoint(tmp_path, monkeypatch):
    model = _tiny_model()
    path = tmp_path / "latest.weights.h5"
    save_weights_atomic(model, str(path))
    good = path.read_bytes()
    old_weights = [w.copy() for w in model.get_weights()]
    model.layers[0].kernel.assign(model.layers[0].kernel + 1.0)

    def half_written(filepath, overwrite=True):
        with open(filepath, "wb") as f:
            f.write(b"\x89HDF half a file")
        raise OSError("disk full")

    monkeypatch.setattr(model, "save_weights", half_written)
    with pytest.raises(Exception, match="disk full"):  # OSError (or an InputError that names the file)
        save_weights_atomic(model, str(path))
    assert path.read_bytes() == good
    assert sorted(os.listdir(tmp_path)) == ["latest.weights.h5"]  # no temporary file left
    fresh = _tiny_model()
    fresh.load_weights(str(path))
    for a, b in zip(fresh.get_weights(), old_weights):
        np.testing.assert_array_equal(a, b)


def test_backup_state_always_points_at_complete_weights(tmp_path, monkeypatch):
    model = _tiny_model()
    backup = TrainingBackup(str(tmp_path / "backup"))
    backup.set_model(model)
    backup.on_epoch_end(0, {"loss": 1.0})
    backup.on_epoch_end(1, {"loss": 0.5})
    assert read_backup(str(tmp_path / "backup")) == (2, str(tmp_path / "backup" / "epoch_0002.weights.h5"))
    assert sorted(os.listdir(tmp_path / "backup")) == ["epoch_0002.weights.h5", "state.json"]
    backup.on_epoch_end(2, {"loss": float("nan")})  # a NaN epoch is not backed up
    assert read_backup(str(tmp_path / "backup"))[0] == 2

    def killed(filepath, overwrite=True):
        with open(filepath, "wb") as f:
            f.write(b"half")
        raise KeyboardInterrupt  # as if the process died while writing

    monkeypatch.setattr(model, "save_weights", killed)
    with pytest.raises(KeyboardInterrupt):
        backup.on_epoch_end(3, {"loss": 0.4})
    epoch, weights = read_backup(str(tmp_path / "backup"))
    assert epoch == 2 and os.path.exists(weights)
    fresh = _tiny_model()
    restore_backup(fresh, weights)  # loads: model and optimizer variables
    assert fresh.optimizer.built
    (tmp_path / "backup" / "epoch_0002.weights.h5").unlink()
    with pytest.raises(InputError, match="is missing; delete"):
        read_backup(str(tmp_path / "backup"))


def test_history_rows_after_the_backup_are_dropped_on_resume(tmp_path):
    hist = HistoryCSV(str(tmp_path / "history.csv"))
    for epoch in range(3):
        hist.on_epoch_end(epoch, {"loss": 1.0 / (epoch + 1)})
    hist.truncate(2)  # resumed after epoch 2: the row of epoch 3 is from a lost run
    hist.on_epoch_end(2, {"loss": 0.25})
    hist.on_epoch_end(1, {"loss": 0.5})  # rewriting an epoch drops everything after it
    rows = list(csv.DictReader(open(tmp_path / "history.csv")))
    assert [(r["epoch"], r["loss"]) for r in rows] == [("1", "1.0"), ("2", "0.5")]


# --------------------------------------------------------------- data prep

def test_finished_conversion_is_refused_naming_the_output(data):
    out = str(data / "records")
    with pytest.raises(InputError, match="already holds a conversion .* pass --overwrite") as e:
        convert(str(data / "scenes" / "*.nc"), out, **CONVERT_ARGS)
    assert e.value.path == out
    assert dataset_info.load(out)["splits"]["train"]["num_examples"] > 0  # untouched


def _assert_readers_refuse(folder):
    with pytest.raises(InputError, match="not a finished conversion") as e:
        dataset_info.load(str(folder))
    assert e.value.path == os.path.join(str(folder), dataset_info.FILENAME)
    with pytest.raises(InputError, match="not a finished conversion"):
        pipeline.sic_dataset(str(folder), "train", 2, training=True)


def test_killed_conversion_leaves_nothing_a_reader_takes_as_complete(data, tmp_path):
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "data_prep.ai4arctic_to_tfrecord", f"--input_glob={data / 'scenes' / '*.nc'}",
           f"--output_dir={out}", "--patch_size=32", "--stride=32", "--channels=hh,hv", "--num_shards=2"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _sigkill_when(proc, lambda: out.exists() and any(n.startswith(".staging-") for n in os.listdir(out)), 120,
                  "the conversion", poll_s=0.02)
    assert not (out / dataset_info.FILENAME).exists()
    _assert_readers_refuse(out)

    # Killed while committing: shards already moved in, dataset_info.json (written last) not yet.
    half = tmp_path / "half"
    shutil.copytree(data / "records", half)
    (half / dataset_info.FILENAME).unlink()
    staging = half / ".staging-deadbeef"
    staging.mkdir()
    shutil.copy(data / "records" / dataset_info.FILENAME, staging / dataset_info.FILENAME)
    _assert_readers_refuse(half)

    # Rerunning the conversion into the killed folder finishes it.
    convert(str(data / "scenes" / "*.nc"), str(out), **CONVERT_ARGS)
    info = dataset_info.load(str(out))
    for name in info["splits"]["train"]["shards"] + info["splits"]["val"]["shards"]:
        assert (out / name).read_bytes() == (data / "records" / name).read_bytes()


def test_interrupted_pix2pix_resumes_with_both_optimizers(tmp_path):
    """The GAN (two optimizers, scored generator checkpoints) resumes as the SIC model does."""
    from data_prep import glacier_to_tfrecord
    from tfseaice.simulate import glaciers

    glaciers.make_sample_dataset(str(tmp_path / "raw"), 2, seed=1, test_fraction=0.0,
                                        min_size=520, max_size=540)
    glacier_to_tfrecord.convert(str(tmp_path / "raw"), str(tmp_path / "records"), patch_size=256,
                                val_fraction=0.3, seed=1)
    cfg = TrainConfig(task="pix2pix", data_dir=str(tmp_path / "records"), model_dir=str(tmp_path / "p2p"),
                               epochs=2, steps_per_epoch=2, batch_size=2, learning_rate=2e-4, image_every=0,
                               extra={"generator_filters": 2, "discriminator_filters": 2, "checkpoint_every": 1})

    interrupted = _Snapshots()
    with pytest.raises(_Interrupted):
        run_training(cfg, extra_callbacks=[interrupted, _InterruptAt(2)])
    epoch, weights = read_backup(str(tmp_path / "p2p" / "checkpoints" / "backup"))
    assert epoch == 1
    backup = shutil.copy(weights, tmp_path / "backup.weights.h5")  # removed once the resumed run finishes
    first = _history(tmp_path / "p2p")
    # Both networks and both optimizers (step, moments) equal the backup file before the first step.
    resumed = _Snapshots(backup=backup)
    history = run_training(cfg, extra_callbacks=[resumed])
    _assert_same_state(resumed.at_start, interrupted.after_epoch[1], "state at resume vs end of epoch 1")
    assert history.epoch == [1]  # only the second epoch was trained
    assert int(history.model.gen_optimizer.iterations) == int(history.model.disc_optimizer.iterations) == 4
    rows = _history(tmp_path / "p2p")
    assert [int(r["epoch"]) for r in rows] == [1, 2] and rows[0] == first[0]
    scores = json.loads((tmp_path / "p2p" / "checkpoint_scores.json").read_text())
    assert [c["epoch"] for c in scores["checkpoints"]] == [1, 2]
