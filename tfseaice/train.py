r"""Train a tfseaice task.

  python -m tfseaice.train --flagfile=configs/sic_regional.flags [--flag=value ...]

Flags given after --flagfile override it. Rerunning the same command after an
interruption (even a SIGKILL) resumes from the last finished epoch.

Multi-worker: start the same command on every machine with --strategy=multi_worker
and TF_CONFIG set per machine (see the README, "Scaling out"); --batch_size is
the global batch, split over every replica of every worker.
"""

from absl import flags

from tfseaice import cli, distribute
from tfseaice.data import glacier, glacier_mix
from tfseaice.losses_composition import COMPOSITION_LOSSES, DEFAULT_PLL_FOCAL_GAMMA, check_composition_options
from tfseaice.tasks import TASK_NAMES
from tfseaice.training.config import TrainConfig
from tfseaice.training.loop import run_training

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

    # --- SIC tasks (sic_regional, sic_pixel)
    flags.DEFINE_list("filters", ["16", "32", "64", "64"], "U-Net filters of the 4 encoder blocks.")
    flags.DEFINE_enum("loss_reduction", "polygon", ["polygon", "patch"], "Regional loss: mean over all polygons of the batch, or per patch first.")
    flags.DEFINE_enum("loss_weighting", "polygon", ["polygon", "area"], "Regional loss: every polygon weighted equally (paper), or by its pixels.")
    flags.DEFINE_enum("pixel_loss", "mse", ["mse", "bce"], "sic_pixel baseline loss on the rasterised chart.")
    flags.DEFINE_integer("max_polygons", 0, "Pad polygon tables to this width (0 = dataset maximum).")
    flags.DEFINE_bool("augment", True, "Random flips and 90° rotations.")

    # --- ice-chart tasks (icechart_regional, icechart_pixel; the SIC flags above apply too)
    flags.DEFINE_enum("composition_loss", "xent", list(COMPOSITION_LOSSES), "icechart_regional: SOD/FLOE polygon "
                      "loss: cross-entropy (xent) or squared error (sse) between the polygon's mean predicted "
                      "distribution and its egg-code composition, or pll_focal, each pixel's focal loss against its "
                      "polygon's stages/forms weighted by their partial concentrations (docs/ice_type_losses.md).")
    flags.DEFINE_float("pll_focal_gamma", DEFAULT_PLL_FOCAL_GAMMA, "icechart_regional --composition_loss=pll_focal: "
                       "the focal exponent gamma (>= 0; 0 = pixel-wise soft cross-entropy).")
    flags.register_validator("pll_focal_gamma", _valid_gamma, message="--pll_focal_gamma must be a number >= 0")
    flags.DEFINE_list("chart_weights", ["2", "2", "1"], "Ice-chart tasks: weights of the SIC, SOD and FLOE "
                      "losses (default 2:2:1 as the AutoICE score).")
    flags.register_validator("chart_weights", _valid_chart_weights,
                             message="--chart_weights must be 3 non-negative numbers (SIC,SOD,FLOE), sum > 0")

    # --- pix2pix and glacier_zones
    flags.DEFINE_integer("gen_kernel", 4, "pix2pix generator kernel size (gen5 variant: 5).")
    flags.DEFINE_integer("disc_kernel", 4, "PatchGAN kernel size (dis3 variant: 3).")
    flags.DEFINE_float("gan_weight", 1.0, "Weight of the GAN term in the generator loss.")
    flags.DEFINE_float("l1_weight", 100.0, "Weight of the L1 term in the generator loss.")
    flags.DEFINE_float("beta_1", 0.5, "Adam beta_1 (pix2pix).")
    flags.DEFINE_integer("checkpoint_every", 15, "Epochs between scored generator checkpoints.")
    flags.DEFINE_integer("generator_filters", 64, "Filters of the first generator layer (paper: 64).")
    flags.DEFINE_integer("discriminator_filters", 64, "Filters of the first PatchGAN layer (paper: 64).")
    flags.DEFINE_bool("sync_batchnorm", False, "Synchronized BatchNorm across replicas.")

    # --- glacier data (tfseaice.data.glacier_mix): synthetic mixing, small real subsets, 2-class zones
    flags.DEFINE_string("synthetic_data_dir", "", "glacier_zones: converter output folder of synthetic pairs "
                        "(e.g. from generate --random_masks) mixed into the training batches.")
    flags.DEFINE_float("synthetic_fraction", 0.0, "glacier_zones: probability that a training patch is "
                       "synthetic, in [0, 1) (seeded; 0 = real only). Epoch length stays one pass over the "
                       "real training split; validation stays real.")
    flags.DEFINE_integer("early_stopping", 0, "glacier_zones: stop when validation mean IoU has not improved for "
                         "this many epochs (0 = train all --epochs); the best epoch's weights are kept as `best`.")
    flags.DEFINE_float("real_fraction", 1.0, "glacier_zones, pix2pix: train on this share of the real training "
                       "IMAGES (by name, seeded by --real_fraction_seed), in (0, 1].")
    flags.DEFINE_integer("real_fraction_seed", 0, "Seed of the --real_fraction image subset (independent of "
                         "--seed, so runs with several seeds share one subset).")
    flags.DEFINE_enum("zone_classes", "3", ["2", "3", "4"], "glacier_zones, pix2pix: the number of zone classes, "
                      "as evaluate counts them: 3 = rock, glacier, ocean; 2 = the pix2pix paper's zones (ocean vs "
                      "glacier + rock: rock read as glacier). 4 = 3 (its old spelling, counting no data).")

    # --- pix2pix realism (generator decoder and speckle head; stored in the model config)
    flags.DEFINE_enum("gen_upsample", "transpose", ["transpose", "resize_conv"],
                      "pix2pix decoder upsampling: Conv2DTranspose (paper) or nearest resize + conv "
                      "(no periodic dot lattice).")
    flags.DEFINE_enum("speckle", "none", ["none", "gamma", "gamma_fixed"],
                      "pix2pix output: tanh image (paper), or median backscatter + number of looks with "
                      "Gamma speckle drawn on top (L1 on the median, GAN on the speckled image); gamma_fixed: the looks "
                      "stay at --speckle_looks (no gradient).")
    flags.DEFINE_float("speckle_looks", 0.0, "pix2pix --speckle=gamma: initial number of looks L; 0 = estimated "
                       "from the training images at task start (stored in task.json).")


