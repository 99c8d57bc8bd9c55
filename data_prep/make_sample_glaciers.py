r"""Write synthetic glacier fjord scenes in the CaFFe layout.

  python -m data_prep.make_sample_glaciers --out_dir=DATA_RAW --num_images=40 --seed=0 [--overwrite]

Layout: sar_images/, zones/ (0/64/127/254), fronts/ (255 on 0) with train/ and
test/ subfolders, plus elevation/ with --with_elevation (an extra conditioning
channel). See tfseaice/simulate/glaciers.py for what the scenes contain.
"""

import time

from absl import flags

from tfseaice import cli
from tfseaice.simulate import glaciers

FLAGS = flags.FLAGS


def define_flags():
    """Flags of this entry point (defined on demand, not at import)."""
    flags.DEFINE_string("out_dir", None, "Output CaFFe data root.", required=True)
    flags.DEFINE_integer("num_images", 40, "Number of scenes.")
    flags.DEFINE_integer("seed", 0, "Random seed.")
    flags.DEFINE_float("test_fraction", 0.2, "Fraction of scenes written to the test split.")
    flags.DEFINE_bool("with_elevation", False, "Also write an elevation/ extra channel.")
    flags.DEFINE_integer("min_size", 300, "Smallest image side in pixels.")
    flags.DEFINE_integer("max_size", 700, "Largest image side in pixels.")
    flags.DEFINE_bool("overwrite", False, "Replace an existing --out_dir.")


def main(argv):
    del argv
    t0 = time.time()
    written = glaciers.make_sample_dataset(
        FLAGS.out_dir, FLAGS.num_images, seed=FLAGS.seed, test_fraction=FLAGS.test_fraction,
        with_elevation=FLAGS.with_elevation, overwrite=FLAGS.overwrite,
        min_size=FLAGS.min_size, max_size=FLAGS.max_size)
    print(f"Wrote {len(written['train'])} train and {len(written['test'])} test scenes to "
          f"{FLAGS.out_dir} in {time.time() - t0:.1f} s")


if __name__ == "__main__":
    define_flags()
    cli.run(main)
