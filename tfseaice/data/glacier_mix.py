"""Glacier training data options: synthetic mixing, a small real subset, 2-class zones.

The flags (`python -m tfseaice.train`, stored in task.json's config.extra; declared with the
glacier tasks, tfseaice.tasks.shared_options and tasks/glacier_zones.py). Functions here take the
task's typed options (`opts`: attributes real_fraction, real_fraction_seed, zone_classes and, for
glacier_zones, synthetic_data_dir and synthetic_fraction):

  --synthetic_data_dir=SYN --synthetic_fraction=F
      Each training example is drawn from SYN (a glacier_to_tfrecord folder of
      generated pairs, e.g. from `generate --random_masks=N`) with probability
      F and from the real --data_dir otherwise (`Dataset.sample_from_datasets`,
      seeded): a batch of B holds on average F*B synthetic patches. F=0 is the
      real-only pipeline, unchanged. Only SYN's train split is read;
      validation stays real.
  --real_fraction=R (seed --real_fraction_seed)
      Train on the patches of a seeded random R share of the real training
      IMAGES (by name; at least one image). Validation keeps the whole real
      validation split (checkpoint selection only; the test split is separate
      images).
  --zone_classes=2|3
      The number of zone classes, as `evaluate --zone_classes` counts them
      (no data is not a zone): 3 = rock, glacier, ocean (the default); 2 = the
      pix2pix paper's zones, ocean vs glacier + rock: rock is read as glacier.
      Class indices and model shapes stay; rock simply never appears. 4, the
      old spelling of 3 (it counted no data), is still accepted.

Epoch length is unchanged by all three: the steps of one pass over the whole
real training split (`training.config.default_steps`), so every setting of an
experiment gets the same number of gradient steps; with mixing, (1 - F) of
them are real patches, and with --real_fraction the small subset is repeated.
"""

import numpy as np
import tensorflow as tf
from absl import logging

from tfseaice.data import dataset_info, pipeline
from tfseaice.errors import InputError

SYNTHETIC_SEED_OFFSET = 104729   # the synthetic stream's shuffle/augmentation seed = seed + this


def check_options(opts, data_dir=None, info=None):
    """One-line InputError for a bad option; with `data_dir`, also that SYN matches the real data.

    Returns the synthetic folder's dataset_info (None without mixing; pix2pix never mixes).
    """
    f, syn_dir = getattr(opts, "synthetic_fraction", 0.0), getattr(opts, "synthetic_data_dir", "")
    if not 0.0 <= f < 1.0:
        raise InputError("--synthetic_fraction", f"must be in [0, 1), got {f:g}")
    if f > 0 and not syn_dir:
        raise InputError("--synthetic_data_dir", f"is needed with --synthetic_fraction={f:g} (a glacier_to_tfrecord "
                                                 "folder of generated pairs)")
    if not 0.0 < opts.real_fraction <= 1.0:
        raise InputError("--real_fraction", f"must be in (0, 1], got {opts.real_fraction:g}")
    if f == 0 or data_dir is None:
        return None
    return check_synthetic(data_dir, info or dataset_info.load(data_dir, kind="glacier"), syn_dir)


def check_synthetic(data_dir, info, syn_dir):
    """SYN's dataset_info, after checking it can be mixed with the real data (patch size, channels)."""
    syn = dataset_info.load(syn_dir, kind="glacier")
    where = f"{syn_dir}/{dataset_info.FILENAME}"
    if int(syn["patch_size"]) != int(info["patch_size"]):
        raise InputError(where, f"patch_size {syn['patch_size']} differs from --data_dir's {info['patch_size']} "
                                "(convert both with the same --patch_size)")
    if list(syn.get("extra_channels") or []) != list(info.get("extra_channels") or []):
        raise InputError(where, f"extra channels {syn.get('extra_channels') or []} differ from --data_dir's "
                                f"{info.get('extra_channels') or []}")
    if not syn["splits"].get("train", {}).get("num_examples", 0):
        raise InputError(where, "has no training patch to mix in")
    return syn


