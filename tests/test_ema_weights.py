"""`--ema_momentum`: the run ends with the exponential moving average of its weights (training.config.adam)."""

import numpy as np
import keras
import pytest

from tfseaice.serving.loading import load_trained
from tfseaice.tasks.icechart import IcechartOptions
from tfseaice.train_lib import run_training
from tfseaice.training.config import TrainConfig

from sic_fixtures import convert_tiny

STEPS, MOMENTUM = 4, 0.5


class TrainableAfterEachStep(keras.callbacks.Callback):
    """The trainable weights after every optimizer step, in order."""

    def __init__(self):
        super().__init__()
        self.steps = []

    def on_train_batch_end(self, batch, logs=None):
        self.steps.append([w.numpy().copy() for w in self.model.trainable_weights])


def _run(data_dir, model_dir, ema):
    cfg = TrainConfig(task="sic_regional", data_dir=data_dir, model_dir=str(model_dir), epochs=1,
                      steps_per_epoch=STEPS, batch_size=4, learning_rate=3e-2, seed=1, image_every=0,
                      precision="fp32", extra={"filters": [4, 8, 8, 8], "ema_momentum": ema})
    record = TrainableAfterEachStep()
    run_training(cfg, extra_callbacks=[record])
    return record.steps


def test_the_run_ends_with_the_moving_average_of_its_steps(tmp_path):
    data_dir, _ = convert_tiny(tmp_path)
    raw = _run(data_dir, tmp_path / "raw", 0.0)
    ema = _run(data_dir, tmp_path / "ema", MOMENTUM)
    assert len(raw) == len(ema) == STEPS
    # Until the last step the two runs train alike (the average is kept aside) ...
    for a, b in zip(raw[:-1], ema[:-1]):
        for x, y in zip(a, b):
            np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)
    # ... and the last step writes the average in: Keras' EMA starts at the first step's weights.
    expected = [w.copy() for w in raw[0]]
    for step in raw[1:]:
        expected = [MOMENTUM * e + (1 - MOMENTUM) * w for e, w in zip(expected, step)]
    moved = max(float(np.abs(a - b).max()) for a, b in zip(expected, raw[-1]))
    assert moved > 1e-4   # the average is not the last step's weights, so the check below can fail
    for x, y in zip(ema[-1], expected):
        np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-5)
    # The saved `latest` weights are the average too.
    model, _ = load_trained(str(tmp_path / "ema"), "latest")
    for x, y in zip(model.trainable_weights, expected):
        np.testing.assert_allclose(x.numpy(), y, rtol=1e-4, atol=1e-5)


def test_ema_momentum_refuses_values_outside_0_1():
    assert IcechartOptions.from_extra({}).ema_momentum == 0.0        # model folders written before it
    assert IcechartOptions.from_extra({"ema_momentum": 0.99}).ema_momentum == 0.99
    for bad in (1.0, -0.1, float("nan"), "x"):
        with pytest.raises(ValueError, match="ema_momentum"):
            IcechartOptions.from_extra({"ema_momentum": bad})
