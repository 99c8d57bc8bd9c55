r"""Write the AutoICE challenge's upload package for a trained SIC (or ice-chart) model.

  python -m tfseaice.autoice --model_dir=runs/regional --scenes_glob='test/*_prep.nc' \
      --out=upload_package.nc [--saved_model=...] [--weights=best] [--precision=auto|fp32|bf16] [--overwrite]

One uint8 variable `{scene_name}_SIC` per scene (classes 0..10 = SIC in
tenths), dims `{scene_name}_SIC_dim0/_dim1`, on the scene's 80 m grid, zlib
level 1 (tfseaice.serving.autoice_submission); an ice-chart model (icechart_regional,
icechart_pixel) adds `{scene_name}_SOD` (0..5) and `{scene_name}_FLOE` (0..6) the same way.
A progress line per scene.
Score predictions against the reference files with
`python -m tfseaice.evaluate --task=sic ... --reference_glob='ref/*_reference.nc'`.
"""

# First: oneDNN kernels on before anything imports TensorFlow (see tfseaice/onednn.py).
import tfseaice.onednn  # noqa: F401  isort: skip

import glob

from absl import flags

from tfseaice import cli, io_utils, run_lock
from tfseaice.data import scene_files
from tfseaice.errors import InputError
from tfseaice.serving import scene_inference
from tfseaice.serving.autoice_submission import write_upload_package
from tfseaice.serving.loading import load_sic_model

FLAGS = flags.FLAGS


def define_flags():
    cli.define_scene_inference_flags(scene_inference.DEFAULT_TILE, scene_inference.DEFAULT_BATCH_SIZE)
    flags.DEFINE_string("scenes_glob", None, "The test scenes (ready-to-train *_prep.nc, or raw files).", required=True)
    flags.DEFINE_string("out", "upload_package.nc", "The upload package to write.")
    flags.DEFINE_bool("overwrite", False, "Replace an existing --out.")


def main(argv):
    if len(argv) > 1:
        raise InputError(argv[1], "unexpected positional argument (flags are --name=value)")
    cli.check_tiling(FLAGS.tile, FLAGS.overlap)
    run_lock.RunLock(FLAGS.out).acquire()   # one run per output (released at exit)
    io_utils.refuse_existing(FLAGS.out, FLAGS.overwrite)   # before loading anything
    paths = sorted(p for p in glob.glob(FLAGS.scenes_glob) if scene_files.is_scene_path(p))   # files or S1 products
    if not paths:
        raise InputError(FLAGS.scenes_glob, "--scenes_glob matches no file")
    model, info = load_sic_model(FLAGS.model_dir, FLAGS.saved_model, FLAGS.weights, FLAGS.precision,
                                 FLAGS.flip_tta)
    written = write_upload_package(model, info, paths, FLAGS.out, overwrite=FLAGS.overwrite, tile=FLAGS.tile,
                                   overlap=FLAGS.overlap, batch_size=FLAGS.batch_size)
    print(f"Wrote {FLAGS.out}: {len(written)} variables ({', '.join(sorted(written))})")


if __name__ == "__main__":
    define_flags()
    cli.run(main)
