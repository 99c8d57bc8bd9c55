"""pix2pix task options (`Pix2PixOptions`, the paper's settings by default), and the speckle looks
estimated from the training images.

With ``--speckle=gamma`` or ``gamma_fixed`` the generator's number of looks L
starts where the data's is (`initial_looks`) instead of at the head's default
(1 + softplus(0) = 1.7) while the sample glaciers' images have about 3.5;
with ``gamma_fixed`` it also stays there (tfseaice.models.speckle). The
estimate (`--speckle_looks=0`, the default) reads up to LOOKS_PATCHES training
patches once at task start (tfseaice.models.speckle.looks_from_images) and is
written into cfg.extra (``speckle_looks``, ``speckle_looks_estimate``), so
task.json records it and a finished model never reads the data again.
"""

import dataclasses

import numpy as np
from absl import logging

from tfseaice.data import glacier, pipeline
from tfseaice.errors import InputError
from tfseaice.models import speckle
from tfseaice.tasks.shared_options import AugmentOptions, GlacierDataOptions
from tfseaice.training.options import option

LOOKS_PATCHES = 64


def check_multilook(value):
    """--disc_multilook: 0 (off) or a window K >= 2."""
    if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).strip().isdigit() \
            or int(value) == 1:
        raise ValueError(f"0 (off) or a window K >= 2 expected, got {value!r}")
    return int(value)


@dataclasses.dataclass(frozen=True)
class Pix2PixOptions(AugmentOptions, GlacierDataOptions):
    """The options of --task=pix2pix (`python -m tfseaice.train` flags, task.json's config.extra)."""

    gen_kernel: int = option(4, "pix2pix generator kernel size (gen5 variant: 5).")
    disc_kernel: int = option(4, "PatchGAN kernel size (dis3 variant: 3).")
    gan_weight: float = option(1.0, "Weight of the GAN term in the generator loss.")
    l1_weight: float = option(100.0, "Weight of the L1 term in the generator loss.")
    beta_1: float = option(0.5, "Adam beta_1 (pix2pix).")
    checkpoint_every: int = option(15, "Epochs between scored generator checkpoints.")
    generator_filters: int = option(64, "Filters of the first generator layer (paper: 64).")
    discriminator_filters: int = option(64, "Filters of the first PatchGAN layer (paper: 64).")
    sync_batchnorm: bool = option(False, "Synchronized BatchNorm across replicas.")
    gen_upsample: str = option("transpose", "pix2pix decoder upsampling: Conv2DTranspose (paper) or nearest resize "
                               "+ conv (no periodic dot lattice).", choices=("transpose", "resize_conv"))
    speckle: str = option("none", "pix2pix output: tanh image (paper), or median backscatter + number of looks with "
                          "Gamma speckle drawn on top (L1 on the median, GAN on the speckled image); gamma_fixed: the "
                          "looks stay at --speckle_looks (no gradient).", choices=("none", "gamma", "gamma_fixed"))
    # A model folder from before this option: None, the head's default L (1.7).
    speckle_looks: float = option(0.0, "pix2pix --speckle=gamma: initial number of looks L; 0 = estimated from the "
                                  "training images at task start (stored in task.json).", absent=None)
    speckle_looks_per_class: bool = option(False, "pix2pix --speckle=gamma_fixed: each class its own L, the "
                                           "training images' per-class estimate (needs --speckle_looks=0).")
    speckle_nodata: bool = option(False, "pix2pix --speckle=gamma*: no speckle on no-data pixels (the median image "
                                  "there), as real no-data pixels have none.")
    disc_multilook: int = option(0, "pix2pix: the PatchGAN also sees the image's K x K box mean of linear intensity "
                                 "(speckle averaged out, relief kept); 0 = off, else K >= 2.", parse=check_multilook)
    gen_noise: int = option(0, "pix2pix: N(0, 1) channels appended to the generator's condition, drawn at "
                            "inference too (a source for relief the mask does not determine); 0 = none.")
    relief_weight: float = option(0.0, "pix2pix: weight of an L1 term between the local std (15 x 15) of the "
                                  "3 x 3-multilooked generated and real images (relief energy, not its "
                                  "position); 0 = off.")

    def __post_init__(self):
        if self.gen_noise < 0 or self.relief_weight < 0:
            raise InputError("--gen_noise/--relief_weight", f"must be >= 0 (got {self.gen_noise}, {self.relief_weight})")
        if self.speckle_looks_per_class and self.speckle != "gamma_fixed":
            raise InputError("--speckle_looks_per_class", f"needs --speckle=gamma_fixed (got --speckle={self.speckle})")
        if self.speckle_nodata and self.speckle == "none":
            raise InputError("--speckle_nodata", "needs --speckle=gamma or gamma_fixed")


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
    opts = Pix2PixOptions.from_extra(getattr(cfg, "extra", None))
    if opts.speckle == "none" or opts.speckle_looks is None:
        return None
    looks = float(opts.speckle_looks)
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


def class_looks(cfg, num_classes):
    """Per-class L (one-hot order) of --speckle_looks_per_class from task.json's estimate, or None.

    A class without an estimate (no-data; a class no window lies inside) takes the overall L.
    """
    opts = Pix2PixOptions.from_extra(getattr(cfg, "extra", None))
    extra = getattr(cfg, "extra", None) or {}
    if not opts.speckle_looks_per_class:
        return None
    estimate = extra.get("speckle_looks_estimate")
    if not estimate:
        raise InputError("--speckle_looks_per_class", "no per-class looks estimate in the config (task.json): "
                         "it needs --speckle_looks=0, the estimate from the training images")
    per_class = estimate["classes"]
    return tuple(float(per_class[name]["looks"]) if name in per_class else float(estimate["looks"])
                 for name in glacier.CLASS_NAMES[:num_classes])
