"""SIC U-Net (Keras functional): SAR in dB -> pixel sea-ice concentration in [0, 1].

`build_icechart_unet` puts three heads (SIC, SOD, FLOE) on the same trunk.

Layout (paper Fig. 1, AI4Arctic starter pack): with ``filters=(f0, f1, f2, f3)``

    sar [B,H,W,C] (dB, NaN allowed)
      -> SarStandardize (per-channel (x - mean) / std; NaN/Inf -> 0)
      -> encoder block 0: 2 x (conv3x3-BN-ReLU) f0            (H)      skip0
      -> maxpool, encoder block 1: f1                          (H/2)    skip1
      -> maxpool, encoder block 2: f2                          (H/4)    skip2
      -> maxpool, encoder block 3: f3                          (H/8)    skip3
      -> maxpool, bridge: 2 x (conv3x3-BN-ReLU) f3             (H/16)
      -> decoder block 3..0: upsample x2, concat skip_i, 2 x (conv3x3-BN-ReLU) f_i
      -> 1x1 linear conv ("logits") -> sigmoid ("sic")         [B,H,W,1]

H and W must be multiples of 2**len(filters) (16 for the default four blocks).
The normalisation statistics live in the model (as non-trainable weights and
in the layer config), so the model takes SAR as the files hold it, survives
``save_weights``/``load_weights`` and SavedModel export, and loads with Keras
``safe_mode`` (no Lambda layers).
"""

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

from tfseaice.data.egg_codes import NUM_FLOE, NUM_SOD
from tfseaice.models.batchnorm import FusedBatchNormalization

DEFAULT_FILTERS = (16, 32, 64, 64)


@keras.saving.register_keras_serializable(package="tfseaice")
class SarStandardize(layers.Layer):
    """Per-channel ``(x - mean) / std``, then every non-finite value -> 0.

    NaN SAR (no data) therefore enters the network as the channel mean. With
    ``mean=None``/``std=None`` the layer only replaces non-finite values
    (mean 0, std 1). A std <= 0 is treated as 1. The statistics are stored as
    non-trainable weights (restored by ``load_weights``) and in the config.
    """

    def __init__(self, mean=None, std=None, **kwargs):
        super().__init__(**kwargs)
        self.mean = None if mean is None else [float(v) for v in np.ravel(mean)]
        self.std = None if std is None else [float(v) for v in np.ravel(std)]
        if self.mean is not None and self.std is not None and len(self.mean) != len(self.std):
            raise ValueError(f"norm_mean has {len(self.mean)} values but norm_std {len(self.std)}")

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels is None:
            raise ValueError("SarStandardize needs a known channel count")
        for what, values in (("norm_mean", self.mean), ("norm_std", self.std)):
            if values is not None and len(values) != channels:
                raise ValueError(f"{what} has {len(values)} values but the input has {channels} channels")
        mean = np.zeros(channels, "float32") if self.mean is None else np.asarray(self.mean, "float32")
        std = np.ones(channels, "float32") if self.std is None else np.asarray(self.std, "float32")
        std = np.where(np.isfinite(std) & (std > 0), std, 1.0).astype("float32")
        self.norm_mean = self.add_weight(shape=(channels,), name="norm_mean", trainable=False,
                                         initializer=keras.initializers.Constant(mean))
        self.norm_std = self.add_weight(shape=(channels,), name="norm_std", trainable=False,
                                        initializer=keras.initializers.Constant(std))

    def call(self, inputs):
        x = ops.cast(inputs, "float32")
        z = (x - ops.cast(self.norm_mean, "float32")) / ops.cast(self.norm_std, "float32")
        return ops.where(ops.isfinite(z), z, ops.zeros_like(z))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"mean": self.mean, "std": self.std})
        return config


@keras.saving.register_keras_serializable(package="tfseaice")
class ClassShift(layers.Layer):
    """softmax(log p + offset) of class probabilities p [..., C]: a fixed prior correction of a class head.

    Why a layer: the correction then travels with the network into every
    inference path (evaluate, predict, export, serving). The offset is a
    non-trainable weight (restored by ``load_weights``, so a model folder
    reloaded without its training data predicts as trained) and in the config.
    """

    def __init__(self, offset, **kwargs):
        super().__init__(**kwargs)
        self.offset = [float(v) for v in np.ravel(offset)]

    def build(self, input_shape):
        if input_shape[-1] != len(self.offset):
            raise ValueError(f"ClassShift has {len(self.offset)} offsets but the input has {input_shape[-1]} classes")
        self.class_offset = self.add_weight(shape=(len(self.offset),), name="class_offset", trainable=False,
                                            initializer=keras.initializers.Constant(np.asarray(self.offset)))

    def call(self, probs):
        logp = ops.log(ops.maximum(ops.cast(probs, "float32"), 1e-7))
        return ops.softmax(logp + ops.cast(self.class_offset, "float32"), axis=-1)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"offset": self.offset})
        return config


@keras.saving.register_keras_serializable(package="tfseaice")
class Upsample2x(layers.Layer):
    """Resize [B,H,W,C] to [B,2H,2W,C] ("bilinear" or "nearest").

    Unlike keras.layers.UpSampling2D(interpolation="bilinear"), works when H
    and W are unknown at trace time (SavedModel signatures with None sizes).
    """

    def __init__(self, interpolation="bilinear", **kwargs):
        super().__init__(**kwargs)
        if interpolation not in ("bilinear", "nearest"):
            raise ValueError(f"interpolation must be 'bilinear' or 'nearest', got {interpolation!r}")
        self.interpolation = interpolation

    def call(self, inputs):
        size = tf.shape(inputs)[1:3] * 2
        out = tf.image.resize(inputs, size, method=self.interpolation)
        return tf.cast(out, inputs.dtype)

    def compute_output_shape(self, input_shape):
        b, h, w, c = input_shape
        return (b, None if h is None else 2 * h, None if w is None else 2 * w, c)

    def get_config(self):
        config = super().get_config()
        config.update({"interpolation": self.interpolation})
        return config


