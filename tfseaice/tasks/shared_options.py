"""Options that several tasks share, declared once: augmentation, the U-Net's filters, the glacier data.

A task's options dataclass inherits the groups it takes (tfseaice.training.options).
"""

import dataclasses

from tfseaice.data import glacier
from tfseaice.models.unet import DEFAULT_FILTERS
from tfseaice.training.options import TaskOptions, option


def int_list(values):
    """A list flag (or task.json list) of integers, as a tuple."""
    try:
        return tuple(int(v) for v in values)
    except (TypeError, ValueError):
        raise ValueError(f"must be a comma-separated list of integers, got {values!r}") from None


@dataclasses.dataclass(frozen=True)
class AugmentOptions(TaskOptions):
    augment: bool = option(True, "Random flips and 90° rotations.")


@dataclasses.dataclass(frozen=True)
class UnetOptions(AugmentOptions):
    filters: tuple = option(DEFAULT_FILTERS, "U-Net filters of the encoder blocks.", parse=int_list)


@dataclasses.dataclass(frozen=True)
class GlacierDataOptions(TaskOptions):
    """The glacier data options of tfseaice.data.glacier_mix (its docstring says what they do)."""

    real_fraction: float = option(1.0, "glacier_zones, pix2pix: train on this share of the real training IMAGES "
                                  "(by name, seeded by --real_fraction_seed), in (0, 1].")
    real_fraction_seed: int = option(0, "Seed of the --real_fraction image subset (independent of --seed, so runs "
                                     "with several seeds share one subset).")
    zone_classes: int = option(3, "glacier_zones, pix2pix: the number of zone classes, as evaluate counts them: "
                               "3 = rock, glacier, ocean; 2 = the pix2pix paper's zones (ocean vs glacier + rock: "
                               "rock read as glacier). 4 = 3 (its old spelling, counting no data).",
                               choices=(2, 3, 4), parse=lambda v: glacier.zone_count(v, "--zone_classes"))
