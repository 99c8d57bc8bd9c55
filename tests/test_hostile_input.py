"""Hostile and broken input through the real command lines (issue 7).

Every row of ROWS runs one entry point as a subprocess (`python -m ...`, cwd =
the repository) on one broken input and checks what a user sees:
  * exit status != 0,
  * exactly one `ERROR: <input>: <problem>` line on stderr, naming the input
    and the problem (regular expressions in `message`),
  * no `Traceback` on stderr (unless --verbose),
  * nothing half-written and nothing valid lost: every path in `watch`
    (by default the row's own folder, which holds its outputs and any
    pre-existing output) is byte-identical afterwards, so no temporary or
    staging file is left either.
Rows with `ok=True` are inputs that must be accepted (a converter that
reports the bad scenes and converts the rest, an unknown CT code, RGB and
16-bit PNGs, hostile file names); they check their outputs instead.

The subprocesses run concurrently (a small thread pool started once per
module), slowest first; each test waits for its own row. The inputs are
built once per module by tests/hostile_fixtures.py.

Run the module in one process (`make test` uses xdist with --dist=loadfile):
every process that collects it starts all of its selected rows. `pytest -k
ROW` runs only the rows selected. TFSEAICE_HOSTILE_TIMES=FILE writes the wall
and CPU seconds of every row to FILE; TFSEAICE_HOSTILE_WORKERS sets the pool
size (3).
"""

import concurrent.futures
import ctypes
import ctypes.util
import dataclasses
import glob
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import threading
import time
from typing import Callable

import h5py
import numpy as np
import pytest
import tensorflow as tf

import hostile_fixtures as hf
from tfseaice.serving.loading import load_trained
from tfseaice.data import pipeline, records

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKERS = int(os.environ.get("TFSEAICE_HOSTILE_WORKERS", "3"))
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1",
       "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1", "PYTHONPATH": REPO}

SIC_CONVERT = ["--patch_size=32", "--stride=32", "--downsample=2", "--val_fraction=0", "--channels=hh,hv"]
GLACIER_CONVERT = ["--patch_size=32", "--val_fraction=0"]
INFER = ["--tile=32", "--overlap=8"]
TRAIN_SIC = {"task": "sic_regional", "filters": "4,8,8,8", "batch_size": 2, "steps_per_epoch": 2,
             "image_every": 0, "epochs": 1}
TRAIN_GAN = {"task": "pix2pix", "generator_filters": 4, "discriminator_filters": 4, "batch_size": 1,
             "steps_per_epoch": 3, "validation_steps": 1, "image_every": 0, "checkpoint_every": 0,
             "augment": "false", "epochs": 1}


def train_flags(base=None, **changes):
    """--name=value flags of a tiny training run (`base` updated with `changes`)."""
    return [f"--{k}={v}" for k, v in {**(base or TRAIN_SIC), **changes}.items()]


@dataclasses.dataclass
class Row:
    id: str
    module: str
    args: Callable                      # (world, row_dir) -> argv after the module
    message: Callable = None            # (world, row_dir) -> regexes the ERROR line must match
    ok: bool = False                    # accepted input: exit 0
    errors: int = None                  # expected ERROR lines (default: 1, or 0 when ok)
    setup: Callable = None              # (world, row_dir) -> None, before the run
    watch: Callable = None              # (world, row_dir) -> paths that must not change
    check: Callable = None              # (world, row_dir, result) -> None, extra assertions
    wrapper: str = None                 # python code run with `-c` instead of `-m module`
    verbose: bool = False               # --verbose: a traceback is expected
    slow: bool = False                  # trains a model: started first
    timeout: int = 600


def esc(path):
    return re.escape(str(path))


def scene_row(kind, message, module="data_prep.ai4arctic_to_tfrecord"):
    """The converter on one broken scene: every scene failed -> exit 1, one line."""
    return Row(id=f"convert_{kind}", module=module,
               args=lambda w, d: [f"--input_glob={os.path.dirname(w.bad[kind])}/*.nc",
                                  f"--output_dir={d}/records"] + SIC_CONVERT,
               message=lambda w, d: (esc(w.bad[kind]), message))


# ------------------------------------------------------------ setup helpers
def write_text(path, text="mine\n"):
    """A pre-existing output (or any small file), with its folders."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    return path


def zones_to_score(d):
    """A CaFFe test split of two images and a predictions folder that lacks the second one's PNG."""
    rng = np.random.default_rng(0)
    for name in (hf.GOOD_GLACIER, hf.BAD_GLACIER):
        z = hf.zones_image(hf.GLACIER_SIZE, hf.GLACIER_SIZE, rng)
        hf.write_pair(os.path.join(d, "root"), "test", name, hf.sar_image(z, rng), z)
    os.makedirs(os.path.join(d, "preds"))
    shutil.copy(os.path.join(d, "root", "zones", "test", f"{hf.GOOD_GLACIER}_zones.png"), os.path.join(d, "preds"))


def sample_scene_target(w, d):
    """The file `make_sample_scenes --seed=0 --num_scenes=1` would write, already there."""
    from tfseaice.simulate.scenes import raw_file_name, scene_metadata, scene_seed

    time_str, service = scene_metadata(scene_seed(0, 0))
    write_text(os.path.join(d, "scenes", raw_file_name(time_str, service)))


def write_flagfile(path, lines):
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def copy_model(src, dst, state=None, task=None):
    shutil.copytree(src, dst)
    if state or task:
        p = os.path.join(dst, "task.json")
        meta = json.load(open(p))
        meta["state"] = state or meta["state"]
        meta["task"] = task or meta["task"]
        json.dump(meta, open(p, "w"), indent=2)
    return dst


def truncate(path, fraction):
    data = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write(data[: int(len(data) * fraction)])


def mixed_scenes(w, d):
    """Good scenes + every broken scene in one folder, each with its own acquisition time."""
    src = os.path.join(d, "scenes")
    os.makedirs(src)
    for p in w.good:
        shutil.copy(p, src)
    for i, (kind, path) in enumerate(sorted(w.bad.items())):
        shutil.copy(path, os.path.join(src, f"S1A_EW_GRDM_1SDH_200001{i + 1:02d}T000000_{kind}_icechart_dmi.nc"))


MIXED_MESSAGES = {
    "not_netcdf": "cannot be read as netCDF", "truncated": "cannot be read as netCDF",
    "missing_variable": "missing required variable nersc_sar_secondary",
    "shape_mismatch": r"SAR \(128, 128\) and polygon_icechart \(128, 120\) differ in shape",
    "all_nan_sar": "SAR is all NaN", "codes_bad_header": r"lacks column\(s\) poly_id",
    "codes_ct_not_numeric": "CT '9X' is not an integer code", "codes_duplicate_ids": "duplicate poly_id",
    "smaller_than_patch": "smaller than one 32x32 patch", "no_labelled_polygon": "no labelled polygon",
}


def check_mixed(w, d, res):
    lines = error_lines(res.stderr)
    failed = json.load(open(os.path.join(d, "records", "failed_scenes.json")))
    assert len(failed) == len(MIXED_MESSAGES), failed
    for kind, message in MIXED_MESSAGES.items():
        (line,) = [ln for ln in lines if f"_{kind}_icechart" in ln]
        assert re.search(message, line), (kind, line)
        (entry,) = [f for f in failed if f"_{kind}_icechart" in f["path"]]
        assert re.search(message, entry["error"]), (kind, entry)
    info = json.load(open(os.path.join(d, "records", "dataset_info.json")))
    converted = info["splits"]["train"]["scenes"] + info["splits"]["val"]["scenes"]
    # 2 good + unknown CT + a raster id the table lacks + an odd POLY_TYPE: odd polygons do not fail a scene
    assert len(converted) == 5 and info["num_scenes_failed"] == len(MIXED_MESSAGES)
    assert info["splits"]["train"]["num_examples"] > 0
    assert sorted(os.listdir(os.path.join(d, "records"))) == [
        "dataset_info.json", "failed_scenes.json", "train-00000-of-00001.tfrecord"]


