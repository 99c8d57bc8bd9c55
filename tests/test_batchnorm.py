"""FusedBatchNormalization computes what keras.layers.BatchNormalization computes."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfseaice.models.batchnorm import FusedBatchNormalization


def _pair(shape, rng, **kwargs):
    ref = keras.layers.BatchNormalization(momentum=0.9, **kwargs)
    fused = FusedBatchNormalization(momentum=0.9, **kwargs)
    ref.build(shape)
    fused.build(shape)
    c = shape[-1]
    weights = [rng.normal(1, 0.2, c), rng.normal(0, 0.2, c), rng.normal(0, 0.5, c), rng.uniform(0.5, 2, c)]
    weights = [w.astype("float32") for w in weights]
    ref.set_weights(weights)
    fused.set_weights(weights)
    return ref, fused


def _run(layer, x, upstream, training):
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=training)
        s = tf.reduce_sum(tf.cast(y, "float32") * upstream)
    grads = tape.gradient(s, [x] + layer.trainable_variables)
    return [y.numpy()] + [g.numpy() for g in grads] + [v.numpy() for v in layer.non_trainable_variables]


@pytest.mark.parametrize("shape", [(4, 16, 16, 8), (2, 3, 5, 4), (1, 1, 1, 8)])
@pytest.mark.parametrize("training", [True, False])
def test_matches_keras_batchnorm(shape, training):
    rng = np.random.default_rng(sum(shape))
    ref, fused = _pair(shape, rng)
    x = tf.constant(rng.normal(2, 3, shape).astype("float32"))
    upstream = tf.constant(rng.normal(0, 1, shape).astype("float32"))
    initial_mean = fused.moving_mean.numpy().copy()
    names = ["output", "d_input", "d_gamma", "d_beta", "moving_mean", "moving_variance"]
    for name, a, b in zip(names, _run(ref, x, upstream, training), _run(fused, x, upstream, training)):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-4, err_msg=name)
    # training moves the statistics towards the batch's, inference leaves them
    assert np.allclose(fused.moving_mean.numpy(), initial_mean) != training


def test_bfloat16_input_close_to_float32():
    rng = np.random.default_rng(3)
    shape = (4, 8, 8, 6)
    ref, fused = _pair(shape, rng)
    x = rng.normal(0, 2, shape).astype("float32")
    y32 = ref(tf.constant(x), training=True).numpy()
    y16 = fused(tf.constant(x, dtype=tf.bfloat16), training=True)
    assert y16.dtype == tf.float32 or y16.dtype == tf.bfloat16
    np.testing.assert_allclose(tf.cast(y16, "float32").numpy(), y32, atol=0.05)


def test_mirrored_falls_back_to_synchronised_statistics():
    """With 2 replicas each sees half the batch: the output must equal one device on the whole batch."""
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    rng = np.random.default_rng(5)
    shape = (4, 6, 6, 3)
    x = rng.normal(1, 2, shape).astype("float32")
    x[2:] += 5.0  # the two halves have different statistics
    with strategy.scope():
        fused = FusedBatchNormalization(synchronized=True)
        fused.build(shape)
    ref = keras.layers.BatchNormalization()
    ref.build(shape)
    ref.set_weights(fused.get_weights())
    expected = ref(tf.constant(x), training=True).numpy()
    dist = strategy.experimental_distribute_dataset(tf.data.Dataset.from_tensors(x))
    got = strategy.run(lambda b: fused(b, training=True), args=(next(iter(dist)),))
    got = np.concatenate([t.numpy() for t in strategy.experimental_local_results(got)])
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_config_round_trip_keeps_the_fused_class():
    inputs = keras.Input((8, 8, 2))
    model = keras.Model(inputs, FusedBatchNormalization(momentum=0.8, name="bn")(inputs))
    clone = keras.Model.from_config(model.get_config())
    layer = clone.get_layer("bn")
    assert isinstance(layer, FusedBatchNormalization) and layer.momentum == pytest.approx(0.8)
