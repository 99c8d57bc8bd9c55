"""Seeded, stateless augmentation of training examples: flips and 90° rotations that move the SAR and
every raster aligned with it together, and the SIC tasks' backscatter offsets.

Each op takes a [2] int64 seed (tfseaice.data.pipeline pairs every example with one), so the same seed
gives the same batches.
"""

import functools

import tensorflow as tf

PIXEL_KEYS = ("polygon_ids", "sic_truth", "sod_truth", "floe_truth")  # [H, W] rasters that move with the SAR
BACKSCATTER_CHANNELS = ("hh", "hv")   # the channels in dB that the backscatter augmentation shifts


def random_dihedral(images, seed):
    """Apply one of the 8 flips/90° rotations, chosen by `seed`, to every image.

    `images` is a list of [H, W, C] tensors (square patches), all transformed alike.
    """
    k = tf.random.stateless_uniform([], seed, 0, 4, dtype=tf.int32)
    flip = tf.random.stateless_uniform([], seed + [1, 0], 0, 2, dtype=tf.int32)
    out = []
    for im in images:
        im = tf.image.rot90(im, k)
        im = tf.cond(flip > 0, lambda i=im: tf.image.flip_left_right(i), lambda i=im: i)
        out.append(im)
    return out


def random_backscatter(sar, seed, db_channels, gain_db):
    """`sar` [H, W, C] with a random offset from [-gain_db, gain_db] dB added to each channel flagged
    in `db_channels` [C], one offset per channel and patch.

    What it stands for: calibration, noise-floor, wind and incidence-angle differences between
    products and seasons, which shift a patch's backscatter as a whole (a 256-pixel patch at 80 m
    spans about one degree of incidence). NaN (no data) stays NaN; other channels (incidence angle,
    distance) are unchanged.
    """
    gain = tf.random.stateless_uniform(tf.shape(sar)[-1:], seed + [2, 0], -1.0, 1.0) * gain_db
    return sar + tf.constant(db_channels, tf.float32) * gain


def augment_sic(ex, seed, flips=True, db_channels=(), gain_db=0.0):
    """Flips and 90° rotations applied identically to SAR, polygon ids and every truth raster in `ex`,
    after the SAR's backscatter augmentation (`random_backscatter`) when gain_db > 0."""
    sar = ex["sar"]
    if gain_db:
        sar = random_backscatter(sar, seed, db_channels, gain_db)
    if not flips:
        return dict(ex, sar=sar)
    names = [k for k in PIXEL_KEYS if k in ex]
    out = random_dihedral([sar] + [ex[k][..., None] for k in names], seed)
    return dict(ex, sar=out[0], **{k: im[..., 0] for k, im in zip(names, out[1:])})


def sic_augmentation(channels, flips=True, gain_db=0.0):
    """`augment_sic` for examples whose SAR holds `channels` (dataset_info names, in order)."""
    db = tuple(float(name in BACKSCATTER_CHANNELS) for name in channels)
    return functools.partial(augment_sic, flips=flips, db_channels=db, gain_db=gain_db)


def augment_glacier(ex, seed):
    """Flips and 90° rotations applied identically to SAR, mask (and extra channels)."""
    ims = [ex["sar"], ex["mask"][..., None]] + ([ex["extra"]] if "extra" in ex else [])
    out = random_dihedral(ims, seed)
    res = dict(ex, sar=out[0], mask=out[1][..., 0])
    if "extra" in ex:
        res["extra"] = out[2]
    return res
