"""BatchNormalization folded into the convolution before it, for inference.

At inference a BatchNormalization with moving statistics is an affine map per channel,
y = gamma * (x - mean) / sqrt(var + eps) + beta, so after a convolution it can be merged into
that convolution's kernel and bias: W' = W * s, b' = (b - mean) * s + beta, s = gamma /
sqrt(var + eps). The folded model computes the same function (to float round-off) with one op
less per block and no normalisation pass over the activations, and what is left (conv + bias +
ReLU) is the pattern every CPU backend fuses into one kernel.

Only a BatchNormalization fed by a Conv2D whose output nothing else reads is folded, and only
when it normalises with its moving statistics at inference (a FusedBatchNormalization set to
"instance" statistics, as pix2pix may use, is kept as it is). Every other layer is cloned with
its config and weights; layer names stay, so a folded model is inspected like the original.
"""

import keras
import numpy as np
from keras import layers

from tfseaice.models.batchnorm import FusedBatchNormalization


@keras.saving.register_keras_serializable(package="tfseaice")
class FoldedAway(layers.Layer):
    """Where a folded BatchNormalization stood: passes its input on (takes the same call arguments)."""

    def call(self, inputs, training=None, mask=None):
        return inputs

    def compute_output_shape(self, input_shape):
        return input_shape


def _producer(layer):
    """The layer whose output is `layer`'s only input, or None."""
    nodes = getattr(layer, "_inbound_nodes", [])
    if len(nodes) != 1 or len(nodes[0].input_tensors) != 1:
        return None
    return nodes[0].input_tensors[0]._keras_history.operation


def foldable_pairs(model):
    """{batchnorm layer name: conv layer name} of the BatchNormalization layers that can be folded."""
    pairs = {}
    for layer in model.layers:
        if not isinstance(layer, layers.BatchNormalization) or layer.axis not in (-1, 3):
            continue
        if getattr(layer, "renorm", False) or (isinstance(layer, FusedBatchNormalization)
                                                and layer.stats_at_inference != "moving"):
            continue
        conv = _producer(layer)
        if (type(conv) is layers.Conv2D and len(conv._outbound_nodes) == 1
                and len(conv._inbound_nodes) == 1 and conv.data_format == "channels_last"):
            pairs[layer.name] = conv.name
    return pairs


def folded_conv_weights(kernel, bias, gamma, beta, mean, variance, epsilon):
    """(kernel', bias') of a conv followed by an inference-mode BatchNormalization, in float64."""
    scale = np.asarray(gamma, np.float64) / np.sqrt(np.asarray(variance, np.float64) + epsilon)
    kernel = np.asarray(kernel, np.float64) * scale
    bias = np.zeros_like(scale) if bias is None else np.asarray(bias, np.float64)
    return kernel, (bias - np.asarray(mean, np.float64)) * scale + np.asarray(beta, np.float64)


def _bn_parameters(bn):
    c = bn.moving_mean.shape[0]
    gamma = bn.gamma.numpy() if bn.scale else np.ones(c)
    beta = bn.beta.numpy() if bn.center else np.zeros(c)
    return gamma, beta, bn.moving_mean.numpy(), bn.moving_variance.numpy(), bn.epsilon


def fold_batchnorm(model):
    """A copy of a functional Keras `model` for inference, its foldable BatchNormalizations merged
    into their convolutions (`foldable_pairs`). The model itself is not changed; a model with
    nothing to fold comes back as it is."""
    pairs = foldable_pairs(model)
    if not pairs:
        return model
    convs = set(pairs.values())

    def clone(layer):
        if layer.name in pairs:
            return FoldedAway(name=layer.name, dtype=layer.dtype_policy)
        config = layer.get_config()
        if layer.name in convs:
            config["use_bias"] = True
        return layer.__class__.from_config(config)

    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(model.dtype_policy)   # the copy computes as the model does
    try:
        folded = keras.models.clone_model(model, clone_function=clone)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    for bn_name, conv_name in pairs.items():
        conv, bn = model.get_layer(conv_name), model.get_layer(bn_name)
        kernel, bias = folded_conv_weights(conv.kernel.numpy(), conv.bias.numpy() if conv.use_bias else None,
                                           *_bn_parameters(bn))
        target = folded.get_layer(conv_name)
        target.kernel.assign(kernel.astype(np.float32))
        target.bias.assign(bias.astype(np.float32))
    for layer in model.layers:
        if layer.name not in pairs and layer.name not in convs and layer.weights:
            folded.get_layer(layer.name).set_weights(layer.get_weights())
    return folded
