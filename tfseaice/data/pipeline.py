"""tf.data input pipelines on top of `records.decode_*`.

Shards are read interleaved, examples parsed in parallel, shuffled and
augmented with seeded stateless ops (tfseaice.data.augment; same seed -> same
batches), batched with the per-polygon tables padded to a fixed width
(`polygon_count` says how many rows are real), and prefetched. The SIC
models' steps turn the padded table into a RaggedTensor [B,(K_b)]
(`tasks.sic.polygon_table` says why not here: Keras' fit under
tf.distribute cannot take ragged batches).

Every pipeline reads the shards that `check_shards` accepts: an empty (0-byte)
or cut shard is one InputError naming it before any reading, or under
`skip_corrupt` a warning (empty ones left out, cut ones read up to the cut).

Scaling out (used by `training.run_training`):
- `shard_across_workers` tells tf.distribute how to split a dataset between
  the workers of a MultiWorkerMirroredStrategy job: by FILE (each worker reads
  its own shards) when every worker gets a non-empty shard, else by DATA
  (every worker reads every shard and keeps its share of each batch).
- `through_data_service` runs a dataset's whole input pipeline on the workers
  of a tf.data service (`--tf_data_service=grpc://HOST:PORT`).
"""

import re

import tensorflow as tf
from absl import logging

from tfseaice.data import dataset_info, glacier, records
from tfseaice.data.augment import augment_glacier, sic_augmentation
from tfseaice.errors import InputError

AUTOTUNE = tf.data.AUTOTUNE
SIC_TRAIN_KEYS = ("sar", "polygon_ids", "polygon_sic", "polygon_count", "sic_truth")
ICECHART_TRAIN_KEYS = SIC_TRAIN_KEYS + ("polygon_sod", "polygon_floe", "polygon_sod_class", "polygon_floe_class",
                                        "sod_truth", "floe_truth")


def read_records(files, training, seed, cycle_length=4, skip_corrupt=False):
    """Interleave TFRecord shards; in training, the shard order is shuffled (seeded).

    `skip_corrupt`: a shard's unreadable (corrupt or truncated) record ends that
    shard instead of raising DataLossError (`find_corrupt_shards` names them).
    """
    files = tf.data.Dataset.from_tensor_slices(list(files))
    if training:
        files = files.shuffle(len(files) or 1, seed=seed, reshuffle_each_iteration=True)

    def shard(path):
        ds = tf.data.TFRecordDataset(path)
        return ds.ignore_errors(log_warning=True) if skip_corrupt else ds

    return files.interleave(shard, cycle_length=cycle_length, num_parallel_calls=AUTOTUNE, deterministic=True)


# ------------------------------------------------------------ shard checks
_SCANNED = {}  # (path, size, mtime) -> scan_shard result: each shard is scanned once per process
_WARNED = set()  # (path, what): each skipped shard is logged once per process


def _warn_once(path, what, *args):
    if (path, what) not in _WARNED:
        _WARNED.add((path, what))
        logging.warning(what, path, *args)


def scan_shard(path):
    """(whole records, None) or (whole records, why it stops) of a TFRecord file, read from its framing.

    Each record is uint64 length, uint32 CRC, data, uint32 CRC: the scan reads the
    12-byte headers and seeks over the data, so a cut (a copy or download that
    stopped, a full disk) is found without reading the data. CRCs are checked
    by TF while reading (a DataLossError, named by `tfseaice.train_lib`).
    """
    stat = tf.io.gfile.stat(path)
    key = (path, stat.length, stat.mtime_nsec)
    if key not in _SCANNED:
        size, offset, count, why = stat.length, 0, 0, None
        with (tf.io.gfile.GFile(path, "rb") if "://" in path else open(path, "rb", buffering=0)) as f:
            while offset < size:
                f.seek(offset)
                head = f.read(12)
                if len(head) < 12:
                    why = f"cut inside the header of record {count + 1} (byte {offset} of {size})"
                    break
                length = int.from_bytes(head[:8], "little")
                end = offset + 12 + length + 4
                if end > size:
                    why = f"cut inside record {count + 1} (it needs bytes {offset}-{end}, the file has {size})"
                    break
                offset, count = end, count + 1
        _SCANNED[key] = (count, why)
    return _SCANNED[key]