def _double_conv(x, filters, name, bn_momentum, sync_bn):
    for i in (1, 2):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv{i}")(x)
        x = FusedBatchNormalization(momentum=bn_momentum, synchronized=sync_bn,
                                      name=f"{name}_bn{i}")(x)
        x = layers.ReLU(name=f"{name}_relu{i}")(x)
    return x


def _unet_trunk(num_channels, filters, norm_mean, norm_std, upsample, bn_momentum, sync_bn):
    """(input "sar", last decoder features [B,H,W,filters[0]]): the U-Net every head sits on."""
    filters = tuple(int(f) for f in filters)
    if not filters or min(filters) < 1:
        raise ValueError(f"filters must be positive integers, got {filters}")
    if upsample not in ("bilinear", "transpose"):
        raise ValueError(f"upsample must be 'bilinear' or 'transpose', got {upsample!r}")
    inputs = keras.Input(shape=(None, None, int(num_channels)), dtype="float32", name="sar")
    x = SarStandardize(norm_mean, norm_std, name="standardize")(inputs)
    skips = []
    for i, f in enumerate(filters):
        if i:
            x = layers.MaxPooling2D(2, name=f"enc{i}_pool")(x)
        x = _double_conv(x, f, f"enc{i}", bn_momentum, sync_bn)
        skips.append(x)
    x = layers.MaxPooling2D(2, name="bridge_pool")(x)
    x = _double_conv(x, filters[-1], "bridge", bn_momentum, sync_bn)
    for i in reversed(range(len(filters))):
        if upsample == "bilinear":
            x = Upsample2x("bilinear", name=f"dec{i}_up")(x)
        else:
            x = layers.Conv2DTranspose(filters[i], 2, strides=2, name=f"dec{i}_up")(x)
        x = layers.Concatenate(name=f"dec{i}_concat")([x, skips[i]])
        x = _double_conv(x, filters[i], f"dec{i}", bn_momentum, sync_bn)
    return inputs, x


def _head(x, units, activation, name, logits_name=None):
    """1x1 linear conv then `activation`, both float32 (so mixed precision outputs float32)."""
    logits = layers.Conv2D(units, 1, dtype="float32", name=logits_name or f"{name}_logits")(x)
    return layers.Activation(activation, dtype="float32", name=name)(logits)


def build_sic_unet(num_channels, filters=DEFAULT_FILTERS, norm_mean=None, norm_std=None,
                   name="sic_unet", upsample="bilinear", bn_momentum=0.9, sync_bn=True):
    """Build the SIC U-Net.

    Args:
      num_channels: SAR channels C (e.g. 2 for HH, HV).
      filters: filters of the encoder blocks, one per block (the bridge uses the
        last value again; decoder block i uses filters[i]). Default (16, 32, 64, 64).
      norm_mean, norm_std: per-channel statistics in file units (dB), e.g. from
        dataset_info.json; None = no standardisation (NaN/Inf are still zeroed).
      upsample: "bilinear" (resize x2, then the block's convs) or "transpose" (2x2 stride-2
        Conv2DTranspose) in the decoder.
      bn_momentum: BatchNormalization moving-average momentum (0.9 = PyTorch 0.1).
      sync_bn: synchronise batch statistics across replicas, so MirroredStrategy
        computes the same function as one device for the same global batch.

    Returns:
      keras.Model: input "sar" float32 [B, H, W, C]; output "sic" float32 [B, H, W, 1]
      in [0, 1] (sigmoid of the 1x1 "logits" layer).
    """
    inputs, x = _unet_trunk(num_channels, filters, norm_mean, norm_std, upsample, bn_momentum, sync_bn)
    return keras.Model(inputs, _head(x, 1, "sigmoid", "sic", logits_name="logits"), name=name)


def build_icechart_unet(num_channels, filters=DEFAULT_FILTERS, norm_mean=None, norm_std=None,
                        name="icechart_unet", upsample="bilinear", bn_momentum=0.9, sync_bn=True,
                        num_sod=NUM_SOD, num_floe=NUM_FLOE, sod_offset=None):
    """The SIC U-Net's trunk with three 1x1 heads: SIC, stage of development, floe size.

    Arguments as build_sic_unet. Returns a keras.Model from "sar" [B,H,W,C] to
    the dict {"sic": [B,H,W,1] sigmoid, "sod": [B,H,W,num_sod] softmax,
    "floe": [B,H,W,num_floe] softmax}, float32 under any dtype policy. The SIC
    head's layers keep build_sic_unet's names ("logits", "sic"). `sod_offset`
    [num_sod]: the SOD probabilities leave through `ClassShift(sod_offset)`
    (layer "sod_prior_shift"), a prediction-time prior correction.
    """
    inputs, x = _unet_trunk(num_channels, filters, norm_mean, norm_std, upsample, bn_momentum, sync_bn)
    outputs = {"sic": _head(x, 1, "sigmoid", "sic", logits_name="logits"),
               "sod": _head(x, int(num_sod), "softmax", "sod"),
               "floe": _head(x, int(num_floe), "softmax", "floe")}
    if sod_offset is not None:
        outputs["sod"] = ClassShift(sod_offset, dtype="float32", name="sod_prior_shift")(outputs["sod"])
    return keras.Model(inputs, outputs, name=name)
