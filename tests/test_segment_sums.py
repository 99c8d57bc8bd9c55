"""tfseaice.losses.segments: the one-pass XLA segment sums behind polygon_means equal TF's segment
ops (unsorted_segment_mean and a count), values and gradients, for any number of segments."""

import numpy as np
import pytest
import tensorflow as tf

from tfseaice.losses import polygon_means, polygon_segments
from tfseaice.losses.segments import _bucket


def _case(rng, lengths, channels, h=9, w=11):
    """(pred [B,h,w,C], ids [B,h,w] with -1 and ids beyond each row, ragged table [B,(K_b)(,C)])."""
    b = len(lengths)
    ids = np.stack([rng.integers(-1, k + 2, (h, w)) for k in lengths]).astype(np.int32)
    pred = rng.uniform(0, 1, (b, h, w, channels)).astype(np.float32)
    inner = [channels] if channels > 1 else []
    table = tf.RaggedTensor.from_row_lengths(rng.uniform(0, 1, [sum(lengths)] + inner).astype(np.float32),
                                             lengths)
    return pred, ids, table


def _reference(pred, ids, table, channels):
    """unsorted_segment_mean and a count of ones: what polygon_means computed before the XLA sums."""
    segments, _ = polygon_segments(ids, table)
    values = tf.reshape(pred, [-1, channels]) if channels > 1 else tf.reshape(pred, [-1])
    n = int(table.row_splits[-1])
    return (tf.math.unsorted_segment_mean(values, segments, n),
            tf.math.unsorted_segment_sum(tf.ones_like(segments, tf.float32), segments, n))


@pytest.mark.parametrize("n,bucket", [(0, 1), (1, 1), (3, 4), (4, 4), (5, 8), (1000, 1024), (1025, 2048)])
def test_bucket_is_the_next_power_of_two(n, bucket):
    assert int(_bucket(n)) == bucket


@pytest.mark.parametrize("channels", [1, 3])
def test_means_counts_and_gradients_equal_tf_segment_ops_for_every_table_size(channels):
    """One tf.function with a ragged table of unknown length (the train step's case): tables of 3..9
    pairs cross the power-of-two buckets 4 and 8; values and gradients equal TF's ops'."""
    rng = np.random.default_rng(0)
    graph = tf.function(lambda p, i, t: polygon_means(p, i, t), reduce_retracing=True)
    for lengths in ([1, 2], [2, 2], [0, 3, 2], [4, 0, 4, 1]):
        pred, ids, table = _case(rng, lengths, channels)
        weights = tf.constant(rng.normal(size=table.flat_values.shape).astype(np.float32))
        pred_t = tf.constant(pred)
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(pred_t)
            means, counts = graph(pred_t, ids, table)
            got = tf.reduce_sum(means.flat_values * weights)
            want_means, want_counts = _reference(pred_t, ids, table, channels)
            want = tf.reduce_sum(want_means * weights)
        np.testing.assert_allclose(means.flat_values.numpy(), want_means.numpy(), rtol=1e-6, atol=1e-7)
        np.testing.assert_array_equal(counts.flat_values.numpy(), want_counts.numpy())
        np.testing.assert_allclose(tape.gradient(got, pred_t).numpy(), tape.gradient(want, pred_t).numpy(),
                                   rtol=1e-6, atol=1e-9)
