"""Inputs for tests/test_hostile_input.py: good and broken scenes, glacier folders,
TFRecord folders and tiny model folders, all built in-process in a few seconds.

`build_world(root)` writes everything under `root` and returns a `World` with
the paths. Every input is made from a seeded good one with one thing broken,
so a test failure points at exactly one problem.
"""

import dataclasses
import hashlib
import json
import os
import shutil

import numpy as np
import xarray as xr
from PIL import Image

from tfseaice.data import ai4arctic, glacier, records
from tfseaice.data.patches import iter_patches
from tfseaice.simulate.scenes import make_scene, raw_file_name
from tfseaice.simulate.writers import write_scene

SCENE_SIZE = 128          # 40 m pixels; --downsample=2 -> 64 x 64
PATCH = 32
CHANNELS = ("hh", "hv")
SIC_FILTERS = [4, 8, 8, 8]
GAN_FILTERS = 4
GLACIER_SIZE = 64         # glacier converter rows: 64 x 64 images, 32 x 32 patches
GAN_PATCH = 256           # pix2pix needs 256 x 256 (8 stride-2 levels)


# --------------------------------------------------------------- tree hashes
def tree(path):
    """{relative path: sha256 | "<dir>"} of everything under `path` ({} if absent; a file: {"": sha})."""
    path = os.fspath(path)
    if not os.path.exists(path):
        return {}
    if os.path.isfile(path):
        return {"": _sha(path)}
    out = {}
    for dirpath, dirnames, filenames in os.walk(path):
        rel = os.path.relpath(dirpath, path)
        for d in dirnames:
            out[os.path.normpath(os.path.join(rel, d))] = "<dir>"
        for f in filenames:
            out[os.path.normpath(os.path.join(rel, f))] = _sha(os.path.join(dirpath, f))
    return out


