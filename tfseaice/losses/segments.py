"""Per-(image, polygon) segment sums for the regional losses (tfseaice.losses.regional), in one pass over the pixels.

Segment of pixel (b, y, x) with patch-local id k: row_splits[b] + k if k is in
0..K_b-1, else -1 (not usable); see tfseaice.losses.regional.

Why XLA: tf.math.unsorted_segment_mean over B*H*W pixels is two CPU scatter
passes (the sums and the divisor) and a count is a third; TF's CPU scatter
kernel costs ~5 ns a pixel (~5.7 ms for 16 x 256^2 on a 2-core AVX-512 EPYC).
One XLA scatter of [values, 1] fused with the segment ids does the sums and
the counts in ~1.6 ms, and its gradient is one fused gather (bench/regional_loss.py).
"""

import tensorflow as tf


def pixel_segments(polygon_ids, row_splits):
    """(segment int32, usable bool), both shaped like `polygon_ids` [B,H,W]."""
    ids = tf.cast(tf.convert_to_tensor(polygon_ids), tf.int32)
    splits = tf.cast(row_splits, tf.int32)
    starts = tf.reshape(splits[:-1], [-1, 1, 1])
    lengths = tf.reshape(splits[1:], [-1, 1, 1]) - starts
    usable = (ids >= 0) & (ids < lengths)
    return tf.where(usable, ids + starts, -1), usable


@tf.function(jit_compile=True, reduce_retracing=True)
def _xla_segment_sums(values, polygon_ids, row_splits, num_segments):
    """[num_segments, D+1]: per segment, the sums of `values` [P,D] and (last column) the pixel count.

    XLA's scatter drops the out-of-range segment -1, as TF's segment ops do.
    """
    segments = tf.reshape(pixel_segments(polygon_ids, row_splits)[0], [-1])
    ones = tf.ones_like(values[:, :1])
    return tf.math.unsorted_segment_sum(tf.concat([values, ones], 1), segments, num_segments)


@tf.function(jit_compile=True, reduce_retracing=True)
def _xla_gather_segments(table, polygon_ids, row_splits):
    """[P,D]: every pixel's row of `table` [M,D], 0 for unusable pixels (the sums' gradient)."""
    segments, usable = (tf.reshape(t, [-1]) for t in pixel_segments(polygon_ids, row_splits))
    return tf.where(usable[:, None], tf.gather(table, tf.maximum(segments, 0)), tf.zeros([], table.dtype))


def _bucket(n):
    """The smallest power of two >= n (>= 1), as int32: XLA compiles once per bucket, not per polygon count."""
    n = tf.maximum(tf.cast(n, tf.int32), 1)
    power = tf.cast(2.0 ** tf.math.ceil(tf.math.log(tf.cast(n, tf.float32)) / tf.math.log(2.0)), tf.int32)
    return tf.maximum(power, n)  # float rounding can only make the bucket larger, never smaller than n


def segment_sums(values, polygon_ids, row_splits, num_segments):
    """(sums [N,D] float32, counts [N] float32) of `values` [P,D] over the pixels of each segment.

    Args:
      values: [P,D] float32, P = B*H*W pixels in polygon_ids' order.
      polygon_ids: [B,H,W] int patch-local ids.
      row_splits: the target table's row splits [B+1].
      num_segments: N, int or int32 scalar (a shape-derived size, so that XLA
        can bound it inside a jit-compiled train step).

    The counts carry no gradient; the sums' gradient w.r.t. `values` is the
    segment's gradient at each usable pixel, 0 elsewhere.
    """
    bucket = _bucket(num_segments)

    @tf.custom_gradient
    def sums(v):
        def grad(g):
            return _xla_gather_segments(g[:, :-1], polygon_ids, row_splits)
        return _xla_segment_sums(v, polygon_ids, row_splits, bucket), grad

    out = sums(values)[:num_segments]
    return out[:, :-1], tf.stop_gradient(out[:, -1])
