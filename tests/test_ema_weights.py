"""`--ema_momentum`: the run ends with the exponential moving average of its weights (training.config.adam)."""

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfseaice.tasks import get_task
from tfseaice.tasks.icechart import IcechartOptions
from tfseaice.training.config import TrainConfig, adam

STEPS, MOMENTUM = 5, 0.5
INFO = {"channels": ["hh", "hv"], "patch_size": 16, "splits": {"train": {"num_examples": 8}}}


def _cfg(**kw):
    return TrainConfig(**{**dict(task="sic_regional", data_dir="d", model_dir="m", epochs=1, steps_per_epoch=STEPS,
                                 batch_size=4, learning_rate=5e-2, seed=1, precision="fp32",
                                 extra={"filters": [4, 8]}), **kw})


def _weights_after_each_step(ema_momentum):
    """Train a small dense model for STEPS steps with `adam`; its weights after every step."""
    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(4, activation="tanh"), keras.layers.Dense(1)])
    model.compile(optimizer=adam(_cfg(), INFO, ema_momentum), loss="mse")
    x = np.random.default_rng(0).normal(size=(4 * STEPS, 6)).astype("float32")
    y = np.sin(x.sum(axis=1, keepdims=True))
    steps = []
    record = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda b, logs: steps.append([w.numpy().copy() for w in model.trainable_weights]))
    model.fit(tf.data.Dataset.from_tensor_slices((x, y)).batch(4), epochs=1, verbose=0, callbacks=[record])
    return steps


def test_the_run_ends_with_the_moving_average_of_its_steps():
    raw, ema = _weights_after_each_step(0.0), _weights_after_each_step(MOMENTUM)
    assert len(raw) == len(ema) == STEPS
    # Until the last step the two runs train alike (the average is kept aside) ...
    for a, b in zip(raw[:-1], ema[:-1]):
        for x, y in zip(a, b):
            np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)
    # ... and the last step (the run's total: steps per epoch x epochs) writes the average in;
    # Keras' average starts at the first step's weights.
    expected = [w.copy() for w in raw[0]]
    for step in raw[1:]:
        expected = [MOMENTUM * e + (1 - MOMENTUM) * w for e, w in zip(expected, step)]
    assert max(float(np.abs(a - b).max()) for a, b in zip(expected, raw[-1])) > 1e-3   # so the next can fail
    for x, y in zip(ema[-1], expected):
        np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-6)


def test_tasks_build_their_optimizer_with_the_option():
    for name in ("sic_regional", "icechart_pixel"):
        cfg = _cfg(task=name)
        plain = get_task(name).build_model(cfg, INFO).optimizer
        with_ema = get_task(name).build_model(dataclasses.replace(cfg, extra={**cfg.extra, "ema_momentum": 0.9}),
                                              INFO).optimizer
        assert not plain.use_ema
        assert with_ema.use_ema and with_ema.ema_momentum == 0.9 and with_ema.ema_overwrite_frequency == STEPS


def test_ema_momentum_refuses_values_outside_0_1():
    assert IcechartOptions.from_extra({}).ema_momentum == 0.0        # model folders written before it
    assert IcechartOptions.from_extra({"ema_momentum": 0.99}).ema_momentum == 0.99
    for bad in (1.0, -0.1, float("nan"), "x"):
        with pytest.raises(ValueError, match="ema_momentum"):
            IcechartOptions.from_extra({"ema_momentum": bad})
