"""pix2pix glacier SAR synthesis: zone mask (+ extra channels) -> synthetic SAR.

`Pix2Pix` is a keras.Model whose `train_step` is the paper's algorithm (Eq. 5):

  G loss = gan_weight * BCE(1, D(x, G(x))) + l1_weight * |y - G(x)|_1
           [+ relief_weight * |relief(y) - relief(G(x))|_1, --relief_weight; relief = speckle.relief_map:
            rock relief is random, so L1 flattens it, and this term asks for its energy, not its position]
  D loss = 0.5 * [BCE(1, D(x, y)) + BCE(0, D(x, G(x)))]       (logits, PatchGAN)

with one Adam optimizer per network (lr 2e-4, beta_1 0.5 in the paper), both
networks updated from the same forward pass. Under MirroredStrategy each
replica's per-example losses are divided by the *global* batch size
(`tf.nn.compute_average_loss`), so the gradients Keras sums over replicas are
the single-device gradients; the trackers record each replica's batch mean.

Batches are the dicts of `tfseaice.data.pipeline.glacier_dataset`:
`mask` [B,H,W] class indices, `sar` [B,H,W,1] in [0, 1], optional `extra`
[B,H,W,E]. The generator sees one_hot(mask, 4) ++ extra and produces the SAR
in [-1, 1] (= 2 * sar - 1). A (condition, target) tuple is accepted as well.

With ``--speckle=gamma`` (tfseaice.models.speckle) the L1 terms see the
generator's speckle-free median image, the discriminator the speckled one;
its number of looks starts at the training images' estimate
(tfseaice.tasks.pix2pix_options).

Trackers (train): gen_total, gen_gan, gen_l1, disc_loss. Validation
(test_step): l1 (on the [-1, 1] scale, as gen_l1), dice (non-binary Dice,
paper Eq. 6, on [0, 1] images) and ssim (tfseaice.metrics.ssim settings).
"""

import os

import keras
import tensorflow as tf

from tfseaice.losses import gan as gan_losses
from tfseaice.metrics import images as image_metrics
from tfseaice.data import glacier_mix, pipeline
from tfseaice.models import pix2pix as p2p
from tfseaice.models import speckle
from tfseaice.tasks.pix2pix_batches import NUM_CLASSES, condition, split_batch, to_unit_range
from tfseaice.tasks.pix2pix_callbacks import GeneratorCheckpoint, ImageGrid
from tfseaice.tasks.pix2pix_options import Pix2PixOptions, class_looks, initial_looks


# ------------------------------------------------------------------- model

RELIEF_MULTILOOK, RELIEF_WINDOW = 3, 15   # --relief_weight: 3x3 multilook (speckle), 15x15 std (relief energy)