def decode_sic_dir(data_dir):
    import tensorflow as tf

    from tfseaice.data import records

    out = []
    for path in sorted(glob.glob(os.path.join(data_dir, "*.tfrecord"))):
        for rec in tf.data.TFRecordDataset(path):
            out.append({k: v.numpy() for k, v in records.decode_sic(rec).items()})
    return out


def check_unknown_ct(w, d, res):
    pid = hf.unknown_ct_poly_id(w.bad["unknown_ct_code"])
    exs = decode_sic_dir(os.path.join(d, "records"))
    assert exs and all(pid not in ex["polygon_global_id"] for ex in exs)
    assert all(np.isfinite(ex["polygon_sic"]).all() for ex in exs)
    from tfseaice.data import ai4arctic

    scene = ai4arctic.read_scene(w.bad["unknown_ct_code"], hf.CHANNELS, 2)
    assert (scene.chart_ids == pid).any() and np.isnan(scene.table.lookup([pid])).all()


def check_odd_polygon(kind, poly_id, reason):
    """The scene converts; the odd polygon is in no record, counted in dataset_info, warned of by id."""
    from tfseaice.data import ai4arctic

    def check(w, d, res):
        pid = poly_id(w)
        exs = decode_sic_dir(os.path.join(d, "records"))
        assert exs and all(pid not in ex["polygon_global_id"] for ex in exs)
        info = json.load(open(os.path.join(d, "records", "dataset_info.json")))
        ((scene_id, odd),) = info["unlabelled_polygons"].items()
        assert odd == {reason: 1} and scene_id == ai4arctic.scene_id_of(w.bad[kind])
        assert any(str(pid) in ln and "unlabelled" in ln for ln in res.stderr.splitlines()), res.stderr[-2000:]
    return check


def check_one_glacier_failure(bad_path, message):
    def check(w, d, res):
        (line,) = error_lines(res.stderr)
        assert bad_path(w, d) in line and re.search(message, line), line
        failed = json.load(open(os.path.join(d, "out", "failed_images.json")))
        assert [f["path"] for f in failed] == [bad_path(w, d)] and re.search(message, failed[0]["error"])
        info = json.load(open(os.path.join(d, "out", "dataset_info.json")))
        assert info["splits"]["train"]["num_examples"] == 4 and info["num_images_failed"] == 1
        assert not [n for n in os.listdir(os.path.join(d, "out")) if n.startswith(".")]
    return check


def glacier_bad_row(kind, bad_path, message):
    return Row(id=f"glacier_{kind}", module="data_prep.glacier_to_tfrecord", ok=True, errors=1,
               setup=lambda w, d: hf.glacier_root(os.path.join(d, "root"), bad=kind),
               args=lambda w, d: [f"--data_root={d}/root", f"--output_dir={d}/out"] + GLACIER_CONVERT,
               check=check_one_glacier_failure(bad_path, message))


def check_rgb16(w, d, res):
    import tensorflow as tf

    from tfseaice.data import glacier, records

    expected = hf.glacier_root_rgb16(os.path.join(d, "expected_only"))  # same seed, same arrays
    shutil.rmtree(os.path.join(d, "expected_only"))
    got = {}
    for path in glob.glob(os.path.join(d, "out", "*.tfrecord")):
        for rec in tf.data.TFRecordDataset(path):
            ex = records.decode_glacier(rec)
            name = ex["name"].numpy().decode()
            r, c = ex["patch_offset"].numpy()
            sar = np.rint(ex["sar"].numpy()[..., 0] * 255).astype(np.uint8)
            got.setdefault(name, []).append((r, c, sar, ex["mask"].numpy()))
    assert sorted(got) == sorted(expected)
    for name, (sar, zones) in expected.items():
        assert len(got[name]) == 4
        for r, c, patch, mask in got[name]:
            np.testing.assert_array_equal(patch, sar[r:r + 32, c:c + 32])
            np.testing.assert_array_equal(mask, glacier.zones_to_classes(zones)[r:r + 32, c:c + 32])


def odd_names_root(w, d):
    """Image names with shell syntax, spaces, non-ASCII and backslashes: converted, nothing written elsewhere."""
    root = os.path.join(d, "root")
    rng = np.random.default_rng(3)
    z = hf.zones_image(64, 64, rng)
    for name in ("-rf ..; $(touch PWNED) 'x'", "Glacier with spaces & ünïcode_2011_S1_40_1_001", "a\\b..c"):
        hf.write_pair(root, "train", name, hf.sar_image(z, rng), z)


def check_odd_names(w, d, res):
    assert sorted(os.listdir(d)) == ["out", "root"]
    assert sorted(os.listdir(os.path.join(d, "out"))) == ["dataset_info.json", "failed_images.json",
                                                          "train-00000-of-00001.tfrecord"]
    assert not glob.glob(os.path.join(REPO, "PWNED")) and not glob.glob(os.path.join(d, "**", "PWNED"),
                                                                          recursive=True)
    info = json.load(open(os.path.join(d, "out", "dataset_info.json")))
    assert info["splits"]["train"]["num_images"] == 3 and info["num_images_failed"] == 0


def gen_masks(w, d):
    """Masks whose names try to climb out of --out_dir: reached through `..`, and `..\\` in the name."""
    rng = np.random.default_rng(5)
    z = hf.zones_image(64, 64, rng)
    os.makedirs(os.path.join(d, "in", "a", "b"))
    from PIL import Image

    for name in ("evil_zones.png", "up\\..\\..\\evil2_zones.png"):
        Image.fromarray(z).save(os.path.join(d, "in", name))


def check_gen_escape(w, d, res):
    assert sorted(os.listdir(os.path.join(d, "out"))) == ["evil.png", "up_.._.._evil2.png"]
    assert sorted(os.listdir(d)) == ["in", "out"]
    assert sorted(os.listdir(os.path.join(d, "in"))) == ["a", "evil_zones.png", "up\\..\\..\\evil2_zones.png"]
    assert not glob.glob(os.path.join(w.root, "rows", "*.png")) and not glob.glob(os.path.join(w.root, "*.png"))


def gen_bad_masks(w, d):
    from PIL import Image

    rng = np.random.default_rng(6)
    z = hf.zones_image(64, 64, rng)
    os.makedirs(os.path.join(d, "in"))
    Image.fromarray(z).save(os.path.join(d, "in", "A_good_zones.png"))
    z = z.copy()
    z[5:9, 5:9] = 200
    Image.fromarray(z).save(os.path.join(d, "in", "B_bad_zones.png"))


def nan_loss_model(w, d):
    copy_model(w.sic_model, os.path.join(d, "model"), state="training")


def check_history_finite(w, d, res):
    import csv

    rows = list(csv.DictReader(open(os.path.join(d, "model", "history.csv"))))
    assert rows and all(np.isfinite(float(r["loss"])) for r in rows), rows
    assert all(np.isfinite(float(v)) for r in rows for k, v in r.items() if v not in ("", None))


def check_nan_inf_masked(w, d, res):
    """Finite history and weights, and the trained model treats NaN/Inf SAR as no data: its
    predictions on a poisoned patch equal those on the patch with every non-finite value
    replaced by its channel's mean (which standardises to 0, the masked value)."""
    check_history_finite(w, d, res)
    with h5py.File(os.path.join(d, "model", "checkpoints", "latest.weights.h5"), "r") as f:
        f.visititems(lambda n, o: assert_finite(n, np.asarray(o)) if isinstance(o, h5py.Dataset) else None)
    model, meta = load_trained(os.path.join(d, "model"), "latest")
    shard = os.path.join(w.records_nan, "train-00000-of-00001.tfrecord")
    sar = np.stack([records.decode_sic(r)["sar"].numpy() for r in tf.data.TFRecordDataset(shard).take(2)])
    for bad in (np.isnan, np.isposinf, np.isneginf):
        assert bad(sar).any(), bad.__name__  # the poison is there
    mean = np.asarray(meta["dataset_info"]["normalization"]["mean"], np.float32)
    clean = np.where(np.isfinite(sar), sar, mean)
    got = model(sar, training=False).numpy()
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, model(clean, training=False).numpy(), rtol=0, atol=1e-6)


