r"""Evaluate a trained model. A dispatcher over tasks.

SIC (paper Table 1 on whole scenes, tiled inference; pooled and per scene):

  python -m tfseaice.evaluate --task=sic --model_dir=runs/regional \
      --scenes_glob='scenes/test/*.nc' [--downsample=2] [--truth_variable=sic_truth] \
      [--raw_glob='raw/*.nc'] [--reference_glob='ref/*_reference.nc'] [--land_mask=distance_map|none] \
      [--tile=1024 --overlap=64] [--precision=auto|fp32|bf16] --output=metrics.json [--overwrite] [--weights=best]

  writes metrics.json (pooled keys pixel_rmse, pixel_r2, polygon_rmse, polygon_r2,
  truth_pixel_rmse, truth_pixel_r2, truth_ice_water_f1 + counts, "autoice" with the
  challenge's sic_r2 in percent, then "scenes"); scenes without a chart need --reference_glob
  and metrics.md (the Markdown table, also printed). Ice-chart models (icechart_regional,
  icechart_pixel) add truth_sod_f1/truth_floe_f1 (--sod_truth_variable=sod_truth,
  --floe_truth_variable=floe_truth), sod_f1/floe_f1/score in "autoice", and
  metrics_confusion_{SOD,FLOE}.png (+ _confusion_truth_*) beside the JSON.

pix2pix (per-checkpoint curves, Table I row, FCN-score):

  python -m tfseaice.evaluate --task=pix2pix --model_dir=runs/pix2pix_orig \
      [--data_dir=...] [--epoch=N] [--zones_model_dir=...] [--out_dir=...] [--bn_at_inference=moving|batch]
      [--speckle_looks=L]

  evaluation.json also holds `realism` (per class: mean_gen, mean_real, cv_gen, cv_real,
  cv_ratio), `lattice_peak_gen`, `lattice_peak_real`; realism.png beside it.

glacier_zones (the CaFFe benchmark's metrics on whole images, docs/caffe_metrics.md):

  python -m tfseaice.evaluate --task=glacier_zones --model_dir=runs/glacier_zones --data_root=DATA \
      --split=test --output=zones.json [--predictions_out=DIR] [--zone_classes=2|3] [--overwrite]
  python -m tfseaice.evaluate --task=glacier_zones --predictions_dir=P --data_root=DATA --split=test \
      --output=zones.json

  writes zones.json (miou, iou, mde_m, images_without_front, num_images, glaciers, images),
  zones_panel.png and, with a model, the predictions zones_predictions/NAME_zones.png (0/64/127/254).
"""

# First: oneDNN kernels on before anything imports TensorFlow (see tfseaice/onednn.py).
import tfseaice.onednn  # noqa: F401  isort: skip

import glob
import os

from absl import flags

from tfseaice import cli, io_utils
from tfseaice.data import scene_files
from tfseaice.errors import InputError
from tfseaice.evaluation import pix2pix, sic
from tfseaice.evaluation import zones as zones_eval
from tfseaice.serving import scene_inference

FLAGS = flags.FLAGS
TASKS = ("sic", "pix2pix", "glacier_zones")

GLACIER_BATCH = 4   # images per call (pix2pix, glacier_zones) when --batch_size is 0


