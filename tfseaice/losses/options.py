"""The losses' options and their one validator per family: what the flags, the models and the loss
functions accept, checked in one place (a bad value raises ValueError naming the option)."""

import math

REGIONAL_REDUCTIONS = ("polygon", "patch")
REGIONAL_WEIGHTINGS = ("polygon", "area")
PIXEL_LOSSES = ("mse", "bce")
COMPOSITION_LOSSES = ("sse", "xent", "pll_focal")
DEFAULT_PLL_FOCAL_GAMMA = 2.0   # Lin et al.'s focal loss default


def check_regional_options(reduction, weighting):
    """(reduction, weighting) of a regional loss, checked; weighting None -> "polygon"."""
    weighting = weighting or "polygon"
    if reduction not in REGIONAL_REDUCTIONS:
        raise ValueError(f"reduction must be one of {REGIONAL_REDUCTIONS}, got {reduction!r}")
    if weighting not in REGIONAL_WEIGHTINGS:
        raise ValueError(f"weighting must be one of {REGIONAL_WEIGHTINGS}, got {weighting!r}")
    return reduction, weighting


def check_pixel_loss(loss):
    """A pixel-wise SIC loss name, checked."""
    if loss not in PIXEL_LOSSES:
        raise ValueError(f"loss must be one of {PIXEL_LOSSES}, got {loss!r}")
    return loss


def check_composition_options(kind, gamma=DEFAULT_PLL_FOCAL_GAMMA, what="composition_loss"):
    """(kind, gamma as float) if valid, else ValueError naming `what`: one check for flags, models and losses.

    `kind` must be one of COMPOSITION_LOSSES; `gamma` (the focal exponent,
    read by pll_focal only) a finite number >= 0.
    """
    if kind not in COMPOSITION_LOSSES:
        raise ValueError(f"{what} must be one of {COMPOSITION_LOSSES}, got {kind!r}")
    return kind, check_lever(gamma, "pll_focal_gamma")


def check_class_vector(values, num_classes, what, positive=False):
    """`values` as a tuple of `num_classes` finite floats (positive ones if `positive`), or None; else ValueError."""
    if values is None:
        return None
    try:
        values = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be {num_classes} numbers, got {values!r}") from None
    if len(values) != num_classes or not all(math.isfinite(v) and (v > 0 or not positive) for v in values):
        kind = "positive finite" if positive else "finite"
        raise ValueError(f"{what} must be {num_classes} {kind} numbers, got {values!r}")
    return values


def check_lever(value, what):
    """A finite float >= 0 named `what` (a lever's strength: alpha, tau, an entropy weight; the focal gamma)."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a number >= 0, got {value!r}") from None
    if not value >= 0 or math.isinf(value):
        raise ValueError(f"{what} must be a finite number >= 0, got {value!r}")
    return value


def check_temperature(value, what):
    """A finite float > 0 named `what` (a softmax temperature)."""
    value = check_lever(value, what)
    if value == 0:
        raise ValueError(f"{what} must be a number > 0, got 0")
    return value
