"""TensorBoard image strips, drawn with TF ops inside training callbacks: SIC and ice-type patches,
pix2pix triples (the PNG panels are in tfseaice.viz)."""

import numpy as np
import tensorflow as tf
from matplotlib import colormaps

from tfseaice.data import glacier


def _colour(x, lo=0.0, hi=1.0, cmap="viridis"):
    """[B,H,W] values -> [B,H,W,3] RGB in [0,1] (NaN -> grey)."""
    table = tf.constant(colormaps[cmap](np.linspace(0, 1, 256))[:, :3], tf.float32)
    finite = tf.math.is_finite(x)
    idx = tf.cast(tf.clip_by_value((tf.where(finite, x, lo) - lo) / (hi - lo), 0, 1) * 255, tf.int32)
    rgb = tf.gather(table, idx)
    return tf.where(finite[..., None], rgb, 0.5)


def sic_panels(batch, pred):
    """One RGB strip per example: HH (2-98 % stretch), chart SIC, predicted SIC, truth."""
    hh = batch["sar"][..., 0]
    finite = tf.boolean_mask(hh, tf.math.is_finite(hh))
    lo = tfp_percentile(finite, 2.0)
    hi = tfp_percentile(finite, 98.0)
    ids = batch["polygon_ids"]
    chart = tf.where(ids >= 0, tf.gather(batch["polygon_sic"], tf.maximum(ids, 0), batch_dims=1), np.nan)
    strips = [_colour(hh, lo, hi + 1e-6, "gray"), _colour(chart), _colour(tf.cast(pred, tf.float32)),
              _colour(batch.get("sic_truth", tf.fill(tf.shape(hh), np.nan)))]
    sep = tf.ones_like(strips[0][:, :, :2])
    out = []
    for s in strips:
        out += [s, sep]
    return tf.concat(out[:-1], axis=2)


def class_panels(chart, pred, num_classes, unlabelled=255):
    """One RGB strip per example: chart class | predicted class ([B,H,W] ints; `unlabelled` -> grey)."""
    def rgb(classes):
        c = tf.cast(classes, tf.float32)
        return _colour(tf.where(c == unlabelled, np.nan, c), 0.0, max(num_classes - 1, 1), "tab10")
    a, b = rgb(chart), rgb(pred)
    return tf.concat([a, tf.ones_like(a[:, :, :2]), b], axis=2)


def tfp_percentile(x, q):
    """Percentile of a 1-D tensor by sorting (no tensorflow-probability dependency)."""
    n = tf.size(x)
    if n == 0:
        return tf.constant(0.0)
    s = tf.sort(x)
    i = tf.cast(tf.round(q / 100.0 * tf.cast(n - 1, tf.float32)), tf.int32)
    return s[i]


def zones_gray(classes):
    """Class indices -> zone gray values in [0, 1] for display."""
    lut = tf.constant([v / 255.0 for v in glacier.ZONE_VALUES], tf.float32)
    return tf.gather(lut, tf.cast(classes, tf.int32))[..., None]


def pix2pix_grid(classes, target01, fake01):
    """[1, n*H, 3*W, 1] panel: rows of mask | target | generated, images in [0, 1]."""
    mask = zones_gray(classes)
    rows = tf.concat([mask, target01, fake01], axis=2)
    return tf.reshape(rows, [1, -1, tf.shape(rows)[2], 1])