def _valid_gamma(value):
    try:
        check_composition_options("pll_focal", value)
    except ValueError:
        return False
    return True


def _valid_chart_weights(values):
    try:
        weights = [float(v) for v in values]
    except ValueError:
        return False
    return len(weights) == 3 and min(weights) >= 0 and sum(weights) > 0


SIC_FLAGS = ("filters", "loss_reduction", "loss_weighting", "pixel_loss", "max_polygons", "augment")
ICECHART_FLAGS = SIC_FLAGS + ("composition_loss", "chart_weights", "pll_focal_gamma")
GAN_FLAGS = ("gen_kernel", "disc_kernel", "gan_weight", "l1_weight", "beta_1", "checkpoint_every",
             "generator_filters", "discriminator_filters", "sync_batchnorm", "augment", "gen_upsample", "speckle",
             "speckle_looks")
# glacier data options (tfseaice.data.glacier_mix), saved in task.json's config.extra for the evaluators
GLACIER_DATA_FLAGS = ("real_fraction", "real_fraction_seed", "zone_classes")
TASK_FLAGS = {"sic_regional": SIC_FLAGS, "sic_pixel": SIC_FLAGS,
              "icechart_regional": ICECHART_FLAGS, "icechart_pixel": ICECHART_FLAGS,
              "pix2pix": GAN_FLAGS + GLACIER_DATA_FLAGS,
              "glacier_zones": ("filters", "augment", "synthetic_data_dir", "synthetic_fraction",
                                "early_stopping") + GLACIER_DATA_FLAGS}


def config_from_flags():
    extra = {name: FLAGS[name].value for name in TASK_FLAGS[FLAGS.task]}
    if "filters" in extra:
        extra["filters"] = [int(f) for f in extra["filters"]]
    if "zone_classes" in extra:  # one meaning everywhere: 2 or 3 zone classes (4, the old spelling, is 3)
        extra["zone_classes"] = glacier.zone_count(extra["zone_classes"], "--zone_classes")
    if "chart_weights" in extra:
        extra["chart_weights"] = [float(w) for w in extra["chart_weights"]]
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
    if cfg.task in ("glacier_zones", "pix2pix"):  # bad glacier data options: one line, before any folder is made
        # (multi_worker: the data check waits for the task, after the strategy's start)
        glacier_mix.check_options(cfg.extra, None if cfg.strategy == "multi_worker" else cfg.data_dir)
    if cfg.strategy == "mirrored" and cfg.num_cpu_replicas:
        distribute.configure_cpu_replicas(cfg.num_cpu_replicas)
    run_training(cfg)
    print(f"Trained {cfg.task}: model folder {cfg.model_dir} (history.csv, checkpoints/, logs/)")


if __name__ == "__main__":
    define_flags()
    cli.run(main)
