r"""Whole-scene SIC products: CF-1.8 netCDF + a Fig. 2-like PNG panel.

  python -m tfseaice.predict --model_dir=runs/regional --scene=SCENE.nc --out=OUT.nc
  python -m tfseaice.predict --saved_model=export/sic --scene=SCENE.nc --out=OUT.nc
      [--downsample=2] [--raw_glob='raw/*.nc'] [--tile=1024 --overlap=64] [--precision=auto|fp32|bf16] [--overwrite]

SCENE is a raw AI4Arctic file (with or without a chart), a ready-to-train
`*_prep.nc` (alone, or with its raw twin through --raw_glob for the chart and
lat/lon), or a Sentinel-1 GRD product: its `.SAFE` folder or `.zip`, read into
the raw layout with a GSHHG land mask (docs/sentinel1_pipeline.md). OUT.nc is on the scene grid after downsampling (dims `sar_lines`,
`sar_samples`; lat/lon auxiliary coordinates interpolated from the raw file's
GCPs when there is one) with
  sic          pixel SIC (paper Fig. 2e), float32 in [0, 1], NaN = no data
  ice_water    ice/water map (Fig. 2f): 0 water, 1 ice (sic >= 0.5), 255 no data
  polygon_sic  predicted SIC averaged over each chart polygon (Fig. 2g)   } only when the
  chart_sic    the rasterised ice chart (Fig. 2c), NaN = no label         } scene has a
  polygon_id   chart polygon id per pixel (Fig. 2d), -1 = none            } chart
  sic_truth    pixel truth, only when the scene carries it (sample scenes)
  sod, floe    an ice-chart model's (icechart_regional/_pixel) most probable AutoICE
               class per pixel, uint8 with CF flag_values/flag_meanings, 255 = no data
               (tiles blended in probability space); sod_truth/floe_truth beside them
               when the scene carries class truth
OUT.png (beside it) shows HH, HV, chart SIC, pixel SIC, ice/water, polygon SIC
(without a chart: HH, HV, pixel SIC, ice/water), plus a SOD/FLOE column (and one
for their truth) for an ice-chart model. With --format=netcdf,geotiff
each product is also OUT_<product>.tif, placed on the map by the raw file's
ground control points (QGIS/ArcGIS open it as it is). No-data pixels (NaN SAR, or
all-zero SAR in a ready-to-train file) are missing in every product.

With --saved_model the exported SavedModel (`python -m tfseaice.export`) runs
through `keras.layers.TFSMLayer` with the same tiled inference; its channels
and downsampling come from `assets.extra/tfseaice.json` written by the export.

--precision=auto (default) predicts in bf16 (Keras mixed_bfloat16: bf16 convolutions, float32
weights, normalisation and output) where the CPU has AMX/AVX512-BF16, as training does, else in
fp32; the precision used is the global attribute `inference_precision` of OUT.nc. An exported
SavedModel is float32 (served models must run on any CPU): with --saved_model, auto means fp32.
"""

# First: oneDNN kernels on before anything imports TensorFlow (see tfseaice/onednn.py).
import tfseaice.onednn  # noqa: F401  isort: skip

import os
import shlex
import sys

from absl import flags

from tfseaice import cli, io_utils, run_lock
from tfseaice.errors import InputError
from tfseaice.serving import scene_inference
from tfseaice.serving.loading import load_sic_model
from tfseaice.serving.sic_scene import output_paths, predict_scene_file

FLAGS = flags.FLAGS


def define_flags():
    """Define the command-line flags (only when run as a program, so that the
    library functions here can be imported next to other entry points)."""
    cli.define_scene_inference_flags(scene_inference.DEFAULT_TILE, scene_inference.DEFAULT_BATCH_SIZE)
    flags.DEFINE_string("scene", None, "Scene file (raw AI4Arctic, or *_prep.nc with --raw_glob), or a "
                        "Sentinel-1 GRD product (.SAFE folder or .zip).", required=True)
    flags.DEFINE_string("out", None, "Output netCDF path (.nc); the PNG panel is written beside it.", required=True)
    flags.DEFINE_integer("downsample", None, "Output pixel = 40 m x downsample (default: the model's training data).")
    flags.DEFINE_list("channels", None, "Input channels (default: the model's training data).")
    flags.DEFINE_string("raw_glob", None, "Raw files holding the polygon ids of a ready-to-train scene.")
    flags.DEFINE_float("threshold", 0.5, "Ice/water threshold: ice = SIC >= threshold.")
    flags.DEFINE_bool("overwrite", False, "Replace an existing OUT.nc / OUT.png.")
    flags.DEFINE_list("format", ["netcdf"], "Product files: netcdf (OUT.nc, CF-1.8) and/or geotiff "
                      "(OUT_<product>.tif per product, placed by the scene's GCPs).")
    flags.DEFINE_enum("land_mask", "distance_map", ["distance_map", "none"],
                      "Leave distance_map land (class 0) out of the polygon means.")


def main(argv):
    if len(argv) > 1:
        raise InputError(argv[1], "unexpected positional argument (flags are --name=value)")
    cli.check_tiling(FLAGS.tile, FLAGS.overlap)
    run_lock.RunLock(FLAGS.out).acquire()   # one run per output (released at exit)
    for p in output_paths(FLAGS.out, FLAGS.format):   # before loading anything
        io_utils.refuse_existing(p, FLAGS.overwrite)
    if not os.path.exists(FLAGS.scene):
        raise InputError(FLAGS.scene, "file does not exist")
    model, info = load_sic_model(FLAGS.model_dir, FLAGS.saved_model, FLAGS.weights, FLAGS.precision,
                                 FLAGS.flip_tta)
    history = "python -m tfseaice.predict " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    predict_scene_file(model, info, FLAGS.scene, FLAGS.out, downsample=FLAGS.downsample,
                       channels=FLAGS.channels, raw_glob=FLAGS.raw_glob, tile=FLAGS.tile,
                       overlap=FLAGS.overlap, batch_size=FLAGS.batch_size, threshold=FLAGS.threshold,
                       overwrite=FLAGS.overwrite, history=history, land_mask=FLAGS.land_mask,
                       formats=tuple(FLAGS.format))
    written = [p for p in output_paths(FLAGS.out, FLAGS.format) if os.path.exists(p)]
    print(f"Wrote {', '.join(written)}")


if __name__ == "__main__":
    define_flags()
    cli.run(main)
