"""Gamma speckle head of the pix2pix generator (``--speckle=gamma``).

SAR intensity over a homogeneous area follows I = B * g with B the underlying
backscatter and g ~ Gamma(shape L, scale 1/L) (mean 1, CV 1/sqrt(L), L the
number of looks). With ``speckle="gamma"`` the generator's last layer has two
channels, turned by `split_params` into

* ``median`` in the model range [-1, 1] on the images' 8-bit dB scale
  (tfseaice.simulate.glaciers: dB in [DB_MIN, DB_MAX] -> gray 1..255, model
  value = 2 * gray / 255 - 1): the per-pixel median of the speckled image;
* ``looks`` L = 1 + softplus(raw), clipped to [1, MAX_LOOKS], per pixel.

`GammaSpeckle` draws the image: mean backscatter B = median intensity /
median(g), I = B * g, back to dB and gray, clipped to 0..255. The median
parametrisation matters for the losses (tasks/pix2pix.py): the L1 term sees
``median`` only (no speckle, no gradient to L): its minimiser is the
conditional median of the real pixel, and the speckled image then has that
median whatever L is. The GAN term sees the speckled image, and gets
gradients w.r.t. both B and L: ``tf.random.stateless_gamma`` has implicit
reparameterisation gradients w.r.t. its shape (checked in tests).

Sampling is stateless: seeds come from a ``keras.random.SeedGenerator`` of the
layer (seeded by ``seed``; `reset_speckle_seed` restarts it), so the same seed
gives the same image.
"""

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from tfseaice.simulate.glaciers import DB_MAX, DB_MIN

MAX_LOOKS = 100.0
_DB_PER_GRAY = (DB_MAX - DB_MIN) / 254.0


def model_to_db(x):
    """Model range [-1, 1] (= 2 * gray / 255 - 1) -> dB."""
    gray = (tf.cast(x, tf.float32) + 1.0) * 127.5
    return (gray - 1.0) * _DB_PER_GRAY + DB_MIN


def db_to_model(db):
    """dB -> model range, clipped to the 8-bit scale (gray 0..255)."""
    gray = tf.clip_by_value((db - DB_MIN) / _DB_PER_GRAY + 1.0, 0.0, 255.0)
    return gray / 127.5 - 1.0


def gamma_median_factor(looks):
    """Median of Gamma(L, 1/L) (Choi's expansion L - 1/3 + 8/(405 L), over L; < 0.5 % off for L >= 1)."""
    looks = tf.cast(looks, tf.float32)
    return (looks - 1.0 / 3.0 + 8.0 / (405.0 * looks)) / looks


def speckle_intensity(backscatter, looks, seed):
    """backscatter * Gamma(L, 1/L): multiplicative speckle of mean 1, CV 1/sqrt(L).

    ``seed``: int32/int64 [2] tensor (stateless sampling). Differentiable
    w.r.t. backscatter and looks.
    """
    looks = tf.broadcast_to(tf.cast(looks, tf.float32), tf.shape(backscatter))
    g = tf.random.stateless_gamma(tf.shape(backscatter), seed=seed, alpha=looks) / looks
    return backscatter * g


def split_params(raw):
    """Generator head [B,H,W,2] -> (median in [-1, 1] [B,H,W,1], looks [B,H,W,1])."""
    raw = tf.cast(raw, tf.float32)
    median = tf.tanh(raw[..., :1])
    looks = tf.clip_by_value(1.0 + tf.nn.softplus(raw[..., 1:2]), 1.0, MAX_LOOKS)
    return median, looks


@keras.saving.register_keras_serializable(package="tfseaice")
class GammaSpeckle(layers.Layer):
    """[B,H,W,2] generator head -> speckled SAR in [-1, 1] (module docstring)."""

    def __init__(self, seed=0, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.seed = int(seed)
        self.seed_generator = keras.random.SeedGenerator(self.seed, name="speckle_seed")

    def call(self, raw):
        median, looks = split_params(raw)
        median_intensity = 10.0 ** (model_to_db(median) / 10.0)
        backscatter = median_intensity / gamma_median_factor(looks)
        seed = tf.cast(self.seed_generator.next(), tf.int32)
        intensity = speckle_intensity(backscatter, looks, seed)
        db = 10.0 * tf.math.log(tf.maximum(intensity, 1e-12)) / np.log(10.0)
        return db_to_model(db)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (1,)

    def get_config(self):
        config = super().get_config()
        config["seed"] = self.seed
        return config


def speckle_layer(model):
    """The GammaSpeckle layer of a generator, or None."""
    for layer in model.layers:
        if isinstance(layer, GammaSpeckle):
            return layer
    return None


def reset_speckle_seed(model, seed):
    """Restart the speckle seed of a generator (no-op without speckle); True if it has one."""
    layer = speckle_layer(model)
    if layer is None:
        return False
    layer.seed_generator.state.assign(tf.constant([int(seed), 0], layer.seed_generator.state.dtype))
    return True


_PARTS = {}


def params_and_image_model(generator):
    """keras.Model cond -> [head [B,H,W,2], image] sharing the generator's weights (one forward
    pass for the L1 on the median and the GAN on the image), or None without speckle.
    Cached outside Keras' tracking so that weight files keep the generator's layout."""
    layer = speckle_layer(generator)
    if layer is None:
        return None
    key = id(generator)
    if key not in _PARTS or _PARTS[key][0] is not generator:
        _PARTS[key] = (generator, keras.Model(generator.inputs, [layer.input, generator.output]))
    return _PARTS[key][1]
