"""Keras trackers of training: pooled regression scores that stay exact across batches and replicas.
"""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="tfseaice")
class PooledRegressionMetric(keras.metrics.Metric):
    """Keras tracker: exact pooled RMSE or R^2 over every (y, yhat) pair since reset.

    Accumulates n, sum(y), sum(y^2) and sum((y - yhat)^2) in float64 metric
    variables (Keras sums them over replicas), so the value is exact across
    batches and replicas rather than a mean of per-batch values.
    `sample_weight` is a 0/1 mask of the pairs to count. kind: "rmse" | "r2".
    R^2 is NaN while SStot is 0 (e.g. nothing seen yet).
    """

    def __init__(self, kind="rmse", name=None, **kwargs):
        if kind not in ("rmse", "r2"):
            raise ValueError(f"kind must be 'rmse' or 'r2', got {kind!r}")
        super().__init__(name=name or f"pooled_{kind}", **kwargs)
        self.kind = kind
        self.n = self.add_variable(shape=(), initializer="zeros", dtype="float64", name="n")
        self.sum_y = self.add_variable(shape=(), initializer="zeros", dtype="float64", name="sum_y")
        self.sum_y2 = self.add_variable(shape=(), initializer="zeros", dtype="float64", name="sum_y2")
        self.sse = self.add_variable(shape=(), initializer="zeros", dtype="float64", name="sse")

    def update_state(self, y_true, y_pred, sample_weight=None):
        y = tf.reshape(tf.cast(y_true, tf.float64), [-1])
        yhat = tf.reshape(tf.cast(y_pred, tf.float64), [-1])
        if sample_weight is None:
            w = tf.ones_like(y)
        else:
            w = tf.reshape(tf.cast(sample_weight, tf.float64), [-1])
        keep = (w > 0) & tf.math.is_finite(y) & tf.math.is_finite(yhat)
        y = tf.where(keep, y, tf.zeros_like(y))
        yhat = tf.where(keep, yhat, tf.zeros_like(yhat))
        keepf = tf.cast(keep, tf.float64)
        self.n.assign_add(tf.reduce_sum(keepf))
        self.sum_y.assign_add(tf.reduce_sum(y))
        self.sum_y2.assign_add(tf.reduce_sum(y * y))
        self.sse.assign_add(tf.reduce_sum(tf.square(y - yhat)))

    def result(self):
        n = tf.convert_to_tensor(self.n)
        nan = tf.constant(float("nan"), tf.float64)
        if self.kind == "rmse":
            value = tf.where(n > 0, tf.sqrt(tf.math.divide_no_nan(self.sse, n)), nan)
        else:
            ss_tot = self.sum_y2 - tf.math.divide_no_nan(tf.square(self.sum_y), n)
            value = tf.where((n > 0) & (ss_tot > 0),
                             1.0 - tf.math.divide_no_nan(self.sse, ss_tot), nan)
        return tf.cast(value, tf.float32)

    def get_config(self):
        config = super().get_config()
        config.update({"kind": self.kind})
        return config
