"""pix2pix task options: the flags' defaults, and the speckle looks estimated from the training images.

`options(cfg)` is cfg.extra over DEFAULTS (the paper's settings, so old model
folders keep meaning what they meant).

With ``--speckle=gamma`` or ``gamma_fixed`` the generator's number of looks L
starts where the data's is (`initial_looks`) instead of at the head's default
(1 + softplus(0) = 1.7) while the sample glaciers' images have about 3.5;
with ``gamma_fixed`` it also stays there (tfseaice.models.speckle). The
estimate (`--speckle_looks=0`, the default) reads up to LOOKS_PATCHES training
patches once at task start (tfseaice.models.speckle.looks_from_images) and is
written into cfg.extra (``speckle_looks``, ``speckle_looks_estimate``), so
task.json records it and a finished model never reads the data again.
"""

import numpy as np
from absl import logging

from tfseaice.data import glacier, pipeline
from tfseaice.models import speckle

DEFAULTS = {"gen_kernel": 4, "disc_kernel": 4, "gan_weight": 1.0, "l1_weight": 100.0, "beta_1": 0.5,
            "checkpoint_every": 15, "generator_filters": 64, "discriminator_filters": 64,
            "sync_batchnorm": False, "augment": True, "dropout_at_inference": False,
            "gen_upsample": "transpose", "speckle": "none",
            "speckle_looks": None}   # old model folders: the paper's; None = the head's default L (1.7)
LOOKS_PATCHES = 64


def options(cfg):
    """Task flags from cfg.extra with the paper's defaults."""
    opts = dict(DEFAULTS)
    opts.update({k: v for k, v in (getattr(cfg, "extra", None) or {}).items() if v is not None})
    return opts


def training_patches(data_dir, info, max_examples=LOOKS_PATCHES):
    """(sar [N,P,P] in [0, 1], mask [N,P,P]) of the first `max_examples` training patches (file order)."""
    ds = pipeline.glacier_dataset(data_dir, "train", 16, training=False, info=info)
    sar, mask, n = [], [], 0
    for batch in ds:
        sar.append(batch["sar"].numpy()[..., 0])
        mask.append(batch["mask"].numpy())
        n += len(sar[-1])
        if n >= max_examples:
            break
    return np.concatenate(sar)[:max_examples], np.concatenate(mask)[:max_examples]


def initial_looks(cfg, info):
    """Initial L of a gamma-speckle generator: the flag's value, the data's estimate (flag 0), or None.

    None (an old model folder, or no speckle head) leaves the head's bias at 0.
    An estimate is stored in cfg.extra (see the module docstring).
    """
    opts = options(cfg)
    if opts["speckle"] == "none" or opts["speckle_looks"] is None:
        return None
    looks = float(opts["speckle_looks"])
    if looks > 0:
        return looks
    try:
        sar, mask = training_patches(cfg.data_dir, info)
    except Exception as exc:  # noqa: BLE001 - a model being loaded without its data: weights follow anyway
        logging.warning("speckle looks not estimated (%s): the head starts at its default", exc)
        return None
    estimate = speckle.looks_from_images(sar, mask, glacier.CLASS_NAMES, skip=(glacier.NO_DATA,))
    extra = cfg.extra if isinstance(getattr(cfg, "extra", None), dict) else None
    if extra is not None:
        extra["speckle_looks"] = estimate["looks"]
        extra["speckle_looks_estimate"] = estimate
    logging.info("speckle looks from %d training patches: L = %.2f (per class %s)", len(sar), estimate["looks"],
                 {k: round(v["looks"], 2) for k, v in estimate["classes"].items()})
    return estimate["looks"]
