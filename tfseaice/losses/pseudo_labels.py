"""Proportion-matched pseudo-labels: each pixel's class target, drawn from its own prediction so that every
polygon's pixels split between the classes in the chart's proportions.

Why: a polygon-mean loss (`tfseaice.losses.composition`) is met as well by every pixel predicting its
polygon's shares as by a correct split, and at the quickstart budget the network does exactly that for
thin first-year ice (docs/ice_type_losses.md, "What holds them back"). Entropy minimisation makes each
pixel commit, but to its most likely class, which is the dominant stage. Here the target commits pixels
*and* keeps the chart's proportions: the pixels the network finds relatively most likely to be thin ice
get the thin ice share of the polygon.

The target is an entropic optimal transport between a polygon's pixels (mass 1 each) and its classes
(mass n_k q_c), computed by Sinkhorn-Knopp scaling on the sharpened prediction
a = softmax((log p - its polygon mean) / (T s_k)), s_k the polygon's spread of log p (`_sharpened`):
Q_ic = a_ic v_kc / sum_c' a_ic' v_kc', with the per-polygon class factors v updated so that the polygon
mean of Q approaches q (Cuturi, "Sinkhorn distances: lightspeed computation of optimal transport",
2013). A class the chart does not hold (q_c = 0) gets no pixel. The same construction labels
unlabelled images from class proportions in Asano, Rupprecht and Vedaldi, "Self-labelling via
simultaneous clustering and representation learning" (ICLR 2020). The loss
is the pixels' cross-entropy against the target, which carries no gradient.
"""

import tensorflow as tf

from tfseaice.losses.options import check_temperature
from tfseaice.losses.pixel import global_pixel_mean
from tfseaice.losses.regional import as_polygon_table, polygon_means, polygon_segments

DEFAULT_TEMPERATURE = 0.25
SINKHORN_ITERATIONS = 10
EPSILON = 1e-7
SPREAD_FLOOR = 1e-4   # a polygon whose pixels all agree: no ranking to sharpen (its targets are its shares)


def _normalise_rows(x):
    return tf.math.divide_no_nan(x, tf.reduce_sum(x, axis=-1, keepdims=True))


def _pixel_rows(rows, segments):
    """Each pixel's row of a per-(image, polygon) table [N, D] -> [P, D] (row 0 for unusable pixels)."""
    return tf.gather(rows, tf.maximum(segments, 0))


def _sharpened(probs, polygon_ids, table, segments, held, temperature):
    """softmax of each pixel's log p over its polygon's spread of log p times T, [P, C] (`probs` [B,H,W,C]).

    A per-polygon, per-class constant of log p is what the Sinkhorn factors absorb, so only the
    differences between a polygon's pixels matter; dividing them by their spread (the RMS of log p about
    its polygon mean over the chart's classes) makes T a number of spreads, the same for a hedged network
    (every pixel within a few hundredths of its polygon's shares) as for a confident one.
    """
    log_p = tf.math.log(tf.maximum(probs, EPSILON))
    centred = (tf.reshape(log_p, [-1, tf.shape(probs)[-1]])
               - _pixel_rows(polygon_means(log_p, polygon_ids, table)[0].flat_values, segments))
    square = tf.reduce_sum(tf.square(centred) * _pixel_rows(held, segments), -1, keepdims=True)
    square = tf.reshape(square, tf.concat([tf.shape(probs)[:-1], [1]], 0))   # [B,H,W,1]: one channel's means
    spread = polygon_means(square, polygon_ids, table)[0].flat_values
    spread = tf.sqrt(tf.math.divide_no_nan(spread, tf.reduce_sum(held, -1, keepdims=True)))
    return tf.nn.softmax(centred / (temperature * tf.maximum(_pixel_rows(spread, segments), SPREAD_FLOOR)))


def proportion_pseudo_labels(probs, polygon_ids, composition_table, *, temperature=DEFAULT_TEMPERATURE,
                             iterations=SINKHORN_ITERATIONS):
    """(targets [B,H,W,C] float32, labelled [B,H,W] bool): each labelled pixel's class target.

    A pixel is labelled if its polygon (patch-local id, as the regional losses) has a finite
    composition; its target row sums to 1 and holds only the polygon's classes. `temperature` T > 0,
    in units of the polygon's spread of log p, sharpens the prediction before the scaling (T -> 0: a
    hard split by the network's ranking of the pixels). No gradient flows through the targets.
    """
    temperature = check_temperature(temperature, "temperature")
    probs = tf.stop_gradient(tf.cast(probs, tf.float32))
    table = as_polygon_table(composition_table)
    shape = tf.shape(probs)
    q = table.flat_values
    finite = tf.reduce_all(tf.math.is_finite(q), axis=-1)
    q = tf.where(finite[:, None], q, tf.zeros_like(q))
    segments, usable = polygon_segments(polygon_ids, table)
    labelled = usable & _pixel_rows(finite, segments)
    pixel_q = _pixel_rows(q, segments)
    held = tf.cast(q > 0, tf.float32)
    sharp = _sharpened(probs, polygon_ids, table, segments, held, temperature)
    # start from the chart's classes only, then rescale each polygon's classes towards its shares
    factors = held
    targets = _normalise_rows(sharp * _pixel_rows(factors, segments))
    for _ in range(iterations):
        means = polygon_means(tf.reshape(targets, shape), polygon_ids, table)[0].flat_values
        factors = factors * tf.math.divide_no_nan(q, tf.maximum(means, EPSILON))
        targets = _normalise_rows(sharp * _pixel_rows(factors, segments))
    # a pixel whose sharpened prediction underflowed on all its polygon's classes takes the shares
    empty = tf.reduce_sum(targets, axis=-1, keepdims=True) <= 0
    targets = tf.where(empty, pixel_q, targets)
    targets = tf.where(labelled[:, None], targets, tf.zeros_like(targets))
    return tf.reshape(targets, shape), tf.reshape(labelled, shape[:-1])


def pseudo_label_loss(probs, polygon_ids, composition_table, *, temperature=DEFAULT_TEMPERATURE,
                      iterations=SINKHORN_ITERATIONS, global_pixel_count=None):
    """Mean over the labelled pixels of the global batch of -sum_c Q_c log p_c (Q: proportion_pseudo_labels)."""
    targets, labelled = proportion_pseudo_labels(probs, polygon_ids, composition_table, temperature=temperature,
                                                 iterations=iterations)
    log_p = tf.math.log(tf.maximum(tf.cast(probs, tf.float32), EPSILON))
    return global_pixel_mean(-tf.reduce_sum(targets * log_p, axis=-1), labelled, global_pixel_count)
