"""The SOD/FLOE composition losses: what each `--composition_loss` compares, per (image, polygon) pair.

Why a module of its own: the kinds are the part of the ice-type method that
papers disagree on (docs/ice_type_losses.md maps each kind to its paper), while
the polygon plumbing they share (segments, polygon means, the cross-replica
denominator, the reduction) is the SIC loss's, in `tfseaice.losses.regional`.

Notation: q is a polygon's composition (its share of each class: open water
1 - SIC, each stage or form its partial concentration; sums to 1), p a pixel's
softmax, and mean_k(.) the mean over polygon k's usable pixels.

  sse        sum_c (mean_k(p_c) - q_c)^2: the regional squared error of the
             polygon's mean distribution (the class analogue of the SIC loss,
             Eq. 1 of Patel et al., "Region-level Ground Truth can produce
             Pixel-level Segmentation for Sea Ice Concentration").
  xent       -sum_c q_c log mean_k(p_c): cross-entropy of the polygon's mean
             distribution against the composition (minimum: q's entropy).
  pll_focal  mean_k( -sum_c q_c (1 - p_c)^gamma log p_c ): partial-label
             learning with focal loss (Vahedi et al. 2024, "Partial Label
             Learning with Focal Loss for Sea Ice Classification Based on Ice
             Charts", arXiv 2406.03645): every pixel's candidate classes are
             its polygon's stages (forms), each with its partial concentration
             as confidence, scored pixel by pixel with the focal term; gamma = 0
             is the pixel-wise soft cross-entropy.

Two levers against a dominant class (docs/ice_type_losses.md, "Levers for young and
thin first-year ice"), both off by default: `class_weights` w_c scale each class's
term of the error (weights of 1 are the unweighted loss, exactly), and
`logit_offset` o_c is added to log p before the loss sees it, p' = softmax(log p + o)
(logit adjustment, Menon et al. 2021, "Long-tail learning via logit adjustment",
with o = tau log prior: the loss scores the prior-shifted p', the model predicts
with its own p). A third, `pixel_entropy`, is a term of its own: the mean softmax
entropy of the labelled pixels (entropy minimisation, Grandvalet and Bengio 2005,
"Semi-supervised learning by entropy minimization"), which makes each pixel
commit to a class, where a polygon-mean loss alone is met by every pixel of a
polygon predicting its shares.

Every kind needs only per-class polygon means of per-pixel quantities, so one
`unsorted_segment_mean` over `pixel_channels` serves them all: the focal
loss's polygon error is -sum_c q_c mean_k((1 - p_c)^gamma log p_c), the mean
taken before the sum over classes (a polygon's pixels share one q).
"""

import math

import tensorflow as tf

from tfseaice.losses.options import DEFAULT_PLL_FOCAL_GAMMA, check_class_vector, check_composition_options
from tfseaice.losses.pixel import global_pixel_mean
from tfseaice.losses.regional import as_polygon_table, polygon_means, reduce_regional_loss

EPSILON = 1e-7


def focal_log_terms(probs, gamma, epsilon=EPSILON):
    """(1 - p)^gamma log p per pixel and class, [..., C] float32 (log of p clipped at `epsilon`).

    gamma == 0 skips the power: d/dx x^0 at x = 0 is 0 * inf in TF's gradient.
    The base 1 - p is clipped at `epsilon` too, so 0 < gamma < 1 keeps a finite
    gradient where a softmax rounds to exactly 1.
    """
    probs = tf.cast(probs, tf.float32)
    log_p = tf.math.log(tf.maximum(probs, epsilon))
    if gamma == 0:
        return log_p
    return tf.pow(tf.maximum(1.0 - probs, epsilon), gamma) * log_p


def adjust_probs(probs, logit_offset, epsilon=EPSILON):
    """softmax(log p + logit_offset) [..., C] float32: the probabilities the loss scores under logit adjustment."""
    probs = tf.cast(probs, tf.float32)
    if logit_offset is None:
        return probs
    offset = tf.constant(logit_offset, tf.float32)
    return tf.nn.softmax(tf.math.log(tf.maximum(probs, epsilon)) + offset, axis=-1)


