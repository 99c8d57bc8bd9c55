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
    try:
        gamma = float(gamma)
    except (TypeError, ValueError):
        raise ValueError(f"pll_focal_gamma must be a number >= 0, got {gamma!r}") from None
    if not gamma >= 0 or math.isinf(gamma):
        raise ValueError(f"pll_focal_gamma must be a finite number >= 0, got {gamma!r}")
    return kind, gamma