def assert_finite(name, values):
    assert np.isfinite(values).all(), f"{name} holds non-finite values"


def model_ckpts(w, d):
    return [os.path.join(d, "model", "checkpoints", n) for n in ("latest.weights.h5", "best.weights.h5")]


CKPT_WRAPPER = r"""
import errno, hashlib, os, runpy, sys
CK, HIST, SIDE = (os.path.realpath(a) for a in sys.argv[1:4])
sys.argv = ["tfseaice.train"] + sys.argv[4:]
import keras
orig = keras.Model.save_weights

def epochs_logged():
    try:
        with open(HIST) as f:
            return max(0, sum(1 for _ in f) - 1)
    except OSError:
        return 0

def save_weights(self, filepath, *args, **kwargs):
    p = os.path.realpath(os.fspath(filepath))
    if os.path.dirname(p) == CK and epochs_logged() >= 2:   # a write in checkpoints/ after epoch 1
        latest = os.path.join(CK, "latest.weights.h5")
        with open(latest, "rb") as f, open(SIDE, "w") as side:
            side.write(hashlib.sha256(f.read()).hexdigest())
        with open(p, "wb") as f:                          # half a file, then the disk is full
            f.write(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), p)
    return orig(self, filepath, *args, **kwargs)

keras.Model.save_weights = save_weights
runpy.run_module("tfseaice.train", run_name="__main__", alter_sys=True)
"""


def check_ckpt_fail(w, d, res):
    ck = os.path.join(d, "model", "checkpoints")
    side = open(os.path.join(d, "latest.sha256")).read()
    assert hf.tree(os.path.join(ck, "latest.weights.h5"))[""] == side
    assert not [n for n in os.listdir(ck) if n.startswith(".")], os.listdir(ck)
    with h5py.File(os.path.join(ck, "latest.weights.h5"), "r"):
        pass


def corrupt_records(w, d):
    shutil.copytree(w.records_train, os.path.join(d, "data"))
    truncate(os.path.join(d, "data", "train-00000-of-00001.tfrecord"), 0.6)


def intact_records(path, size):
    """How many whole records of the TFRecord file `path` lie in its first `size` bytes.

    Read from the record framing (uint64 length, uint32 CRC, data, uint32 CRC), not through TF.
    """
    data = open(path, "rb").read()
    offset = count = 0
    while offset < len(data):
        (length,) = struct.unpack("<Q", data[offset:offset + 8])
        offset += 8 + 4 + length + 4
        if offset > size:
            break
        count += 1
    return count


def check_skip_corrupt(w, d, res):
    shard = os.path.join(d, "data", "train-00000-of-00001.tfrecord")
    assert shard in res.stderr and re.search("skip", res.stderr, re.I)
    assert os.path.exists(os.path.join(d, "model", "history.csv"))
    # --skip_corrupt reads exactly the whole records before the cut, unchanged, and stops there.
    original = os.path.join(w.records_train, "train-00000-of-00001.tfrecord")
    total = intact_records(original, os.path.getsize(original))
    intact = intact_records(original, os.path.getsize(shard))
    assert 0 < intact < total, (intact, total)
    read = [r.numpy() for r in pipeline.read_records([shard], training=False, seed=0, skip_corrupt=True)]
    assert len(read) == intact, (len(read), intact, total)
    assert read == [r.numpy() for r in tf.data.TFRecordDataset(original).take(intact)]
    batches = pipeline.sic_dataset(os.path.join(d, "data"), "train", 1, training=False, skip_corrupt=True)
    assert sum(1 for _ in batches) == intact


def damaged_backup(w, d):
    """An interrupted run's folder whose resume backup (epoch 1) was cut in half."""
    copy_model(w.sic_model, f"{d}/model", state="training")
    backup = f"{d}/model/checkpoints/backup"
    os.makedirs(backup)
    shutil.copy(f"{d}/model/checkpoints/latest.weights.h5", f"{backup}/epoch_0001.weights.h5")
    truncate(f"{backup}/epoch_0001.weights.h5", 0.5)
    json.dump({"epoch": 1, "weights": "epoch_0001.weights.h5"}, open(f"{backup}/state.json", "w"))


def check_empty_shard_skipped(w, d, res):
    empty = os.path.join(d, "data", "train-00001-of-00002.tfrecord")
    (line,) = [ln for ln in res.stderr.splitlines() if empty in ln]
    assert re.search(r"skipping the empty \(0 bytes\) TFRecord shard", line), line
    assert [r["epoch"] for r in history(d)] == ["1"]


def history(d, name="model"):
    import csv

    path = os.path.join(d, name, "history.csv")
    return list(csv.DictReader(open(path))) if os.path.exists(path) else []


def lock_gone_and_finished(d, epochs):
    assert not os.path.exists(hf.lock_file(os.path.join(d, "model"))), "the lock outlived its run"
    assert [int(r["epoch"]) for r in history(d)] == list(range(1, epochs + 1))  # each epoch once, one run's
    assert json.load(open(os.path.join(d, "model", "task.json")))["state"] == "complete"


def check_race(w, d, res):
    runs = [tuple(map(int, m)) for m in re.findall(r"^RUN (\d) pid (\d+) rc (-?\d+)$", res.stdout, re.M)]
    assert sorted(rc for _, _, rc in runs) == [0, 1], res.stdout
    (winner,) = [pid for _, pid, rc in runs if rc == 0]
    (line,) = error_lines(res.stderr)
    assert f"pid {winner}," in line, line   # the refusal names the run that holds the folder
    lock_gone_and_finished(d, 2)
    events = glob.glob(os.path.join(d, "model", "logs", "**", "events.out.tfevents.*"), recursive=True)
    assert events and all(f".{winner}." in os.path.basename(e) for e in events)  # no log of the refused run


def check_stale_resume(w, d, res):
    assert "FIRST rc -9" in res.stdout and "LOCK_LEFT True" in res.stdout, res.stdout
    (line,) = [ln for ln in res.stderr.splitlines() if "taking over the stale lock" in ln]
    assert re.search(r"pid \d+ is gone", line), line
    assert "resuming after epoch 1 of 3" in res.stderr
    lock_gone_and_finished(d, 3)


def check_multi_worker_lock(w, d, res):
    workers = dict((int(i), int(pid)) for i, pid, rc in re.findall(r"^WORKER (\d) pid (\d+) rc (0)$", res.stdout, re.M))
    assert sorted(workers) == [0, 1], res.stdout
    for i in (0, 1):
        seen = json.load(open(os.path.join(d, f"seen.{i}.json")))
        assert seen["pid"] == workers[i]
        assert seen["lock"] and seen["lock"]["pid"] == workers[0], seen  # the chief (worker 0) holds it
    lock_gone_and_finished(d, 2)


