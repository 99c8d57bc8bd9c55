"""Gamma speckle head of the pix2pix generator (``--speckle=gamma``).

SAR intensity over a homogeneous area follows I = B * g with B the underlying
backscatter and g ~ Gamma(shape L, scale 1/L) (mean 1, CV 1/sqrt(L), L the
number of looks). With ``speckle="gamma"`` the generator's last layer has two
channels, turned by `split_params` into

* ``median`` in the model range [-1, 1] on the images' 8-bit dB scale
  (tfseaice.data.glacier_speckle: dB in [DB_MIN, DB_MAX] -> gray 1..255, model
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

The mask (``class_looks``, ``nodata_channel``; the layer is then called on
[head, condition]): ``class_looks`` gives each class its own L, held fixed
(real rock has L 2.46 in the sample glaciers, glacier 3.54, ocean 3.69: one L
for all left rock's speckle CV at 0.86 of the real one); ``nodata_channel``
leaves the pixels of that class unspeckled (the image is the median there, as
real no-data pixels carry no speckle).

`multilook` (the `Multilook` layer) is the K x K box mean of linear intensity,
back on the model scale: the discriminator's extra view of an image with its
speckle averaged out (``--disc_multilook``), where relief shows. `relief_map`,
the local standard deviation of that view, is what ``--relief_weight`` matches
between generated and real images (tasks/pix2pix.py).

Sampling is stateless: seeds come from a ``keras.random.SeedGenerator`` of the
layer (seeded by ``seed``; `reset_speckle_seed` restarts it), so the same seed
gives the same image.

Initial looks. ``learn_looks=False`` (``--speckle=gamma_fixed``) stops the
gradient to L: trained freely, the GAN term drove L of glacier pixels to ~1.2
and of ocean pixels to ~6.5 in the sample glaciers (docs/glacier_realism.md),
away from the data's ~3.5 on both. `set_initial_looks` sets the head's looks bias so that L starts at a
given value, and `looks_from_images` estimates that value from real images:
per class, the median local CV of linear intensity in 7 x 7 windows wholly
inside the class (tfseaice.data.glacier_speckle, the statistic the realism check
compares), turned into the L whose pure Gamma speckle, quantised to the 8-bit
dB scale as the images are, has that median CV (`matching_looks`; the median
window CV of Gamma(L) speckle is below 1/sqrt(L), so ENL = 1/CV^2 would
start L too high).
"""

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from tfseaice.data import glacier_speckle
from tfseaice.data.glacier_speckle import DB_MAX, DB_MIN

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


def model_to_intensity(x):
    """Model range -> linear intensity (10^(dB/10)): where speckle multiplies and looks average."""
    return 10.0 ** (model_to_db(x) / 10.0)


