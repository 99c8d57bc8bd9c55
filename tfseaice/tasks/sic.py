"""Sea-ice concentration tasks: the regional-loss U-Net and its pixel-wise benchmark.

`SicRegionalModel` is the paper's method: a U-Net trained only on polygon
labels with the regional loss (paper Eq. 1). `SicPixelModel` is the paper's
benchmark: the same U-Net trained pixel-wise on the rasterised chart. Both take
batches as the tf.data pipeline gives them (the dict of `records.decode_sic`,
batched) and report the same trackers, so they can be compared:

  loss          mean over the batches of the epoch of the (global-batch) loss
  polygon_rmse  RMSE over every (image, polygon) pair seen in the epoch
  polygon_r2    R^2 over the same pairs (pooled sums, exact across replicas)

Batch dict keys used: `sar` [B,H,W,C] float32 dB (NaN allowed),
`polygon_ids` [B,H,W] int32 (-1 = not usable), `polygon_sic` [B,K] float32
padded, optional `polygon_count` [B] int (its real rows). The train and test
steps turn the padded table into the per-polygon target table, a
tf.RaggedTensor [B,(K_b)] (see `polygon_table`), and hand it to the losses.
Every other key (scene_id, sic_truth, ...) is ignored.

Under MirroredStrategy the losses divide each replica's sum by the all-reduced
global count, so one device and N replicas train identically (the U-Net's
BatchNorm is synchronised for the same reason). Keras/TF limits on CPU: every
replica must receive at least one example (oneDNN's conv returns a wrong shape
for an empty batch) and the first batch of fit/evaluate must be full (Keras'
symbolic build reduces it across replicas): batch training data with
drop_remainder=True.
"""

import dataclasses
import functools
import os

import keras
import tensorflow as tf

from tfseaice import tensorboard_panels
from tfseaice.data import pipeline
from tfseaice.errors import InputError
from tfseaice.losses.options import (PIXEL_LOSSES, REGIONAL_REDUCTIONS, REGIONAL_WEIGHTINGS, check_lever,
                                     check_pixel_loss, check_regional_options)
from tfseaice.losses.pixel import pixel_sic_loss
from tfseaice.losses.regional import as_polygon_table, cross_replica_sum, polygon_terms, regional_sic_loss
from tfseaice.metrics.trackers import PooledRegressionMetric
from tfseaice.models.unet import build_sic_unet
from tfseaice.tasks.shared_options import UnetOptions
from tfseaice.training.config import adam
from tfseaice.training.options import option

REQUIRED_KEYS = ("sar", "polygon_ids", "polygon_sic")


def _batch_dict(data, required=REQUIRED_KEYS):
    """The batch dict from whatever Keras hands to train_step/test_step (with the `required` keys)."""
    if isinstance(data, (tuple, list)) and data and isinstance(data[0], dict):
        data = data[0]
    if not isinstance(data, dict):
        raise TypeError("SIC models train on dict batches with keys "
                        f"{required} (records.decode_sic, batched); got {type(data).__name__}")
    missing = [k for k in required if k not in data]
    if missing:
        raise KeyError(f"SIC batch is missing {missing}; it needs {required}")
    return data


def polygon_table(batch):
    """The batch's per-polygon target table: a tf.RaggedTensor [B,(K_b)] float32.

    Built here, in the step, from the padded `polygon_sic` [B,K] and
    `polygon_count` [B], not batched ragged by tf.data: Keras 3's fit/evaluate
    under a tf.distribute strategy first reduce one batch across the replicas
    to build the model (`_maybe_symbolic_build`: strategy.reduce("MEAN",
    batch)), which fails on a RaggedTensor ("'RaggedTensor' object has no
    attribute 'device'", Keras 3.15, TF 2.21), although
    `experimental_distribute_dataset` itself splits ragged batches fine. The
    fixed-width padded batch also keeps every step's input shapes static (one
    trace). A batch without `polygon_count`: rows of all K entries (the
    padding rows have no pixel, so the loss and the polygon metrics are the same).
    """
    return as_polygon_table(batch["polygon_sic"], batch.get("polygon_count"))


def _flat(x):
    """A polygon term's values as one vector: ragged terms are; padded ones pass through."""
    return x.flat_values if isinstance(x, tf.RaggedTensor) else x