@keras.saving.register_keras_serializable(package="tfseaice")
class Pix2Pix(keras.Model):
    """Conditional GAN with the paper's training step (see module docstring)."""

    def __init__(self, generator, discriminator, gan_weight=1.0, l1_weight=100.0,
                 num_classes=NUM_CLASSES, relief_weight=0.0, **kwargs):
        super().__init__(**kwargs)
        self.generator = generator
        self.discriminator = discriminator
        self.gan_weight = float(gan_weight)
        self.l1_weight = float(l1_weight)
        self.num_classes = int(num_classes)
        self.relief_weight = float(relief_weight)
        self.gen_total_tracker = keras.metrics.Mean(name="gen_total")
        self.gen_gan_tracker = keras.metrics.Mean(name="gen_gan")
        self.gen_l1_tracker = keras.metrics.Mean(name="gen_l1")
        self.disc_loss_tracker = keras.metrics.Mean(name="disc_loss")
        self.val_l1_tracker = keras.metrics.Mean(name="l1")
        self.dice_tracker = keras.metrics.Mean(name="dice")
        self.ssim_tracker = keras.metrics.Mean(name="ssim")
        self.gen_optimizer = None
        self.disc_optimizer = None
        self.built = True

    def compile(self, gen_optimizer=None, disc_optimizer=None, learning_rate=2e-4, beta_1=0.5, **kwargs):
        """Two Adam optimizers (paper: lr 2e-4, beta_1 0.5) unless given."""
        kwargs.setdefault("optimizer", None)
        super().compile(**kwargs)
        self.gen_optimizer = gen_optimizer or keras.optimizers.Adam(
            learning_rate, beta_1=beta_1, name="gen_adam")
        self.disc_optimizer = disc_optimizer or keras.optimizers.Adam(
            learning_rate, beta_1=beta_1, name="disc_adam")
        if self.dtype_policy.name == "mixed_float16":  # float16 gradients underflow without loss scaling
            self.gen_optimizer = keras.optimizers.LossScaleOptimizer(self.gen_optimizer)
            self.disc_optimizer = keras.optimizers.LossScaleOptimizer(self.disc_optimizer)
        # Build the slots now (inside the strategy scope) so that save_weights /
        # load_weights and BackupAndRestore carry the optimizer state.
        self.gen_optimizer.build(self.generator.trainable_variables)
        self.disc_optimizer.build(self.discriminator.trainable_variables)

    @property
    def metrics(self):
        return [self.gen_total_tracker, self.gen_gan_tracker, self.gen_l1_tracker,
                self.disc_loss_tracker, self.val_l1_tracker, self.dice_tracker, self.ssim_tracker]

    def call(self, inputs, training=False):
        """Generated SAR in [-1, 1] from a condition tensor (or a batch dict)."""
        if isinstance(inputs, dict):
            inputs = condition(inputs["mask"], inputs.get("extra"), self.num_classes)
        return self.generator(inputs, training=training)

    def generate_with_l1_view(self, cond, training=False):
        """(image, what the L1 term sees): the same tensor, or the median image with speckle."""
        parts = speckle.params_and_image_model(self.generator)
        if parts is None:
            fake = self.generator(cond, training=training)
            return fake, fake
        raw, fake = parts(cond, training=training)
        median, _ = speckle.split_params(raw)
        return fake, median

    def compute_losses(self, cond, target, training=True):
        """Forward pass of both networks -> dict of per-example losses ([B]) and `fake`."""
        fake, l1_view = self.generate_with_l1_view(cond, training=training)
        real_logits = self.discriminator([cond, target], training=training)
        fake_logits = self.discriminator([cond, fake], training=training)
        gen_gan = gan_losses.gan_generator_loss(fake_logits, reduce=False)
        gen_l1 = gan_losses.l1_loss(target, l1_view, reduce=False)
        gen_total = self.gan_weight * gen_gan + self.l1_weight * gen_l1
        if self.relief_weight:   # relief energy where the real image has it, wherever its slopes lie
            gap = tf.abs(speckle.relief_map(fake, RELIEF_MULTILOOK, RELIEF_WINDOW)
                         - speckle.relief_map(target, RELIEF_MULTILOOK, RELIEF_WINDOW))
            gen_total += self.relief_weight * tf.reduce_mean(gap, axis=[1, 2, 3])
        return {
            "fake": fake,
            "gen_gan": gen_gan,
            "gen_l1": gen_l1,
            "gen_total": gen_total,
            "disc_loss": gan_losses.gan_discriminator_loss(real_logits, fake_logits, reduce=False),
        }

    def train_step(self, data):
        cond, target = split_batch(data, self.num_classes)
        with tf.GradientTape() as gen_tape, tf.GradientTape() as disc_tape:
            out = self.compute_losses(cond, target, training=True)
            # Divide by the global batch (Keras sums gradients over replicas); scale_loss: fp16 only.
            gen_scaled = self.gen_optimizer.scale_loss(tf.nn.compute_average_loss(out["gen_total"]))
            disc_scaled = self.disc_optimizer.scale_loss(tf.nn.compute_average_loss(out["disc_loss"]))
        gen_vars = self.generator.trainable_variables
        disc_vars = self.discriminator.trainable_variables
        gen_grads = gen_tape.gradient(gen_scaled, gen_vars)
        disc_grads = disc_tape.gradient(disc_scaled, disc_vars)
        self.gen_optimizer.apply(gen_grads, gen_vars)
        self.disc_optimizer.apply(disc_grads, disc_vars)
        for name, tracker in (("gen_total", self.gen_total_tracker), ("gen_gan", self.gen_gan_tracker),
                              ("gen_l1", self.gen_l1_tracker), ("disc_loss", self.disc_loss_tracker)):
            tracker.update_state(tf.reduce_mean(out[name]))
        return {m.name: m.result() for m in self.metrics[:4]}

    def test_step(self, data):
        cond, target = split_batch(data, self.num_classes)
        fake, l1_view = self.generate_with_l1_view(cond, training=False)
        self.val_l1_tracker.update_state(gan_losses.l1_loss(target, l1_view, reduce=False))
        fake01, real01 = to_unit_range(fake), to_unit_range(target)
        self.dice_tracker.update_state(image_metrics.batch_dice_non_binary(fake01, real01))
        self.ssim_tracker.update_state(image_metrics.batch_ssim(fake01, real01))
        return {m.name: m.result() for m in self.metrics[4:]}

    def predict_step(self, data):
        if isinstance(data, (tuple, list)):
            data = data[0]
        return self(data, training=False)

    def get_config(self):
        config = super().get_config()
        config.update({
            "generator": keras.saving.serialize_keras_object(self.generator),
            "discriminator": keras.saving.serialize_keras_object(self.discriminator),
            "gan_weight": self.gan_weight, "l1_weight": self.l1_weight,
            "num_classes": self.num_classes, "relief_weight": self.relief_weight})
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("generator", "discriminator"):
            config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)