def check_shards(data_dir, info, split, skip_corrupt=False):
    """The shards of `split` to read, after checking that each is whole.

    - Empty (0 bytes): not data. Allowed only when the split's other shards hold
      all of its `num_examples` (a converter before issue 24 wrote an empty file
      for a shard that no example hashed to); else an InputError, or with
      `skip_corrupt` a warning and the shard left out.
    - Cut short (its framing ends inside a record): an InputError; with
      `skip_corrupt` a warning, and it is read up to the cut.
    - A split whose shards hold no whole record at all: an InputError (with or without `skip_corrupt`).
    """
    paths = dataset_info.shard_paths(data_dir, info, split)
    scans = {p: scan_shard(p) for p in paths}
    whole = sum(n for n, _ in scans.values())
    expected = info.get("splits", {}).get(split, {}).get("num_examples", -1)
    keep = []
    for path, (count, why) in scans.items():
        if tf.io.gfile.stat(path).length == 0:
            if whole == expected:
                continue  # an old converter's placeholder: the others hold every example
            if not skip_corrupt:
                raise InputError(path, "TFRecord shard is empty (0 bytes): not data; copy or convert it again, "
                                       "or pass --skip_corrupt to go on without it")
            _warn_once(path, "--skip_corrupt: skipping the empty (0 bytes) TFRecord shard %s")
            continue
        if why:
            if not skip_corrupt:
                raise InputError(path, f"truncated TFRecord shard: {why}; copy or convert it again, or pass "
                                       "--skip_corrupt to read it up to the cut")
            _warn_once(path, "--skip_corrupt: reading the truncated shard %s up to the cut (%d whole records; %s)",
                       count, why)
        keep.append(path)
    if paths and not whole and expected != 0:
        raise InputError(paths[0] if len(paths) == 1 else data_dir,
                         f"the {split} split holds no whole TFRecord record (shards empty or cut in their "
                         "first record): copy or convert it again")
    return keep


def find_corrupt_shards(paths):
    """[(path, reason)] of the TFRecord shards that cannot be read to the end (CRC, truncation)."""
    bad = []
    for path in paths:
        try:
            for _ in tf.data.TFRecordDataset(path).batch(1024):
                pass
        except tf.errors.DataLossError as exc:
            bad.append((path, data_loss_reason(exc)))
    return bad


def data_loss_reason(exc):
    """TF's DataLossError message without its graph decorations, e.g. 'truncated record at 33365'."""
    text = re.sub(r"\{\{[^}]*\}\}", "", str(exc)).split("[Op:")[0]
    text = re.sub(r"' failed with .*", "", text)
    return " ".join(text.split()) or "DataLossError"


def _with_seeds(ds, seed):
    """Pair each element with a [2] int64 seed for the stateless augmentation ops.

    The seeds come from one seeded random op in a sequential map (same seed
    -> same seeds in the same order; fresh ones every epoch because the map
    runs after `repeat`). Not from a `Dataset.random` zipped in: a second
    source dataset makes tf.distribute's FILE auto-sharding fail ("Did not find
    a shardable source"), and multi-worker jobs shard the shards by FILE.
    """
    return ds.map(lambda ex: (ex, tf.random.uniform([2], 0, 2**62, dtype=tf.int64, seed=seed)))