class SicModelBase(keras.Model):
    """U-Net wrapper with custom train/test steps and polygon trackers: the base of every SIC and ice-chart model.

    Subclasses set `required_keys` and implement `task_loss` (or override
    `_forward` and `_update_metrics`, as tasks/icechart.py does).
    """

    required_keys = REQUIRED_KEYS

    def __init__(self, unet, **kwargs):
        super().__init__(**kwargs)
        self.unet = unet
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.polygon_rmse_tracker = PooledRegressionMetric("rmse", name="polygon_rmse")
        self.polygon_r2_tracker = PooledRegressionMetric("r2", name="polygon_r2")
        # The functional U-Net is built, so this wrapper is too: lets
        # load_weights/set_weights work before the first call.
        self.built = bool(getattr(unet, "built", False))

    def call(self, inputs, training=None):
        """Pixel SIC [B,H,W,1] from SAR [B,H,W,C] (or from a batch dict's `sar`)."""
        if isinstance(inputs, dict):
            inputs = inputs["sar"]
        return self.unet(inputs, training=training)

    @property
    def metrics(self):
        return [self.loss_tracker, self.polygon_rmse_tracker, self.polygon_r2_tracker]

    def task_loss(self, pred, polygon_ids, table):
        """(the replica's share of the global-batch loss, `losses.polygon_terms` dict) (subclasses)."""
        raise NotImplementedError

    def _forward(self, batch, training):
        pred = self(batch["sar"], training=training)
        table = polygon_table(batch)
        loss, terms = self.task_loss(pred, batch["polygon_ids"], table)
        return pred, terms, loss

    def _update_metrics(self, loss, terms):
        # `loss` is this replica's share; every replica records the global value,
        # so the Mean's summed-over-replicas total/count is the global mean.
        self.loss_tracker.update_state(cross_replica_sum(tf.stop_gradient(loss)))
        target, pred_mean, present = (_flat(terms[k]) for k in ("target", "pred_mean", "present"))
        self.polygon_rmse_tracker.update_state(target, pred_mean, sample_weight=present)
        self.polygon_r2_tracker.update_state(target, pred_mean, sample_weight=present)
        return {m.name: m.result() for m in self.metrics}

    def train_step(self, data):
        batch = _batch_dict(data, self.required_keys)
        with tf.GradientTape() as tape:
            _, terms, loss = self._forward(batch, training=True)
            total = loss
            if self.losses:  # layer regularisers: gradients are summed over replicas
                replicas = tf.distribute.get_strategy().num_replicas_in_sync
                total = total + tf.add_n(self.losses) / replicas
            scaled = self.optimizer.scale_loss(total)
        grads = tape.gradient(scaled, self.trainable_variables)
        self.optimizer.apply(grads, self.trainable_variables)
        return self._update_metrics(loss, terms)

    def test_step(self, data):
        batch = _batch_dict(data, self.required_keys)
        _, terms, loss = self._forward(batch, training=False)
        return self._update_metrics(loss, terms)

    def get_config(self):
        config = super().get_config()
        config["unet"] = keras.saving.serialize_keras_object(self.unet)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["unet"] = keras.saving.deserialize_keras_object(config["unet"])
        return cls(**config)


@keras.saving.register_keras_serializable(package="tfseaice")
class SicRegionalModel(SicModelBase):
    """The paper's weakly supervised model: U-Net + regional (per-polygon) loss.

    Args:
      unet: the pixel-SIC network, e.g. `tfseaice.models.unet.build_sic_unet(...)`.
      reduction, weighting: passed to `tfseaice.losses.regional_sic_loss`
        ("polygon" | "patch"; "polygon" | "area").
    """

    def __init__(self, unet, reduction="polygon", weighting="polygon", **kwargs):
        super().__init__(unet, **kwargs)
        self.reduction, self.weighting = check_regional_options(reduction, weighting)

    def task_loss(self, pred, polygon_ids, table):
        return regional_sic_loss(pred, polygon_ids, table, reduction=self.reduction,
                                 weighting=self.weighting, return_terms=True)

    def get_config(self):
        config = super().get_config()
        config.update({"reduction": self.reduction, "weighting": self.weighting})
        return config


@keras.saving.register_keras_serializable(package="tfseaice")
class SicPixelModel(SicModelBase):
    """The paper's benchmark: the same U-Net trained on the rasterised chart.

    Every usable pixel's target is its polygon's SIC; loss "mse" (default) or
    "bce" (soft-target binary cross-entropy), mean over the usable pixels of
    the global batch. Reports the same polygon trackers as SicRegionalModel.
    """

    def __init__(self, unet, loss="mse", **kwargs):
        super().__init__(unet, **kwargs)
        self.pixel_loss = check_pixel_loss(loss)

    def task_loss(self, pred, polygon_ids, table):
        loss = pixel_sic_loss(pred, polygon_ids, table, loss=self.pixel_loss)
        return loss, polygon_terms(pred, polygon_ids, table)

    def get_config(self):
        config = super().get_config()
        config.update({"loss": self.pixel_loss})
        return config


