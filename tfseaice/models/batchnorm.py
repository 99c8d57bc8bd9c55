"""BatchNormalization that runs TensorFlow's fused kernel (FusedBatchNormV3).

Keras 3 computes batch statistics and the normalisation as a chain of small
ops (moments, subtract, rsqrt, multiply, add, plus casts under mixed
precision). On a CPU that chain took more than half of the SIC U-Net's
training step (bench/train_step.py: 12 -> 24 images/s at 256², batch 16,
bf16). This subclass keeps Keras' weights, config and semantics (biased batch
variance in the moving statistics, float32 statistics under mixed precision)
and swaps in the fused kernel wherever it computes the same function: 4-D
channels-last inputs, no mask, no renorm, and no cross-replica
synchronisation needed. With ``synchronized=True`` under a strategy with more
than one replica it falls back to Keras' own code, so MirroredStrategy still
computes the single-device function for the same global batch.

``stats_at_inference`` ("moving", Keras' behaviour, or "instance") chooses
what a call with ``training=False`` normalises with. "instance" uses each
example's own per-channel statistics over H, W (moving statistics are not
touched): the batch statistics the pix2pix reference implementations keep
at test time, which at their test batch of 1 are exactly these, here
independent of the inference batch size. Set it with `set_stats_at_inference`.
"""

import keras
import tensorflow as tf
from keras import layers, ops


@keras.saving.register_keras_serializable(package="tfseaice")
class FusedBatchNormalization(layers.BatchNormalization):
    """``keras.layers.BatchNormalization`` computed by the fused TF kernel."""

    stats_at_inference = "moving"   # class default: layers saved before the option behave as before

    def _instance_norm(self, inputs):
        x = tf.cast(inputs, "float32")
        mean, variance = tf.nn.moments(x, axes=[1, 2], keepdims=True)
        gamma = tf.cast(self.gamma, "float32") if self.scale else None
        beta = tf.cast(self.beta, "float32") if self.center else None
        y = tf.nn.batch_normalization(x, mean, variance, beta, gamma, self.epsilon)
        return ops.cast(y, self.compute_dtype)

    def _fusable(self, inputs, mask):
        if mask is not None or self.renorm or len(inputs.shape) != 4:
            return False
        if self.axis not in (-1, 3):
            return False
        if self.synchronized and tf.distribute.has_strategy():
            ctx = tf.distribute.get_replica_context()
            if ctx is None or ctx.num_replicas_in_sync > 1:
                return False
        return True

    def call(self, inputs, training=None, mask=None):
        if not training and self.stats_at_inference == "instance" and len(inputs.shape) == 4 and mask is None:
            return self._instance_norm(inputs)
        if not self._fusable(inputs, mask):
            return super().call(inputs, training=training, mask=mask)
        channels = inputs.shape[-1]
        gamma = tf.cast(self.gamma, "float32") if self.scale else tf.ones([channels], "float32")
        beta = tf.cast(self.beta, "float32") if self.center else tf.zeros([channels], "float32")
        x = inputs if inputs.dtype in (tf.float32, tf.bfloat16) else tf.cast(inputs, "float32")
        if training and self.trainable:
            y, mean, variance = tf.compat.v1.nn.fused_batch_norm(
                x, gamma, beta, epsilon=self.epsilon, is_training=True)
            # The kernel returns the unbiased (n / (n - 1)) batch variance for the
            # running statistics; Keras keeps the biased one.
            shape = tf.shape(x)
            n = tf.cast(shape[0] * shape[1] * shape[2], "float32")
            variance = variance * tf.maximum(n - 1.0, 0.0) / tf.maximum(n, 1.0)
            m = self.momentum
            self.moving_mean.assign(self.moving_mean * m + tf.stop_gradient(mean) * (1.0 - m))
            self.moving_variance.assign(self.moving_variance * m
                                        + tf.stop_gradient(variance) * (1.0 - m))
        else:
            y, _, _ = tf.compat.v1.nn.fused_batch_norm(
                x, gamma, beta, mean=tf.cast(self.moving_mean, "float32"),
                variance=tf.cast(self.moving_variance, "float32"),
                epsilon=self.epsilon, is_training=False)
        return ops.cast(y, self.compute_dtype)


def set_stats_at_inference(model, mode):
    """Set ``stats_at_inference`` ("moving" | "instance") on every FusedBatchNormalization
    of a model (nested models included); returns how many. Re-trace functions afterwards."""
    if mode not in ("moving", "instance"):
        raise ValueError(f"stats_at_inference must be 'moving' or 'instance', got {mode!r}")
    n = 0
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, FusedBatchNormalization):
            layer.stats_at_inference = mode
            n += 1
    if hasattr(model, "predict_function"):
        model.predict_function = None
    return n
