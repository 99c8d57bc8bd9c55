r"""Export a trained model as a SavedModel for TF Serving.

  python -m tfseaice.export --model_dir=runs/regional --export_dir=export/sic \
      [--weights=best] [--flip_tta] [--overwrite]

`--export_dir` is the SavedModel itself. Each task family has its signature
(tfseaice.serving.sic_export, pix2pix_export, zones_export); SIC exports also
carry assets.extra/tfseaice.json with channels, downsampling and normalisation.
TF Serving wants numbered versions: mount it as /models/NAME/1 (the command is
printed for SIC models).
"""

import os

from absl import flags

from tfseaice import cli, io_utils
from tfseaice.errors import InputError
from tfseaice.serving.export_module_factory import export_trained
from tfseaice.serving.loading import load_trained
from tfseaice.serving.saved_model import serving_instructions
from tfseaice.tasks import ICECHART_TASKS, SIC_TASKS, TASK_NAMES

FLAGS = flags.FLAGS


def define_flags():
    """Define the command-line flags (only when run as a program, so that the
    library functions here can be imported next to other entry points)."""
    flags.DEFINE_string("model_dir", None, "Trained model folder (task.json, checkpoints/).", required=True)
    flags.DEFINE_string("export_dir", None, "SavedModel output folder.", required=True)
    flags.DEFINE_string("weights", "best", "Weights to export: best, latest, or a .weights.h5 path.")
    flags.DEFINE_bool("overwrite", False, "Replace an existing --export_dir.")
    flags.DEFINE_string("model_name", "sic", "Model name used in the printed TF Serving command.")
    flags.DEFINE_bool("flip_tta", False, "SIC and ice-chart models: " + cli.FLIP_TTA_HELP
                      + " Recorded as inference_flips in assets.extra/tfseaice.json.")


def main(argv):
    if len(argv) > 1:
        raise InputError(argv[1], "unexpected positional argument (flags are --name=value)")
    io_utils.refuse_existing(FLAGS.export_dir, FLAGS.overwrite)   # before loading anything
    # A task.json naming no known task is refused with one line, not a traceback.
    model, meta = load_trained(FLAGS.model_dir, FLAGS.weights, expect_task=TASK_NAMES)
    task, info = meta["task"], meta.get("dataset_info") or {}
    print(export_trained(task, model, FLAGS.export_dir, info, overwrite=FLAGS.overwrite, flip_tta=FLAGS.flip_tta,
                         extra_meta={"task": task, "model_dir": os.path.abspath(FLAGS.model_dir),
                                     "weights": FLAGS.weights}))
    if task in SIC_TASKS + ICECHART_TASKS:
        print()
        print(serving_instructions(FLAGS.export_dir, FLAGS.model_name, len(info.get("channels") or [0, 0]),
                                   ice_types=task in ICECHART_TASKS))
    print(f"\nExported {task} model to {FLAGS.export_dir}")


if __name__ == "__main__":
    define_flags()
    cli.run(main)
