"""The AutoICE figures of an evaluation: predicted classes against reference files or a scene's own chart.

Scored as the challenge scores (tfseaice.metrics.ClassConfusion): SIC R² in
percent between the predicted class round(10 sic), clamped to 0..10, and the
reference class, pooled over every unmasked pixel of every scene; for an
ice-chart model also the weighted F1 of its SOD and FLOE classes against the
reference's SOD/FLOE charts (when the reference has them), and the combined
score (2 SIC + 2 SOD + FLOE) / 5 once all three are scored.
- With `--reference_glob`: each scene's `*_reference.nc` (matched by
  acquisition time and ice service) on its 80 m grid; a prediction on a coarser
  grid is brought to it by bilinear interpolation of SIC before classing.
- Otherwise the scene's own chart (a raw file's polygons, or a ready-to-train
  file's `SIC`, `SOD`, `FLOE`; the dominant classes of a polygon chart where
  `autoice.chart_classes` gives them), on the evaluation grid (80 m with --downsample=2).
The prediction is the model's output at every pixel, no-data ones included,
as the upload package holds it.
"""

from tfseaice.data import autoice
from tfseaice.data.egg_codes import FLOE_CLASSES, SOD_CLASSES
from tfseaice.metrics.autoice import ClassConfusion, autoice_scores
from tfseaice.serving.autoice_submission import CHALLENGE_SPACING_M, challenge_classes


class AutoiceEvaluation:
    """Pooled AutoICE confusions over scenes (SIC; SOD and FLOE when a model predicts them)."""

    def __init__(self, reference_glob=None):
        self.reference_glob = reference_glob
        self.pooled = {"SIC": ClassConfusion("SIC")}
        self.sources = set()

    def add(self, scene, heads):
        """Score one scene's unmasked prediction (`predict_scene_charts(..., mask_nodata=False)`, or a
        SIC array); returns its own figures, or None without a reference."""
        heads = heads if isinstance(heads, dict) else {"sic": heads}
        if self.reference_glob:
            path = autoice.find_reference_for(scene.path, self.reference_glob)
            reference = autoice.read_reference(path)
            predicted = challenge_classes(heads, reference["SIC"].shape,
                                          scene.pixel_spacing_m / CHALLENGE_SPACING_M, path)
            self.sources.add("reference files")
        else:
            reference = autoice.chart_classes(scene)
            if reference.get("SIC") is None:
                return None
            predicted = challenge_classes(heads, heads["sic"].shape, 1, scene.path)
            self.sources.add("scene charts")
        own = {}
        for chart, pred in predicted.items():
            if chart not in reference:
                continue
            ref = reference[chart]
            h, w = min(ref.shape[0], pred.shape[0]), min(ref.shape[1], pred.shape[1])
            own[chart] = ClassConfusion(chart).update(ref[:h, :w], pred[:h, :w])
            pooled = self.pooled.setdefault(chart, ClassConfusion(chart))
            pooled.counts += own[chart].counts
            pooled.unpredicted += own[chart].unpredicted
        return autoice_scores(own)

    def result(self):
        """The `autoice` object of metrics.json, or None when no scene had a reference."""
        if not self.sources:
            return None
        out = autoice_scores(self.pooled)
        out["reference"] = " and ".join(sorted(self.sources))
        classes = {"SOD": SOD_CLASSES, "FLOE": FLOE_CLASSES}
        confusion = {c: {"classes": list(classes[c]), "counts": conf.counts.tolist(),
                         "rows": "reference class", "columns": "predicted class"}
                     for c, conf in self.pooled.items() if c in classes}
        if confusion:   # ice-chart models only: a SIC model's object stays as it was
            out["confusion"] = confusion
        out["definition"] = ("AutoICE challenge scores in percent over all unmasked reference pixels of all "
                             "scenes: sic_r2 = sklearn r2_score of the SIC class (round(10 sic), 0..10); "
                             "sod_f1/floe_f1 = weighted F1; score = (2 SIC + 2 SOD + FLOE) / 5")
        return out
