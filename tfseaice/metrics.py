"""Metrics in numpy (evaluation) and Keras trackers (training)."""

# --- regression / segmentation metrics (numpy) and polygon trackers (Keras) ---

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402


def _valid_pairs(y, yhat, mask=None):
    """Flattened float64 (y, yhat) where both are finite (and `mask` is True)."""
    y = np.asarray(y, dtype=np.float64).ravel()
    yhat = np.asarray(yhat, dtype=np.float64).ravel()
    if y.shape != yhat.shape:
        raise ValueError(f"y has {y.size} values but yhat {yhat.size}")
    keep = np.isfinite(y) & np.isfinite(yhat)
    if mask is not None:
        keep &= np.asarray(mask, dtype=bool).ravel()
    return y[keep], yhat[keep]


def rmse(y, yhat, mask=None):
    """Root mean squared error over pairs where both are finite (and mask). NaN if none."""
    y, yhat = _valid_pairs(y, yhat, mask)
    if y.size == 0:
        return float("nan")
    return float(np.sqrt(np.mean((y - yhat) ** 2)))


def r2_score(y, yhat, mask=None):
    """Coefficient of determination 1 - SSres/SStot over finite (and masked) pairs.

    SStot is about the mean of `y`. NaN if there are no pairs or SStot == 0.
    """
    y, yhat = _valid_pairs(y, yhat, mask)
    if y.size == 0:
        return float("nan")
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    if ss_tot == 0.0:
        return float("nan")
    return float(1.0 - np.sum((y - yhat) ** 2) / ss_tot)


def f1_score(y_true_bool, y_pred_bool, mask=None):
    """F1 of the positive (True) class: 2TP / (2TP + FP + FN). NaN if both are empty."""
    t = np.asarray(y_true_bool, dtype=bool).ravel()
    p = np.asarray(y_pred_bool, dtype=bool).ravel()
    if t.shape != p.shape:
        raise ValueError(f"y_true has {t.size} values but y_pred {p.size}")
    if mask is not None:
        keep = np.asarray(mask, dtype=bool).ravel()
        t, p = t[keep], p[keep]
    tp = int(np.sum(t & p))
    denominator = 2 * tp + int(np.sum(~t & p)) + int(np.sum(t & ~p))
    if denominator == 0:
        return float("nan")
    return 2.0 * tp / denominator


class RegressionAccumulator:
    """Streaming pooled RMSE and R^2 over many scenes (exact, float64).

    Keeps n, the mean and the sum of squared deviations of y (merged with
    Chan's parallel formula) and the sum of squared errors, so pooling scenes
    gives the same figures as concatenating all their pixels.
    """

    def __init__(self):
        self.n = 0
        self._mean = 0.0
        self._m2 = 0.0
        self._sse = 0.0

    def update(self, y, yhat, mask=None):
        """Add the finite (and masked) pairs of arrays y, yhat; returns self."""
        y, yhat = _valid_pairs(y, yhat, mask)
        n_b = y.size
        if n_b == 0:
            return self
        mean_b = float(y.mean())
        m2_b = float(np.sum((y - mean_b) ** 2))
        n = self.n + n_b
        delta = mean_b - self._mean
        self._m2 += m2_b + delta * delta * self.n * n_b / n
        self._mean += delta * n_b / n
        self._sse += float(np.sum((y - yhat) ** 2))
        self.n = n
        return self

    def result(self):
        """dict(rmse, r2, n); rmse/r2 NaN when undefined (n == 0, or SStot == 0 for r2)."""
        if self.n == 0:
            return {"rmse": float("nan"), "r2": float("nan"), "n": 0}
        r2 = float("nan") if self._m2 == 0.0 else 1.0 - self._sse / self._m2
        return {"rmse": float(np.sqrt(self._sse / self.n)), "r2": r2, "n": int(self.n)}


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


# --- pix2pix image metrics and zone-segmentation scores -----------------------

SSIM_FILTER_SIZE = 11
SSIM_FILTER_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03