# ------------------------------------------------------------ construction

def input_channels(info):
    return NUM_CLASSES + len(info.get("extra_channels", []) or [])


def build_generator_from(cfg, info, dropout_at_inference=False, looks=None):
    """The generator of a config; ``looks``: initial L of a gamma-speckle head (None: its default)."""
    opts = Pix2PixOptions.from_extra(getattr(cfg, "extra", None))
    return p2p.build_generator(input_channels(info), kernel_size=opts.gen_kernel, filters=opts.generator_filters,
                               sync_batchnorm=opts.sync_batchnorm, dropout_at_inference=bool(dropout_at_inference),
                               upsample=opts.gen_upsample, speckle=opts.speckle,
                               speckle_seed=int(getattr(cfg, "seed", 0) or 0), speckle_looks=looks,
                               speckle_class_looks=class_looks(cfg, NUM_CLASSES), speckle_nodata=opts.speckle_nodata,
                               noise_channels=opts.gen_noise)


def build_pix2pix(cfg, info):
    """Pix2Pix (generator + PatchGAN) from the config, compiled."""
    opts = Pix2PixOptions.from_extra(cfg.extra)
    gen = build_generator_from(cfg, info, looks=initial_looks(cfg, info))
    disc = p2p.build_discriminator(input_channels(info), target_channels=1, kernel_size=opts.disc_kernel,
                                   filters=opts.discriminator_filters, sync_batchnorm=opts.sync_batchnorm,
                                   multilook=opts.disc_multilook)
    model = Pix2Pix(gen, disc, gan_weight=opts.gan_weight, l1_weight=opts.l1_weight, relief_weight=opts.relief_weight)
    model.compile(learning_rate=float(cfg.learning_rate), beta_1=opts.beta_1)
    return model


# -------------------------------------------------------------------- task

class Pix2PixTask:
    """Task object (docs/architecture.md contract) for `--task=pix2pix`."""

    name = "pix2pix"
    data_kind = "glacier"
    serving_kind = "generator"
    monitor = ("val_ssim", "max")
    options = Pix2PixOptions
    loss_keys = ("gen_total", "disc_loss")   # logged losses that must stay finite (StopOnNaN)

    def make_datasets(self, cfg, info, strategy=None):
        opts = self.options.from_extra(cfg.extra)
        skip = getattr(cfg, "skip_corrupt", False)
        train = pipeline.glacier_dataset(cfg.data_dir, "train", cfg.batch_size, training=True,
                                         seed=cfg.seed, info=info, augment=opts.augment,
                                         skip_corrupt=skip, **glacier_mix.dataset_options(opts, cfg.data_dir, info))
        val = None
        if info["splits"].get("val", {}).get("num_examples", 0) > 0:
            val = pipeline.glacier_dataset(cfg.data_dir, "val", cfg.batch_size, training=False, info=info,
                                           skip_corrupt=skip, **glacier_mix.dataset_options(opts, cfg.data_dir, info, False))
        return train, val

    def build_model(self, cfg, info):
        return build_pix2pix(cfg, info)

    def callbacks(self, cfg, model, val_ds, log_dir):
        opts = self.options.from_extra(cfg.extra)
        model_dir = os.path.dirname(os.path.normpath(log_dir))
        cbs = [GeneratorCheckpoint(model_dir, val_ds, every=opts.checkpoint_every)]
        if cfg.image_every:
            cbs.append(ImageGrid(val_ds, log_dir, every=cfg.image_every))
        return cbs


TASK = Pix2PixTask()