def define_flags():
    """Define the command-line flags (only when run as a program, so that the
    library functions here can be imported next to other entry points)."""
    # --- common
    flags.DEFINE_enum("task", None, TASKS, "What to evaluate: sic (sic_regional / sic_pixel / icechart_* models), pix2pix "
                      "or glacier_zones.", required=True)
    flags.DEFINE_string("model_dir", None, "Trained model folder (task.json, checkpoints/); required except "
                        "for --task=glacier_zones with --predictions_dir.")
    flags.DEFINE_string("weights", "best", "Weights to load: best, latest, or a .weights.h5 path.")
    flags.DEFINE_bool("overwrite", False, "Replace existing outputs.")
    flags.DEFINE_integer("batch_size", 0, "Tiles (sic, glacier_zones) / images (pix2pix) per model call; 0 = the task's "
                         f"default (sic: {scene_inference.DEFAULT_BATCH_SIZE} tile of --tile, the others: {GLACIER_BATCH}).")

    # --- sic
    flags.DEFINE_string("scenes_glob", None, "sic: scene files to evaluate (raw AI4Arctic, or *_prep.nc with --raw_glob).")
    flags.DEFINE_integer("downsample", None, "sic: output pixel = 40 m x downsample (default: the model's training data).")
    flags.DEFINE_string("truth_variable", "sic_truth", "sic: pixel-truth variable used when a scene has it ('' = none).")
    flags.DEFINE_string("sod_truth_variable", "sod_truth", "sic: SOD class-truth variable (ice-chart models; '' = none).")
    flags.DEFINE_string("floe_truth_variable", "floe_truth", "sic: FLOE class-truth variable (ice-chart models; '' = none).")
    flags.DEFINE_string("raw_glob", None, "sic: raw files holding the polygon ids of ready-to-train scenes.")
    flags.DEFINE_integer("tile", scene_inference.DEFAULT_TILE, "sic: inference tile size in pixels (multiple of 16).")
    flags.DEFINE_integer("overlap", 64, "sic: minimum overlap of neighbouring tiles, blended.")
    flags.DEFINE_float("threshold", 0.5, "sic: ice/water threshold for the F1 score (ice = SIC >= threshold).")
    flags.DEFINE_string("output", None, "sic: metrics JSON path; the Markdown table goes beside it (.md). "
                        "glacier_zones: zones JSON path; panel and predictions go beside it.")
    flags.DEFINE_string("reference_glob", None, "sic: AutoICE reference files (*_reference.nc) to score the "
                        "`autoice` object against (default: each scene's own chart).")
    flags.DEFINE_enum("land_mask", "distance_map", ["distance_map", "none"],
                      "sic: leave distance_map land (class 0) out of the chart figures.")
    flags.DEFINE_enum("precision", "auto", ["auto", "fp32", "bf16", "fp16"],
                      "sic: inference precision: bf16 (Keras mixed_bfloat16), fp16 (mixed_float16), fp32, or "
                      "auto = as training (fp16 on a GPU with Tensor Cores, bf16 where the CPU has "
                      "AMX/AVX512-BF16, else fp32). Recorded in the settings of metrics.json.")
    flags.DEFINE_bool("flip_tta", False, "sic: " + cli.FLIP_TTA_HELP + " Recorded in the settings.")

    # --- pix2pix
    flags.DEFINE_string("data_dir", None, "pix2pix: converted glacier data (default: the training data).")
    flags.DEFINE_integer("epoch", 0, "pix2pix: checkpoint epoch for the Table I row (0 = last).")
    flags.DEFINE_string("zones_model_dir", None, "pix2pix: trained glacier_zones model for the FCN-score.")
    flags.DEFINE_string("out_dir", None, "pix2pix: output folder (default MODEL_DIR/eval).")
    flags.DEFINE_enum("split", "val", ["val", "test"], "pix2pix, glacier_zones: evaluation split.")
    flags.DEFINE_bool("dropout_at_inference", False, "pix2pix: generate with dropout on (the paper's noise).")
    flags.DEFINE_bool("recompute_curves", False, "pix2pix: score every checkpoint again.")
    # --- pix2pix realism
    flags.DEFINE_enum("bn_at_inference", "moving", ["moving", "batch"],
                      "pix2pix: generator BatchNorm statistics: moving, or each image's own (the reference "
                      "implementations' test mode at batch 1).")
    flags.DEFINE_float("speckle_looks", 0.0, "pix2pix speckle generators: score Gamma speckle of this many looks "
                       "on every pixel instead of the trained L (0 = the trained L).")

    # --- glacier_zones
    flags.DEFINE_string("data_root", None, "glacier_zones: CaFFe-layout data (sar_images/, zones/, fronts/).")
    flags.DEFINE_string("predictions_dir", None, "glacier_zones: score these NAME_zones.png predictions "
                        "instead of running --model_dir.")
    flags.DEFINE_string("predictions_out", None, "glacier_zones: where the model's predictions go "
                        "(default: <output stem>_predictions).")
    flags.DEFINE_integer("zone_classes", 0, "glacier_zones: scored zone classes, 3 (rock, glacier, ocean) or 2 "
                         "(glacier incl. rock, ocean); 0 = the model's task.json (3 for --predictions_dir).")


