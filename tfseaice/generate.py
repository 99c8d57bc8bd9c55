r"""Generate synthetic glacier SAR images from zone masks with a trained pix2pix generator.

  python -m tfseaice.generate --model_dir=runs/pix2pix_orig --masks_glob='masks/*_zones.png' \
      --out_dir=synthetic [--checkpoint=best|latest|EPOCH|path] [--dropout_at_inference] [--overwrite]
  python -m tfseaice.generate --saved_model=export/pix2pix --masks_glob=... --out_dir=...
  python -m tfseaice.generate --model_dir=... --random_masks=100 --seed=7 --out_dir=synthetic

Masks are CaFFe zone PNGs (0 no data, 64 rock, 127 glacier, 254 ocean) of any
size. Each output is one 8-bit PNG named after its mask (`NAME_zones.png` ->
`NAME.png`; characters other than letters, digits, `.`, `_`, `-` become `_`),
of the mask's own size. The generator works on 256 x 256 tiles: the mask is
padded (mirrored) to cover whole tiles, tiles overlap by half and are blended
with a smooth window, then the result is cropped back (`--mode=full` instead
runs the fully convolutional generator on the padded mask in one go). Pixels
that are no data in the mask are 0 in the image, valid pixels are >= 1 (the
CaFFe convention).

`--random_masks=N` draws N new plausible fjord masks
(tfseaice.data.glacier_masks.random_fjord_mask) and writes mask + image
pairs in the CaFFe layout (`sar_images/train/`, `zones/train/`,
`fronts/train/`), ready for data_prep.glacier_to_tfrecord.

A model trained with extra conditioning channels needs them for each mask:
`NAME_<channel>.npy` or `.png` beside `NAME_zones.png`.

Dropout: by default the generator runs deterministically (training=False:
BatchNorm moving statistics, no dropout). `--dropout_at_inference` keeps the
dropout layers on, the paper's (and Isola et al.'s) noise source, so repeated
runs differ; BatchNorm still uses its moving statistics unless
`--bn_at_inference=batch` (each tile normalised with its own statistics, as
the reference implementations' test mode at batch 1). A Gamma-speckle
generator (`train --speckle=gamma`) draws its speckle from `--seed`; tiles
are blended after speckling, which lowers the speckle's contrast where they
overlap (`--mode=full` avoids that). `--speckle_looks=L` draws that
generator's speckle with L looks on every pixel instead of its trained L
(e.g. the equivalent number of looks of another product); the median image
is unchanged.
"""

import glob
import os

import keras
from absl import flags, logging

from tfseaice import cli, run_lock
from tfseaice.errors import InputError
from tfseaice.serving.generator import load_from_model_dir, load_saved_model
from tfseaice.serving.glacier_images import generate_from_masks, generate_random

FLAGS = flags.FLAGS


def define_flags():
    """Flags of this entry point (defined on demand, not at import)."""
    flags.DEFINE_string("model_dir", None, "Trained pix2pix model folder.")
    flags.DEFINE_string("saved_model", None, "Exported generator SavedModel (instead of --model_dir).")
    flags.DEFINE_string("checkpoint", "best", "With --model_dir: best, latest, an epoch number "
                        "(checkpoints/epoch_NNNN.weights.h5) or a .weights.h5 path.")
    flags.DEFINE_string("masks_glob", None, "Zone mask PNGs to turn into images.")
    flags.DEFINE_string("out_dir", None, "Output folder.", required=True)
    flags.DEFINE_bool("dropout_at_inference", False, "Keep dropout on when generating (paper's noise).")
    flags.DEFINE_integer("random_masks", 0, "Draw this many random fjord masks instead of --masks_glob.")
    flags.DEFINE_integer("seed", 0, "Seed of --random_masks (and of dropout noise).")
    flags.DEFINE_integer("min_size", 300, "Smallest side of a random mask.")
    flags.DEFINE_integer("max_size", 700, "Largest side of a random mask.")
    flags.DEFINE_enum("mode", "tile", ["tile", "full"], "Overlapping 256 tiles, or one fully "
                      "convolutional pass over the padded mask.")
    flags.DEFINE_integer("batch_size", 8, "Tiles per generator call.")
    flags.DEFINE_bool("overwrite", False, "Write into a non-empty --out_dir.")
    # --- pix2pix realism
    flags.DEFINE_enum("bn_at_inference", "moving", ["moving", "batch"],
                      "BatchNorm when generating: moving statistics, or each tile's own statistics (the "
                      "reference implementations' test mode at batch 1). --seed also seeds Gamma speckle.")
    flags.DEFINE_float("speckle_looks", 0.0, "Speckle generators (--speckle=gamma*): draw Gamma speckle of this "
                       "many looks on every pixel instead of the trained L, e.g. another product's equivalent "
                       "number of looks; 0 = the trained L. Needs --model_dir.")


def main(argv):
    del argv
    if bool(FLAGS.model_dir) == bool(FLAGS.saved_model):
        raise InputError("flags", "give exactly one of --model_dir and --saved_model")
    if bool(FLAGS.masks_glob) == bool(FLAGS.random_masks):
        raise InputError("flags", "give exactly one of --masks_glob and --random_masks")
    run_lock.RunLock(FLAGS.out_dir).acquire()   # one run per output folder (released at exit)
    keras.utils.set_random_seed(FLAGS.seed)
    if FLAGS.model_dir:
        gen = load_from_model_dir(FLAGS.model_dir, FLAGS.checkpoint, FLAGS.dropout_at_inference,
                                  bn_at_inference=FLAGS.bn_at_inference, seed=FLAGS.seed,
                                  speckle_looks=FLAGS.speckle_looks)
    else:
        if FLAGS.speckle_looks:
            raise InputError(FLAGS.saved_model, "--speckle_looks needs --model_dir (a SavedModel's looks are "
                                                "fixed at export)")
        if FLAGS.dropout_at_inference:
            logging.warning("--dropout_at_inference has no effect on a SavedModel (fixed at export)")
        if FLAGS.bn_at_inference != "moving":
            logging.warning("--bn_at_inference has no effect on a SavedModel (moving statistics at export)")
        gen = load_saved_model(FLAGS.saved_model)
    if FLAGS.random_masks:
        names = generate_random(gen, FLAGS.random_masks, FLAGS.out_dir, seed=FLAGS.seed,
                                overwrite=FLAGS.overwrite, min_size=FLAGS.min_size,
                                max_size=FLAGS.max_size, mode=FLAGS.mode, batch_size=FLAGS.batch_size)
        print(f"Wrote {len(names)} random mask + image pairs (CaFFe layout) to {FLAGS.out_dir}")
    else:
        paths = [p for p in glob.glob(FLAGS.masks_glob) if os.path.isfile(p)]
        done = generate_from_masks(gen, paths, FLAGS.out_dir, overwrite=FLAGS.overwrite,
                                   mode=FLAGS.mode, batch_size=FLAGS.batch_size)
        print(f"Wrote {len(done)} images to {FLAGS.out_dir}")


if __name__ == "__main__":
    define_flags()
    cli.run(main)
