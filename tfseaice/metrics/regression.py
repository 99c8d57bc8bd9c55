"""Regression and detection scores of predicted maps against truth (numpy, float64, NaN-aware): RMSE,
R^2, F1, and their exact pooling over many scenes.
"""

import numpy as np


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