def _scene_paths(pattern):
    paths = sorted(p for p in glob.glob(pattern) if scene_files.is_scene_path(p))   # files or S1 products
    if not paths:
        raise InputError(pattern, "--scenes_glob matches no file")
    return paths


def main_sic():
    if not FLAGS.scenes_glob:
        raise InputError("--scenes_glob", "is required for --task=sic")
    if not FLAGS.output:
        raise InputError("--output", "is required for --task=sic")
    sic.check_outputs(FLAGS.output, FLAGS.overwrite)   # before any work
    text = sic.evaluate_model_dir(FLAGS.model_dir, _scene_paths(FLAGS.scenes_glob), FLAGS.output,
                                  weights=FLAGS.weights, downsample=FLAGS.downsample,
                                  truth_variable=FLAGS.truth_variable, raw_glob=FLAGS.raw_glob,
                                  tile=FLAGS.tile, overlap=FLAGS.overlap,
                                  batch_size=FLAGS.batch_size or scene_inference.DEFAULT_BATCH_SIZE,
                                  threshold=FLAGS.threshold, overwrite=FLAGS.overwrite,
                                  reference_glob=FLAGS.reference_glob, land_mask=FLAGS.land_mask,
                                  precision=FLAGS.precision, sod_truth_variable=FLAGS.sod_truth_variable,
                                  floe_truth_variable=FLAGS.floe_truth_variable, flip_tta=FLAGS.flip_tta)
    print(text)
    print("Wrote {} and {}".format(*sic.report_paths(FLAGS.output)))


def main_pix2pix():
    out_dir = FLAGS.out_dir or os.path.join(FLAGS.model_dir, "eval")
    io_utils.refuse_existing(out_dir, FLAGS.overwrite)   # before any work
    result = pix2pix.evaluate(model_dir=FLAGS.model_dir, data_dir=FLAGS.data_dir,
                     zones_model_dir=FLAGS.zones_model_dir, epoch=FLAGS.epoch, output=out_dir,
                     split=FLAGS.split, batch_size=FLAGS.batch_size or GLACIER_BATCH,
                     dropout_at_inference=FLAGS.dropout_at_inference,
                     recompute_curves=FLAGS.recompute_curves, bn_at_inference=FLAGS.bn_at_inference,
                     speckle_looks=FLAGS.speckle_looks)
    print(pix2pix.table_markdown(result))


def main_glacier_zones():
    for name in ("data_root", "output"):
        if not getattr(FLAGS, name):
            raise InputError(f"--{name}", "is required for --task=glacier_zones")
    result = zones_eval.evaluate(FLAGS.data_root, FLAGS.split, FLAGS.output, model_dir=FLAGS.model_dir,
                                 predictions_dir=FLAGS.predictions_dir, predictions_out=FLAGS.predictions_out,
                                 weights=FLAGS.weights, batch_size=FLAGS.batch_size or GLACIER_BATCH,
                                 overwrite=FLAGS.overwrite,
                                 zone_classes=FLAGS.zone_classes or None)
    print(zones_eval.summary_text(result))
    print(f"Wrote {FLAGS.output}")


def main(argv):
    if len(argv) > 1:
        raise InputError(argv[1], "unexpected positional argument (flags are --name=value)")
    if FLAGS.tile < 16 or FLAGS.overlap < 0 or FLAGS.tile - FLAGS.overlap < 16:
        raise InputError("--tile/--overlap", f"need tile >= overlap + 16 and overlap >= 0 (got {FLAGS.tile}, {FLAGS.overlap})")
    if FLAGS.task == "glacier_zones":
        main_glacier_zones()
        return
    if not FLAGS.model_dir:
        raise InputError("--model_dir", "required flag not given")
    if FLAGS.task == "sic":
        main_sic()
    else:
        main_pix2pix()


if __name__ == "__main__":
    define_flags()
    cli.run(main)