# ------------------------------------------------------------------- rows
ROWS = [
    # ---- netCDF scenes through the SIC converter (one broken scene each: every scene failed -> exit 1)
    scene_row("not_netcdf", "cannot be read as netCDF"),
    scene_row("truncated", "cannot be read as netCDF"),
    scene_row("missing_variable", "missing required variable nersc_sar_secondary"),
    scene_row("shape_mismatch", "differ in shape"),
    scene_row("all_nan_sar", "SAR is all NaN"),
    scene_row("codes_bad_header", r"header .* lacks column\(s\) poly_id"),
    scene_row("codes_ct_not_numeric", "CT '9X' is not an integer code"),
    scene_row("codes_duplicate_ids", r"duplicate poly_id\(s\)"),
    Row(id="convert_raster_id_not_in_table_is_unlabelled", module="data_prep.ai4arctic_to_tfrecord", ok=True,
        args=lambda w, d: [f"--input_glob={os.path.dirname(w.bad['raster_id_not_in_table'])}/*.nc",
                           f"--output_dir={d}/records"] + SIC_CONVERT,
        check=check_odd_polygon("raster_id_not_in_table", lambda w: 123456, "not_in_polygon_codes")),
    Row(id="convert_odd_poly_type_is_unlabelled", module="data_prep.ai4arctic_to_tfrecord", ok=True,
        args=lambda w, d: [f"--input_glob={os.path.dirname(w.bad['odd_poly_type'])}/*.nc",
                           f"--output_dir={d}/records"] + SIC_CONVERT,
        check=check_odd_polygon("odd_poly_type", lambda w: hf.odd_poly_type_id(w.bad["odd_poly_type"]),
                                "poly_type_not_i_or_w")),
    scene_row("smaller_than_patch", "smaller than one 32x32 patch"),
    scene_row("no_labelled_polygon", "no labelled polygon"),
    Row(id="convert_unknown_ct_code_is_unlabelled", module="data_prep.ai4arctic_to_tfrecord", ok=True,
        args=lambda w, d: [f"--input_glob={os.path.dirname(w.bad['unknown_ct_code'])}/*.nc",
                           f"--output_dir={d}/records"] + SIC_CONVERT,
        check=check_unknown_ct),
    Row(id="convert_bad_scenes_reported_rest_converted", module="data_prep.ai4arctic_to_tfrecord", ok=True,
        errors=len(MIXED_MESSAGES), setup=mixed_scenes,
        args=lambda w, d: [f"--input_glob={d}/scenes/*.nc", f"--output_dir={d}/records"] + SIC_CONVERT,
        check=check_mixed),
    Row(id="convert_existing_output", module="data_prep.ai4arctic_to_tfrecord",
        setup=lambda w, d: shutil.copytree(w.records_sic, os.path.join(d, "records")),
        args=lambda w, d: [f"--input_glob={w.good_dir}/*.nc", f"--output_dir={d}/records"] + SIC_CONVERT,
        message=lambda w, d: (esc(f"{d}/records"), "already holds a conversion", "--overwrite")),
    Row(id="convert_unknown_flag_in_flagfile", module="data_prep.ai4arctic_to_tfrecord",
        setup=lambda w, d: write_flagfile(os.path.join(d, "convert.flags"), [
            f"--input_glob={w.good_dir}/*.nc", f"--output_dir={d}/records", "--patchsize=32"]),
        args=lambda w, d: [f"--flagfile={d}/convert.flags"],
        message=lambda w, d: (esc(f"{d}/convert.flags"), "line 3", "unknown flag --patchsize")),
    Row(id="convert_missing_required_flag", module="data_prep.ai4arctic_to_tfrecord",
        args=lambda w, d: [f"--input_glob={w.good_dir}/*.nc"],
        message=lambda w, d: ("--output_dir", "required flag not given")),
    # ---- glacier CaFFe folders through the glacier converter
    glacier_bad_row("no_mask", lambda w, d: f"{d}/root/sar_images/train/{hf.BAD_GLACIER}.png", "image has no mask"),
    glacier_bad_row("mask_size", lambda w, d: f"{d}/root/zones/train/{hf.BAD_GLACIER}_zones.png",
                    r"mask is 64x60 \(HxW\) but image is 64x64"),
    glacier_bad_row("mask_values", lambda w, d: f"{d}/root/zones/train/{hf.BAD_GLACIER}_zones.png",
                    r"zone values outside \{0, 64, 127, 254\}: 200"),
    Row(id="glacier_all_images_bad", module="data_prep.glacier_to_tfrecord",
        setup=lambda w, d: hf.glacier_root(os.path.join(d, "root"), bad="mask_values", good=False),
        args=lambda w, d: [f"--data_root={d}/root", f"--output_dir={d}/out"] + GLACIER_CONVERT,
        message=lambda w, d: (esc(f"{d}/root/zones/train/{hf.BAD_GLACIER}_zones.png"), "every image failed",
                              "zone values outside")),
    Row(id="glacier_rgb_and_16bit_converted", module="data_prep.glacier_to_tfrecord", ok=True,
        setup=lambda w, d: hf.glacier_root_rgb16(os.path.join(d, "root")),
        args=lambda w, d: [f"--data_root={d}/root", f"--output_dir={d}/out"] + GLACIER_CONVERT,
        check=check_rgb16),
    Row(id="glacier_empty_folders", module="data_prep.glacier_to_tfrecord",
        setup=lambda w, d: hf.glacier_root(os.path.join(d, "root"), good=False),
        args=lambda w, d: [f"--data_root={d}/root", f"--output_dir={d}/out"] + GLACIER_CONVERT,
        message=lambda w, d: (esc(f"{d}/root/sar_images/train"), "holds no .png image")),
    Row(id="glacier_hostile_file_names", module="data_prep.glacier_to_tfrecord", ok=True,
        setup=odd_names_root,
        args=lambda w, d: [f"--data_root={d}/root", f"--output_dir={d}/out"] + GLACIER_CONVERT,
        check=check_odd_names),
    Row(id="glacier_existing_output", module="data_prep.glacier_to_tfrecord",
        setup=lambda w, d: (hf.glacier_root(os.path.join(d, "root")),
                            shutil.copytree(w.records_glacier, os.path.join(d, "out"))),
        args=lambda w, d: [f"--data_root={d}/root", f"--output_dir={d}/out"] + GLACIER_CONVERT,
        message=lambda w, d: (esc(f"{d}/out"), "already holds a conversion", "--overwrite")),

    # ---- sample makers
    Row(id="make_sample_scenes_existing_output", module="data_prep.make_sample_scenes",
        setup=sample_scene_target,
        args=lambda w, d: [f"--out_dir={d}/scenes", "--num_scenes=1", "--size=64", "--seed=0"],
        message=lambda w, d: (esc(f"{d}/scenes/"), "output exists", "--overwrite")),
    Row(id="make_sample_glaciers_existing_output", module="data_prep.make_sample_glaciers",
        setup=lambda w, d: hf.glacier_root(os.path.join(d, "root")),
        args=lambda w, d: [f"--out_dir={d}/root", "--num_images=1"],
        message=lambda w, d: (esc(f"{d}/root"), "output exists", "--overwrite")),

    # ---- evaluate
    Row(id="evaluate_bad_scene", module="tfseaice.evaluate",
        setup=lambda w, d: [shutil.copy(p, os.path.join(d, os.path.basename(p)))
                            for p in (w.good[1], w.bad["truncated"])],
        args=lambda w, d: ["--task=sic", f"--model_dir={w.sic_model}", f"--scenes_glob={d}/*.nc",
                           f"--output={d}/metrics.json"] + INFER,
        watch=lambda w, d: [d, w.sic_model],
        message=lambda w, d: (esc(f"{d}/{os.path.basename(w.bad['truncated'])}"), "cannot be read as netCDF")),
    Row(id="evaluate_bad_scene_verbose", module="tfseaice.evaluate", verbose=True,
        args=lambda w, d: ["--task=sic", f"--model_dir={w.sic_model}", f"--scenes_glob={w.bad['truncated']}",
                           f"--output={d}/metrics.json", "--verbose"] + INFER),
    Row(id="evaluate_scene_lacks_a_model_channel", module="tfseaice.evaluate",
        args=lambda w, d: ["--task=sic", f"--model_dir={w.sic_model}",
                           f"--scenes_glob={w.bad['missing_variable']}", f"--output={d}/metrics.json"] + INFER,
        message=lambda w, d: (esc(w.bad["missing_variable"]), "missing required variable nersc_sar_secondary")),
    Row(id="evaluate_model_of_another_task", module="tfseaice.evaluate",
        args=lambda w, d: ["--task=sic", f"--model_dir={w.pix2pix_model}", f"--scenes_glob={w.good[0]}",
                           f"--output={d}/metrics.json"] + INFER,
        watch=lambda w, d: [d, w.pix2pix_model],
        message=lambda w, d: (esc(w.pix2pix_model), "holds a 'pix2pix' model")),
    Row(id="evaluate_existing_output", module="tfseaice.evaluate",
        setup=lambda w, d: write_text(os.path.join(d, "metrics.json"), '{"mine": 1}\n'),
        args=lambda w, d: ["--task=sic", f"--model_dir={w.sic_model}", f"--scenes_glob={w.good[0]}",
                           f"--output={d}/metrics.json"] + INFER,
        message=lambda w, d: (esc(f"{d}/metrics.json"), "output exists", "--overwrite")),
    Row(id="evaluate_zones_missing_prediction", module="tfseaice.evaluate",
        setup=lambda w, d: zones_to_score(d),
        args=lambda w, d: ["--task=glacier_zones", f"--predictions_dir={d}/preds", f"--data_root={d}/root",
                           "--split=test", f"--output={d}/zones.json"],
        message=lambda w, d: (esc(f"{d}/preds/{hf.BAD_GLACIER}_zones.png"), "prediction missing for image")),
    Row(id="evaluate_pix2pix_fails_half_way", module="tfseaice.evaluate",
        args=lambda w, d: ["--task=pix2pix", f"--model_dir={w.pix2pix_model}", f"--data_dir={w.records_glacier}",
                           f"--out_dir={d}/eval", "--epoch=99"],
        watch=lambda w, d: [d, w.pix2pix_model],
        message=lambda w, d: (esc(w.pix2pix_model), "has no checkpoint of epoch 99")),
    Row(id="evaluate_pix2pix_existing_output", module="tfseaice.evaluate",
        setup=lambda w, d: write_text(os.path.join(d, "eval", "table.md")),
        args=lambda w, d: ["--task=pix2pix", f"--model_dir={w.pix2pix_model}", f"--data_dir={w.records_glacier}",
                           f"--out_dir={d}/eval"],
        message=lambda w, d: (esc(f"{d}/eval"), "output exists", "--overwrite")),

    # ---- predict
    Row(id="predict_bad_scene", module="tfseaice.predict",
        args=lambda w, d: [f"--model_dir={w.sic_model}", f"--scene={w.bad['not_netcdf']}", f"--out={d}/out.nc"] + INFER,
        message=lambda w, d: (esc(w.bad["not_netcdf"]), "cannot be read as netCDF")),
    Row(id="predict_scene_lacks_a_model_channel", module="tfseaice.predict",
        args=lambda w, d: [f"--model_dir={w.sic_model}", f"--scene={w.bad['missing_variable']}",
                           f"--out={d}/out.nc"] + INFER,
        message=lambda w, d: (esc(w.bad["missing_variable"]), "missing required variable nersc_sar_secondary")),
    Row(id="predict_channels_differ_from_model", module="tfseaice.predict",
        args=lambda w, d: [f"--model_dir={w.sic_model}", f"--scene={w.good[0]}", f"--out={d}/out.nc",
                           "--channels=hh"] + INFER,
        message=lambda w, d: (esc(w.good[0]), r"the model takes 2 channel\(s\) but 1 were asked for")),
    Row(id="predict_saved_model_channels_differ", module="tfseaice.predict",
        args=lambda w, d: [f"--saved_model={w.export_sic}", f"--scene={w.good[0]}", f"--out={d}/out.nc",
                           "--channels=hh,hv,incidence_angle"] + INFER,
        message=lambda w, d: (esc(w.good[0]), r"the model takes 2 channel\(s\) but 3 were asked for")),
    Row(id="predict_flip_tta_of_a_saved_model", module="tfseaice.predict",
        args=lambda w, d: [f"--saved_model={w.export_sic}", f"--scene={w.good[0]}", f"--out={d}/out.nc",
                           "--flip_tta"] + INFER,
        message=lambda w, d: ("--flip_tta", "needs --model_dir")),
    Row(id="predict_model_of_another_task", module="tfseaice.predict",
        args=lambda w, d: [f"--model_dir={w.pix2pix_model}", f"--scene={w.good[0]}", f"--out={d}/out.nc"] + INFER,
        watch=lambda w, d: [d, w.pix2pix_model],
        message=lambda w, d: (esc(w.pix2pix_model), "holds a 'pix2pix' model")),
    Row(id="predict_existing_output", module="tfseaice.predict",
        setup=lambda w, d: write_text(os.path.join(d, "out.nc")),
        args=lambda w, d: [f"--model_dir={w.sic_model}", f"--scene={w.good[0]}", f"--out={d}/out.nc"] + INFER,
        message=lambda w, d: (esc(f"{d}/out.nc"), "output exists", "--overwrite")),
    Row(id="predict_truncated_weights", module="tfseaice.predict",
        setup=lambda w, d: (copy_model(w.sic_model, os.path.join(d, "model")),
                            truncate(os.path.join(d, "model", "checkpoints", "best.weights.h5"), 0.5)),
        args=lambda w, d: [f"--model_dir={d}/model", f"--scene={w.good[0]}", f"--out={d}/out.nc"] + INFER,
        message=lambda w, d: (esc(f"{d}/model/checkpoints/best.weights.h5"), "cannot (be )?(read|load)")),

    # ---- generate
    Row(id="generate_names_cannot_escape_out_dir", module="tfseaice.generate", ok=True, setup=gen_masks,
        args=lambda w, d: [f"--model_dir={w.pix2pix_model}", f"--out_dir={d}/out",
                           f"--masks_glob={d}/in/a/b/../../*_zones.png"],
        check=check_gen_escape),
    Row(id="generate_bad_mask_writes_nothing", module="tfseaice.generate", setup=gen_bad_masks,
        args=lambda w, d: [f"--model_dir={w.pix2pix_model}", f"--out_dir={d}/out", f"--masks_glob={d}/in/*.png"],
        message=lambda w, d: (esc(f"{d}/in/B_bad_zones.png"), r"zone values outside \{0, 64, 127, 254\}: 200")),
    Row(id="generate_model_of_another_task", module="tfseaice.generate",
        args=lambda w, d: [f"--model_dir={w.sic_model}", f"--out_dir={d}/out", "--random_masks=1"],
        watch=lambda w, d: [d, w.sic_model],
        message=lambda w, d: (esc(w.sic_model), "holds a 'sic_regional' model, not pix2pix")),
    Row(id="generate_existing_output", module="tfseaice.generate",
        setup=lambda w, d: write_text(os.path.join(d, "out", "x.png")),
        args=lambda w, d: [f"--model_dir={w.pix2pix_model}", f"--out_dir={d}/out", "--random_masks=1"],
        message=lambda w, d: (esc(f"{d}/out"), "output exists", "--overwrite")),
    Row(id="generate_glob_matches_nothing", module="tfseaice.generate",
        args=lambda w, d: [f"--model_dir={w.pix2pix_model}", f"--out_dir={d}/out", f"--masks_glob={d}/none*.png"],
        message=lambda w, d: ("--masks_glob", "matches no file")),

    # ---- export
    Row(id="export_existing_output", module="tfseaice.export",
        setup=lambda w, d: shutil.copytree(w.export_sic, os.path.join(d, "export")),
        args=lambda w, d: [f"--model_dir={w.sic_model}", f"--export_dir={d}/export"],
        message=lambda w, d: (esc(f"{d}/export"), "output exists", "--overwrite")),
    Row(id="export_task_json_of_unknown_task", module="tfseaice.export",
        setup=lambda w, d: copy_model(w.sic_model, os.path.join(d, "model"), task="evil"),
        args=lambda w, d: [f"--model_dir={d}/model", f"--export_dir={d}/export"],
        message=lambda w, d: (esc(f"{d}/model"), "holds a 'evil' model")),

    # ---- train: flags, data folders, model folders
    Row(id="train_missing_required_flag", module="tfseaice.train",
        args=lambda w, d: ["--task=sic_regional", f"--data_dir={w.records_sic}"],
        message=lambda w, d: ("--model_dir", "required flag not given")),
    Row(id="train_unknown_flag_in_flagfile", module="tfseaice.train",
        setup=lambda w, d: write_flagfile(os.path.join(d, "run.flags"), [
            "# a typo on line 4", "--task=sic_regional", f"--data_dir={w.records_sic}", "--epochz=3"]),
        args=lambda w, d: [f"--flagfile={d}/run.flags", f"--model_dir={d}/model"],
        message=lambda w, d: (esc(f"{d}/run.flags"), "line 4: unknown flag --epochz; did you mean --epochs\\?")),
    Row(id="train_dataset_info_missing", module="tfseaice.train",
        setup=lambda w, d: (shutil.copytree(w.records_sic, os.path.join(d, "data")),
                            os.remove(os.path.join(d, "data", "dataset_info.json"))),
        args=lambda w, d: [f"--data_dir={d}/data", f"--model_dir={d}/model"] + train_flags(),
        message=lambda w, d: (esc(f"{d}/data/dataset_info.json"), "missing: not a finished conversion")),
    Row(id="train_dataset_info_other_schema", module="tfseaice.train",
        setup=lambda w, d: (shutil.copytree(w.records_sic, os.path.join(d, "data")), json.dump(
            {**w.sic_info, "schema_version": 99}, open(os.path.join(d, "data", "dataset_info.json"), "w"))),
        args=lambda w, d: [f"--data_dir={d}/data", f"--model_dir={d}/model"] + train_flags(),
        message=lambda w, d: (esc(f"{d}/data"), "converted with schema version 99; this tfseaice reads version 2: "
                                                 "convert again")),
    Row(id="train_model_dir_of_another_task", module="tfseaice.train",
        setup=lambda w, d: copy_model(w.pix2pix_model, os.path.join(d, "model")),
        args=lambda w, d: [f"--data_dir={w.records_sic}", f"--model_dir={d}/model"] + train_flags(),
        message=lambda w, d: (esc(f"{d}/model"), "holds a 'pix2pix' model")),
    Row(id="train_existing_finished_run", module="tfseaice.train",
        setup=lambda w, d: copy_model(w.sic_model, os.path.join(d, "model")),
        args=lambda w, d: [f"--data_dir={w.records_sic}", f"--model_dir={d}/model"] + train_flags(),
        message=lambda w, d: (esc(f"{d}/model"), "finished training", "--overwrite")),
    Row(id="train_model_dir_with_other_channels", module="tfseaice.train", slow=True,
        setup=lambda w, d: copy_model(w.sic_model_3ch, os.path.join(d, "model")),
        args=lambda w, d: [f"--data_dir={w.records_train}", f"--model_dir={d}/model"] + train_flags(),
        message=lambda w, d: (esc(f"{d}/model"), "incidence_angle", "hh, hv")),
    Row(id="train_truncated_shard", module="tfseaice.train", slow=True, setup=corrupt_records,
        args=lambda w, d: [f"--data_dir={d}/data", f"--model_dir={d}/model"] + train_flags(),
        watch=lambda w, d: [os.path.join(d, "data")],
        message=lambda w, d: (esc(f"{d}/data/train-00000-of-00001.tfrecord"), "corrupt|truncated",
                              "--skip_corrupt")),
    Row(id="train_skip_corrupt_goes_on", module="tfseaice.train", slow=True, ok=True, setup=corrupt_records,
        args=lambda w, d: [f"--data_dir={d}/data", f"--model_dir={d}/model", "--skip_corrupt"] + train_flags(),
        check=check_skip_corrupt),

    # ---- train: NaN / Inf, failing checkpoint writes
    Row(id="train_nan_inf_inputs_are_masked", module="tfseaice.train", slow=True, ok=True,
        args=lambda w, d: [f"--data_dir={w.records_nan}", f"--model_dir={d}/model"] + train_flags(),
        check=check_nan_inf_masked),
    Row(id="train_nan_loss_stops_and_keeps_checkpoint", module="tfseaice.train", slow=True, setup=nan_loss_model,
        args=lambda w, d: [f"--data_dir={w.records_train}", f"--model_dir={d}/model"]
        + train_flags(learning_rate=1e38, steps_per_epoch=3),
        watch=model_ckpts,
        message=lambda w, d: (esc(f"{d}/model"), "loss became NaN", "last good checkpoint kept")),
    Row(id="train_pix2pix_nan_loss_stops", module="tfseaice.train", slow=True,
        setup=lambda w, d: copy_model(w.pix2pix_model, os.path.join(d, "model"), state="training"),
        args=lambda w, d: [f"--data_dir={w.records_glacier}", f"--model_dir={d}/model"]
        + train_flags(TRAIN_GAN, learning_rate=1e38),
        watch=model_ckpts,
        message=lambda w, d: (esc(f"{d}/model"), "NaN", "last good checkpoint kept")),
    Row(id="train_failing_checkpoint_write_keeps_previous", module="tfseaice.train", slow=True,
        wrapper=CKPT_WRAPPER,
        args=lambda w, d: [f"{d}/model/checkpoints", f"{d}/model/history.csv", f"{d}/latest.sha256",
                           f"--data_dir={w.records_train}", f"--model_dir={d}/model"]
        + train_flags(epochs=3, steps_per_epoch=1),
        watch=lambda w, d: [],
        message=lambda w, d: (esc(f"{d}/model/checkpoints/"), "No space left on device"),
        check=check_ckpt_fail),

    # ---- issue 24: empty and truncated files; one run per output folder
    Row(id="train_empty_shard", module="tfseaice.train",
        setup=lambda w, d: hf.empty_file(os.path.join(hf.records_copy(w.records_train, f"{d}/data"), hf.TRAIN_SHARD)),
        args=lambda w, d: [f"--data_dir={d}/data", f"--model_dir={d}/model"] + train_flags(image_every=1),
        message=lambda w, d: (esc(f"{d}/data/{hf.TRAIN_SHARD}"), r"empty \(0 bytes\)", "--skip_corrupt")),
    Row(id="train_skip_corrupt_skips_an_empty_shard", module="tfseaice.train", slow=True, ok=True,
        setup=lambda w, d: hf.two_shards_one_empty(w.records_train, f"{d}/data"),
        args=lambda w, d: [f"--data_dir={d}/data", f"--model_dir={d}/model", "--skip_corrupt"]
        + train_flags(image_every=1),
        check=check_empty_shard_skipped),
    Row(id="train_shard_cut_inside_a_record", module="tfseaice.train",
        setup=lambda w, d: hf.cut_inside_first_record(
            os.path.join(hf.records_copy(w.records_train, f"{d}/data"), hf.TRAIN_SHARD)),
        args=lambda w, d: [f"--data_dir={d}/data", f"--model_dir={d}/model"] + train_flags(image_every=1),
        message=lambda w, d: (esc(f"{d}/data/{hf.TRAIN_SHARD}"), "truncated", "cut inside record 1",
                              "--skip_corrupt")),
    Row(id="train_skip_corrupt_shard_cut_inside_its_first_record", module="tfseaice.train",
        setup=lambda w, d: hf.cut_inside_first_record(
            os.path.join(hf.records_copy(w.records_train, f"{d}/data"), hf.TRAIN_SHARD)),
        args=lambda w, d: [f"--data_dir={d}/data", f"--model_dir={d}/model", "--skip_corrupt"]
        + train_flags(image_every=1),
        message=lambda w, d: (esc(f"{d}/data/{hf.TRAIN_SHARD}"), "holds no whole TFRecord record")),
    Row(id="train_dataset_info_empty", module="tfseaice.train",
        setup=lambda w, d: hf.empty_file(os.path.join(hf.records_copy(w.records_sic, f"{d}/data"),
                                                      "dataset_info.json")),
        args=lambda w, d: [f"--data_dir={d}/data", f"--model_dir={d}/model"] + train_flags(),
        message=lambda w, d: (esc(f"{d}/data/dataset_info.json"), r"is empty \(0 bytes\)", "convert again")),
    Row(id="train_task_json_empty", module="tfseaice.train",
        setup=lambda w, d: (copy_model(w.sic_model, f"{d}/model", state="training"),
                            hf.empty_file(f"{d}/model/task.json")),
        args=lambda w, d: [f"--data_dir={w.records_train}", f"--model_dir={d}/model"] + train_flags(),
        message=lambda w, d: (esc(f"{d}/model/task.json"), r"is empty \(0 bytes\)", "restore it")),
    Row(id="predict_task_json_empty", module="tfseaice.predict",
        setup=lambda w, d: (copy_model(w.sic_model, f"{d}/model"), hf.empty_file(f"{d}/model/task.json")),
        args=lambda w, d: [f"--model_dir={d}/model", f"--scene={w.good[0]}", f"--out={d}/out.nc"] + INFER,
        message=lambda w, d: (esc(f"{d}/model/task.json"), r"is empty \(0 bytes\)")),
    Row(id="train_flagfile_not_text", module="tfseaice.train",
        setup=lambda w, d: open(f"{d}/run.flags", "wb").write(np.random.default_rng(24).bytes(300)),
        args=lambda w, d: [f"--flagfile={d}/run.flags"],
        message=lambda w, d: (esc(f"{d}/run.flags"), "is not a text flagfile")),
    Row(id="train_flagfile_empty", module="tfseaice.train",
        setup=lambda w, d: hf.empty_file(f"{d}/run.flags"),
        args=lambda w, d: [f"--flagfile={d}/run.flags"],
        message=lambda w, d: (esc(f"{d}/run.flags"), r"flagfile is empty \(0 bytes\)", "--task")),
    Row(id="train_resume_backup_truncated", module="tfseaice.train", setup=damaged_backup,
        args=lambda w, d: [f"--data_dir={w.records_train}", f"--model_dir={d}/model"] + train_flags(epochs=2),
        watch=lambda w, d: [f"{d}/model/checkpoints"],
        message=lambda w, d: (esc(f"{d}/model/checkpoints/backup/epoch_0001.weights.h5"),
                              "cannot load the resume backup", "delete")),
    Row(id="train_two_runs_race_into_one_folder", module="tfseaice.train", slow=True, wrapper=hf.RACE_WRAPPER,
        args=lambda w, d: [f"{d}/go", f"--data_dir={w.records_sic}", f"--model_dir={d}/model"]
        + train_flags(epochs=2, image_every=1),
        watch=lambda w, d: [],
        message=lambda w, d: (esc(f"{d}/model"), "is in use by another run", r"host \S+, pid \d+, started 20\d\d-"),
        check=check_race),
    Row(id="train_resumes_after_sigkill_taking_over_the_stale_lock", module="tfseaice.train", slow=True, ok=True,
        wrapper=hf.STALE_WRAPPER,
        args=lambda w, d: [f"{d}/model", f"--data_dir={w.records_train}", f"--model_dir={d}/model"]
        + train_flags(epochs=3, steps_per_epoch=1),
        check=check_stale_resume),
    Row(id="train_multi_worker_chief_holds_the_lock", module="tfseaice.train", slow=True, ok=True,
        wrapper=hf.MULTI_WORKER_WRAPPER,
        args=lambda w, d: [f"{d}/model", f"{d}/seen", f"--data_dir={w.records_train}", f"--model_dir={d}/model",
                           "--strategy=multi_worker"] + train_flags(epochs=2),
        check=check_multi_worker_lock),
    Row(id="convert_into_a_folder_another_conversion_writes", module="data_prep.ai4arctic_to_tfrecord",
        wrapper=hf.HOLD_WRAPPER,
        args=lambda w, d: [f"{d}/records", "data_prep.ai4arctic_to_tfrecord", f"--input_glob={w.good_dir}/*.nc",
                           f"--output_dir={d}/records"] + SIC_CONVERT,
        message=lambda w, d: (esc(f"{d}/records"), "is in use by another run", r"pid \d+")),
    Row(id="predict_into_an_output_another_run_writes", module="tfseaice.predict", wrapper=hf.HOLD_WRAPPER,
        args=lambda w, d: [f"{d}/out.nc", "tfseaice.predict", f"--model_dir={w.sic_model}", f"--scene={w.good[0]}",
                           f"--out={d}/out.nc"] + INFER,
        message=lambda w, d: (esc(f"{d}/out.nc"), "is in use by another run", r"pid \d+")),
]


