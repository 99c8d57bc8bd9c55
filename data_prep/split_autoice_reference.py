r"""Split scenes with charts into chart-less test files and reference files, as AutoICE released them.

  python -m data_prep.split_autoice_reference --input_glob='scenes/*.nc' \
      --test_dir=test --reference_dir=ref [--overwrite]

Writes `test/NAME` (the file without its chart) and
`ref/{scene_name}_reference.nc` (the chart as AutoICE class rasters at 80 m:
a ready-to-train file's SIC, SOD, FLOE; a raw file's SIC from its polygons)
for every input: a
held-out set to run `python -m tfseaice.autoice` and
`python -m tfseaice.evaluate --reference_glob=...` on, exactly as on the
challenge's test files.
"""

import glob
import os

from absl import flags

from tfseaice import cli, io_utils
from tfseaice.data import autoice
from tfseaice.errors import InputError

FLAGS = flags.FLAGS
flags.DEFINE_string("input_glob", None, "Scene files with charts (raw, or ready-to-train *_prep.nc).", required=True)
flags.DEFINE_string("test_dir", None, "Folder for the chart-less test files.", required=True)
flags.DEFINE_string("reference_dir", None, "Folder for the reference files.", required=True)
flags.DEFINE_bool("overwrite", False, "Replace existing output files.")


def main(argv):
    del argv
    paths = sorted(p for p in glob.glob(FLAGS.input_glob) if os.path.isfile(p))
    if not paths:
        raise InputError(FLAGS.input_glob, "--input_glob matches no file")
    plan = [(p, os.path.join(FLAGS.test_dir, os.path.basename(p)),
             os.path.join(FLAGS.reference_dir, autoice.reference_file_name(p))) for p in paths]
    for _, test, ref in plan:       # every refusal before any write
        io_utils.refuse_existing(test, FLAGS.overwrite)
        io_utils.refuse_existing(ref, FLAGS.overwrite)
    for prep, test, ref in plan:
        autoice.split_reference(prep, test, ref)
    print(f"Wrote {len(plan)} test files to {FLAGS.test_dir} and their references to {FLAGS.reference_dir}")


if __name__ == "__main__":
    cli.run(main)