def dice_non_binary(x, y):
    """Non-binary Dice (paper Eq. 6): 2 * sum(x * y) / (sum(x) + sum(y)).

    x, y: images in [0, 1] of the same shape (numpy or tensors); sums run over
    every element, so pass one image pair (see `batch_dice_non_binary` for a
    per-image batch version). Two all-zero images score 1.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"x {x.shape} and y {y.shape} differ in shape")
    den = x.sum() + y.sum()
    if den == 0:
        return 1.0
    return float(2.0 * np.sum(x * y) / den)


def batch_dice_non_binary(x, y):
    """Per-image non-binary Dice of [B, H, W(, C)] tensors in [0, 1] -> [B] float32."""
    x = tf.cast(x, tf.float32)
    y = tf.cast(y, tf.float32)
    b = tf.shape(x)[0]
    x = tf.reshape(x, [b, -1])
    y = tf.reshape(y, [b, -1])
    num = 2.0 * tf.reduce_sum(x * y, axis=1)
    den = tf.reduce_sum(x, axis=1) + tf.reduce_sum(y, axis=1)
    return tf.where(den > 0, num / tf.maximum(den, 1e-12), tf.ones_like(den))


def batch_ssim(x, y, max_val=1.0):
    """Per-image SSIM of [B, H, W, C] tensors -> [B] float32 (see `ssim`)."""
    return tf.image.ssim(tf.cast(x, tf.float32), tf.cast(y, tf.float32), max_val=max_val,
                         filter_size=SSIM_FILTER_SIZE, filter_sigma=SSIM_FILTER_SIGMA,
                         k1=SSIM_K1, k2=SSIM_K2)


def ssim(x, y, max_val=1.0):
    """Structural similarity (Wang et al. 2004) of images in [0, max_val].

    Wraps `tf.image.ssim`: 11 x 11 Gaussian window with sigma 1.5, K1 = 0.01,
    K2 = 0.03 (C1 = (K1 * max_val)**2, C2 = (K2 * max_val)**2), local
    statistics over the valid window positions only (no padding), mean of the
    SSIM map; channels are averaged. Images must be at least 11 x 11.
    Accepts [H, W], [H, W, C] (returns a float) or [B, H, W, C] (returns a
    numpy array [B]).
    """
    x = np.asarray(x, dtype=np.float32)
    y = np.asarray(y, dtype=np.float32)
    if x.shape != y.shape:
        raise ValueError(f"x {x.shape} and y {y.shape} differ in shape")
    if x.ndim == 2:
        x, y = x[None, ..., None], y[None, ..., None]
        single = True
    elif x.ndim == 3:
        x, y = x[None], y[None]
        single = True
    elif x.ndim == 4:
        single = False
    else:
        raise ValueError(f"ssim needs [H,W], [H,W,C] or [B,H,W,C], got {x.shape}")
    if min(x.shape[1:3]) < SSIM_FILTER_SIZE:
        raise ValueError(f"ssim needs images of at least {SSIM_FILTER_SIZE} x {SSIM_FILTER_SIZE}")
    values = batch_ssim(x, y, max_val).numpy().astype(np.float64)
    return float(values[0]) if single else values


def confusion_matrix(pred_classes, true_classes, num_classes):
    """[num_classes, num_classes] int64 counts, rows = true class, columns = predicted."""
    p = np.asarray(pred_classes).astype(np.int64).ravel()
    t = np.asarray(true_classes).astype(np.int64).ravel()
    if p.shape != t.shape:
        raise ValueError(f"pred has {p.size} pixels but true {t.size}")
    if p.size and (p.min() < 0 or p.max() >= num_classes or t.min() < 0 or t.max() >= num_classes):
        raise ValueError(f"class indices must be in 0..{num_classes - 1}")
    return np.bincount(t * num_classes + p, minlength=num_classes * num_classes).reshape(
        num_classes, num_classes)


def scores_from_confusion(cm, ignore=0):
    """pixel_accuracy, mean_iou and per_class_iou from a confusion matrix.

    Pixels whose *true* class is `ignore` (e.g. 0 = no data) are left out, and
    the ignored class gets no IoU. IoU_c = TP / (TP + FP + FN); a class absent
    from both truth and prediction has IoU NaN and is left out of the mean.
    """
    cm = np.asarray(cm, dtype=np.float64).copy()
    n = cm.shape[0]
    if ignore is not None:
        cm[ignore, :] = 0
    total = cm.sum()
    correct = sum(cm[c, c] for c in range(n) if c != ignore)
    acc = float(correct / total) if total else float("nan")
    per_class = {}
    for c in range(n):
        if c == ignore:
            continue
        tp = cm[c, c]
        union = cm[c, :].sum() + cm[:, c].sum() - tp
        per_class[c] = float(tp / union) if union else float("nan")
    vals = [v for v in per_class.values() if not np.isnan(v)]
    return {"pixel_accuracy": acc, "mean_iou": float(np.mean(vals)) if vals else float("nan"),
            "per_class_iou": per_class}


def segmentation_scores(pred_classes, true_classes, num_classes, ignore=0):
    """dict(pixel_accuracy, mean_iou, per_class_iou) of class maps (the FCN-score).

    Pixels whose true class is `ignore` are left out (see scores_from_confusion).
    """
    return scores_from_confusion(confusion_matrix(pred_classes, true_classes, num_classes), ignore)


# --- the AutoICE challenge's scores, from pooled class counts ---
AUTOICE_NUM_CLASSES = {"SIC": 11, "SOD": 6, "FLOE": 7}
AUTOICE_WEIGHTS = {"SIC": 2, "SOD": 2, "FLOE": 1}
AUTOICE_MASK = 255


class ClassConfusion:
    """Pooled (reference class, predicted class) counts of one AutoICE chart over many scenes.

    The counts are all the challenge's scores need: sklearn's `r2_score` and
    `f1_score(average="weighted")` weighted by them equal the scores of the
    pooled pixel arrays, in memory that does not grow with the pixel count.
    Reference pixels of class 255 (masked) are left out; `unpredicted` counts
    reference pixels whose prediction is 255.
    """

    def __init__(self, chart):
        self.chart = chart
        self.n = AUTOICE_NUM_CLASSES[chart]
        self.counts = np.zeros((self.n, self.n), np.int64)
        self.unpredicted = 0

    def update(self, reference, predicted):
        reference = np.asarray(reference).ravel()
        predicted = np.asarray(predicted).ravel()
        if reference.shape != predicted.shape:
            raise ValueError(f"reference has {reference.size} pixels but prediction {predicted.size}")
        keep = reference != AUTOICE_MASK
        self.unpredicted += int((keep & (predicted == AUTOICE_MASK)).sum())
        keep &= predicted != AUTOICE_MASK
        if (reference[keep] >= self.n).any() or (predicted[keep] >= self.n).any():
            raise ValueError(f"{self.chart} classes must be 0..{self.n - 1} or {AUTOICE_MASK}")
        self.counts += confusion_matrix(predicted[keep], reference[keep], self.n)
        return self

    @property
    def pixel_count(self):
        return int(self.counts.sum())

    def score(self):
        """The chart's challenge score in percent: SIC R², SOD/FLOE weighted F1 (NaN without pixels)."""
        from sklearn.metrics import f1_score, r2_score  # here: sklearn loads in ~1 s, only evaluation needs it

        true, pred = np.nonzero(self.counts)
        if true.size == 0:
            return float("nan")
        weights = self.counts[true, pred]
        if self.chart == "SIC":
            return float(r2_score(true, pred, sample_weight=weights) * 100)
        return float(f1_score(true, pred, average="weighted", sample_weight=weights) * 100)


def autoice_scores(confusions):
    """{sic_r2, sod_f1, floe_f1 (those given), score (when all three), pixel counts} in percent."""
    keys = {"SIC": "sic_r2", "SOD": "sod_f1", "FLOE": "floe_f1"}
    out = {}
    for chart, conf in confusions.items():
        out[keys[chart]] = conf.score()
        out[f"{chart.lower()}_pixel_count"] = conf.pixel_count
        out[f"{chart.lower()}_unpredicted_pixel_count"] = conf.unpredicted
    if all(c in confusions for c in keys):
        out["score"] = sum(AUTOICE_WEIGHTS[c] * out[keys[c]] for c in keys) / sum(AUTOICE_WEIGHTS.values())
    return out
