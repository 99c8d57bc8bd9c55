"""Task-independent training callbacks: history, checkpoints, resume backup, NaN stop."""

import csv
import glob
import math
import os

import keras
from absl import logging

from tfseaice import io_utils
from tfseaice.training.model_dir import BACKUP_STATE, read_best, save_weights_atomic


class HistoryCSV(keras.callbacks.Callback):
    """`history.csv` with one row per finished epoch, never duplicated on resume."""

    def __init__(self, path):
        super().__init__()
        self.path = path

    def _rows(self):
        if not os.path.exists(self.path):
            return []
        with open(self.path, newline="") as f:
            rows = list(csv.DictReader(f))
        good = [r for r in rows if str(r.get("epoch") or "").isdigit()]
        if len(good) != len(rows):  # we write it atomically: a cut row came from outside; drop it
            logging.warning("%s: dropping %d unreadable row(s)", self.path, len(rows) - len(good))
        return good

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