def intensity_to_model(intensity):
    """Linear intensity -> model range (through dB, floored at 1e-12, clipped as db_to_model)."""
    return db_to_model(10.0 * tf.math.log(tf.maximum(intensity, 1e-12)) / np.log(10.0))


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

    def __init__(self, seed=0, learn_looks=True, class_looks=None, nodata_channel=None, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.seed = int(seed)
        self.learn_looks = bool(learn_looks)
        self.class_looks = None if class_looks is None else tuple(float(v) for v in class_looks)
        self.nodata_channel = None if nodata_channel is None else int(nodata_channel)
        self.seed_generator = keras.random.SeedGenerator(self.seed, name="speckle_seed")

    @property
    def sees_mask(self):
        """True if the layer is called on [head, condition] (per-class looks or no-data left out)."""
        return self.class_looks is not None or self.nodata_channel is not None

    def call(self, inputs):
        raw, cond = (inputs[0], tf.cast(inputs[1], tf.float32)) if self.sees_mask else (inputs, None)
        median, looks = split_params(raw)
        if self.class_looks is not None:   # L of each pixel's class (one-hot channels first)
            table = tf.constant(self.class_looks, tf.float32)
            looks = tf.reduce_sum(cond[..., :len(self.class_looks)] * table, axis=-1, keepdims=True)
            looks = tf.clip_by_value(looks, 1.0, MAX_LOOKS)
        elif not self.learn_looks:   # held at their start (the data's estimate): the GAN cannot move them
            looks = tf.stop_gradient(looks)
        backscatter = model_to_intensity(median) / gamma_median_factor(looks)
        seed = tf.cast(self.seed_generator.next(), tf.int32)
        image = intensity_to_model(speckle_intensity(backscatter, looks, seed))
        if self.nodata_channel is not None:   # no speckle where there is no data: the median itself
            image = tf.where(cond[..., self.nodata_channel:self.nodata_channel + 1] > 0.5, median, image)
        return image

    def compute_output_shape(self, input_shape):
        shape = input_shape[0] if self.sees_mask else input_shape
        return tuple(shape[:-1]) + (1,)

    def get_config(self):
        config = super().get_config()
        config["seed"] = self.seed
        config["learn_looks"] = self.learn_looks
        config["class_looks"] = None if self.class_looks is None else list(self.class_looks)
        config["nodata_channel"] = self.nodata_channel
        return config


def head_tensor(layer):
    """The generator head [B,H,W,2] feeding a GammaSpeckle layer (its first input if it sees the mask)."""
    return layer.input[0] if isinstance(layer.input, (list, tuple)) else layer.input


def multilook(x, k):
    """Model-range image [B,H,W,1] -> its K x K box mean of linear intensity, on the model scale.

    Stride 1, "same" size; at the border the mean is over the pixels inside the image.
    """
    mean = tf.nn.avg_pool2d(model_to_intensity(x), int(k), strides=1, padding="SAME")
    return intensity_to_model(mean)


def relief_map(x, k, window):
    """Local standard deviation (``window`` x ``window`` box) of the K x K multilooked image (model scale):
    the relief (slopes, layover, shadow) left once speckle is averaged out; a flat scene gives about 0."""
    ml = multilook(x, k)
    mean = tf.nn.avg_pool2d(ml, int(window), strides=1, padding="SAME")
    mean_sq = tf.nn.avg_pool2d(tf.square(ml), int(window), strides=1, padding="SAME")
    return tf.sqrt(tf.maximum(mean_sq - tf.square(mean), 0.0) + 1e-6)


@keras.saving.register_keras_serializable(package="tfseaice")
class Multilook(layers.Layer):
    """`multilook` as a layer (the discriminator's speckle-averaged view, ``--disc_multilook``)."""

    def __init__(self, k, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if int(k) < 2:
            raise ValueError(f"multilook window must be >= 2, got {k}")
        self.k = int(k)

    def call(self, x):
        return multilook(x, self.k)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config["k"] = self.k
        return config


def speckle_layer(model):
    """The GammaSpeckle layer of a generator, or None."""
    for layer in model.layers:
        if isinstance(layer, GammaSpeckle):
            return layer
    return None


def reset_speckle_seed(model, seed):
    """Restart the speckle seed of a generator, and of its noise input (--gen_noise) if it has one;
    True if it has a speckle layer."""
    for layer in model.layers:
        gen = getattr(layer, "seed_generator", None)
        if isinstance(gen, keras.random.SeedGenerator):
            gen.state.assign(tf.constant([int(seed), 0], gen.state.dtype))
    return speckle_layer(model) is not None


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
        _PARTS[key] = (generator, keras.Model(generator.inputs, [head_tensor(layer), generator.output]))
    return _PARTS[key][1]


# ------------------------------------------------------------ initial looks

def looks_bias(looks):
    """Raw head value whose L = 1 + softplus(raw) is ``looks`` (> 1)."""
    looks = float(np.clip(looks, 1.0 + 1e-3, MAX_LOOKS))
    return float(np.log(np.expm1(looks - 1.0)))


def set_initial_looks(generator, looks):
    """Set the looks channel's bias of the conv feeding GammaSpeckle so L starts at ``looks``
    (the conv's kernels start near 0, N(0, 0.02)); returns False without a speckle head."""
    layer = speckle_layer(generator)
    if layer is None or looks is None:
        return False
    head = head_tensor(layer)._keras_history.operation
    bias = head.bias.numpy()
    bias[1] = looks_bias(looks)
    head.bias.assign(bias)
    return True


def set_looks(generator, looks):
    """Make a trained generator draw Gamma(``looks``) speckle on every pixel (the looks channel's kernels
    zeroed, its bias set): speckle of a product with another equivalent number of looks, the median image
    unchanged. Returns False without a speckle head; ValueError for per-class looks (held in the layer)."""
    layer = speckle_layer(generator)
    if layer is None:
        return False
    if layer.class_looks is not None:
        raise ValueError("the generator draws per-class looks (--speckle_looks_per_class): one L cannot "
                         "replace them")
    if not 1.0 < float(looks) <= MAX_LOOKS:
        raise ValueError(f"looks must be in (1, {MAX_LOOKS:g}], got {looks}")
    head = head_tensor(layer)._keras_history.operation
    kernel = head.kernel.numpy()   # Conv2D [k,k,in,out]; Conv2DTranspose [k,k,out,in]
    if isinstance(head, layers.Conv2DTranspose):
        kernel[:, :, 1, :] = 0.0
    else:
        kernel[..., 1] = 0.0
    head.kernel.assign(kernel)
    return set_initial_looks(generator, looks)


def _quantised_speckle_cv(looks, size, window, seed):
    """Median 7x7 local CV of Gamma(L) speckle on a flat field, after the 8-bit dB quantisation."""
    rng = np.random.default_rng(seed)
    level_db = 0.5 * (DB_MIN + DB_MAX)
    intensity = 10.0 ** (level_db / 10.0) * rng.gamma(looks, 1.0 / looks, size=(size, size))
    gray = np.clip(np.rint((10.0 * np.log10(intensity) - DB_MIN) / _DB_PER_GRAY + 1.0), 0.0, 255.0)
    intensity = glacier_speckle.unit_to_intensity(gray / 255.0)
    cv = glacier_speckle.local_cv(intensity, np.ones((size, size), bool), window)
    return float(np.median(cv))


def matching_looks(target_cv, window=glacier_speckle.DEFAULT_WINDOW, size=192, seed=0):
    """L in [1, MAX_LOOKS] whose quantised Gamma speckle has median window CV ``target_cv`` (bisection
    on log L with one seeded field per L: the same inputs give the same L)."""
    lo, hi = np.log(1.0), np.log(MAX_LOOKS)
    if _quantised_speckle_cv(1.0, size, window, seed) <= target_cv:
        return 1.0
    if _quantised_speckle_cv(MAX_LOOKS, size, window, seed) >= target_cv:
        return MAX_LOOKS
    for _ in range(20):
        mid = 0.5 * (lo + hi)
        if _quantised_speckle_cv(float(np.exp(mid)), size, window, seed) > target_cv:
            lo = mid
        else:
            hi = mid
    return float(np.exp(0.5 * (lo + hi)))


def looks_from_images(sar01, mask, class_names, skip=(0,), window=glacier_speckle.DEFAULT_WINDOW):
    """{"looks": median over classes, "classes": {name: {"cv", "looks", "windows"}}, "method"} of
    real images [N,H,W] in [0, 1] with class masks [N,H,W] (module docstring)."""
    stats = glacier_speckle.class_statistics(sar01, mask, class_names, window, skip=skip)
    classes = {name: {"cv": s["cv"], "looks": matching_looks(s["cv"], window), "windows": s["windows"]}
               for name, s in stats.items() if s["windows"] > 0 and np.isfinite(s["cv"])}
    if not classes:
        raise ValueError("no window lies wholly inside one class: cannot estimate the looks")
    return {"looks": float(np.median([c["looks"] for c in classes.values()])), "classes": classes,
            "method": f"per class: median {window}x{window} local CV of linear intensity -> L of quantised "
                      "Gamma(L) speckle with that median CV; L = median over classes"}
