"""Task-independent training loop: strategy, resume, checkpoints, history, TensorBoard.

`run_training(cfg)` is what `python -m tfseaice.train` calls. A model folder:
  task.json              task name, config, dataset_info, state ("training" | "complete")
  history.csv            one row per finished epoch (rewritten atomically)
  checkpoints/latest.weights.h5, best.weights.h5 (+ best.json), backup/ (resume)
  logs/                  TensorBoard (train/ and validation/ scalars, images)

Fault tolerance: after every finished epoch the whole training state (model
and optimizer variables) is backed up under `checkpoints/backup/`; rerunning
the same command after a crash or a SIGKILL resumes from the last finished
epoch (history.csv is rewritten so that it holds each epoch once, best.json
keeps the best value so far). Every weights and JSON file is written to a
temporary name and renamed, so none is ever half-written. The backup is
removed only after task.json says "complete".

Multi-worker (`--strategy=multi_worker`, TF_CONFIG): every worker runs the
same code and takes the same decisions; only the chief writes into
MODEL_DIR, the others write the same files into a temporary folder that is
removed at the end. MODEL_DIR must be one folder that every worker can read
(a shared file system or a gs:// path) for resuming.
"""

import csv
import dataclasses
import glob
import hashlib
import json
import math
import os
import shutil
import tempfile

import keras
import tensorflow as tf
from absl import logging

import tfseaice
from tfseaice import distribute, io_utils, precision
from tfseaice.data import dataset_info, pipeline
from tfseaice.errors import InputError
from tfseaice.tasks import get_task

TASK_FILE = "task.json"
BACKUP_STATE = "state.json"


@dataclasses.dataclass
class TrainConfig:
    task: str
    data_dir: str
    model_dir: str
    epochs: int = 10
    steps_per_epoch: int = 0        # 0 = one pass over the training examples
    validation_steps: int = 0       # 0 = the whole validation split
    batch_size: int = 8             # global batch: split over all replicas of all workers
    learning_rate: float = 1e-3
    lr_schedule: str = "constant"   # or "cosine": decay to 0 over all training steps
    seed: int = 1
    strategy: str = "default"
    num_cpu_replicas: int = 0
    image_every: int = 1            # epochs between TensorBoard image panels
    deterministic: bool = True
    overwrite: bool = False
    skip_corrupt: bool = False      # read corrupt/truncated shards up to their first bad record
    tf_data_service: str = ""       # grpc://HOST:PORT of a tf.data service dispatcher ("" = read locally)
    tf_data_service_mode: str = "distributed_epoch"   # or "parallel_epochs"
    precision: str = "auto"         # "fp32", "bf16" (mixed_bfloat16) or "auto" (bf16 where the CPU has AMX/AVX512-BF16)
    extra: dict = dataclasses.field(default_factory=dict)

    def to_json(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, obj):
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in obj.items() if k in fields})


# ------------------------------------------------------------ model folders
def read_task_file(model_dir):
    path = os.path.join(model_dir, TASK_FILE)
    if not tf.io.gfile.exists(path):
        raise InputError(model_dir, f"is not a tfseaice model folder (no {TASK_FILE})")
    with tf.io.gfile.GFile(path) as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as exc:
            raise InputError(path, f"is not valid JSON ({exc})") from None


def load_trained(model_dir, weights="best", expect_task=None):
    """Rebuild the model of a model folder and load its weights (no unpickling).

    `weights`: "best", "latest", or a path to a `.weights.h5` file.
    Returns (model, meta) where meta is the task.json dict.
    """
    meta = read_task_file(model_dir)
    if expect_task and meta["task"] not in (expect_task if isinstance(expect_task, (tuple, list)) else (expect_task,)):
        raise InputError(model_dir, f"holds a {meta['task']!r} model, not {expect_task!r}")
    cfg = TrainConfig.from_json(meta["config"])
    task = get_task(meta["task"])
    model = task.build_model(cfg, meta["dataset_info"])
    path = weights if weights.endswith(".h5") else os.path.join(model_dir, "checkpoints", f"{weights}.weights.h5")
    if not tf.io.gfile.exists(path) and weights == "best":
        path = os.path.join(model_dir, "checkpoints", "latest.weights.h5")
    if not tf.io.gfile.exists(path):
        raise InputError(model_dir, f"has no trained weights ({os.path.basename(path)} missing)")
    try:
        restore_backup(model, path)  # optimizer built first: its saved state loads too, without warnings
    except (OSError, ValueError) as exc:  # h5py: truncated/corrupt file; Keras: weights of another model
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(path, f"cannot load weights ({reason}); use another --weights or train again") from None
    return model, meta