def _sha(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ------------------------------------------------------------------ netCDF
def _codes(ds):
    return [str(c) for c in ds["polygon_codes"].values]


def _with_codes(ds, rows):
    return ds.assign_coords(polygon_codes=("polygon_codes", np.array(rows, dtype=object)))


def _labelled_present_row(ds):
    """Index (in polygon_codes) of a polygon with a SIC label that covers the most pixels."""
    ids, counts = np.unique(ds["polygon_icechart"].values[np.isfinite(ds["polygon_icechart"].values)],
                            return_counts=True)
    rows = _codes(ds)
    best, best_n = None, -1
    for i, row in enumerate(rows[1:], start=1):
        f = row.split(";")
        pid, ct, ptype = int(f[0]), int(f[1]), f[-1]
        n = int(counts[ids == pid].sum()) if pid in ids else 0
        if ptype == "I" and (ct in (91, 92) or (10 <= ct <= 90 and ct % 10 == 0)) and n > best_n:
            best, best_n = i, n
    return best


def _set_field(row, index, value):
    f = row.split(";")
    f[index] = value
    return ";".join(f)


def edit_shape(ds):
    chart = ds["polygon_icechart"].values[:, : SCENE_SIZE - 8]
    ds = ds.drop_vars("polygon_icechart")
    return ds.assign(polygon_icechart=(("chart_lines", "chart_samples"), chart))


def edit_all_nan(ds):
    return ds.assign(nersc_sar_primary=ds["nersc_sar_primary"] * np.nan,
                     nersc_sar_secondary=ds["nersc_sar_secondary"] * np.nan)


def edit_bad_header(ds):
    rows = _codes(ds)
    return _with_codes(ds, ["polyid;CT;CA;SA;FA;CB;SB;FB;CC;SC;FC;CN;CD;CF;POLY_TYPE"] + rows[1:])


def edit_ct_not_numeric(ds):
    rows = _codes(ds)
    rows[1] = _set_field(rows[1], 1, "9X")
    return _with_codes(ds, rows)


def edit_duplicate_ids(ds):
    rows = _codes(ds)
    first = rows[1].split(";")[0]
    rows[2] = _set_field(rows[2], 0, first)
    return _with_codes(ds, rows)


def edit_id_missing_from_table(ds):
    chart = ds["polygon_icechart"].values.copy()
    finite = np.argwhere(np.isfinite(chart))
    r, c = finite[len(finite) // 2] // 4 * 4
    chart[r:r + 4, c:c + 4] = 123456           # a 4x4 block: survives the 2x2 majority vote
    return ds.assign(polygon_icechart=(ds["polygon_icechart"].dims, chart))


def edit_unknown_ct(ds):
    rows = _codes(ds)
    i = _labelled_present_row(ds)
    rows[i] = _set_field(rows[i], 1, "77")
    return _with_codes(ds, rows)


def unknown_ct_poly_id(path):
    """poly_id whose CT the unknown-CT edit set to 77."""
    with xr.open_dataset(path) as ds:
        for row in _codes(ds)[1:]:
            f = row.split(";")
            if f[1] == "77":
                return int(f[0])
    raise AssertionError("no CT 77 in " + path)


def edit_odd_poly_type(ds):
    """A labelled polygon present in the raster gets the SIGRID-3 type L (land): unlabelled, not fatal."""
    rows = _codes(ds)
    i = _labelled_present_row(ds)
    rows[i] = _set_field(rows[i], -1, "L")
    return _with_codes(ds, rows)


def odd_poly_type_id(path):
    """poly_id whose POLY_TYPE the odd-type edit set to L."""
    with xr.open_dataset(path) as ds:
        for row in _codes(ds)[1:]:
            f = row.split(";")
            if f[-1] == "L":
                return int(f[0])
    raise AssertionError("no POLY_TYPE L in " + path)


def edit_small(ds):
    return ds.isel(sar_lines=slice(0, 48), sar_samples=slice(0, 48))


def edit_no_label(ds):
    rows = _codes(ds)
    out = [rows[0]]
    for row in rows[1:]:
        row = _set_field(row, 1, "99")
        out.append(_set_field(row, -1, "I"))
    return _with_codes(ds, out)


def edit_drop_hv(ds):
    return ds.drop_vars("nersc_sar_secondary")


NETCDF_EDITS = {
    "missing_variable": edit_drop_hv,
    "shape_mismatch": edit_shape,
    "all_nan_sar": edit_all_nan,
    "codes_bad_header": edit_bad_header,
    "codes_ct_not_numeric": edit_ct_not_numeric,
    "codes_duplicate_ids": edit_duplicate_ids,
    "raster_id_not_in_table": edit_id_missing_from_table,
    "unknown_ct_code": edit_unknown_ct,
    "odd_poly_type": edit_odd_poly_type,
    "smaller_than_patch": edit_small,
    "no_labelled_polygon": edit_no_label,
}


def write_edited(src, dst, edit):
    with xr.open_dataset(src) as ds:
        ds = edit(ds.load())
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    ds.to_netcdf(dst)
    return dst


# ------------------------------------------------------------------ records
def sic_info(channels, shard_names, counts, max_k, norm=None):
    """A dataset_info.json dict as the converter writes it (a split without shard: no shard listed)."""
    c = len(channels)
    return {
        "schema_version": records.SCHEMA_VERSION, "kind": "sic", "created_by": "tests/hostile_fixtures.py",
        "channels": list(channels), "sar_units": "dB",
        "normalization": norm or {"mean": [-14.5, -24.7, 34.0][:c], "std": [5.7, 4.8, 8.0][:c]},
        "patch_size": PATCH, "stride": PATCH, "downsample": 2, "pixel_spacing_m": 80,
        "val_fraction": 0.5, "seed": 1, "has_truth": True, "max_polygons_per_patch": max_k,
        "num_scenes_failed": 0, "num_patches_dropped_unlabelled": 0,
        "splits": {s: {"scenes": [], "num_examples": counts[s], "shards": [shard_names[s]] if counts[s] else []}
                   for s in ("train", "val")},
    }


def write_sic_records(out_dir, scene_paths, channels=CHANNELS, poison=None, val=True):
    """Train shard from scene 0, val shard from scene 1 (unless not `val`), + dataset_info.json.

    `poison(sar) -> sar` edits the SAR of every training patch (NaN/Inf rows).
    Training rows use data without a validation split: one compiled step less.
    """
    import tensorflow as tf

    os.makedirs(out_dir, exist_ok=True)
    counts, names, max_k = {}, {}, 0
    counts["val"], names["val"] = 0, None
    for split, path in (("train", scene_paths[0]), ("val", scene_paths[1]))[: 2 if val else 1]:
        scene = ai4arctic.read_scene(path, channels, downsample=2)
        names[split] = f"{split}-00000-of-00001.tfrecord"
        n = 0
        with tf.io.TFRecordWriter(os.path.join(out_dir, names[split])) as w:
            for p in iter_patches(scene, PATCH, PATCH):
                sar = p.sar.copy()
                if poison is not None and split == "train":
                    sar = poison(sar)
                w.write(records.encode_sic(sar, p.polygon_ids, p.polygon_sic, p.polygon_global_id,
                                           p.polygon_pixel_count, scene.scene_id, p.offset, p.sic_truth,
                                           **p.record_tables()))
                n += 1
                max_k = max(max_k, len(p.polygon_sic))
        counts[split] = n
    info = sic_info(channels, names, counts, max_k)
    with open(os.path.join(out_dir, "dataset_info.json"), "w") as f:
        json.dump(info, f, indent=2)
    return info


def poison_nan_inf(sar):
    """Put NaN, +Inf and -Inf into labelled SAR pixels of a patch."""
    sar = sar.copy()
    sar[0:4, 0:4, 0] = np.nan
    sar[4:8, 0:4, 1] = np.inf
    sar[8:12, 0:4, :] = -np.inf
    return sar


def glacier_info(shard_names, counts, patch):
    return {
        "schema_version": records.SCHEMA_VERSION, "kind": "glacier", "created_by": "tests/hostile_fixtures.py",
        "patch_size": patch, "split_unit": "patch", "val_fraction": 0.5, "seed": 1,
        "num_classes": glacier.NUM_CLASSES, "class_names": list(glacier.CLASS_NAMES),
        "zone_values": list(glacier.ZONE_VALUES), "extra_channels": [],
        "class_stats": {"train": {c: {"pixels": 1, "mean": 0.3, "std": 0.1} for c in glacier.CLASS_NAMES}},
        "num_images_failed": 0, "num_patches_dropped_nodata": 0,
        "splits": {s: {"num_examples": counts[s], "num_images": 1, "shards": [shard_names[s]]}
                   for s in ("train", "val")},
    }


def zones_image(h, w, rng):
    """A fjord-like zone mask with every zone value: rock left, glacier, ocean right, no-data corner."""
    z = np.full((h, w), 127, np.uint8)
    z[:, : w // 4] = 64
    z[:, (3 * w) // 4:] = 254
    z[: h // 8, : w // 8] = 0
    z[rng.integers(0, h, 20), rng.integers(0, w, 20)] = 64
    return z


def sar_image(zones, rng):
    base = np.choose(np.searchsorted(glacier.ZONE_VALUES, zones), [0, 140, 90, 40]).astype(np.float64)
    noisy = base * rng.gamma(4.4, 1 / 4.4, zones.shape)
    return np.where(zones == 0, 0, np.clip(noisy, 1, 255)).astype(np.uint8)


def write_glacier_records(out_dir, n_train=2, n_val=1, patch=GAN_PATCH, seed=0):
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    os.makedirs(out_dir, exist_ok=True)
    counts, names = {}, {}
    for split, n in (("train", n_train), ("val", n_val)):
        names[split] = f"{split}-00000-of-00001.tfrecord"
        with tf.io.TFRecordWriter(os.path.join(out_dir, names[split])) as w:
            for i in range(n):
                z = zones_image(patch, patch, rng)
                w.write(records.encode_glacier(sar_image(z, rng), glacier.zones_to_classes(z),
                                               f"SYN_{split}_{i}", (0, 0)))
        counts[split] = n
    info = glacier_info(names, counts, patch)
    with open(os.path.join(out_dir, "dataset_info.json"), "w") as f:
        json.dump(info, f, indent=2)
    return info


# ----------------------------------------------------------------- glacier
def write_pair(root, split, name, sar, zones):
    """Write NAME.png and NAME_zones.png from numpy arrays.

    Pillow infers the mode from the array (uint16 -> "I;16", uint8 [H, W, 3] ->
    "RGB"): passing a mode to `Image.fromarray` is deprecated and Pillow 13
    refuses "I;16" for uint16 data, so no mode is passed.
    """
    for folder, fname, arr in (("sar_images", f"{name}.png", sar), ("zones", f"{name}_zones.png", zones)):
        if arr is None:
            continue
        d = os.path.join(root, folder, split)
        os.makedirs(d, exist_ok=True)
        Image.fromarray(arr).save(os.path.join(d, fname))


GOOD_GLACIER = "COL_2011-01-01_TSX_6_1_048"
BAD_GLACIER = "JAC_2012-02-02_TDX_6_1_099"


def glacier_root(root, bad=None, good=True, seed=0):
    """A CaFFe data root with one good image and (optionally) one broken one."""
    rng = np.random.default_rng(seed)
    s = GLACIER_SIZE
    z = zones_image(s, s, rng)
    if good:
        write_pair(root, "train", GOOD_GLACIER, sar_image(z, rng), z)
    if bad == "no_mask":
        write_pair(root, "train", BAD_GLACIER, sar_image(z, rng), None)
    elif bad == "mask_size":
        write_pair(root, "train", BAD_GLACIER, sar_image(z, rng), z[:, : s - 4])
    elif bad == "mask_values":
        zz = z.copy()
        zz[10:20, 10:20] = 200
        write_pair(root, "train", BAD_GLACIER, sar_image(z, rng), zz)
    for folder in ("sar_images", "zones"):
        os.makedirs(os.path.join(root, folder, "train"), exist_ok=True)
    return root


def glacier_root_rgb16(root, seed=1):
    """One RGB SAR image + 8-bit mask, one 16-bit SAR image + 16-bit mask (values x 257).

    Returns {name: expected uint8 SAR after conversion}.
    """
    rng = np.random.default_rng(seed)
    s = GLACIER_SIZE
    z = zones_image(s, s, rng)
    gray = sar_image(z, rng)
    rgb = np.stack([gray, np.roll(gray, 3, axis=1), 255 - gray], axis=-1).astype(np.uint8)
    write_pair(root, "train", "RGB_2011-01-01_S1_40_1_001", rgb, z)
    expected_rgb = np.asarray(Image.fromarray(rgb).convert("L"))
    sar16 = (gray.astype(np.uint16) * 257 + rng.integers(0, 200, gray.shape)).astype(np.uint16)
    write_pair(root, "train", "BIT_2011-01-01_S1_40_1_002", sar16, (z.astype(np.uint16) * 257))
    for folder, suffix in (("sar_images", ""), ("zones", "_zones")):  # the case under test: 16-bit files
        with Image.open(os.path.join(root, folder, "train", f"BIT_2011-01-01_S1_40_1_002{suffix}.png")) as im:
            assert im.mode.startswith("I"), im.mode
    expected_16 = np.clip(np.rint(sar16 / 257.0), 0, 255).astype(np.uint8)
    return {"RGB_2011-01-01_S1_40_1_001": (expected_rgb, z), "BIT_2011-01-01_S1_40_1_002": (expected_16, z)}


# ------------------------------------------------------------------ models
def sic_model_dir(model_dir, data_dir, info, state="complete", task="sic_regional"):
    """A SIC model folder as training leaves it: task.json + checkpoints/{best,latest}.weights.h5."""
    from tfseaice.training.config import TrainConfig
    from tfseaice.tasks import get_task

    cfg = TrainConfig(task=task, data_dir=data_dir, model_dir=model_dir,
                               extra={"filters": list(SIC_FILTERS)})
    model = get_task(task).build_model(cfg, info)
    return _write_model_dir(model, cfg, info, model_dir, state)


def _write_model_dir(model, cfg, info, model_dir, state):
    """What run_training leaves: best/latest weights and task.json."""
    from tfseaice.training.model_dir import save_weights_atomic, write_task_file

    ck = os.path.join(model_dir, "checkpoints")
    os.makedirs(ck, exist_ok=True)
    for name in ("best", "latest"):
        save_weights_atomic(model, os.path.join(ck, f"{name}.weights.h5"))
    write_task_file(cfg, info, state)
    return model


def pix2pix_model_dir(model_dir, data_dir, info, state="complete"):
    from tfseaice.training.config import TrainConfig
    from tfseaice.tasks import pix2pix

    cfg = TrainConfig(task="pix2pix", data_dir=data_dir, model_dir=model_dir, learning_rate=2e-4,
                               extra={"generator_filters": GAN_FILTERS, "discriminator_filters": GAN_FILTERS,
                                      "checkpoint_every": 1, "augment": False})
    model = pix2pix.build_pix2pix(cfg, info)
    return _write_model_dir(model, cfg, info, model_dir, state)


def copy_tree(src, dst):
    shutil.copytree(src, dst)
    return dst


# ------------------------------------------------------------------- world
@dataclasses.dataclass
class World:
    root: str
    good: list            # two good raw scenes
    good_dir: str         # folder holding only the good scenes
    bad: dict             # kind -> path of a single broken scene (each in its own folder)
    records_sic: str
    records_nan: str
    records_train: str    # records_sic without its validation split (training rows)
    records_glacier: str
    sic_model: str
    sic_model_3ch: str    # state "training", channels hh, hv, incidence_angle
    pix2pix_model: str
    export_sic: str
    sic_info: dict

    def row_dir(self, row_id):
        d = os.path.join(self.root, "rows", row_id)
        os.makedirs(d, exist_ok=True)
        return d


def build_world(root):
    root = os.fspath(root)
    good_dir = os.path.join(root, "scenes", "good")
    good = []
    for seed in (21, 22):
        ds = make_scene(seed=seed, size=SCENE_SIZE)
        path = os.path.join(good_dir, raw_file_name(ds))
        write_scene(ds, path)
        good.append(path)
    name = os.path.basename(good[0])
    bad = {}
    for kind, edit in NETCDF_EDITS.items():
        bad[kind] = write_edited(good[0], os.path.join(root, "scenes", kind, name), edit)
    d = os.path.join(root, "scenes", "not_netcdf")
    os.makedirs(d)
    bad["not_netcdf"] = os.path.join(d, name)
    with open(bad["not_netcdf"], "w") as f:
        f.write("this is not a netCDF file\n")
    d = os.path.join(root, "scenes", "truncated")
    os.makedirs(d)
    bad["truncated"] = os.path.join(d, name)
    data = open(good[0], "rb").read()
    with open(bad["truncated"], "wb") as f:
        f.write(data[: len(data) // 3])

    records_sic = os.path.join(root, "records_sic")
    info = write_sic_records(records_sic, good)
    records_nan = os.path.join(root, "records_nan")
    write_sic_records(records_nan, good, poison=poison_nan_inf, val=False)
    records_train = os.path.join(root, "records_train")
    write_sic_records(records_train, good, val=False)
    records_glacier = os.path.join(root, "records_glacier")
    ginfo = write_glacier_records(records_glacier)

    sic_model = os.path.join(root, "models", "sic")
    model = sic_model_dir(sic_model, records_sic, info)
    info3 = sic_info(("hh", "hv", "incidence_angle"), {"train": "x", "val": "y"}, {"train": 1, "val": 1},
                     info["max_polygons_per_patch"])
    sic_model_3ch = os.path.join(root, "models", "sic_3ch")
    sic_model_dir(sic_model_3ch, records_sic, info3, state="training")
    pix2pix_model = os.path.join(root, "models", "pix2pix")
    pix2pix_model_dir(pix2pix_model, records_glacier, ginfo)

    from tfseaice.serving.sic_export import export_sic

    export_dir = os.path.join(root, "export_sic")
    export_sic(model, export_dir, info)
    return World(root=root, good=good, good_dir=good_dir, bad=bad, records_sic=records_sic,
                 records_nan=records_nan, records_train=records_train, records_glacier=records_glacier, sic_model=sic_model,
                 sic_model_3ch=sic_model_3ch, pix2pix_model=pix2pix_model, export_sic=export_dir,
                 sic_info=info)


# ------------------------------------------------ damaged files (issue 24)
TRAIN_SHARD = "train-00000-of-00001.tfrecord"


def records_copy(src, dst):
    """A copy of the converted folder `src` (a row damages its copy, never the shared one)."""
    shutil.copytree(src, dst)
    return dst


def empty_file(path):
    """Cut `path` to 0 bytes: what a copy or sync that stopped at once leaves."""
    open(path, "wb").close()
    return path


def cut_inside_first_record(path):
    """Cut a TFRecord file in the middle of its first record (a download that stopped early)."""
    data = open(path, "rb").read()
    length = int.from_bytes(data[:8], "little")
    with open(path, "wb") as f:
        f.write(data[: 12 + length // 2])
    return path


def two_shards_one_empty(src, dst):
    """`src`'s training shard twice (train-0000{0,1}-of-00002), the second one emptied: the split
    lists both and counts both shards' examples, so the empty one lost data."""
    os.makedirs(dst)
    info = json.load(open(os.path.join(src, "dataset_info.json")))
    names = [f"train-0000{i}-of-00002.tfrecord" for i in range(2)]
    for name in names:
        shutil.copy(os.path.join(src, TRAIN_SHARD), os.path.join(dst, name))
    empty_file(os.path.join(dst, names[1]))
    train = info["splits"]["train"]
    train.update(shards=names, num_examples=2 * train["num_examples"])
    with open(os.path.join(dst, "dataset_info.json"), "w") as f:
        json.dump(info, f, indent=2)
    return os.path.join(dst, names[1])


def lock_file(output):
    """Where tfseaice.run_lock keeps the lock of `output` (beside it)."""
    parent, name = os.path.split(os.path.abspath(output))
    return os.path.join(parent, f".{name}.lock")


# Runs `python -m MODULE ARGS...` while this process holds the lock of OUTPUT (another run writing it).
# argv: OUTPUT MODULE ARGS...
HOLD_WRAPPER = r"""
import os, subprocess, sys
from tfseaice import run_lock
output, argv = sys.argv[1], sys.argv[2:]
with run_lock.RunLock(output):
    print("HOLDER", os.getpid(), flush=True)
    res = subprocess.run([sys.executable, "-m"] + argv, capture_output=True, text=True)
sys.stdout.write(res.stdout)
sys.stderr.write(res.stderr)
sys.exit(res.returncode)
"""

# Two `python -m tfseaice.train ARGS` started together into one --model_dir. Each waits at the
# start of fit until the file GO exists; GO is made when one of them has ended (the refused one),
# or after 90 s (without a lock neither ends: both then train into the folder at once).
# argv: GO ARGS...  Prints "RUN <i> pid <pid> rc <rc>" per run; stderr = both runs' stderr.
RACE_WRAPPER = r"""
import os, subprocess, sys, time
go, args = sys.argv[1], sys.argv[2:]
HOOK = '''
import os, runpy, sys, time
go = sys.argv.pop(1)
import keras
orig = keras.Model.fit
def fit(self, *a, **k):
    for _ in range(1200):
        if os.path.exists(go):
            break
        time.sleep(0.1)
    return orig(self, *a, **k)
keras.Model.fit = fit
sys.argv = ["tfseaice.train"] + sys.argv[1:]
runpy.run_module("tfseaice.train", run_name="__main__", alter_sys=True)
'''
logs = [open(f"{go}.{i}.err", "w+") for i in range(2)]
procs = [subprocess.Popen([sys.executable, "-c", HOOK, go] + args, stdout=subprocess.DEVNULL, stderr=log)
         for log in logs]
for _ in range(900):
    if any(p.poll() is not None for p in procs):
        break
    time.sleep(0.1)
open(go, "w").close()
for i, (p, log) in enumerate(zip(procs, logs)):
    rc = p.wait()
    print(f"RUN {i} pid {p.pid} rc {rc}", flush=True)
    log.seek(0)
    sys.stderr.write(log.read())
    log.close()
    os.remove(log.name)
os.remove(go)
sys.exit(max(p.returncode for p in procs))
"""

# `python -m tfseaice.train ARGS` SIGKILLed right after its first epoch is backed up (pre-emption),
# then the same command again; prints "FIRST rc <rc>" and "LOCK_LEFT <bool>" and passes the second
# run's output and exit status through.  argv: MODEL_DIR ARGS...
STALE_WRAPPER = r"""
import os, signal, subprocess, sys
model_dir, args = sys.argv[1], sys.argv[2:]
KILL = '''
import os, runpy, signal, sys
from tfseaice.training import callbacks
orig = callbacks.TrainingBackup.on_epoch_end
def on_epoch_end(self, epoch, logs=None):
    orig(self, epoch, logs)
    os.kill(os.getpid(), signal.SIGKILL)
callbacks.TrainingBackup.on_epoch_end = on_epoch_end
sys.argv = ["tfseaice.train"] + sys.argv[1:]
runpy.run_module("tfseaice.train", run_name="__main__", alter_sys=True)
'''
first = subprocess.run([sys.executable, "-c", KILL] + args, capture_output=True, text=True)
parent, name = os.path.split(os.path.abspath(model_dir))
print("FIRST rc", first.returncode, flush=True)
print("LOCK_LEFT", os.path.exists(os.path.join(parent, f".{name}.lock")), flush=True)
second = subprocess.run([sys.executable, "-m", "tfseaice.train"] + args, capture_output=True, text=True)
sys.stdout.write(second.stdout)
sys.stderr.write(second.stderr)
sys.exit(second.returncode)
"""

# Two workers of one --strategy=multi_worker job (TF_CONFIG on localhost, worker 0 is the chief)
# training into one --model_dir. Each records, at the start of fit, its pid and the lock file
# it sees beside MODEL_DIR into SEEN.<index>.json.  argv: MODEL_DIR SEEN ARGS...
MULTI_WORKER_WRAPPER = r"""
import json, os, socket, subprocess, sys
model_dir, seen, args = sys.argv[1], sys.argv[2], sys.argv[3:]
HOOK = '''
import json, os, runpy, sys
lock, out = sys.argv.pop(1), sys.argv.pop(1)
import keras
orig = keras.Model.fit
def fit(self, *a, **k):
    text = open(lock).read() if os.path.exists(lock) else None
    json.dump({"pid": os.getpid(), "lock": json.loads(text) if text else None}, open(out, "w"))
    return orig(self, *a, **k)
keras.Model.fit = fit
sys.argv = ["tfseaice.train"] + sys.argv[1:]
runpy.run_module("tfseaice.train", run_name="__main__", alter_sys=True)
'''
parent, name = os.path.split(os.path.abspath(model_dir))
lock = os.path.join(parent, f".{name}.lock")
socks = [socket.socket() for _ in range(2)]
for s in socks:
    s.bind(("127.0.0.1", 0))
cluster = {"worker": [f"127.0.0.1:{s.getsockname()[1]}" for s in socks]}
for s in socks:
    s.close()
procs, logs = [], []
for i in range(2):
    env = dict(os.environ, TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}}))
    logs.append(open(f"{seen}.{i}.err", "w+"))
    procs.append(subprocess.Popen([sys.executable, "-c", HOOK, lock, f"{seen}.{i}.json"] + args, env=env,
                                  stdout=subprocess.DEVNULL, stderr=logs[-1]))
try:
    rcs = [p.wait(timeout=400) for p in procs]
finally:
    for p in procs:
        if p.poll() is None:
            p.kill()
for i, (p, log) in enumerate(zip(procs, logs)):
    print(f"WORKER {i} pid {p.pid} rc {p.returncode}", flush=True)
    log.seek(0)
    sys.stderr.write(log.read())
    log.close()
    os.remove(log.name)
sys.exit(max(p.returncode for p in procs))
"""
