"""Stand-ins for a trained ice-chart model (tests of serving and evaluation).

The output contract of `models.unet.build_icechart_unet`: a loaded ice-chart model maps SAR
float32 [B, H, W, C] (file units, NaN = no data) to a dict of probabilities
  {"sic": [B, H, W, 1] sigmoid, "sod": [B, H, W, 6] softmax, "floe": [B, H, W, 7] softmax}.
`icechart_standin_model` is a tiny functional Keras model with exactly that output and a receptive
field small enough that tiled inference must equal one whole-image call; `truth_passthrough` is a
"perfect" model for scenes whose HH/HV channels hold the SOD/FLOE truth classes.
"""

import keras
import numpy as np
import tensorflow as tf

from tfseaice.data.egg_codes import NUM_FLOE, NUM_SOD
from tfseaice.models.unet import SarStandardize


def icechart_standin_model(channels=2, seed=0):
    """The ice-chart output contract on a fully convolutional net (one 2x pooling; receptive-field
    radius <= 6, so tiled inference with overlap >= 24 equals one-shot everywhere). NaN-safe."""
    keras.utils.set_random_seed(seed)
    x_in = keras.Input((None, None, channels), name="sar")
    x = SarStandardize([-14.5] * channels, [5.7] * channels)(x_in)
    a = keras.layers.Conv2D(8, 3, padding="same", activation="tanh")(x)
    b = keras.layers.MaxPooling2D(2)(a)
    b = keras.layers.Conv2D(8, 3, padding="same", activation="tanh")(b)
    b = keras.layers.UpSampling2D(2)(b)
    x = keras.layers.Concatenate()([a, b])
    # Large logits: the classes vary over the scene instead of one class winning everywhere.
    init = keras.initializers.RandomNormal(stddev=2.0, seed=seed)
    return keras.Model(x_in, {
        "sic": keras.layers.Conv2D(1, 1, activation="sigmoid", name="sic")(x),
        "sod": keras.layers.Conv2D(NUM_SOD, 1, activation="softmax", kernel_initializer=init, name="sod")(x),
        "floe": keras.layers.Conv2D(NUM_FLOE, 1, activation="softmax", kernel_initializer=init, name="floe")(x),
    })


def truth_passthrough(sod_map=None):
    """A callable ice-chart model: SOD = one-hot(round(HH)), FLOE = one-hot(round(HV)), SIC = HH / 5.

    `sod_map`: optional int list class -> predicted class (a deliberately wrong model).
    """
    lut = tf.constant(np.arange(NUM_SOD) if sod_map is None else sod_map, tf.int32)

    def model(sar):
        hh = tf.where(tf.math.is_finite(sar[..., 0]), sar[..., 0], 0.0)
        hv = tf.where(tf.math.is_finite(sar[..., 1]), sar[..., 1], 0.0)
        sod = tf.gather(lut, tf.clip_by_value(tf.cast(tf.round(hh), tf.int32), 0, NUM_SOD - 1))
        floe = tf.clip_by_value(tf.cast(tf.round(hv), tf.int32), 0, NUM_FLOE - 1)
        return {"sic": (hh / 5.0)[..., None], "sod": tf.one_hot(sod, NUM_SOD), "floe": tf.one_hot(floe, NUM_FLOE)}

    return model
