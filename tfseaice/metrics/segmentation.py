"""Class-map scores from confusion counts (numpy): pixel accuracy, per-class and mean IoU.
"""

import numpy as np


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