# --------------------------------------------------------------- machinery
@dataclasses.dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str
    before: dict
    after: dict
    seconds: float
    cpu_seconds: float = float("nan")


def error_lines(stderr):
    return [ln for ln in stderr.splitlines() if ln.startswith("ERROR: ")]


def _command(row, w, d):
    args = [str(a) for a in row.args(w, d)]
    if row.wrapper:
        return [sys.executable, "-c", row.wrapper] + args
    return [sys.executable, "-m", row.module] + args


def _watched(row, w, d):
    return [str(p) for p in (row.watch(w, d) if row.watch else [d])]


def _run(row, w, d, before):
    t0 = time.time()
    cmd = _command(row, w, d)
    cpu_file = None
    if os.environ.get("TFSEAICE_HOSTILE_TIMES") and shutil.which("time") and os.path.exists("/usr/bin/time"):
        cpu_file = d + ".cpu"   # beside the row folder: not part of any watched tree
        cmd = ["/usr/bin/time", "-o", cpu_file, "-f", "%U %S"] + cmd
    res = subprocess.run(cmd, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=row.timeout)
    after = {p: hf.tree(p) for p in before}
    cpu = sum(float(v) for v in open(cpu_file).read().split()[-2:]) if cpu_file else float("nan")
    return Result(res.returncode, res.stdout, res.stderr, before, after, time.time() - t0, cpu)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return hf.build_world(tmp_path_factory.mktemp("hostile"))


