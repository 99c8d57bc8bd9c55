"""pix2pix generator (U-Net) and 70x70 PatchGAN discriminator (Keras functional).

Paper: Dietrich-Sussner et al., "Synthetic Glacier SAR Image Generation from Arbitrary Masks
Using Pix2Pix Algorithm" (IGARSS 2021, arXiv:2101.03252), Sec. II-B (after Isola et al. 2017).

Generator, for ``filters=64`` (f) and 8 down / 8 up levels::

    encoder  e1 C(f)  no BN          LeakyReLU 0.2     (H/2)
             e2 C(2f) BN             LeakyReLU 0.2     (H/4)
             e3 C(4f) BN, e4..e7 C(8f) BN              (H/8 .. H/128)
             e8 C(8f) innermost, no BN (as Isola et al.'s code: with a
                1x1 bottleneck and batch 1, BN would zero it)  LeakyReLU (H/256)
    decoder  d1..d3 CT(8f) BN Dropout(0.5) ReLU, concat e7..e5
             d4 CT(8f), d5 CT(4f), d6 CT(2f), d7 CT(f): BN LeakyReLU 0.2, concat e4..e1
             d8 CT(out) tanh                                   (H)

C = Conv2D stride 2, CT = Conv2DTranspose stride 2, both ``kernel_size`` x
``kernel_size`` (4; 5 for the paper's gen5), "same" padding. With
``upsample="resize_conv"`` every CT is a nearest-neighbour 2x resize followed
by a stride-1 conv of the same kernel size (Odena et al. 2016, "Deconvolution
and checkerboard artifacts"): a stride-2 transposed conv whose kernel size is
not divisible by the stride covers output pixels unevenly, and 8 stacked ones
leave a 2**k-periodic pattern (the quickstart's 32-px dot lattice). With
``speckle="gamma"`` the last layer has 2 channels (median backscatter, number
of looks) and the image is drawn by tfseaice.models.speckle.GammaSpeckle
instead of the tanh (``"gamma_fixed"``: the looks get no gradient and stay
where they start, the training images' estimate). The decoder's
activations follow the paper's text (ReLU in d1-d3, LeakyReLU in d4-d7).
Inputs of any H, W that are multiples of 2**num_downs (256) work: the model is
fully convolutional.

Discriminator (PatchGAN, 5 conv layers; ``k = kernel_size``, 4 or 3 for dis3)::

    concat(condition, image) -> C(f) s2 LReLU -> C(2f) s2 BN LReLU -> C(4f) s2 BN LReLU
      -> pad 1 -> C(8f) s1 valid BN LReLU -> pad 1 -> C(1) s1 valid = logits

256 x 256 input -> 30 x 30 logits, each seeing a 70 x 70 input patch (k=4).
No sigmoid: the losses take logits (tfseaice.losses, BCE from logits).

Weights: N(0, 0.02); BatchNorm gamma N(1, 0.02), beta 0 (Isola et al.'s init).
``sync_batchnorm=True`` uses ``BatchNormalization(synchronized=True)`` so the
batch statistics are computed over the global batch under MirroredStrategy.
"""

import keras
import tensorflow as tf
from keras import layers

from tfseaice.models.batchnorm import FusedBatchNormalization, set_stats_at_inference
from tfseaice.models.speckle import GammaSpeckle, Multilook, set_initial_looks

NUM_DOWNS = 8
UPSAMPLE_MODES = ("transpose", "resize_conv")
SPECKLE_MODES = ("none", "gamma", "gamma_fixed")
NO_DATA_CHANNEL = 0   # tfseaice.data.glacier.NO_DATA: the condition's one-hot channel of no-data pixels


def conv_init():
    return keras.initializers.RandomNormal(mean=0.0, stddev=0.02)


def gamma_init():
    return keras.initializers.RandomNormal(mean=1.0, stddev=0.02)


@keras.saving.register_keras_serializable(package="tfseaice")
class NoiseDropout(layers.Dropout):
    """Dropout that can stay active at inference (pix2pix's noise source).

    ``at_inference=True`` applies dropout even when called with
    ``training=False``; BatchNorm layers keep using their moving statistics, so
    the two choices are independent.
    """

    def __init__(self, rate, at_inference=False, **kwargs):
        super().__init__(rate, **kwargs)
        self.at_inference = bool(at_inference)

    def call(self, inputs, training=False):
        return super().call(inputs, training=bool(self.at_inference) or training)

    def get_config(self):
        config = super().get_config()
        config["at_inference"] = self.at_inference
        return config


