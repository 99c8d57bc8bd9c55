"""pix2pix callbacks: periodic scored generator checkpoints (paper protocol) and the image panel.

Apart from tfseaice.tasks.pix2pix (the model and its train_step) to keep each
module one job. `GeneratorCheckpoint` is the paper's protocol: every 15 epochs
the generator is saved and scored on the validation patches (non-binary Dice,
paper Eq. 6, and SSIM) into checkpoint_scores.json.
"""

import math
import os

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from tfseaice import io_utils, tensorboard_panels
from tfseaice.metrics import images as image_metrics
from tfseaice.tasks.pix2pix_batches import NUM_CLASSES, classes_from_condition, split_batch, to_unit_range
from tfseaice.training.model_dir import save_weights_atomic

SCORES_FILE = "checkpoint_scores.json"


def score_generator(generator, dataset, num_classes=NUM_CLASSES, max_batches=None):
    """Mean per-image non-binary Dice and SSIM of a generator on a glacier dataset.

    Generated and real images are compared in [0, 1]. The generator runs with
    training=False (moving BatchNorm statistics; dropout only if its
    NoiseDropout layers are set to stay on at inference).
    """
    @tf.function
    def step(cond, target):
        fake01 = to_unit_range(generator(cond, training=False))
        real01 = to_unit_range(target)
        return image_metrics.batch_dice_non_binary(fake01, real01), image_metrics.batch_ssim(fake01, real01)

    dice, ssim = [], []
    for i, batch in enumerate(dataset):
        if max_batches is not None and i >= max_batches:
            break
        cond, target = split_batch(batch, num_classes)
        d, s = step(cond, target)
        dice.append(d.numpy())
        ssim.append(s.numpy())
    if not dice:
        return {"dice": float("nan"), "ssim": float("nan"), "num_images": 0}
    dice, ssim = np.concatenate(dice), np.concatenate(ssim)
    return {"dice": float(dice.mean()), "ssim": float(ssim.mean()), "num_images": int(dice.size)}


def read_scores(model_dir):
    """checkpoint_scores.json of a model folder ({} before the first periodic checkpoint)."""
    return io_utils.read_json(os.path.join(model_dir, SCORES_FILE), missing={})


def checkpoint_path(model_dir, epoch):
    return os.path.join(model_dir, "checkpoints", f"epoch_{int(epoch):04d}.weights.h5")


# --------------------------------------------------------------- callbacks

class GeneratorCheckpoint(keras.callbacks.Callback):
    """Every `every` epochs: save the generator to checkpoints/epoch_NNNN.weights.h5
    and score it on the validation set (Dice, SSIM) into checkpoint_scores.json."""

    def __init__(self, model_dir, val_ds, every=15, max_batches=None):
        super().__init__()
        self.model_dir = model_dir
        self.val_ds = val_ds
        self.every = int(every)
        self.max_batches = max_batches

    def on_epoch_end(self, epoch, logs=None):
        done = epoch + 1
        if self.every <= 0 or done % self.every:
            return
        generator = self.model.generator
        path = checkpoint_path(self.model_dir, done)
        save_weights_atomic(generator, path)
        entry = {"epoch": done, "weights": os.path.relpath(path, self.model_dir)}
        if self.val_ds is not None:
            entry.update(score_generator(generator, self.val_ds, self.model.num_classes, self.max_batches))
        scores = read_scores(self.model_dir)
        scores.setdefault("metric_settings", {
            "dice": "non-binary Dice, paper Eq. 6, images in [0, 1], mean over validation images",
            "ssim": f"tf.image.ssim, {image_metrics.SSIM_FILTER_SIZE}x{image_metrics.SSIM_FILTER_SIZE} Gaussian "
                    f"sigma {image_metrics.SSIM_FILTER_SIGMA}, K1 {image_metrics.SSIM_K1}, K2 {image_metrics.SSIM_K2}, range 1",
            "generator_mode": "training=False (moving BatchNorm statistics, no dropout)"})
        checkpoints = [c for c in scores.get("checkpoints", []) if c["epoch"] != done]
        checkpoints.append(entry)
        scores["checkpoints"] = sorted(checkpoints, key=lambda c: c["epoch"])
        io_utils.write_json(os.path.join(self.model_dir, SCORES_FILE), scores)
        logging.info("epoch %d: generator checkpoint %s dice %.4f ssim %.4f", done, path,
                     entry.get("dice", math.nan), entry.get("ssim", math.nan))


class ImageGrid(keras.callbacks.Callback):
    """TensorBoard image panel (mask | target | generated) of fixed validation examples."""

    def __init__(self, val_ds, log_dir, every=1, num_examples=4):
        super().__init__()
        self.every = int(every)
        self.log_dir = os.path.join(log_dir, "images")
        self.batch = None
        if val_ds is not None and self.every > 0:
            conds, targets, n = [], [], 0
            for b in val_ds:
                c, t = split_batch(b)
                conds.append(c)
                targets.append(t)
                n += int(c.shape[0])
                if n >= num_examples:
                    break
            if conds:
                self.batch = (tf.concat(conds, 0)[:num_examples], tf.concat(targets, 0)[:num_examples])
        self.writer = None

    def on_epoch_end(self, epoch, logs=None):
        if self.batch is None or self.every <= 0 or (epoch + 1) % self.every:
            return
        if self.writer is None:
            self.writer = tf.summary.create_file_writer(self.log_dir)
        cond, target = self.batch
        fake = self.model.generator(cond, training=False)
        with self.writer.as_default():
            grid = tensorboard_panels.pix2pix_grid(classes_from_condition(cond), to_unit_range(target),
                                                   to_unit_range(fake))
            tf.summary.image("mask | target | generated", grid, step=epoch + 1)
        self.writer.flush()
