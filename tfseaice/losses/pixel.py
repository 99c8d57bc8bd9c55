"""Pixel-wise losses on the rasterised chart: the SIC baselines (paper's benchmark, AutoICE/MMSeaIce style)
and the dominant-class cross-entropy of the ice-chart baseline.
"""

import tensorflow as tf

from tfseaice.losses.options import check_pixel_loss
from tfseaice.losses.regional import as_polygon_table, cross_replica_sum, rasterize_polygon_sic


def global_pixel_mean(per_pixel, valid, global_pixel_count=None):
    """Sum of `per_pixel` over the `valid` pixels / their global count (all-reduced across
    replicas unless given), so per-replica losses add up to the single-device one; 0 if none."""
    validf = tf.cast(valid, tf.float32)
    numerator = tf.reduce_sum(per_pixel * validf)
    if global_pixel_count is None:
        denominator = cross_replica_sum(tf.reduce_sum(validf))
    else:
        denominator = tf.cast(global_pixel_count, tf.float32)
    return tf.math.divide_no_nan(numerator, denominator)


def pixel_sic_loss(pred, polygon_ids, polygon_sic, *, loss="mse", global_pixel_count=None,
                   epsilon=1e-7):
    """Pixel-wise benchmark loss on the rasterised chart (paper's baseline U-Net).

    Every usable pixel's target is its polygon's SIC (`polygon_sic`: the target
    table, as in regional_sic_loss); the loss is the mean over all usable
    pixels of the global batch of the squared error (loss="mse") or the binary
    cross-entropy with soft targets (loss="bce"). As in regional_sic_loss, the
    pixel count is all-reduced across replicas unless `global_pixel_count` is
    given. 0 if no pixel is usable.
    """
    check_pixel_loss(loss)
    target, valid = rasterize_polygon_sic(polygon_ids, polygon_sic)
    pred = tf.reshape(tf.cast(pred, tf.float32), tf.shape(target))
    pred = tf.where(valid, pred, tf.zeros_like(pred))  # no NaN*0 in the gradient
    if loss == "mse":
        per_pixel = tf.square(pred - target)
    else:
        p = tf.clip_by_value(pred, epsilon, 1.0 - epsilon)
        per_pixel = -(target * tf.math.log(p) + (1.0 - target) * tf.math.log(1.0 - p))
    return global_pixel_mean(per_pixel, valid, global_pixel_count)


def pixel_class_loss(probs, polygon_ids, class_table, *, global_pixel_count=None, epsilon=1e-7):
    """Masked sparse categorical cross-entropy on each polygon's dominant class (AutoICE baseline).

    Every usable pixel's label is its polygon's class in `class_table`
    (RaggedTensor [B,(K_b)] or padded [B,K] int; 255 = unlabelled, masked);
    `probs` [B,H,W,C] are class probabilities. Mean of -log p_label over the
    labelled pixels of the global batch (count all-reduced across replicas
    unless `global_pixel_count` is given); 0 if none is labelled.
    """
    label, valid = rasterize_polygon_classes(polygon_ids, class_table)
    probs = tf.cast(probs, tf.float32)
    p = tf.gather(probs, label, batch_dims=3)
    per_pixel = -tf.math.log(tf.maximum(tf.where(valid, p, tf.ones_like(p)), epsilon))
    return global_pixel_mean(per_pixel, valid, global_pixel_count)


def rasterize_polygon_classes(polygon_ids, class_table, unlabelled=255):
    """Per-pixel polygon class: (label int32 [B,H,W], 0 where not valid; valid bool [B,H,W]).

    `class_table`: [B,(K_b)] or padded [B,K] int, `unlabelled` = no class.
    """
    classes = as_polygon_table(class_table)
    nan = tf.fill(tf.shape(classes.flat_values), float("nan"))
    classes = classes.with_flat_values(tf.where(classes.flat_values == unlabelled, nan, classes.flat_values))
    target, valid = rasterize_polygon_sic(polygon_ids, classes)
    return tf.cast(target, tf.int32), valid
