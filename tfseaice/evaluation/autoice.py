"""The AutoICE figures of an evaluation: predicted classes against reference files or a scene's own chart.

Scored as the challenge scores (tfseaice.metrics.ClassConfusion): SIC R² in
percent between the predicted class round(10 sic), clamped to 0..10, and the
reference class, pooled over every unmasked pixel of every scene.
- With `--reference_glob`: each scene's `*_reference.nc` (matched by
  acquisition time and ice service) on its 80 m grid; a prediction on a coarser
  grid is brought to it by bilinear interpolation of SIC before classing.
- Otherwise the scene's own chart (a raw file's polygons, or a ready-to-train
  file's `SIC`), on the evaluation grid (80 m with --downsample=2).
The prediction is the model's output at every pixel, no-data ones included,
as the upload package holds it.
"""

from tfseaice.data import autoice
from tfseaice.data.codes import sic_classes
from tfseaice.metrics import ClassConfusion, autoice_scores
from tfseaice.serving.autoice_submission import CHALLENGE_SPACING_M, to_grid


class AutoiceEvaluation:
    """Pooled AutoICE confusions over scenes (SIC; SOD and FLOE when a model predicts them)."""

    def __init__(self, reference_glob=None):
        self.reference_glob = reference_glob
        self.pooled = {"SIC": ClassConfusion("SIC")}
        self.sources = set()

    def add(self, scene, pred):
        """Score one scene's unmasked SIC prediction; returns its own figures, or None without a reference."""
        if self.reference_glob:
            path = autoice.find_reference_for(scene.path, self.reference_glob)
            reference = autoice.read_reference(path)["SIC"]
            pred = to_grid(pred, reference.shape, scene.pixel_spacing_m / CHALLENGE_SPACING_M, path)
            self.sources.add("reference files")
        else:
            reference = autoice.chart_classes(scene).get("SIC")
            if reference is None:
                return None
            self.sources.add("scene charts")
        h, w = min(reference.shape[0], pred.shape[0]), min(reference.shape[1], pred.shape[1])
        own = ClassConfusion("SIC").update(reference[:h, :w], sic_classes(pred[:h, :w]))
        self.pooled["SIC"].counts += own.counts
        self.pooled["SIC"].unpredicted += own.unpredicted
        return autoice_scores({"SIC": own})

    def result(self):
        """The `autoice` object of metrics.json, or None when no scene had a reference."""
        if not self.sources:
            return None
        out = autoice_scores(self.pooled)
        out["reference"] = " and ".join(sorted(self.sources))
        out["definition"] = ("AutoICE challenge scores in percent over all unmasked reference pixels of all "
                             "scenes: sic_r2 = sklearn r2_score of the SIC class (round(10 sic), 0..10); "
                             "sod_f1/floe_f1 = weighted F1; score = (2 SIC + 2 SOD + FLOE) / 5")
        return out