def sic_dataset(data_dir, split, batch_size, training, seed=0, info=None, augment=True,
                max_polygons=None, shuffle_buffer=256, repeat=None, keys=SIC_TRAIN_KEYS, skip_corrupt=False,
                gain_db=0.0):
    """Batched SIC examples from `data_dir` (a converter output folder).

    Each batch is a dict of `keys`: sar [B,P,P,C], polygon_ids [B,P,P],
    polygon_sic [B,K] (zero-padded to `max_polygons` or the batch maximum),
    polygon_count [B], sic_truth [B,P,P]; with ICECHART_TRAIN_KEYS also
    polygon_sod [B,K,6] and polygon_floe [B,K,7] (NaN-padded),
    polygon_sod_class and polygon_floe_class [B,K] (255-padded), sod_truth and
    floe_truth [B,P,P] int32 (255 = no truth). Training repeats forever unless
    `repeat` is False; evaluation reads once in a fixed order. `gain_db`: the training batches'
    backscatter augmentation (`augment.random_backscatter`; 0 = off).
    """
    info = info or dataset_info.load(data_dir, kind="sic")
    files = check_shards(data_dir, info, split, skip_corrupt)
    ds = read_records(files, training, seed, skip_corrupt=skip_corrupt).map(
        records.decode_sic, num_parallel_calls=AUTOTUNE, deterministic=True)
    ds = ds.map(lambda ex: {k: ex[k] for k in keys})
    if training:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
        if repeat is None or repeat:
            ds = ds.repeat()
        if augment or gain_db:
            aug = sic_augmentation(info["channels"], flips=augment, gain_db=gain_db)
            ds = _with_seeds(ds, seed).map(aug, num_parallel_calls=AUTOTUNE, deterministic=True)
    p = info["patch_size"]
    c = len(info["channels"])
    k = max_polygons or None
    shapes = {"sar": [p, p, c], "polygon_ids": [p, p], "polygon_sic": [k], "polygon_count": [],
              "sic_truth": [p, p], "polygon_global_id": [k], "polygon_pixel_count": [k],
              "scene_id": [], "patch_offset": [2], "has_truth": [], "polygon_sod": [k, records.NUM_SOD],
              "polygon_floe": [k, records.NUM_FLOE], "polygon_sod_class": [k], "polygon_floe_class": [k],
              "sod_truth": [p, p], "floe_truth": [p, p]}
    pad = {"polygon_ids": -1, "polygon_global_id": tf.constant(-1, tf.int64),
           "polygon_pixel_count": tf.constant(0, tf.int64), "scene_id": "", "has_truth": False,
           "polygon_sic": 0.0, "sar": 0.0, "sic_truth": 0.0, "polygon_count": 0,
           "patch_offset": tf.constant(0, tf.int64), "polygon_sod": float("nan"), "polygon_floe": float("nan"),
           "polygon_sod_class": records.CLASS_FILL, "polygon_floe_class": records.CLASS_FILL,
           "sod_truth": records.CLASS_FILL, "floe_truth": records.CLASS_FILL}
    ds = ds.padded_batch(batch_size, padded_shapes={key: shapes[key] for key in keys},
                         padding_values={key: pad[key] for key in keys}, drop_remainder=training)
    return ds.prefetch(AUTOTUNE)


ROCK, GLACIER = glacier.CLASS_NAMES.index("rock"), glacier.CLASS_NAMES.index("glacier")
ZONE_CLASSES = (2, 4)


def _glacier_fields(ex, zone_classes):
    """The training fields; zone_classes=2 (the pix2pix paper's ocean vs glacier + rock) relabels rock glacier."""
    out = {k: v for k, v in ex.items() if k in ("sar", "mask", "extra")}
    if zone_classes == 2:
        out["mask"] = tf.where(out["mask"] == ROCK, GLACIER, out["mask"])
    return out


def glacier_examples(data_dir, split, training, seed=0, info=None, augment=True, shuffle_buffer=256,
                     repeat=None, skip_corrupt=False, zone_classes=4, images=None):
    """Unbatched glacier examples (what `glacier_dataset` batches); see there.

    `images`: keep only the patches of these image names (the small-real-data
    setting, `tfseaice.data.glacier_mix.choose_images`); None keeps all.
    """
    if zone_classes not in ZONE_CLASSES:
        raise InputError("--zone_classes", f"must be 2 or 4, got {zone_classes}")
    info = info or dataset_info.load(data_dir, kind="glacier")
    files = check_shards(data_dir, info, split, skip_corrupt)
    num_extra = len(info.get("extra_channels", []))
    ds = read_records(files, training, seed, skip_corrupt=skip_corrupt).map(
        lambda s: records.decode_glacier(s, num_extra), num_parallel_calls=AUTOTUNE, deterministic=True)
    if images is not None:
        keep = tf.constant(sorted(images), tf.string)
        ds = ds.filter(lambda ex: tf.reduce_any(tf.equal(ex["name"], keep)))
    ds = ds.map(lambda ex: _glacier_fields(ex, zone_classes))
    if training:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
        if repeat is None or repeat:
            ds = ds.repeat()
        if augment:
            ds = _with_seeds(ds, seed).map(augment_glacier, num_parallel_calls=AUTOTUNE, deterministic=True)
    return ds


def glacier_dataset(data_dir, split, batch_size, training, seed=0, info=None, augment=True,
                    shuffle_buffer=256, repeat=None, skip_corrupt=False, zone_classes=4, images=None):
    """Batched glacier examples: sar [B,P,P,1] in [0,1], mask [B,P,P] class indices.

    `zone_classes=2` turns rock into glacier (class indices unchanged, rock never
    appears); `images` keeps only the patches of those image names.
    """
    ds = glacier_examples(data_dir, split, training, seed=seed, info=info, augment=augment,
                          shuffle_buffer=shuffle_buffer, repeat=repeat, skip_corrupt=skip_corrupt,
                          zone_classes=zone_classes, images=images)
    return ds.batch(batch_size, drop_remainder=training).prefetch(AUTOTUNE)