@pytest.fixture(scope="module")
def runs(world, request):
    """Start every selected row at once in a small thread pool (slowest first); {row id: Future}."""
    selected = {item.callspec.params["row"].id for item in request.session.items
                if hasattr(item, "callspec") and isinstance(item.callspec.params.get("row"), Row)}
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=WORKERS)
    futures = {}
    for row in sorted((r for r in ROWS if r.id in selected), key=lambda r: not r.slow):
        d = world.row_dir(row.id)
        if row.setup:
            row.setup(world, d)
        before = {p: hf.tree(p) for p in _watched(row, world, d)}
        futures[row.id] = pool.submit(_run, row, world, d, before)
    yield futures
    for f in futures.values():
        f.cancel()
    pool.shutdown(wait=True)
    report = os.environ.get("TFSEAICE_HOSTILE_TIMES")   # a file: per-row seconds, slowest first
    if report:
        done = {k: f.result() for k, f in futures.items() if f.done() and not f.cancelled()}
        with open(report, "w") as f:
            for k, r in sorted(done.items(), key=lambda kv: -kv[1].seconds):
                f.write(f"{r.seconds:7.1f} s wall {r.cpu_seconds:6.1f} s cpu  rc={r.returncode}  {k}\n")


@pytest.mark.parametrize("row", [pytest.param(r, id=r.id) for r in ROWS])
def test_entry_point_row(row, world, runs):
    d = world.row_dir(row.id)
    res = runs[row.id].result()
    tail = f"\n--- stderr (tail) ---\n{res.stderr[-3000:]}\n--- stdout (tail) ---\n{res.stdout[-1000:]}"
    if row.verbose:
        assert res.returncode != 0 and "Traceback" in res.stderr and "InputError" in res.stderr, tail
        assert res.after == res.before
        return
    assert "Traceback" not in res.stderr, tail
    lines = error_lines(res.stderr)
    expected_lines = row.errors if row.errors is not None else (0 if row.ok else 1)
    assert len(lines) == expected_lines, f"ERROR lines {lines}" + tail
    if row.ok:
        assert res.returncode == 0, tail
    else:
        assert res.returncode != 0, tail
        for pattern in row.message(world, d):
            assert re.search(pattern, lines[0]), f"{pattern!r} not in {lines[0]!r}"
        for path, tree_before in res.before.items():
            changed = sorted(set(tree_before.items()) ^ set(res.after[path].items()))
            assert not changed, f"{path} changed: {changed[:6]}"
    if row.check:
        row.check(world, d, res)


