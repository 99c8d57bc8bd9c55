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

import keras
import tensorflow as tf

from tfseaice.data import glacier, glacier_mix, pipeline
from tfseaice.models.zones import build_zones_unet

DEFAULT_FILTERS = (16, 32, 64, 64)


def _xy(batch):
    return batch["sar"], batch["mask"]


def _static(ds, info):
    p = int(info["patch_size"])
    return ds.map(lambda x, y: (tf.ensure_shape(x, [None, p, p, 1]), tf.ensure_shape(y, [None, p, p])))


def build_zones_model(cfg, info=None):
    extra = getattr(cfg, "extra", None) or {}
    filters = tuple(int(f) for f in (extra.get("filters") or DEFAULT_FILTERS))
    model = build_zones_unet(1, glacier.NUM_CLASSES, filters=filters,
                             sync_batchnorm=bool(extra.get("sync_batchnorm", False)))
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

    def make_datasets(self, cfg, info, strategy=None):
        extra = getattr(cfg, "extra", None) or {}
        skip = getattr(cfg, "skip_corrupt", False)
        # Real only, or mixed with synthetic patches / a real subset / 2-class zones (glacier_mix flags).
        train = glacier_mix.training_dataset(cfg, info, augment=bool(extra.get("augment", True))).map(_xy)
        train = _static(train, info)
        val = None
        if info["splits"].get("val", {}).get("num_examples", 0) > 0:
            options = glacier_mix.dataset_options(extra, cfg.data_dir, info, training=False)
            val = pipeline.glacier_dataset(cfg.data_dir, "val", cfg.batch_size, training=False, info=info,
                                           skip_corrupt=skip, **options).map(_xy)
            val = _static(val, info)
        return train, val

    def build_model(self, cfg, info):
        return build_zones_model(cfg, info)

    def callbacks(self, cfg, model, val_ds, log_dir):
        patience = int((getattr(cfg, "extra", None) or {}).get("early_stopping") or 0)
        if patience <= 0 or val_ds is None:
            return []
        return [keras.callbacks.EarlyStopping(monitor=self.monitor[0], mode=self.monitor[1], patience=patience)]


TASK = GlacierZonesTask()


def get(name):
    if name != TASK.name:
        raise ValueError(f"tfseaice.tasks.glacier_zones has no task {name!r}")
    return TASK