# ------------------------------------------------------------------ scaling out
DATA_SERVICE_MODES = ("distributed_epoch", "parallel_epochs")
_SERVICE_RE = re.compile(r"^(grpc://)?[^/:]+:\d+$")


def files_per_worker_ok(files, num_workers):
    """True when FILE sharding gives every worker at least one non-empty shard.

    tf.distribute's FILE policy gives worker i the files [i::num_workers] of
    the listed order; a converter may write empty shards (no example hashed
    to them).
    """
    if len(files) < num_workers:
        return False
    return all(any(tf.io.gfile.stat(f).length > 0 for f in files[i::num_workers]) for i in range(num_workers))


def shard_across_workers(ds, files, num_workers, what="train", by_data=False):
    """Set the auto-shard policy with which tf.distribute splits `ds` over workers.

    FILE when every worker gets at least one non-empty shard of `files` (each
    worker reads whole shards: no wasted reading), else DATA (every worker
    reads everything and keeps its share of each global batch), logged either
    way. `by_data=True` asks for DATA (validation: every global batch exactly
    as on one device). One worker: `ds` unchanged. Returns (ds, policy name
    or None).
    """
    num_files = len(files)
    if num_workers <= 1:
        return ds, None
    policy = tf.data.experimental.AutoShardPolicy
    opts = tf.data.Options()
    if by_data:
        opts.experimental_distribute.auto_shard_policy = policy.DATA
        name = "DATA"
        logging.info("%s data: auto-sharding by DATA over %d workers (each keeps its share of every "
                     "global batch)", what, num_workers)
    elif files_per_worker_ok(files, num_workers):
        opts.experimental_distribute.auto_shard_policy = policy.FILE
        name = "FILE"
        logging.info("%s data: %d shard files over %d workers: auto-sharding by FILE", what, num_files,
                     num_workers)
    else:
        opts.experimental_distribute.auto_shard_policy = policy.DATA
        name = "DATA"
        logging.warning("%s data: %d shard file(s) do not give each of the %d workers a non-empty one: "
                        "auto-sharding by DATA (every worker reads every shard and keeps 1/%d of each "
                        "batch); convert with more --num_shards (a multiple of %d) to shard by FILE",
                        what, num_files, num_workers, num_workers, num_workers)
    return ds.with_options(opts), name


def no_auto_shard(ds):
    """Turn tf.distribute auto-sharding off (a tf.data service job shares elements itself)."""
    opts = tf.data.Options()
    opts.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    return ds.with_options(opts)


def check_data_service_address(service):
    """`grpc://HOST:PORT` (or `HOST:PORT`) -> the address with its protocol; else InputError."""
    service = (service or "").strip()
    if not _SERVICE_RE.match(service):
        raise InputError("--tf_data_service", f"must be grpc://HOST:PORT of a tf.data dispatcher, got {service!r}")
    return service if service.startswith("grpc://") else "grpc://" + service


def through_data_service(ds, service, processing_mode="distributed_epoch", job_name=None):
    """Run `ds`'s whole pipeline (reading, decoding, augmentation, batching) on tf.data service workers.

    `service` is the dispatcher, `grpc://HOST:PORT`. The service workers must
    be able to read the shard paths. `processing_mode`:
      distributed_epoch  the shards are handed out to the service workers, each
                         read by one worker at a time: every example once per
                         pass over the data (default);
      parallel_epochs    every service worker runs the whole pipeline: with
                         N workers and our seeded shuffles, each batch N times.
    Trainers that pass the same `job_name` share one job: each batch goes to
    one of them (how a multi-worker job reads through the service).
    """
    if processing_mode not in DATA_SERVICE_MODES:
        raise InputError("--tf_data_service_mode", f"must be one of {DATA_SERVICE_MODES}, got {processing_mode!r}")
    service = check_data_service_address(service)
    mode = (tf.data.experimental.service.ShardingPolicy.DYNAMIC if processing_mode == "distributed_epoch"
            else tf.data.experimental.service.ShardingPolicy.OFF)
    ds = ds.apply(tf.data.experimental.service.distribute(processing_mode=mode, service=service,
                                                          job_name=job_name))
    return ds.prefetch(AUTOTUNE)
