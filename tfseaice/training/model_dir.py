"""The model-folder format: task.json, weights files, best.json and the resume backup.

A model folder:
  task.json              task name, config, dataset_info, state ("training" | "complete")
  history.csv            one row per finished epoch (rewritten atomically)
  checkpoints/latest.weights.h5, best.weights.h5 (+ best.json), backup/ (resume)
  logs/                  TensorBoard (train/ and validation/ scalars, images)

Every weights and JSON file is written to a temporary name and renamed, so none
is ever half-written. Rebuilding a model from a folder needs the task registry,
so it lives in `tfseaice.serving.loading`, one layer up.
"""

import glob
import os
import shutil
import tempfile

import tensorflow as tf

import tfseaice
from tfseaice import io_utils
from tfseaice.errors import InputError

TASK_FILE = "task.json"
BACKUP_STATE = "state.json"


def read_task_file(model_dir):
    path = os.path.join(model_dir, TASK_FILE)
    if not tf.io.gfile.exists(path):
        raise InputError(model_dir, f"is not a tfseaice model folder (no {TASK_FILE})")
    return io_utils.load_json(path, "; restore it from a copy, or delete the folder to train from scratch")



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



def read_best(best_file):
    """The best monitored value recorded in `best.json`, or None."""
    if not tf.io.gfile.exists(best_file):
        return None
    return io_utils.load_json(best_file, "; delete it (the next epoch writes a new one)").get("value")



def read_backup(backup_dir):
    """(finished epochs, weights path) of the backup in `backup_dir`, or (0, None)."""
    path = os.path.join(backup_dir, BACKUP_STATE)
    if not tf.io.gfile.exists(path):
        return 0, None
    state = io_utils.load_json(path, f"; delete {backup_dir} to restart from scratch")
    if not isinstance(state.get("weights"), str) or not isinstance(state.get("epoch"), int):
        raise InputError(path, f"lacks 'epoch' or 'weights'; delete {backup_dir} to restart from scratch")
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