# ------------------------------------------------------- serving (in-process)
@pytest.fixture(scope="module")
def serving(world):
    import tensorflow as tf

    return tf.saved_model.load(world.export_sic).signatures["serving_default"]


def test_serving_wrong_channel_count_is_a_clear_error(serving):
    import tensorflow as tf

    with pytest.raises(tf.errors.InvalidArgumentError) as err:
        serving(sar=tf.zeros([1, 32, 32, 3]))
    assert "sar must have 2 channels (hh, hv) in the last axis; got" in str(err.value)


def test_serving_wrong_dtype_is_a_clear_error(serving):
    """TF refuses the call before our graph runs; its message names both dtypes (TF's names)."""
    import tensorflow as tf

    for dtype, name in ((tf.float64, "double"), (tf.int32, "int32"), (tf.uint8, "uint8")):
        with pytest.raises((TypeError, tf.errors.InvalidArgumentError)) as err:
            serving(sar=tf.zeros([1, 32, 32, 2], dtype))
        text = str(err.value).splitlines()[0]
        assert "expected to be a float tensor" in text and f"is a {name} tensor" in text, text


@pytest.mark.parametrize("shape", [[32, 32, 2], [1, 32, 32]])
def test_serving_wrong_rank_is_a_clear_error(serving, shape):
    """A single image without its batch axis (a common REST mistake) names the expected rank."""
    import tensorflow as tf

    with pytest.raises(tf.errors.InvalidArgumentError) as err:
        serving(sar=tf.zeros(shape))
    text = str(err.value)
    expected = f"Shape of tensor sar [{','.join(map(str, shape))}] is not compatible with expected shape [?,?,?,?]"
    assert expected in text and "sar_must_be_batch_h_w_c" in text, text[:500]


