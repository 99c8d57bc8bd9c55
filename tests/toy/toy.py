"""A toy task: the paper's regional SIC loss on a one-convolution network (the smallest task that trains).

It is the example of docs/architecture.md, "A new task": this file as tfseaice/tasks/toy.py plus its
entry in tfseaice/tasks/__init__.py (tests/test_task_registry.py trains, evaluates and exports it so).
"""

import dataclasses

import keras

from tfseaice.data import pipeline
from tfseaice.models.unet import SarStandardize
from tfseaice.tasks.sic import SicRegionalModel
from tfseaice.training.options import TaskOptions, option


@dataclasses.dataclass(frozen=True)
class ToyOptions(TaskOptions):
    toy_kernel: int = option(3, "toy: kernel size of its one convolution.")


class ToyTask:
    name = "toy"
    data_kind = "sic"              # SIC records (polygon ids + per-polygon targets)
    serving_kind = "sic"           # exported, evaluated and served as a SIC model
    monitor = ("val_polygon_rmse", "min")
    options = ToyOptions

    def make_datasets(self, cfg, info, strategy):
        def split(name, training):
            return pipeline.sic_dataset(cfg.data_dir, name, cfg.batch_size, training=training, seed=cfg.seed,
                                        info=info)
        return split("train", True), split("val", False)

    def build_model(self, cfg, info):
        opts = self.options.from_extra(cfg.extra)
        norm = info["normalization"]
        sar = keras.Input((None, None, len(info["channels"])), name="sar")
        x = SarStandardize(norm["mean"], norm["std"])(sar)
        sic = keras.layers.Conv2D(1, opts.toy_kernel, padding="same", activation="sigmoid", name="sic")(x)
        model = SicRegionalModel(keras.Model(sar, sic))
        model.compile(optimizer=keras.optimizers.Adam(cfg.learning_rate))
        return model

    def callbacks(self, cfg, model, val_ds, log_dir):
        return []


TASK = ToyTask()