def pixel_entropy(probs, polygon_ids, *, global_pixel_count=None, epsilon=EPSILON):
    """Mean of -sum_c p_c log p_c over the usable pixels (polygon id >= 0) of the global batch; 0 if none."""
    probs = tf.cast(probs, tf.float32)
    per_pixel = -tf.reduce_sum(probs * tf.math.log(tf.maximum(probs, epsilon)), axis=-1)
    return global_pixel_mean(per_pixel, polygon_ids >= 0, global_pixel_count)


def pixel_channels(probs, kind, gamma=DEFAULT_PLL_FOCAL_GAMMA):
    """The per-pixel quantities whose polygon means `pair_errors` reads, [..., C] or [..., 2C] float32.

    sse, xent: the probabilities. pll_focal: the probabilities (for the
    trackers' polygon-mean distribution) and the focal log terms, concatenated
    on the class axis, so that one segment mean serves both.
    """
    probs = tf.cast(probs, tf.float32)
    if kind != "pll_focal":
        return probs
    return tf.concat([probs, focal_log_terms(probs, gamma)], axis=-1)


def pair_errors(channel_means, target, kind, num_classes, epsilon=EPSILON, class_weights=None):
    """(pred_mean [N, C], error [N]) of every (image, polygon) pair from its channel means.

    `channel_means` [N, C] or [N, 2C] are the polygon means of `pixel_channels`;
    `target` [N, C] the compositions (0 rows where a pair is absent, so an
    absent pair's error is 0 with a zero gradient); `class_weights` [C] scale
    each class's term before the sum over classes (None = all 1).
    """
    pred_mean = channel_means[:, :num_classes]
    if kind == "sse":
        per_class = tf.square(pred_mean - target)
    elif kind == "xent":
        per_class = -target * tf.math.log(tf.maximum(pred_mean, epsilon))
    else:  # pll_focal: the polygon mean of each pixel's confidence-weighted focal loss
        per_class = -target * channel_means[:, num_classes:]
    if class_weights is not None:
        per_class = per_class * tf.constant(class_weights, tf.float32)
    return pred_mean, tf.reduce_sum(per_class, axis=-1)


def composition_terms(probs, polygon_ids, composition_table, *, kind="sse",
                      gamma=DEFAULT_PLL_FOCAL_GAMMA, class_weights=None, logit_offset=None):
    """Per-(image, polygon) pieces of the composition loss: polygon_terms' keys for class vectors.

    pred_mean and target are [B,(K_b),C] (target 0 where absent); count,
    present and error are [B,(K_b)]. A pair is present if it has a usable
    pixel and a finite composition (a NaN row = that chart is unlabelled).
    error: what `kind` compares (this module: "sse", "xent",
    "pll_focal" with focal exponent `gamma`), each class's term times
    `class_weights`, on the probabilities shifted by `logit_offset` (pred_mean
    too: the trackers see what the loss sees).
    """
    kind, gamma = check_composition_options(kind, gamma, what="composition loss")
    table = as_polygon_table(composition_table)
    num_classes = probs.shape[-1] or table.flat_values.shape[-1]
    class_weights = check_class_vector(class_weights, num_classes, "class_weights", positive=True)
    logit_offset = check_class_vector(logit_offset, num_classes, "logit_offset")
    channels = pixel_channels(adjust_probs(probs, logit_offset), kind, gamma)
    channel_means, count = polygon_means(channels, polygon_ids, table)  # per-channel means, [N, C or 2C]
    q, n = table.flat_values, count.flat_values
    present = (n > 0) & tf.reduce_all(tf.math.is_finite(q), axis=-1)
    target = tf.where(present[:, None], q, tf.zeros_like(q))
    mean, error = pair_errors(channel_means.flat_values, target, kind, num_classes, class_weights=class_weights)
    presentf = tf.cast(present, tf.float32)
    return {"pred_mean": table.with_flat_values(mean), "target": table.with_flat_values(target), "count": count,
            "present": count.with_flat_values(presentf), "error": count.with_flat_values(error * presentf)}


