"""The AutoICE challenge's scores (SIC R^2, SOD/FLOE weighted F1, the 2:2:1 combined score) from pooled
class counts over many scenes.
"""

import numpy as np

from tfseaice.metrics.segmentation import confusion_matrix


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