def save_weights_atomic(model, path):
    """Write weights to a temporary file, then rename: a crash never leaves half a file."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".weights.h5", dir=os.path.dirname(path))
    os.close(fd)
    try:
        model.save_weights(tmp, overwrite=True)
        os.replace(tmp, path)
    except OSError as exc:  # disk full, no permission, ...: the previous file is untouched
        reason = exc.strerror or str(exc).splitlines()[0] or type(exc).__name__
        raise InputError(path, f"cannot write checkpoint ({reason}); the previous "
                               f"{os.path.basename(path)} is kept") from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


# ---------------------------------------------------------------- callbacks
class HistoryCSV(keras.callbacks.Callback):
    """`history.csv` with one row per finished epoch, never duplicated on resume."""

    def __init__(self, path):
        super().__init__()
        self.path = path

    def _rows(self):
        if not os.path.exists(self.path):
            return []
        with open(self.path, newline="") as f:
            return list(csv.DictReader(f))

    def on_epoch_end(self, epoch, logs=None):
        rows = [r for r in self._rows() if int(r["epoch"]) < epoch + 1]
        row = {"epoch": epoch + 1}
        row.update({k: float(v) for k, v in (logs or {}).items()})
        rows.append(row)
        self._write(rows)

    def truncate(self, epochs):
        """Keep the rows of the first `epochs` epochs only."""
        rows = self._rows()
        kept = [r for r in rows if int(r["epoch"]) <= epochs]
        if len(kept) != len(rows):
            self._write(kept)

    def _write(self, rows):
        keys = ["epoch"] + sorted({k for r in rows for k in r if k != "epoch"})
        with io_utils.atomic_path(self.path) as tmp:
            with open(tmp, "w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=keys, restval="")
                w.writeheader()
                w.writerows(rows)


class Checkpoints(keras.callbacks.Callback):
    """Atomic `latest` every epoch and `best` by the task's monitored metric.

    Weights are only written when every logged value is finite, so a NaN
    epoch never replaces a good checkpoint. `best` is the best value so far
    (None = none yet); by default it is read from `ckpt_dir/best.json`, so a
    resumed run keeps it.
    """

    def __init__(self, ckpt_dir, monitor, mode, best="read"):
        super().__init__()
        self.ckpt_dir, self.monitor, self.mode = ckpt_dir, monitor, mode
        self.best_file = os.path.join(ckpt_dir, "best.json")
        self.best = read_best(self.best_file) if best == "read" else best

    def _better(self, value):
        if self.best is None:
            return True
        return value < self.best if self.mode == "min" else value > self.best

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if not all(math.isfinite(float(v)) for v in logs.values()):
            logging.warning("epoch %d has non-finite metrics; checkpoints not updated", epoch + 1)
            return
        save_weights_atomic(self.model, os.path.join(self.ckpt_dir, "latest.weights.h5"))
        value = logs.get(self.monitor)
        if value is not None and self._better(float(value)):
            self.best = float(value)
            save_weights_atomic(self.model, os.path.join(self.ckpt_dir, "best.weights.h5"))
            io_utils.write_json(self.best_file, {"metric": self.monitor, "value": self.best, "epoch": epoch + 1})


def read_best(best_file):
    """The best monitored value recorded in `best.json`, or None."""
    if not tf.io.gfile.exists(best_file):
        return None
    with tf.io.gfile.GFile(best_file) as f:
        try:
            return json.load(f).get("value")
        except json.JSONDecodeError as exc:
            raise InputError(best_file, f"is not valid JSON ({exc})") from None


class TrainingBackup(keras.callbacks.Callback):
    """Back up the whole training state after each finished epoch, for resuming.

    Replaces `keras.callbacks.BackupAndRestore`, which in Keras 3 overwrites
    one weights file in place and then its metadata: a kill while it writes
    leaves a corrupt file, or weights one epoch ahead of the metadata (that
    epoch is then trained twice). Here the weights (model and optimizer
    variables) go to a new `epoch_NNNN.weights.h5` under a temporary name that
    is renamed, then `state.json` pointing at it replaces the old one
    atomically, then the older weights are removed. A non-finite epoch is not
    backed up. Put it last in the callback list, so that an epoch is backed up
    only once its history row and checkpoints exist.
    """

    def __init__(self, backup_dir):
        super().__init__()
        self.backup_dir = backup_dir

    def on_epoch_end(self, epoch, logs=None):
        if not all(math.isfinite(float(v)) for v in (logs or {}).values()):
            return
        name = f"epoch_{epoch + 1:04d}.weights.h5"
        save_weights_atomic(self.model, os.path.join(self.backup_dir, name))
        io_utils.write_json(os.path.join(self.backup_dir, BACKUP_STATE), {"epoch": epoch + 1, "weights": name})
        for old in glob.glob(os.path.join(self.backup_dir, "epoch_*.weights.h5")):
            if os.path.basename(old) != name:
                os.remove(old)


def read_backup(backup_dir):
    """(finished epochs, weights path) of the backup in `backup_dir`, or (0, None)."""
    path = os.path.join(backup_dir, BACKUP_STATE)
    if not tf.io.gfile.exists(path):
        return 0, None
    with tf.io.gfile.GFile(path) as f:
        try:
            state = json.load(f)
        except json.JSONDecodeError as exc:
            raise InputError(path, f"is not valid JSON ({exc}); delete {backup_dir} to restart from scratch") from None
    weights = os.path.join(backup_dir, state["weights"])
    if not tf.io.gfile.exists(weights):
        raise InputError(weights, f"listed in {path} is missing; delete {backup_dir} to restart from scratch")
    return int(state["epoch"]), weights


def restore_backup(model, weights_path):
    """Load a TrainingBackup file: model variables and optimizer state (built first)."""
    for opt in {id(o): o for o in (getattr(model, "optimizer", None), getattr(model, "gen_optimizer", None),
                                   getattr(model, "disc_optimizer", None)) if o is not None}.values():
        if not opt.built:
            opt.build(model.trainable_variables)
    model.load_weights(weights_path)


class StopOnNaN(keras.callbacks.Callback):
    """Stop training at the first non-finite loss, with a message that says so.

    `loss_keys`: the logged values that are losses (the task's `loss_keys`,
    default ("loss",); pix2pix logs gen_total and disc_loss instead).
    """

    def __init__(self, loss_keys=("loss",)):
        super().__init__()
        self.loss_keys = tuple(loss_keys)

    def on_train_batch_end(self, batch, logs=None):
        logs = logs or {}
        for key in self.loss_keys:
            loss = logs.get(key)
            if loss is not None and not math.isfinite(float(loss)):
                logging.error("%s became %s at batch %d: training stopped; the last good checkpoint is kept",
                              key, loss, batch)
                self.model.stop_training = True
                self.model.nan_stopped = True
                return


# ------------------------------------------------------------------ training
def check_model_dir(cfg, info=None):
    """Refuse a folder of another task, a finished run (without --overwrite), a run on
    data with other input channels (`info`: the new data's dataset_info) or a foreign folder.

    Returns the task.json dict of an existing tfseaice folder, else None. Reads only.
    """
    path = os.path.join(cfg.model_dir, TASK_FILE)
    if os.path.exists(path):
        meta = read_task_file(cfg.model_dir)
        if meta.get("task") != cfg.task:
            raise InputError(cfg.model_dir, f"holds a {meta.get('task')!r} model; this run trains {cfg.task!r} (use another --model_dir)")
        if meta.get("state") == "complete" and not cfg.overwrite:
            raise InputError(cfg.model_dir, "holds a finished training; pass --overwrite to train again from scratch")
        old = meta.get("dataset_info") or {}
        for key in ("channels", "extra_channels"):
            if info is not None and meta.get("state") != "complete" and old.get(key) != info.get(key):
                have, new = (", ".join(v or []) for v in (old.get(key), info.get(key)))
                raise InputError(cfg.model_dir, f"holds a model trained on {key} [{have}]; --data_dir has "
                                                f"[{new}] (use another --model_dir, or the matching data)")
        return meta
    if os.path.isdir(cfg.model_dir) and os.listdir(cfg.model_dir) and not cfg.overwrite:
        raise InputError(cfg.model_dir, "exists and is not a tfseaice model folder; pass --overwrite or choose another --model_dir")
    return None


def prepare_model_dir(cfg, info, chief=True):
    """Create/validate the model folder; refuse a folder of another task or a finished run.

    A finished run is wiped with --overwrite. Stale temporary files of a
    killed run are removed. Only the chief (chief=True) writes.
    """
    meta = check_model_dir(cfg, info)
    if not chief:
        return
    if meta is not None and meta.get("state") == "complete" and cfg.overwrite:
        shutil.rmtree(cfg.model_dir)
    ckpt_dir = os.path.join(cfg.model_dir, "checkpoints")
    os.makedirs(ckpt_dir, exist_ok=True)
    for d in (cfg.model_dir, ckpt_dir, os.path.join(ckpt_dir, "backup")):
        for stale in glob.glob(os.path.join(d, ".tmp-*")) + glob.glob(os.path.join(d, ".*.tmp*")):
            if os.path.isfile(stale):
                os.remove(stale)
    write_task_file(cfg, info, "training")


def write_task_file(cfg, info, state, **more):
    meta = {"task": cfg.task, "tfseaice_version": tfseaice.__version__, "state": state,
            "config": cfg.to_json(), "dataset_info": info}
    meta.update(more)
    io_utils.write_json(os.path.join(cfg.model_dir, TASK_FILE), meta)


def learning_rate(cfg, info):
    """The optimizer's learning rate: a float, or a cosine decay over the whole run."""
    if cfg.lr_schedule == "constant":
        return cfg.learning_rate
    if cfg.lr_schedule == "cosine":
        steps = (cfg.steps_per_epoch or default_steps(info, "train", cfg.batch_size)) * cfg.epochs
        return keras.optimizers.schedules.CosineDecay(cfg.learning_rate, decay_steps=max(1, steps))
    raise ValueError(f"--lr_schedule must be constant or cosine, got {cfg.lr_schedule!r}")


def default_steps(info, split, batch_size):
    n = info["splits"][split]["num_examples"]
    return max(1, n // batch_size) if split == "train" else max(1, math.ceil(n / batch_size))


def _agree(strategy, workers, check, what):
    """Run `check()` on every worker; if it raises anywhere, raise everywhere.

    Also a barrier between the workers (so no worker waits forever on a
    collective for one that stopped). A worker whose own check passed raises
    an InputError that points at the others' logs.
    """
    error = None
    try:
        check()
    except Exception as exc:  # noqa: BLE001 - re-raised below, after the other workers know
        error = exc
    if workers > 1:
        failed = distribute.all_reduce_scalars(strategy, [error is not None])[0]
        if failed and error is None:
            error = InputError(what, "refused by another worker of this job (see its log)")
    if error is not None:
        raise error


def _resume_state(strategy, workers, cfg):
    """(finished epochs, backup weights path, best value) that every worker agrees on."""
    ckpt_dir = os.path.join(cfg.model_dir, "checkpoints")
    epoch, weights = read_backup(os.path.join(ckpt_dir, "backup"))
    if workers > 1:
        # All equal <=> n * sum(e^2) == sum(e)^2; the same verdict on every worker.
        n, total, squares = distribute.all_reduce_scalars(strategy, [1, epoch, epoch * epoch])
        if n * squares != total * total:
            raise InputError(cfg.model_dir, f"the workers see different backups (this one: epoch {epoch}, mean "
                                            f"{total / n:g}): MODEL_DIR must be one folder that every worker "
                                            "reads (a shared file system)")
    return epoch, weights, read_best(os.path.join(ckpt_dir, "best.json"))


def _multi_worker_workarounds(model, strategy):
    """Work around two Keras 3 bugs under MultiWorkerMirroredStrategy.

    1. tensorflow/tensorflow#72388: fit/evaluate reduce each step's logs with
       `strategy.reduce("MEAN", v, axis=0)`, which fails for the scalar logs
       every model returns ("Invalid reduction dimension 0 for input with 0
       dimensions"); Keras 3.15 hard-codes that reduction. Scalars are reduced
       with axis=None instead (the same mean over all replicas).
    2. keras-team/keras#20329: see `_build_from_local_batch`.
    """
    _patch_keras_scalar_reduction()
    _build_from_local_batch(model, strategy)


def _patch_keras_scalar_reduction():
    from keras.src.backend.tensorflow import trainer as tf_trainer

    original = getattr(tf_trainer, "reduce_per_replica", None)
    multi_worker = getattr(tf_trainer, "_collective_all_reduce_multi_worker", None)
    if original is None or multi_worker is None or getattr(original, "_tfseaice_patched", False):
        return

    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean") and multi_worker(strategy):
            def scalar_mean(v):
                if isinstance(v, tf.distribute.DistributedValues):
                    rank = strategy.experimental_local_results(v)[0].shape.rank
                else:
                    rank = getattr(getattr(v, "shape", None), "rank", None)
                return strategy.reduce("MEAN", v, axis=None) if rank == 0 else original(v, strategy, reduction)

            return tf.nest.map_structure(scalar_mean, values)
        return original(values, strategy, reduction)

    reduce_per_replica._tfseaice_patched = True
    tf_trainer.reduce_per_replica = reduce_per_replica


def _build_from_local_batch(model, strategy):
    """Work around keras-team/keras#20329 under MultiWorkerMirroredStrategy.

    Keras 3 fit/evaluate first reduce one batch over the replicas
    (`strategy.reduce("MEAN", batch)`) to build the model symbolically; with
    MultiWorkerMirroredStrategy that fails for dict batches (ValueError:
    "Attempt to convert a value ({...PerReplica...}) to a Tensor"). Our models
    are built at construction, so no batch is needed; if one is, the local
    replica's batch gives the shapes.
    """
    def needs_data():
        compiled = [getattr(model, "_compile_metrics", None), getattr(model, "_compile_loss", None)]
        return (not all(layer.built for layer in model._flatten_layers())
                or any(c is not None and not c.built for c in compiled))

    def maybe_symbolic_build(iterator=None, data_batch=None):
        if data_batch is None and iterator is not None and needs_data():
            iterator.reset()
            for _, _, it in iterator:
                batch = next(it)
                break
            data_batch = tf.nest.map_structure(
                lambda v: strategy.experimental_local_results(v)[0]
                if isinstance(v, tf.distribute.DistributedValues) else v, batch)
        with strategy.scope():
            model._symbolic_build(data_batch=data_batch)

    model._maybe_symbolic_build = maybe_symbolic_build


def _input_pipelines(cfg, info, task, strategy, workers, start_epoch):
    """The task's datasets, sharded over workers and/or read through a tf.data service."""
    data_cfg = cfg
    if start_epoch:
        # Resumed: a fresh shuffle/augmentation stream rather than epoch 1's order again.
        data_cfg = dataclasses.replace(cfg, seed=cfg.seed + 7919 * start_epoch)
        logging.info("resumed input pipeline seeded with %d", data_cfg.seed)
    train_ds, val_ds = task.make_datasets(data_cfg, info, strategy)
    shards = {s: dataset_info.shard_paths(cfg.data_dir, info, s) for s in ("train", "val")}
    if cfg.tf_data_service:
        job = None
        if workers > 1:  # one shared job: each batch goes to one of the trainers
            key = hashlib.sha1(os.path.abspath(cfg.model_dir).encode()).hexdigest()[:12]
            job = f"tfseaice-{cfg.task}-{key}-from{start_epoch}"
        train_ds = pipeline.through_data_service(train_ds, cfg.tf_data_service, cfg.tf_data_service_mode, job)
        if workers > 1:
            train_ds = pipeline.no_auto_shard(train_ds)
        logging.info("training input through the tf.data service %s (%s%s)", cfg.tf_data_service,
                     cfg.tf_data_service_mode, f", shared job {job}" if job else "")
    else:
        train_ds, _ = pipeline.shard_across_workers(train_ds, shards["train"], workers, "train")
    if val_ds is not None and workers > 1:
        # Validation sharded by DATA: each global batch split exactly as on one device.
        val_ds, _ = pipeline.shard_across_workers(val_ds, shards["val"], workers, "validation", by_data=True)
    return train_ds, val_ds


def run_training(cfg, extra_callbacks=()):
    """Train `cfg.task` on `cfg.data_dir` into `cfg.model_dir`; returns the Keras History.

    Resumes from `MODEL_DIR/checkpoints/backup` when a previous run of the
    same command was interrupted.
    """
    # First: MultiWorkerMirroredStrategy starts the collective gRPC server and
    # must exist before any other TF op of the process.
    strategy = distribute.make_strategy(cfg.strategy, cfg.num_cpu_replicas)
    try:
        cfg = dataclasses.replace(cfg, precision=precision.resolve(cfg.precision))
    except ValueError as exc:
        raise InputError("--precision", str(exc)) from None
    keras.utils.set_random_seed(cfg.seed)
    if cfg.deterministic:
        tf.config.experimental.enable_op_determinism()
    task = get_task(cfg.task)
    info = dataset_info.load(cfg.data_dir, kind=task.data_kind)
    chief = distribute.is_chief(strategy)
    workers = distribute.num_workers(strategy)
    replicas = strategy.num_replicas_in_sync
    if cfg.batch_size < replicas or cfg.batch_size % replicas:
        raise InputError("--batch_size", f"{cfg.batch_size} is the global batch; it must be a multiple of the "
                                         f"{replicas} replicas ({workers} worker(s))")
    if cfg.tf_data_service:
        pipeline.check_data_service_address(cfg.tf_data_service)
    # Every worker checks MODEL_DIR before the chief changes anything, then
    # waits for the chief to have created (or, with --overwrite, wiped) it.
    _agree(strategy, workers, lambda: check_model_dir(cfg, info), cfg.model_dir)
    _agree(strategy, workers, lambda: prepare_model_dir(cfg, info) if chief else None, cfg.model_dir)
    start_epoch, backup_weights, best = _resume_state(strategy, workers, cfg)
    if chief:  # rows after the backup belong to an epoch that is trained again
        HistoryCSV(os.path.join(cfg.model_dir, "history.csv")).truncate(start_epoch)
    out_dir = cfg.model_dir if chief else tempfile.mkdtemp(prefix="tfseaice-worker-")
    logging.info("precision %s (Keras policy %s)", cfg.precision, precision.POLICY[cfg.precision])
    try:
        with precision.policy(cfg.precision):
            return _fit(cfg, info, task, strategy, chief, workers, out_dir, start_epoch, backup_weights, best,
                        extra_callbacks)
    finally:
        if not chief:
            shutil.rmtree(out_dir, ignore_errors=True)


def _fit(cfg, info, task, strategy, chief, workers, out_dir, start_epoch, backup_weights, best, extra_callbacks):
    replicas = strategy.num_replicas_in_sync
    logging.info("task %s on %d replica(s) in %d worker(s) (this process: %s%s); global batch %d = %d per "
                 "worker x %d worker(s), %d per replica", cfg.task, replicas, workers,
                 distribute.worker_label(strategy), "" if chief else ", not chief: writes to " + out_dir,
                 cfg.batch_size, cfg.batch_size // workers, workers, cfg.batch_size // replicas)
    shards = [p for s in ("train", "val") for p in dataset_info.shard_paths(cfg.data_dir, info, s)]
    if cfg.skip_corrupt:
        for path, reason in pipeline.find_corrupt_shards(shards):
            logging.warning("--skip_corrupt: skipping the unreadable end of corrupt shard %s (%s)", path, reason)
    try:
        return _fit_datasets(cfg, info, task, strategy, chief, workers, out_dir, start_epoch, backup_weights,
                             best, extra_callbacks)
    except tf.errors.DataLossError as exc:  # a corrupt/truncated shard: name it
        bad = pipeline.find_corrupt_shards(shards)
        path, reason = bad[0] if bad else (cfg.data_dir, pipeline.data_loss_reason(exc))
        raise InputError(path, f"corrupt or truncated TFRecord shard ({reason}); copy or convert it again, "
                               "or pass --skip_corrupt to train on without its unreadable records") from None


def _fit_datasets(cfg, info, task, strategy, chief, workers, out_dir, start_epoch, backup_weights, best,
                  extra_callbacks):
    train_ds, val_ds = _input_pipelines(cfg, info, task, strategy, workers, start_epoch)
    with strategy.scope():
        model = task.build_model(cfg, info)
        if start_epoch:
            restore_backup(model, backup_weights)
    if start_epoch:
        logging.info("resuming after epoch %d of %d (backup %s)", start_epoch, cfg.epochs, backup_weights)
    if workers > 1:
        _multi_worker_workarounds(model, strategy)
    steps = cfg.steps_per_epoch or default_steps(info, "train", cfg.batch_size)
    val_steps = cfg.validation_steps or (default_steps(info, "val", cfg.batch_size) if val_ds is not None else None)
    log_dir = os.path.join(out_dir, "logs")
    ckpt_dir = os.path.join(out_dir, "checkpoints")
    os.makedirs(ckpt_dir, exist_ok=True)
    monitor, mode = task.monitor
    callbacks = [
        StopOnNaN(getattr(task, "loss_keys", ("loss",))),
        HistoryCSV(os.path.join(out_dir, "history.csv")),
        Checkpoints(ckpt_dir, monitor, mode, best=best),
        keras.callbacks.TensorBoard(log_dir=log_dir, update_freq="epoch", write_graph=False),
        *task.callbacks(cfg, model, val_ds, log_dir),
        *extra_callbacks,
        # Last: the backup is taken only after this epoch's history and checkpoints exist.
        TrainingBackup(os.path.join(ckpt_dir, "backup")),
    ]
    history = model.fit(train_ds, epochs=cfg.epochs, initial_epoch=start_epoch, steps_per_epoch=steps,
                        validation_data=val_ds, validation_steps=val_steps,
                        callbacks=callbacks, verbose=1 if chief else 2)
    if getattr(model, "nan_stopped", False):
        raise InputError(cfg.model_dir, "training stopped: the loss became NaN/Inf (check inputs and --learning_rate); last good checkpoint kept")

    def finish():
        write_task_file(cfg, info, "complete", epochs_done=cfg.epochs)
        # Only now: a kill before this line resumes, after it the folder is finished.
        shutil.rmtree(os.path.join(ckpt_dir, "backup"), ignore_errors=True)

    # The other workers wait for the chief's last writes (and exit together with it).
    _agree(strategy, workers, finish if chief else (lambda: None), cfg.model_dir)
    return history
