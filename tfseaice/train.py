r"""Train a tfseaice task.

  python -m tfseaice.train --flagfile=configs/sic_regional.flags [--flag=value ...]

Flags given after --flagfile override it. Rerunning the same command after an
interruption (even a SIGKILL) resumes from the last finished epoch.

Multi-worker: start the same command on every machine with --strategy=multi_worker
and TF_CONFIG set per machine (see the README, "Scaling out"); --batch_size is
the global batch, split over every replica of every worker.
"""

# First: oneDNN kernels on before anything imports TensorFlow (see tfseaice/onednn.py).
import tfseaice.onednn  # noqa: F401  isort: skip

from absl import flags

from tfseaice import cli, distribute
from tfseaice.data import glacier_mix
from tfseaice.tasks import TASK_NAMES, get_task, option_classes
from tfseaice.train_lib import run_training
from tfseaice.training import options
from tfseaice.training.config import TrainConfig

FLAGS = flags.FLAGS


def define_flags():
    """Command-line flags (defined only when run as a program)."""
    flags.DEFINE_enum("task", None, TASK_NAMES, "What to train.", required=True)
    flags.DEFINE_string("data_dir", None, "Converter output folder (shards + dataset_info.json).", required=True)
    flags.DEFINE_string("model_dir", None, "Where checkpoints, history.csv and logs go.", required=True)
    flags.DEFINE_integer("epochs", 10, "Epochs to train.")
    flags.DEFINE_integer("steps_per_epoch", 0, "Steps per epoch; 0 = one pass over the training split.")
    flags.DEFINE_integer("validation_steps", 0, "Validation steps; 0 = the whole validation split.")
    flags.DEFINE_integer("batch_size", 8, "GLOBAL batch size: split across all replicas of all workers "
                         "(mirrored: B/replicas per device; multi_worker: B/workers per worker). "
                         "Must be a multiple of the number of replicas.")
    flags.DEFINE_float("learning_rate", 1e-3, "Learning rate.")
    flags.DEFINE_enum("lr_schedule", "constant", ["constant", "cosine"], "Learning-rate schedule.")
    flags.DEFINE_integer("seed", 1, "Seed of weights, shuffling and augmentation.")
    flags.DEFINE_enum("strategy", "default", distribute.STRATEGIES,
                      "tf.distribute strategy: default (one device), mirrored (all local GPUs, or "
                      "--num_cpu_replicas logical CPUs), multi_worker (MultiWorkerMirroredStrategy from the "
                      "TF_CONFIG environment variable; only the chief writes into --model_dir).")
    flags.DEFINE_integer("num_cpu_replicas", 0, "Logical CPU devices for --strategy=mirrored without GPUs.")
    flags.DEFINE_integer("image_every", 1, "Epochs between TensorBoard image panels (0 = never).")
    flags.DEFINE_bool("deterministic", True, "Deterministic TF ops (same seed -> same metrics).")
    flags.DEFINE_bool("overwrite", False, "Train again from scratch into a --model_dir that holds a finished run "
                      "(an interrupted run always resumes; delete its folder to restart it).")
    flags.DEFINE_bool("skip_corrupt", False, "Read corrupt or truncated TFRecord shards up to their first "
                      "unreadable record (each such shard is logged) instead of stopping with an error.")
    flags.DEFINE_string("tf_data_service", "", "grpc://HOST:PORT of a tf.data service dispatcher: the training "
                        "input pipeline then runs on the service's workers (which must read --data_dir). "
                        "'' = read locally.")
    flags.DEFINE_enum("tf_data_service_mode", "distributed_epoch", ["distributed_epoch", "parallel_epochs"],
                      "tf.data service processing mode: distributed_epoch (shards handed out to the service "
                      "workers, each example once per pass) or parallel_epochs (every service worker runs the "
                      "whole pipeline).")

    flags.DEFINE_enum("precision", "auto", ["auto", "fp32", "bf16", "fp16"],
                      "Training arithmetic: fp32, bf16 (Keras mixed_bfloat16: bf16 compute, float32 weights), "
                      "fp16 (mixed_float16 with loss scaling) or auto = fp16 on a GPU with Tensor Cores, bf16 "
                      "where the CPU has AMX/AVX512-BF16 (about 2x the images/s there, see bench/README.md), "
                      "else fp32 (tfseaice.precision.choose). Export runs in fp32.")

    # Every task's own options (declared beside the task: tfseaice.tasks, tfseaice.training.options).
    options.define_flags(option_classes())


def config_from_flags():
    """The TrainConfig of the command line; `extra` holds the task's options (its own flags only)."""
    extra = get_task(FLAGS.task).options.from_flags(FLAGS).to_extra()
    return TrainConfig(
        task=FLAGS.task, data_dir=FLAGS.data_dir, model_dir=FLAGS.model_dir, epochs=FLAGS.epochs,
        steps_per_epoch=FLAGS.steps_per_epoch, validation_steps=FLAGS.validation_steps,
        batch_size=FLAGS.batch_size, learning_rate=FLAGS.learning_rate,
        lr_schedule=FLAGS.lr_schedule, seed=FLAGS.seed,
        strategy=FLAGS.strategy, num_cpu_replicas=FLAGS.num_cpu_replicas, image_every=FLAGS.image_every,
        deterministic=FLAGS.deterministic, overwrite=FLAGS.overwrite, skip_corrupt=FLAGS.skip_corrupt,
        tf_data_service=FLAGS.tf_data_service, tf_data_service_mode=FLAGS.tf_data_service_mode,
        precision=FLAGS.precision, extra=extra)


def main(argv):
    del argv
    cfg = config_from_flags()
    task = get_task(cfg.task)
    if task.data_kind == "glacier":  # bad glacier data options: one line, before any folder is made
        # (multi_worker: the data check waits for the task, after the strategy's start)
        glacier_mix.check_options(task.options.from_extra(cfg.extra),
                                  None if cfg.strategy == "multi_worker" else cfg.data_dir)
    if cfg.strategy == "mirrored" and cfg.num_cpu_replicas:
        distribute.configure_cpu_replicas(cfg.num_cpu_replicas)
    run_training(cfg)
    print(f"Trained {cfg.task}: model folder {cfg.model_dir} (history.csv, checkpoints/, logs/)")


if __name__ == "__main__":
    define_flags()
    cli.run(main)
