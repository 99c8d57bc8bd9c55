"""Loading a trained model: from a model folder (task.json + weights) or an exported SavedModel.

Models are rebuilt from task.json by their task and loaded from `.weights.h5`:
nothing is unpickled.
"""

import os

import keras
import tensorflow as tf

import tfseaice
from tfseaice import precision as precisions
from tfseaice.errors import InputError
from tfseaice.models.fold_batchnorm import fold_batchnorm
from tfseaice.models.flip_average import flip_averaged
from tfseaice.serving.saved_model import read_export_meta
from tfseaice.tasks import ICECHART_TASKS, SIC_TASKS, get_task
from tfseaice.training.config import TrainConfig
from tfseaice.training.model_dir import read_task_file, restore_backup


def resolve_precision(precision, saved_model=False):
    """"auto"/"fp32"/"bf16"/"fp16" -> the inference precision; InputError naming --precision otherwise.

    An exported SavedModel runs in the precision it was exported in (float32): "auto" means fp32
    for it, and "bf16"/"fp16" are refused.
    """
    try:
        resolved = precisions.resolve(precision)
    except ValueError:
        raise InputError("--precision", f"must be one of {', '.join(precisions.CHOICES)}, got {precision!r}") from None
    if saved_model:
        if precision in ("bf16", "fp16"):
            raise InputError("--precision", f"{precision} needs --model_dir: an exported SavedModel is float32 "
                                            "(use --precision=fp32 or auto)")
        return "fp32"
    return resolved


def load_trained(model_dir, weights="best", expect_task=None, precision="fp32"):
    """Rebuild the model of a model folder and load its weights (no unpickling).

    `weights`: "best", "latest", or a path to a `.weights.h5` file. `precision`: "fp32", or
    "bf16" for a copy built under Keras' mixed_bfloat16 policy with the same (float32) weights,
    for inference ("auto" resolves as training does).
    Returns (model, meta) where meta is the task.json dict.
    """
    precision = resolve_precision(precision)
    meta = read_task_file(model_dir)
    if expect_task and meta["task"] not in (expect_task if isinstance(expect_task, (tuple, list)) else (expect_task,)):
        raise InputError(model_dir, f"holds a {meta['task']!r} model, not {expect_task!r}")
    cfg = TrainConfig.from_json(meta["config"])
    task = get_task(meta["task"])
    model = task.build_model(cfg, meta["dataset_info"])
    path = weights if weights.endswith(".h5") else os.path.join(model_dir, "checkpoints", f"{weights}.weights.h5")
    if not tf.io.gfile.exists(path) and weights == "best":
        path = os.path.join(model_dir, "checkpoints", "latest.weights.h5")
    if not tf.io.gfile.exists(path):
        raise InputError(model_dir, f"has no trained weights ({os.path.basename(path)} missing)")
    try:
        restore_backup(model, path)  # optimizer built first: its saved state loads too, without warnings
    except (OSError, ValueError) as exc:  # h5py: truncated/corrupt file; Keras: weights of another model
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(path, f"cannot load weights ({reason}); use another --weights or train again") from None
    return precisions.twin(model, lambda: task.build_model(cfg, meta["dataset_info"]), precision), meta


def inference_network(model, flip_tta=False):
    """The network a SIC or ice-chart model runs at inference: its U-Net (a task model's `.unet`)
    with every BatchNormalization folded into its convolution (same function in fp32 to 1e-5,
    tests/test_fold_batchnorm.py; faster, bench/scene_inference.py --fold_batchnorm); with
    `flip_tta`, its outputs averaged over the four flips of each tile (tfseaice.models.flip_average)."""
    network = fold_batchnorm(getattr(model, "unet", model))
    return flip_averaged(network) if flip_tta else network


def load_sic_model(model_dir=None, saved_model=None, weights="best", precision="auto", flip_tta=False):
    """(model, info) from a model folder or an exported SavedModel.

    `precision`: "auto" (bf16 where the CPU computes it natively, as training), "fp32" or "bf16"
    (a model folder only; a SavedModel is float32). `flip_tta`: average the four flips of each
    tile (a model folder only).
    info: {"channels", "downsample", "source", "task", "precision", "flip_tta"} (channels/downsample
    may be None).
    """
    if bool(model_dir) == bool(saved_model):
        raise InputError("--model_dir/--saved_model", "give exactly one of them")
    if flip_tta and saved_model:
        raise InputError("--flip_tta", "needs --model_dir: a SavedModel is served as it was exported "
                                       "(export it with --flip_tta to serve the flip average)")
    precision = resolve_precision(precision, saved_model=bool(saved_model))
    if model_dir:
        model, meta = load_trained(model_dir, weights, expect_task=SIC_TASKS + ICECHART_TASKS, precision=precision)
        model = inference_network(model, flip_tta)
        ds_info = meta.get("dataset_info") or {}
        return model, {"channels": ds_info.get("channels"), "downsample": ds_info.get("downsample"),
                       "task": meta["task"], "precision": precision, "flip_tta": bool(flip_tta),
                       "source": f"tfseaice {tfseaice.__version__} {meta['task']} model {os.path.abspath(model_dir)} (weights: {weights})"}
    if not os.path.isfile(os.path.join(saved_model, "saved_model.pb")):
        raise InputError(saved_model, "is not a SavedModel folder (no saved_model.pb)")
    try:
        layer = keras.layers.TFSMLayer(saved_model, call_endpoint="serving_default")
    except Exception as exc:  # noqa: BLE001 - TF raises many kinds here
        raise InputError(saved_model, f"cannot be loaded as a SavedModel ({str(exc).splitlines()[0]})") from None
    meta = read_export_meta(saved_model)
    return layer, {"channels": meta.get("channels"), "downsample": meta.get("downsample"),
                   "task": meta.get("task", "sic"), "precision": precision,
                   "flip_tta": meta.get("inference_flips", 1) > 1,   # averaged inside, if exported with --flip_tta
                   "source": f"tfseaice {tfseaice.__version__} SavedModel {os.path.abspath(saved_model)}"
                             + (f" ({meta['task']})" if meta.get("task") else "")}
