"""pix2pix GAN losses (Isola et al. 2017, as the glacier paper trains them).

Per-example losses ([B] float32): the caller reduces them, e.g. with
tf.nn.compute_average_loss (divides by the global batch size) so that the
per-replica gradients that Keras sums under MirroredStrategy add up to the
single-device gradient. `reduce=True` gives the plain batch mean.
"""

import tensorflow as tf


def _per_example_bce_logits(logits, label):
    logits = tf.cast(logits, tf.float32)
    labels = tf.fill(tf.shape(logits), tf.cast(label, tf.float32))
    bce = tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits)
    return tf.reduce_mean(tf.reshape(bce, [tf.shape(bce)[0], -1]), axis=1)


def gan_generator_loss(fake_logits, reduce=True):
    """Generator's adversarial loss: BCE(1, D(x, G(x))) from logits, mean over patches."""
    per_example = _per_example_bce_logits(fake_logits, 1.0)
    return tf.reduce_mean(per_example) if reduce else per_example


def gan_discriminator_loss(real_logits, fake_logits, reduce=True):
    """Discriminator loss 0.5 * [BCE(1, D(x, y)) + BCE(0, D(x, G(x)))] from logits.

    The factor 0.5 is Isola et al.'s ("we divide the objective by 2 while
    optimizing D, which slows down the rate at which D learns relative to G").
    """
    per_example = 0.5 * (_per_example_bce_logits(real_logits, 1.0)
                         + _per_example_bce_logits(fake_logits, 0.0))
    return tf.reduce_mean(per_example) if reduce else per_example


def l1_loss(target, generated, reduce=True):
    """Mean absolute error per example (paper Eq. 4), or its batch mean."""
    diff = tf.abs(tf.cast(target, tf.float32) - tf.cast(generated, tf.float32))
    per_example = tf.reduce_mean(tf.reshape(diff, [tf.shape(diff)[0], -1]), axis=1)
    return tf.reduce_mean(per_example) if reduce else per_example