@keras.saving.register_keras_serializable(package="tfseaice")
class NoiseInput(layers.Layer):
    """condition -> condition ++ ``channels`` N(0, 1) maps, drawn at training and inference alike.

    A source for texture that the mask cannot determine (rock relief): dropout, pix2pix's only noise,
    sits in the 2x2..8x8 decoder layers and is off at inference. Seeded like the speckle
    (tfseaice.models.speckle.reset_speckle_seed restarts it).
    """

    def __init__(self, channels, seed=0, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.channels = int(channels)
        self.seed = int(seed)
        self.seed_generator = keras.random.SeedGenerator(self.seed + 7919, name="noise_seed")

    def call(self, cond):
        shape = tf.concat([tf.shape(cond)[:-1], [self.channels]], 0)
        noise = tf.random.stateless_normal(shape, seed=tf.cast(self.seed_generator.next(), tf.int32))
        return tf.concat([tf.cast(cond, tf.float32), noise], -1)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (input_shape[-1] + self.channels,)

    def get_config(self):
        config = super().get_config()
        config.update({"channels": self.channels, "seed": self.seed})
        return config


def set_dropout_at_inference(model, on):
    """Switch NoiseDropout layers of a generator; re-trace functions afterwards
    (e.g. make a new tf.function, or reset ``model.predict_function``)."""
    n = 0
    for layer in model.layers:
        if isinstance(layer, NoiseDropout):
            layer.at_inference = bool(on)
            n += 1
    if hasattr(model, "predict_function"):
        model.predict_function = None
    return n


BN_AT_INFERENCE = ("moving", "batch")


def set_bn_at_inference(model, mode):
    """BatchNorm at inference: "moving" statistics (Keras) or "batch" statistics as the
    reference implementations run their test images (batch 1, so per-image statistics:
    instance norm; computed per example here, so independent of the inference batch)."""
    if mode not in BN_AT_INFERENCE:
        raise ValueError(f"bn_at_inference must be one of {BN_AT_INFERENCE}, got {mode!r}")
    return set_stats_at_inference(model, "instance" if mode == "batch" else "moving")


def _bn(sync, name):
    return FusedBatchNormalization(synchronized=sync, gamma_initializer=gamma_init(),
                                     momentum=0.9, epsilon=1e-5, name=name)


def generator_filters(filters=64, num_downs=NUM_DOWNS):
    """Encoder filters per level: f, 2f, 4f, 8f, 8f, ..."""
    return [filters * min(2 ** i, 8) for i in range(num_downs)]


def _upsample(x, filters, kernel_size, mode, name, use_bias=False):
    """2x upsampling conv: Conv2DTranspose (paper) or nearest resize + Conv2D."""
    init = conv_init()
    if mode == "transpose":
        return layers.Conv2DTranspose(filters, kernel_size, strides=2, padding="same", kernel_initializer=init,
                                      use_bias=use_bias, name=f"{name}_convT")(x)
    x = layers.UpSampling2D(2, interpolation="nearest", name=f"{name}_resize")(x)
    return layers.Conv2D(filters, kernel_size, strides=1, padding="same", kernel_initializer=init,
                         use_bias=use_bias, name=f"{name}_conv")(x)


def build_generator(input_channels, kernel_size=4, filters=64, output_channels=1,
                    num_downs=NUM_DOWNS, dropout_rate=0.5, num_dropout=3, sync_batchnorm=False,
                    dropout_at_inference=False, upsample="transpose", speckle="none", speckle_seed=0,
                    speckle_looks=None, speckle_class_looks=None, speckle_nodata=False, noise_channels=0,
                    name="generator"):
    """pix2pix U-Net generator: condition [B,H,W,input_channels] -> image in [-1, 1].

    Args:
      input_channels: one-hot classes plus extra channels.
      kernel_size: 4 (paper orig) or 5 (gen5) for every conv / transposed conv.
      filters: filters of the first layer (64 in the paper; tests use fewer).
      num_downs: encoder depth (8 for 256 x 256; H, W must be multiples of 2**num_downs).
      dropout_rate, num_dropout: dropout 0.5 in the first 3 decoder layers.
      sync_batchnorm: synchronized BatchNorm across replicas.
      dropout_at_inference: keep dropout on at inference (see NoiseDropout).
      upsample: "transpose" (paper) or "resize_conv" (module docstring).
      speckle: "none" (tanh image, paper), "gamma" (tfseaice.models.speckle;
        needs output_channels=1) or "gamma_fixed" (the same with the looks held where they start:
        no gradient reaches them).
      speckle_seed: first seed of the Gamma speckle.
      speckle_looks: initial number of looks of the gamma head (None: 1 + softplus(0) = 1.7;
        tfseaice.models.speckle.set_initial_looks).
      speckle_class_looks: one fixed L per class (one-hot channel order) instead of the head's looks.
      speckle_nodata: no speckle on no-data pixels (channel 0 of the condition).
      noise_channels: N(0, 1) maps appended to the condition inside the model (`NoiseInput`).
    """
    if num_downs < 2:
        raise ValueError("num_downs must be >= 2")
    if upsample not in UPSAMPLE_MODES:
        raise ValueError(f"upsample must be one of {UPSAMPLE_MODES}, got {upsample!r}")
    if speckle not in SPECKLE_MODES or (speckle != "none" and output_channels != 1):
        raise ValueError(f"speckle must be one of {SPECKLE_MODES} (gamma with 1 output channel), got {speckle!r}")
    init = conv_init()
    enc = generator_filters(filters, num_downs)
    inputs = keras.Input(shape=(None, None, int(input_channels)), name="mask")
    x = NoiseInput(noise_channels, seed=speckle_seed, name="noise")(inputs) if noise_channels else inputs
    skips = []
    for i, f in enumerate(enc):
        x = layers.Conv2D(f, kernel_size, strides=2, padding="same", kernel_initializer=init,
                          use_bias=(i == 0 or i == num_downs - 1), name=f"down{i + 1}_conv")(x)
        if 0 < i < num_downs - 1:
            x = _bn(sync_batchnorm, f"down{i + 1}_bn")(x)
        x = layers.LeakyReLU(negative_slope=0.2, name=f"down{i + 1}_lrelu")(x)
        skips.append(x)
    dec = list(reversed(enc[:-1]))  # decoder filters d1..d(n-1)
    for j, f in enumerate(dec):
        x = _upsample(x, f, kernel_size, upsample, f"up{j + 1}")
        x = _bn(sync_batchnorm, f"up{j + 1}_bn")(x)
        if j < num_dropout:
            x = NoiseDropout(dropout_rate, at_inference=dropout_at_inference, name=f"up{j + 1}_dropout")(x)
            x = layers.ReLU(name=f"up{j + 1}_relu")(x)
        else:
            x = layers.LeakyReLU(negative_slope=0.2, name=f"up{j + 1}_lrelu")(x)
        x = layers.Concatenate(name=f"up{j + 1}_skip")([x, skips[num_downs - 2 - j]])
    if speckle != "none":
        x = _upsample(x, 2, kernel_size, upsample, f"up{num_downs}", use_bias=True)
        head = GammaSpeckle(seed=speckle_seed, learn_looks=(speckle == "gamma"), class_looks=speckle_class_looks,
                            nodata_channel=NO_DATA_CHANNEL if speckle_nodata else None, name="sar")
        out = head([x, inputs]) if head.sees_mask else head(x)
    else:
        x = _upsample(x, output_channels, kernel_size, upsample, f"up{num_downs}", use_bias=True)
        out = layers.Activation("tanh", dtype="float32", name="sar")(x)
    model = keras.Model(inputs, out, name=name)
    if speckle != "none" and speckle_looks is not None:
        set_initial_looks(model, speckle_looks)
    return model


def build_discriminator(input_channels, target_channels=1, kernel_size=4, filters=64,
                        sync_batchnorm=False, multilook=0, name="discriminator"):
    """70x70 PatchGAN: [condition, image] -> per-patch logits [B, h, w, 1] (30x30 for 256, k=4).

    ``multilook=K`` (>= 2) adds the image's K x K box mean of linear intensity as an input channel
    (tfseaice.models.speckle.multilook): relief the speckle hides at pixel scale shows there.
    """
    init = conv_init()
    cond = keras.Input(shape=(None, None, int(input_channels)), name="mask")
    image = keras.Input(shape=(None, None, int(target_channels)), name="image")
    views = [cond, image]
    if multilook:
        views.append(Multilook(multilook, name="multilook")(image))
    x = layers.Concatenate(name="pair")(views)
    for i, mult in enumerate((1, 2, 4)):
        x = layers.Conv2D(filters * mult, kernel_size, strides=2, padding="same", kernel_initializer=init,
                          use_bias=(i == 0), name=f"c{i + 1}_conv")(x)
        if i:
            x = _bn(sync_batchnorm, f"c{i + 1}_bn")(x)
        x = layers.LeakyReLU(negative_slope=0.2, name=f"c{i + 1}_lrelu")(x)
    x = layers.ZeroPadding2D(1, name="c4_pad")(x)
    x = layers.Conv2D(filters * 8, kernel_size, strides=1, padding="valid", kernel_initializer=init,
                      use_bias=False, name="c4_conv")(x)
    x = _bn(sync_batchnorm, "c4_bn")(x)
    x = layers.LeakyReLU(negative_slope=0.2, name="c4_lrelu")(x)
    x = layers.ZeroPadding2D(1, name="c5_pad")(x)
    logits = layers.Conv2D(1, kernel_size, strides=1, padding="valid", kernel_initializer=init,
                           dtype="float32", name="logits")(x)
    return keras.Model([cond, image], logits, name=name)

