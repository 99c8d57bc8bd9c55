"""pix2pix batches: glacier dicts (mask, sar[, extra]) -> (condition, target) tensors.

Apart from tfseaice.tasks.pix2pix so that its callbacks (tasks/pix2pix_callbacks.py)
and the model share them without importing each other. The generator sees
one_hot(mask, 4) ++ extra and produces the SAR in [-1, 1] (= 2 * sar - 1).
"""

import tensorflow as tf

from tfseaice.data import glacier

NUM_CLASSES = glacier.NUM_CLASSES


def condition(mask, extra=None, num_classes=NUM_CLASSES):
    """one_hot(mask) ++ extra -> float32 [B,H,W,num_classes+E] (the generator input)."""
    cond = tf.one_hot(tf.cast(mask, tf.int32), num_classes, dtype=tf.float32)
    if extra is not None:
        cond = tf.concat([cond, tf.cast(extra, tf.float32)], axis=-1)
    return cond


def classes_from_condition(cond, num_classes=NUM_CLASSES):
    """Class indices [B,H,W] back from a condition tensor."""
    return tf.argmax(cond[..., :num_classes], axis=-1, output_type=tf.int32)


def to_model_range(sar01):
    return tf.cast(sar01, tf.float32) * 2.0 - 1.0


def to_unit_range(x):
    return tf.clip_by_value((tf.cast(x, tf.float32) + 1.0) / 2.0, 0.0, 1.0)


def split_batch(data, num_classes=NUM_CLASSES):
    """(condition, target in [-1, 1]) from a glacier batch dict or a (cond, target) tuple."""
    if isinstance(data, (tuple, list)) and len(data) == 1:
        data = data[0]
    if isinstance(data, dict):
        return condition(data["mask"], data.get("extra"), num_classes), to_model_range(data["sar"])
    if isinstance(data, (tuple, list)) and len(data) >= 2:
        return tf.cast(data[0], tf.float32), tf.cast(data[1], tf.float32)
    raise TypeError("pix2pix batches are glacier dicts (mask, sar[, extra]) or (condition, target)")
