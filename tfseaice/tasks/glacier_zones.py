"""Glacier zone segmentation (`--task=glacier_zones`): SAR -> rock / glacier / ocean.

A small U-Net (tfseaice.models.zones) trained on the real training patches
with sparse categorical cross-entropy over all four classes (no data included,
so it also learns the footprint). Its purpose here is the pix2pix mask-fidelity
check (the original pix2pix paper's "FCN-score"): applied to generated images,
how well does it recover the input masks, compared with real images?

Batches: (sar [B,H,W,1] in [0, 1], mask [B,H,W] class indices). Training
batches may mix in synthetic patches, use a subset of the real images or read
rock as glacier (--synthetic_fraction, --real_fraction, --zone_classes=2:
tfseaice.data.glacier_mix).
Monitor: validation mean IoU over rock, glacier and ocean (no data ignored).
``--early_stopping=P`` stops training after P epochs without a better one (the
synthetic-data experiment trains to convergence, not for a fixed count: a
fixed short budget left the zone models far from converged); the `best`
weights are the best epoch's either way (training.callbacks.Checkpoints).
"""

import dataclasses

import keras
import tensorflow as tf

from tfseaice.data import glacier, glacier_mix, pipeline
from tfseaice.models.zones import build_zones_unet
from tfseaice.tasks.shared_options import GlacierDataOptions, UnetOptions
from tfseaice.training.options import option


@dataclasses.dataclass(frozen=True)
class ZonesOptions(UnetOptions, GlacierDataOptions):
    """The options of --task=glacier_zones (`python -m tfseaice.train` flags, task.json's config.extra)."""

    synthetic_data_dir: str = option("", "glacier_zones: converter output folder of synthetic pairs (e.g. from "
                                     "generate --random_masks) mixed into the training batches.")
    synthetic_fraction: float = option(0.0, "glacier_zones: probability that a training patch is synthetic, in "
                                       "[0, 1) (seeded; 0 = real only). Epoch length stays one pass over the real "
                                       "training split; validation stays real.")
    early_stopping: int = option(0, "glacier_zones: stop when validation mean IoU has not improved for this many "
                                 "epochs (0 = train all --epochs); the best epoch's weights are kept as `best`.")


def _xy(batch):
    return batch["sar"], batch["mask"]


def _static(ds, info):
    p = int(info["patch_size"])
    return ds.map(lambda x, y: (tf.ensure_shape(x, [None, p, p, 1]), tf.ensure_shape(y, [None, p, p])))


def build_zones_model(cfg, info=None):
    opts = ZonesOptions.from_extra(getattr(cfg, "extra", None))
    model = build_zones_unet(1, glacier.NUM_CLASSES, filters=opts.filters)
    model.compile(
        optimizer=keras.optimizers.Adam(float(cfg.learning_rate)),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
                 keras.metrics.MeanIoU(num_classes=glacier.NUM_CLASSES, sparse_y_pred=False,
                                       ignore_class=glacier.NO_DATA, name="mean_iou")])
    # Optimizer slots now (inside the strategy scope): load_weights then restores them too.
    model.optimizer.build(model.trainable_variables)
    return model


def predict_classes(model, sar01, batch_size=8):
    """Class indices [N,H,W] from SAR images [N,H,W,1] in [0, 1]."""
    logits = model.predict(tf.convert_to_tensor(sar01, tf.float32), batch_size=batch_size, verbose=0)
    return tf.argmax(logits, axis=-1, output_type=tf.int32).numpy()


class GlacierZonesTask:
    """Task object (docs/architecture.md contract) for `--task=glacier_zones`."""

    name = "glacier_zones"
    data_kind = "glacier"
    monitor = ("val_mean_iou", "max")
    serving_kind = "zones"
    options = ZonesOptions

    def make_datasets(self, cfg, info, strategy=None):
        opts = self.options.from_extra(cfg.extra)
        skip = getattr(cfg, "skip_corrupt", False)
        # Real only, or mixed with synthetic patches / a real subset / 2-class zones (glacier_mix flags).
        train = glacier_mix.training_dataset(cfg, opts, info, augment=opts.augment).map(_xy)
        train = _static(train, info)
        val = None
        if info["splits"].get("val", {}).get("num_examples", 0) > 0:
            options = glacier_mix.dataset_options(opts, cfg.data_dir, info, training=False)
            val = pipeline.glacier_dataset(cfg.data_dir, "val", cfg.batch_size, training=False, info=info,
                                           skip_corrupt=skip, **options).map(_xy)
            val = _static(val, info)
        return train, val

    def build_model(self, cfg, info):
        return build_zones_model(cfg, info)

    def callbacks(self, cfg, model, val_ds, log_dir):
        patience = self.options.from_extra(cfg.extra).early_stopping
        if patience <= 0 or val_ds is None:
            return []
        return [keras.callbacks.EarlyStopping(monitor=self.monitor[0], mode=self.monitor[1], patience=patience)]


TASK = GlacierZonesTask()
