"""A trained pix2pix generator as a function, from a model folder or an exported SavedModel.

`GeneratorFn(cond)`: one-hot zone condition [N, H, W, C] float32 -> SAR [N, H, W, 1] in [0, 1].
"""

import os

import numpy as np
import tensorflow as tf

from tfseaice import io_utils
from tfseaice.data import glacier
from tfseaice.errors import InputError
from tfseaice.models.pix2pix import set_bn_at_inference, set_dropout_at_inference
from tfseaice.models.speckle import reset_speckle_seed, set_looks
from tfseaice.serving.loading import load_trained
from tfseaice.serving.pix2pix_export import SIDECAR, generator_of
from tfseaice.tasks import pix2pix as task
from tfseaice.tasks.pix2pix_callbacks import checkpoint_path
from tfseaice.training.config import TrainConfig
from tfseaice.training.model_dir import read_task_file


class GeneratorFn:
    """A generator as a function: condition [N,H,W,C] float32 -> SAR [N,H,W,1] in [0, 1]."""

    def __init__(self, fn, input_channels, num_classes=glacier.NUM_CLASSES, extra_names=()):
        self.fn = fn
        self.zone_classes = 3   # 2: trained with --zone_classes=2, its masks' rock is drawn as glacier
        self.input_channels = int(input_channels)
        self.num_classes = num_classes
        self.extra_names = tuple(extra_names)

    def __call__(self, cond):
        return np.asarray(self.fn(tf.convert_to_tensor(cond, tf.float32)))


def from_keras(generator, extra_names=()):
    """GeneratorFn of a Keras generator (or a Pix2Pix model)."""
    generator = generator_of(generator)

    @tf.function(reduce_retracing=True)
    def run(cond):
        return tf.clip_by_value((generator(cond, training=False) + 1.0) / 2.0, 0.0, 1.0)

    return GeneratorFn(run, generator.input_shape[-1], extra_names=extra_names)


def pix2pix_config(model_dir):
    """(task.json, TrainConfig) of a pix2pix model folder; InputError naming it when it holds another task."""
    meta = read_task_file(model_dir)
    if meta.get("task") != "pix2pix":
        raise InputError(model_dir, f"holds a {meta.get('task')!r} model, not pix2pix")
    return meta, TrainConfig.from_json(meta["config"])


def override_looks(generator, looks, model_dir):
    """Gamma(``looks``) speckle on every pixel instead of the trained L (tfseaice.models.speckle.set_looks),
    its refusals as one-line InputErrors naming the model folder; ``looks`` 0 keeps the trained L."""
    if not looks:
        return
    try:
        has_head = set_looks(generator, looks)
    except ValueError as exc:
        raise InputError(model_dir, f"--speckle_looks={looks:g}: {exc}") from None
    if not has_head:
        raise InputError(model_dir, f"--speckle_looks={looks:g}: the generator has no speckle head "
                                    "(trained with --speckle=none)")


def load_from_model_dir(model_dir, checkpoint="best", dropout_at_inference=False, bn_at_inference="moving",
                        seed=None, speckle_looks=0.0):
    """GeneratorFn of a trained pix2pix model folder (weights: best|latest|EPOCH|path).

    bn_at_inference: "moving" or "batch" (per-image statistics, see
    tfseaice.models.pix2pix.set_bn_at_inference). seed: first seed of a
    Gamma-speckle generator's draws (None: the training seed's state as saved).
    speckle_looks: > 1: Gamma speckle of that many looks (e.g. another product's
    equivalent number of looks) instead of the trained L; 0: the trained L.
    """
    meta, cfg = pix2pix_config(model_dir)
    info = meta["dataset_info"]
    checkpoint = str(checkpoint)
    if checkpoint.isdigit() or checkpoint.endswith(".weights.h5") and "epoch_" in os.path.basename(checkpoint):
        path = checkpoint_path(model_dir, int(checkpoint)) if checkpoint.isdigit() else checkpoint
        if not os.path.exists(path):
            raise InputError(path, "generator checkpoint not found")
        generator = task.build_generator_from(cfg, info)
        generator.load_weights(path)
    else:
        model, _ = load_trained(model_dir, weights=checkpoint, expect_task="pix2pix")
        generator = model.generator
    set_dropout_at_inference(generator, dropout_at_inference)
    set_bn_at_inference(generator, bn_at_inference)
    override_looks(generator, speckle_looks, model_dir)
    if seed is not None:
        reset_speckle_seed(generator, seed)
    fn = from_keras(generator, extra_names=info.get("extra_channels", []))
    fn.zone_classes = int((meta["config"].get("extra") or {}).get("zone_classes") or 3)  # 2: rock drawn as glacier
    return fn


def load_saved_model(path):
    """GeneratorFn of an exported generator SavedModel (input `mask`, output `sar`)."""
    if not tf.io.gfile.exists(os.path.join(path, "saved_model.pb")):
        raise InputError(path, "not a SavedModel folder (no saved_model.pb)")
    try:
        loaded = tf.saved_model.load(path)
    except Exception as exc:  # noqa: BLE001 - a cut or damaged saved_model.pb / variables: TF raises many kinds
        reason = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise InputError(path, f"cannot be loaded as a SavedModel ({reason})") from None
    sig = loaded.signatures.get("serving_default")
    if sig is None:
        raise InputError(path, "SavedModel has no serving_default signature")
    spec = sig.structured_input_signature[1].get("mask")
    if spec is None:
        raise InputError(path, "SavedModel's serving_default takes no `mask` input")
    extra_names = ()
    sidecar = os.path.join(path, SIDECAR)
    if os.path.exists(sidecar):
        extra_names = tuple(io_utils.load_json(sidecar, "; export the model again").get("extra_channels", []))

    def run(cond):
        return sig(mask=cond)["sar"]

    run.keep_alive = loaded
    return GeneratorFn(run, spec.shape[-1], extra_names=extra_names)