def composition_loss(probs, polygon_ids, composition_table, *, kind="sse", weighting="polygon",
                     reduction="polygon", global_polygon_count=None, gamma=DEFAULT_PLL_FOCAL_GAMMA,
                     class_weights=None, logit_offset=None, return_terms=False):
    """Regional class loss: each polygon's predicted classes vs its chart composition.

    The class analogue of regional_sic_loss (same segments, options and
    cross-replica denominator): for every (image, polygon) pair, the pixels'
    `probs` over the polygon are compared with the polygon's composition
    vector q (class shares, e.g. SOD [6]: open water 1 - CT, each stage its
    partial concentration).

    Args:
      probs: [B,H,W,C] class probabilities (softmax).
      polygon_ids: [B,H,W] int32 patch-local ids, -1 = excluded.
      composition_table: tf.RaggedTensor [B,(K_b),C] float32, or padded
        [B,K,C] (see as_polygon_table); NaN rows are unlabelled and ignored.
      kind: "sse" squared error of the polygon's mean distribution, summed over
        classes; "xent" cross-entropy -sum_c q_c log(mean p_c) (its minimum is
        q's entropy, not 0); "pll_focal" the polygon mean of each pixel's
        partial-label focal loss -sum_c q_c (1 - p_c)^gamma log p_c
        (docs/ice_type_losses.md).
      weighting, reduction, global_polygon_count: as in regional_sic_loss
        (pll_focal with weighting="area" is the mean over all labelled pixels).
      gamma: pll_focal's focal exponent (>= 0; 0 = pixel-wise soft cross-entropy).
      class_weights: [C] positive weights of the classes' terms (None = 1 each).
      logit_offset: [C] added to log p before the loss (None = 0; logit adjustment).
      return_terms: also return the `composition_terms` dict.
    """
    terms = composition_terms(probs, polygon_ids, composition_table, kind=kind, gamma=gamma,
                              class_weights=class_weights, logit_offset=logit_offset)
    loss = reduce_regional_loss(terms, reduction=reduction, weighting=weighting,
                                global_polygon_count=global_polygon_count)
    return (loss, terms) if return_terms else loss


PRIOR_FLOOR = 1e-3   # a class the training charts (almost) never hold: prior taken as this, so weights stay finite


def floored_prior(prior, floor=PRIOR_FLOOR):
    """The prior with every share at least `floor`, renormalised to sum 1."""
    prior = [max(float(p), floor) for p in prior]
    return [p / sum(prior) for p in prior]


def prior_class_weights(prior, alpha, floor=PRIOR_FLOOR):
    """w_c ∝ prior_c^-alpha, scaled so that sum_c prior_c w_c = 1 (the loss keeps its size on the prior's mix).

    alpha = 0 gives all 1 (the unweighted loss); alpha = 1 the inverse prior. `prior` is floored first.
    """
    prior = floored_prior(prior, floor)
    raw = [p ** -float(alpha) for p in prior]
    scale = sum(p * r for p, r in zip(prior, raw))
    return tuple(r / scale for r in raw)


def prior_logit_offset(prior, tau, floor=PRIOR_FLOOR):
    """tau log prior_c: the logit-adjustment offset (Menon et al. 2021); tau = 0 gives all 0."""
    return tuple(float(tau) * math.log(p) for p in floored_prior(prior, floor))


SHIFT_MIN_PRIOR = 0.01   # rarer classes are left unshifted at prediction: a prior from a handful of polygons


def prior_prediction_shift(prior, tau, min_prior=SHIFT_MIN_PRIOR):
    """-tau log prior_c for the classes with prior >= `min_prior`, 0 for the rarer ones: the post-hoc
    logit adjustment (Menon et al. 2021) added to log p at prediction; tau = 0 gives all 0.

    Why the rare classes are left out: their prior rests on a few polygons and -log of it is large
    (new ice, 0.15 % of the quickstart's training pixels, took thick FYI's pixels at tau = 1).
    """
    return tuple(-float(tau) * math.log(p) if p >= min_prior else 0.0 for p in map(float, prior))
