"""The task-independent training loop: strategy, resume, checkpoints, history, TensorBoard.

`run_training(cfg)` is what `python -m tfseaice.train` calls; it writes the
model folder described in `tfseaice.training.model_dir`.

Fault tolerance: after every finished epoch the whole training state (model
and optimizer variables) is backed up under `checkpoints/backup/`; rerunning
the same command after a crash or a SIGKILL resumes from the last finished
epoch (history.csv is rewritten so that it holds each epoch once, best.json
keeps the best value so far). Every weights and JSON file is written to a
temporary name and renamed, so none is ever half-written. The backup is
removed only after task.json says "complete".

One run per folder: the run holds a lock beside MODEL_DIR (`tfseaice.run_lock`)
from before its first write to its end; a second run into it refuses at once,
and the lock of a killed run is taken over by the next one (resume). Empty or
cut shards are refused (`pipeline.check_shards`) before anything is written,
and a failed run rolls history.csv back to its last backed-up epoch.

Multi-worker (`--strategy=multi_worker`, TF_CONFIG): every worker runs the
same code and takes the same decisions; only the chief locks and writes into
MODEL_DIR, the others write the same files into a temporary folder that is
removed at the end. MODEL_DIR must be one folder that every worker can read
(a shared file system or a gs:// path) for resuming.
"""

import dataclasses
import hashlib
import os
import shutil
import tempfile

import keras
import tensorflow as tf
from absl import logging

from tfseaice import distribute, precision, run_lock
from tfseaice.data import dataset_info, pipeline
from tfseaice.errors import InputError
from tfseaice.tasks import get_task
from tfseaice.training.callbacks import Checkpoints, HistoryCSV, StopOnNaN, TrainingBackup
from tfseaice.training.config import default_steps
from tfseaice.training.keras_workarounds import multi_worker_workarounds
from tfseaice.training.model_dir import (check_model_dir, prepare_model_dir, read_backup, read_best,
                                         read_task_file, restore_backup, write_task_file)


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


def _input_pipelines(cfg, info, task, strategy, workers, start_epoch):
    """The task's datasets, sharded over workers and/or read through a tf.data service."""
    data_cfg = cfg
    if start_epoch:
        # Resumed: a fresh shuffle/augmentation stream rather than epoch 1's order again.
        data_cfg = dataclasses.replace(cfg, seed=cfg.seed + 7919 * start_epoch)
        logging.info("resumed input pipeline seeded with %d", data_cfg.seed)
    train_ds, val_ds = task.make_datasets(data_cfg, info, strategy)
    shards = {s: pipeline.check_shards(cfg.data_dir, info, s, cfg.skip_corrupt) for s in ("train", "val")}
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
    # Empty or cut shards are refused (or skipped) before anything is written.
    _agree(strategy, workers, lambda: _check_data(cfg, info), cfg.data_dir)
    # MODEL_DIR is this job's alone: the chief holds its lock until the end (workers share it).
    lock = run_lock.RunLock(cfg.model_dir)
    _agree(strategy, workers, lambda: lock.acquire() if chief else None, cfg.model_dir)
    try:
        return _run_locked(cfg, info, task, strategy, chief, workers, extra_callbacks)
    finally:
        lock.release()


def _check_data(cfg, info):
    for split in ("train", "val"):
        if info.get("splits", {}).get(split, {}).get("shards"):
            pipeline.check_shards(cfg.data_dir, info, split, cfg.skip_corrupt)


def _run_locked(cfg, info, task, strategy, chief, workers, extra_callbacks):
    """Everything after the lock: MODEL_DIR checked and prepared, resume state, fit."""
    # Every worker checks MODEL_DIR before the chief changes anything, then
    # waits for the chief to have created (or, with --overwrite, wiped) it.
    _agree(strategy, workers, lambda: check_model_dir(cfg, info), cfg.model_dir)
    _agree(strategy, workers, lambda: prepare_model_dir(cfg, info) if chief else None, cfg.model_dir)
    start_epoch, backup_weights, best = _resume_state(strategy, workers, cfg)
    history_csv = HistoryCSV(os.path.join(cfg.model_dir, "history.csv"))
    if chief:  # rows after the backup belong to an epoch that is trained again
        history_csv.truncate(start_epoch)
    out_dir = cfg.model_dir if chief else tempfile.mkdtemp(prefix="tfseaice-worker-")
    logging.info("precision %s (Keras policy %s)", cfg.precision, precision.POLICY[cfg.precision])
    try:
        with precision.policy(cfg.precision):
            return _fit(cfg, info, task, strategy, chief, workers, out_dir, start_epoch, backup_weights, best,
                        extra_callbacks)
    except BaseException:
        if chief:
            _roll_back_history(cfg, history_csv)
        raise
    finally:
        if not chief:
            shutil.rmtree(out_dir, ignore_errors=True)


def _roll_back_history(cfg, history_csv):
    """A failed run leaves no row of an epoch it did not finish: history.csv ends at the last
    backed-up epoch, as the checkpoints do (a finished folder is left alone)."""
    try:
        if read_task_file(cfg.model_dir).get("state") != "complete":
            history_csv.truncate(read_backup(os.path.join(cfg.model_dir, "checkpoints", "backup"))[0])
    except Exception as exc:  # noqa: BLE001 - the run's own error is the one to report
        logging.warning("history.csv not rolled back (%s)", exc)


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
            try:
                restore_backup(model, backup_weights)
            except (OSError, ValueError) as exc:  # h5py: a cut or damaged file (ours are written atomically)
                reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                raise InputError(backup_weights, f"cannot load the resume backup ({reason}); delete "
                                                 f"{os.path.dirname(backup_weights)} to restart from scratch") from None
    if start_epoch:
        logging.info("resuming after epoch %d of %d (backup %s)", start_epoch, cfg.epochs, backup_weights)
    if workers > 1:
        multi_worker_workarounds(model, strategy)
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