class SicImagePanels(keras.callbacks.Callback):
    """TensorBoard image panels every `every` epochs: HH | chart SIC | predicted SIC | truth."""

    def __init__(self, batch, log_dir, every=1, max_images=4):
        super().__init__()
        self.batch = {k: v[:max_images] for k, v in batch.items()}
        self.writer = tf.summary.create_file_writer(os.path.join(log_dir, "images"))
        self.every = every

    def on_epoch_end(self, epoch, logs=None):
        if not self.every or (epoch + 1) % self.every:
            return
        pred = self.model(self.batch["sar"], training=False)
        with self.writer.as_default():
            self.write_panels(pred, epoch + 1)
        self.writer.flush()

    def write_panels(self, pred, step):
        """The panels of one epoch; `pred` is the model's output (a dict: its "sic")."""
        sic = (pred["sic"] if isinstance(pred, dict) else pred)[..., 0]
        tf.summary.image("sic_panels/hh|chart|predicted|truth", tensorboard_panels.sic_panels(self.batch, sic),
                         step=step, max_outputs=4)


def check_momentum(value, what):
    """A float in [0, 1) named `what` (0 = off)."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a number in [0, 1), got {value!r}") from None
    if not 0 <= value < 1:
        raise ValueError(f"{what} must be a number in [0, 1), got {value!r}")
    return value


@dataclasses.dataclass(frozen=True)
class SicOptions(UnetOptions):
    """The options of sic_regional and sic_pixel (`python -m tfseaice.train` flags, task.json's config.extra)."""

    loss_reduction: str = option("polygon", "Regional loss: mean over all polygons of the batch, or per patch first.",
                                 choices=REGIONAL_REDUCTIONS)
    loss_weighting: str = option("polygon", "Regional loss: every polygon weighted equally (paper), or by its pixels.",
                                 choices=REGIONAL_WEIGHTINGS)
    pixel_loss: str = option("mse", "sic_pixel baseline loss on the rasterised chart.", choices=PIXEL_LOSSES)
    max_polygons: int = option(0, "Pad polygon tables to this width (0 = dataset maximum).")
    sar_gain_db: float = option(
        0.0, "Training augmentation: add to each patch's HH and HV a random offset from [-x, x] dB, one per "
        "channel (calibration, noise-floor, wind and incidence differences between products; 0 = off).",
        parse=functools.partial(check_lever, what="sar_gain_db"))
    ema_momentum: float = option(
        0.0, "Keep an exponential moving average of the weights with this momentum (e.g. 0.99) and end the run "
        "with it as the model's weights (0 = off).", parse=functools.partial(check_momentum, what="ema_momentum"))


class SicTask:
    """Task glue for `sic_regional` (the paper) and `sic_pixel` (its benchmark)."""

    data_kind = "sic"
    serving_kind = "sic"       # exported and served as a SIC model (tfseaice.serving)
    options = SicOptions
    monitor = ("val_polygon_rmse", "min")
    panels = SicImagePanels
    batch_keys = pipeline.SIC_TRAIN_KEYS

    def __init__(self, name):
        self.name = name

    def make_datasets(self, cfg, info, strategy):
        opts = self.options.from_extra(cfg.extra)
        k = int(opts.max_polygons or info.get("max_polygons_per_patch") or 0) or None
        skip = getattr(cfg, "skip_corrupt", False)
        train = pipeline.sic_dataset(cfg.data_dir, "train", cfg.batch_size, training=True, seed=cfg.seed,
                                     info=info, augment=opts.augment, max_polygons=k,
                                     skip_corrupt=skip, keys=self.batch_keys,
                                     gain_db=opts.sar_gain_db)
        val = None
        if info["splits"].get("val", {}).get("num_examples", 0):
            val = pipeline.sic_dataset(cfg.data_dir, "val", cfg.batch_size, training=False, info=info,
                                       max_polygons=k, skip_corrupt=skip, keys=self.batch_keys)
        return train, val

    def build_model(self, cfg, info):
        opts = self.options.from_extra(cfg.extra)
        norm = info.get("normalization", {})
        unet = build_sic_unet(len(info["channels"]), filters=opts.filters,
                              norm_mean=norm.get("mean"), norm_std=norm.get("std"))
        if self.name == "sic_regional":
            model = SicRegionalModel(unet, reduction=opts.loss_reduction, weighting=opts.loss_weighting)
        else:
            model = SicPixelModel(unet, loss=opts.pixel_loss)
        model.compile(optimizer=adam(cfg, info, opts.ema_momentum))
        return model

    def callbacks(self, cfg, model, val_ds, log_dir):
        if not cfg.image_every:
            return []
        source = val_ds
        if source is None:
            source = pipeline.sic_dataset(cfg.data_dir, "train", cfg.batch_size, training=False,
                                          skip_corrupt=getattr(cfg, "skip_corrupt", False), keys=self.batch_keys)
        batch = next(iter(source), None)
        if batch is None:  # pipeline.check_shards refuses an empty split; this is the last guard
            raise InputError(cfg.data_dir, "no readable record for the image panels (shards empty or cut); "
                                           "copy or convert the data again")
        return [self.panels(batch, log_dir, every=cfg.image_every)]


TASKS = (SicTask("sic_regional"), SicTask("sic_pixel"))