# ---------------------------------------------------------- safety (in-process)
SOURCE_DIRS = ("tfseaice", "data_prep")
FORBIDDEN = [
    (r"^\s*(import|from)\s+(c?pickle|dill|joblib|shelve|marshal)\b", "imports a pickle-like module"),
    (r"allow_pickle\s*=\s*True", "np.load with allow_pickle=True"),
    (r"(?<![\w.])(eval|exec)\s*\(", "eval/exec"),
    (r"safe_mode\s*=\s*False", "Keras safe_mode disabled"),
    (r"enable_unsafe_deserialization", "Keras unsafe deserialization"),
    (r"yaml\.(unsafe_)?load\s*\(", "yaml.load"),
    (r"\bLambda\s*\(", "a Keras Lambda layer (not loadable in safe_mode)"),
]


def test_no_code_unpickles_or_evaluates_user_files():
    found = []
    for top in SOURCE_DIRS:
        for path in glob.glob(os.path.join(REPO, top, "**", "*.py"), recursive=True):
            for no, line in enumerate(open(path, encoding="utf-8"), 1):
                for pattern, what in FORBIDDEN:
                    if re.search(pattern, line):
                        found.append(f"{os.path.relpath(path, REPO)}:{no}: {what}: {line.strip()}")
    assert not found, "\n".join(found)


def test_our_keras_files_load_in_safe_mode(world, tmp_path):
    import keras
    import tensorflow as tf

    from tfseaice.serving.loading import load_trained

    for model_dir, x in ((world.sic_model, np.random.default_rng(0).normal(-20, 5, (1, 32, 32, 2))),
                         (world.pix2pix_model, None)):
        model, _ = load_trained(model_dir)
        net = getattr(model, "unet", None) or model.generator
        if x is None:
            x = np.eye(4, dtype="float32")[np.random.default_rng(1).integers(0, 4, (1, 256, 256))]
        path = str(tmp_path / (os.path.basename(model_dir) + ".keras"))
        net.save(path)
        loaded = keras.saving.load_model(path, safe_mode=True)
        np.testing.assert_allclose(loaded(tf.constant(x, tf.float32), training=False).numpy(),
                                   net(tf.constant(x, tf.float32), training=False).numpy(), atol=1e-5)
        whole = str(tmp_path / (os.path.basename(model_dir) + "_task_model.keras"))
        model.save(whole)
        keras.saving.load_model(whole, safe_mode=True)


class _OpenWatch:
    """Record the files opened (by any process) in a folder tree, with Linux inotify."""

    IN_OPEN = 0x20
    IN_CREATE = 0x100
    IN_ISDIR = 0x40000000

    def __init__(self, root):
        libc_name = ctypes.util.find_library("c")
        self.libc = ctypes.CDLL(libc_name, use_errno=True)
        self.fd = self.libc.inotify_init1(os.O_NONBLOCK)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        self.dirs = {}
        for dirpath, _, _ in os.walk(root):
            wd = self.libc.inotify_add_watch(self.fd, dirpath.encode(), self.IN_OPEN | self.IN_CREATE)
            self.dirs[wd] = dirpath
        self.opened = set()

    def drain(self):
        while True:
            try:
                buf = os.read(self.fd, 65536)
            except BlockingIOError:
                return
            i = 0
            while i < len(buf):
                wd, mask, _, n = struct.unpack_from("iIII", buf, i)
                name = buf[i + 16:i + 16 + n].rstrip(b"\0").decode()
                i += 16 + n
                if mask & self.IN_OPEN and name and not mask & self.IN_ISDIR:
                    self.opened.add(os.path.join(self.dirs[wd], name))

    def close(self):
        self.drain()
        os.close(self.fd)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify is Linux only")
def test_predict_reads_only_task_json_and_weights(world, tmp_path):
    """Loading a model folder opens task.json and one .weights.h5, nothing else (no pickles, no .keras)."""
    model = copy_model(world.sic_model, str(tmp_path / "model"))
    poison = {"model.keras": b"PK\x03\x04 not a model", "saved_model.pb": b"junk", "model.pkl": b"\x80\x04junk",
              os.path.join("checkpoints", "best.keras"): b"junk", "config.json": b"{"}
    for name, data in poison.items():
        with open(os.path.join(model, name), "wb") as f:
            f.write(data)
    watch = _OpenWatch(model)
    stop = threading.Event()

    def pump():
        while not stop.is_set():
            watch.drain()
            stop.wait(0.05)

    t = threading.Thread(target=pump)
    t.start()
    try:
        res = subprocess.run([sys.executable, "-m", "tfseaice.predict", f"--model_dir={model}",
                              f"--scene={world.good[0]}", f"--out={tmp_path / 'out.nc'}"] + INFER,
                             cwd=REPO, env=ENV, capture_output=True, text=True, timeout=600)
    finally:
        stop.set()
        t.join()
        watch.close()
    assert res.returncode == 0, res.stderr[-3000:]
    opened = {os.path.relpath(p, model) for p in watch.opened}
    assert opened == {"task.json", os.path.join("checkpoints", "best.weights.h5")}, opened
