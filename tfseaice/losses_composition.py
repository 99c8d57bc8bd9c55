"""The SOD/FLOE composition losses: what each `--composition_loss` compares, per (image, polygon) pair.

Why a module of its own: the kinds are the part of the ice-type method that
papers disagree on (docs/ice_type_losses.md maps each kind to its paper), while
the polygon plumbing they share (segments, polygon means, the cross-replica
denominator) is the SIC loss's and stays in `tfseaice.losses`. This module
holds only tensor arithmetic on what that plumbing hands over, so it imports
nothing from the package and `tfseaice.losses` can build on it.

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

Every kind needs only per-class polygon means of per-pixel quantities, so one
`unsorted_segment_mean` over `pixel_channels` serves them all: the focal
loss's polygon error is -sum_c q_c mean_k((1 - p_c)^gamma log p_c), the mean
taken before the sum over classes (a polygon's pixels share one q).
"""

import tensorflow as tf

COMPOSITION_LOSSES = ("sse", "xent", "pll_focal")
DEFAULT_PLL_FOCAL_GAMMA = 2.0   # Lin et al.'s focal loss default, as the issue asks
EPSILON = 1e-7


def check_composition_options(kind, gamma=DEFAULT_PLL_FOCAL_GAMMA, what="composition_loss"):
    """(kind, gamma as float) if valid, else ValueError naming `what`: one check for flags, models and losses.

    `kind` must be one of COMPOSITION_LOSSES; `gamma` (the focal exponent,
    read by pll_focal only) a finite number >= 0.
    """
    if kind not in COMPOSITION_LOSSES:
        raise ValueError(f"{what} must be one of {COMPOSITION_LOSSES}, got {kind!r}")
    try:
        gamma = float(gamma)
    except (TypeError, ValueError):
        raise ValueError(f"pll_focal_gamma must be a number >= 0, got {gamma!r}") from None
    if not gamma >= 0 or gamma == float("inf"):
        raise ValueError(f"pll_focal_gamma must be a finite number >= 0, got {gamma!r}")
    return kind, gamma


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


def pair_errors(channel_means, target, kind, num_classes, epsilon=EPSILON):
    """(pred_mean [N, C], error [N]) of every (image, polygon) pair from its channel means.

    `channel_means` [N, C] or [N, 2C] are the polygon means of `pixel_channels`;
    `target` [N, C] the compositions (0 rows where a pair is absent, so an
    absent pair's error is 0 with a zero gradient).
    """
    pred_mean = channel_means[:, :num_classes]
    if kind == "sse":
        error = tf.reduce_sum(tf.square(pred_mean - target), axis=-1)
    elif kind == "xent":
        error = -tf.reduce_sum(target * tf.math.log(tf.maximum(pred_mean, epsilon)), axis=-1)
    else:  # pll_focal: the polygon mean of each pixel's confidence-weighted focal loss
        error = -tf.reduce_sum(target * channel_means[:, num_classes:], axis=-1)
    return pred_mean, error