def image_names(data_dir, info, split="train"):
    """Sorted names of the images that have patches in `split` (read from the records)."""
    spec = {"name": tf.io.FixedLenFeature([], tf.string)}
    ds = tf.data.TFRecordDataset(pipeline.check_shards(data_dir, info, split))  # empty or cut: one line
    ds = ds.map(lambda s: tf.io.parse_single_example(s, spec)["name"]).batch(4096)
    return sorted({n.decode() for batch in ds.as_numpy_iterator() for n in batch})


def choose_images(names, fraction, seed):
    """A seeded random `fraction` of `names` (round(fraction * n), at least 1), sorted.

    Depends only on the set of names, the fraction and the seed.
    """
    names = sorted(set(names))
    if not names:
        raise ValueError("no image names to choose from")
    count = min(len(names), max(1, int(round(fraction * len(names)))))
    picked = np.random.default_rng(seed).choice(len(names), size=count, replace=False)
    return sorted(names[i] for i in picked)


def pipeline_zone_classes(zone_classes):
    """The tf.data pipeline's `zone_classes` (classes of its masks, no data included) for a zone count."""
    return 2 if zone_classes == 2 else 4


def dataset_options(opts, data_dir, info, training=True):
    """Keyword arguments of `pipeline.glacier_dataset` for a task's options: zone_classes, and in
    training the real image subset of --real_fraction."""
    kwargs = {"zone_classes": pipeline_zone_classes(opts.zone_classes)}
    if training and opts.real_fraction < 1.0:
        names = image_names(data_dir, info, "train")
        kwargs["images"] = choose_images(names, opts.real_fraction, opts.real_fraction_seed)
        logging.info("--real_fraction=%g: training on %d of %d real images (seed %d): %s", opts.real_fraction,
                     len(kwargs["images"]), len(names), opts.real_fraction_seed, ", ".join(kwargs["images"]))
    return kwargs


def training_dataset(cfg, opts, info, augment=True):
    """The training batches of a glacier task: real only (F = 0: `pipeline.glacier_dataset` as
    without these options) or real and synthetic patches mixed (see the module docstring)."""
    syn_info = check_options(opts, cfg.data_dir, info)
    skip = getattr(cfg, "skip_corrupt", False)
    kwargs = dataset_options(opts, cfg.data_dir, info)
    if syn_info is None:
        return pipeline.glacier_dataset(cfg.data_dir, "train", cfg.batch_size, training=True, seed=cfg.seed,
                                        info=info, augment=augment, skip_corrupt=skip, **kwargs)
    return mixed_dataset(cfg.data_dir, opts.synthetic_data_dir, opts.synthetic_fraction, cfg.batch_size,
                         cfg.seed, info, syn_info, augment=augment, skip_corrupt=skip, **kwargs)


def mixed_dataset(data_dir, syn_dir, fraction, batch_size, seed, info, syn_info, augment=True,
                  skip_corrupt=False, zone_classes=4, images=None):
    """Batches whose examples come from SYN with probability `fraction`, seeded (same seed, same batches)."""
    real = pipeline.glacier_examples(data_dir, "train", True, seed=seed, info=info, augment=augment,
                                     skip_corrupt=skip_corrupt, zone_classes=zone_classes, images=images)
    syn = pipeline.glacier_examples(syn_dir, "train", True, seed=seed + SYNTHETIC_SEED_OFFSET, info=syn_info,
                                    augment=augment, skip_corrupt=skip_corrupt, zone_classes=zone_classes)
    logging.info("mixing synthetic patches from %s into the training batches: fraction %g (seed %d)",
                 syn_dir, fraction, seed)
    ds = tf.data.Dataset.sample_from_datasets([real, syn], weights=[1.0 - fraction, fraction], seed=seed)
    return ds.batch(batch_size, drop_remainder=True).prefetch(pipeline.AUTOTUNE)
