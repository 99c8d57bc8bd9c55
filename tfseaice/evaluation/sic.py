"""Whole-scene SIC evaluation: paper Table 1 per scene and pooled over scenes.

For every scene file: read it (`tfseaice.data.ai4arctic.read_scene`), predict
pixel SIC with tiled inference (`tfseaice.serving.scene_inference.predict_scene`), then

* pixel level (Table 1 row 1): RMSE and R² of the pixel prediction against the
  rasterised chart, over *labelled pixels*: finite SAR in every channel and a
  chart polygon with a SIC label (`Scene.valid_mask()`);
* polygon level (Table 1 row 2): a polygon's prediction is the mean of the
  pixel prediction over its usable (labelled, finite-SAR) pixels; RMSE and R²
  of those means against the polygons' chart SIC, every polygon counting once;
* with pixel truth (`--truth_variable`, sample scenes carry `sic_truth`):
  RMSE and R² against the truth over pixels inside the chart (chart id >= 0,
  i.e. not land / outside the chart, labelled or not) with finite truth and
  prediction, and the F1 score of the ice class for ice/water maps
  thresholded at `threshold` (ice = SIC >= threshold, for truth and
  prediction alike);
* with SOD/FLOE pixel truth (`--sod_truth_variable`, `--floe_truth_variable`)
  and an ice-chart model: `truth_sod_f1`, `truth_floe_f1`, the weighted F1 (in
  [0, 1], sklearn's average="weighted") of the predicted class over pixels with
  finite SAR and a truth class (truth != 255), chart or not; a SIC-only model's
  figures have no such keys.

Pooled figures accumulate sums over all scenes' pixels / polygons (exactly as
if all scenes were concatenated), they are not means of per-scene figures.
Scenes without a chart add only to the `autoice` object (tfseaice.evaluation.autoice).
"""

import math
import os

import numpy as np
from absl import logging

from tfseaice import io_utils, viz
from tfseaice.data import ai4arctic, scene_files
from tfseaice.data.egg_codes import FLOE_CLASSES, SOD_CLASSES, UNLABELLED
from tfseaice.errors import InputError
from tfseaice.evaluation.autoice import AutoiceEvaluation
from tfseaice.serving.loading import inference_network, load_trained
from tfseaice.serving.scene_inference import (DEFAULT_BATCH_SIZE, DEFAULT_TILE, finite_mask, model_channels,
                                             predict_scene_charts)
from tfseaice.serving.sic_products import ICE_THRESHOLD, polygon_means
from tfseaice.metrics.autoice import ClassConfusion
from tfseaice.metrics.regression import RegressionAccumulator
from tfseaice.precision import model_precision
from tfseaice.tasks import ICECHART_TASKS, SIC_TASKS

METRIC_KEYS = ("pixel_rmse", "pixel_r2", "polygon_rmse", "polygon_r2",
               "truth_pixel_rmse", "truth_pixel_r2", "truth_ice_water_f1")
COUNT_KEYS = ("pixel_count", "polygon_count", "truth_pixel_count")
CLASS_TRUTH = {"SOD": ("sod", "sod_truth", SOD_CLASSES), "FLOE": ("floe", "floe_truth", FLOE_CLASSES)}
CLASS_KEYS = ("truth_sod_f1", "truth_floe_f1")   # ice-chart models on scenes with class truth only

DEFINITIONS = {
    "pixel": "pixel SIC vs rasterised chart SIC, over labelled pixels (finite SAR in every channel, polygon with a SIC label)",
    "polygon": "per polygon: mean pixel SIC over its usable pixels vs the polygon's chart SIC; every labelled polygon with >= 1 usable pixel counts once",
    "truth_pixel": "pixel SIC vs pixel truth over pixels inside the chart (chart id >= 0) where truth and prediction are finite",
    "truth_ice_water_f1": "F1 of the ice class; ice = SIC >= ice_water_threshold for truth and prediction; same pixels as truth_pixel",
    "truth_sod_f1": "weighted F1 (in [0, 1]) of the predicted SOD class against sod_truth over pixels with finite SAR and truth != 255 (ice-chart models); truth_floe_f1 likewise",
    "pooled": "top-level figures pool the sums over all scenes (not a mean of per-scene figures); truth figures over the scenes that carry the truth variable (truth_scene_count)",
    "r2": "1 - SSres/SStot with SStot about the mean of the reference; null when undefined (no pairs or constant reference)",
}


class _F1Counts:
    """Pooled true/false positive counts of the ice class."""

    def __init__(self):
        self.tp = self.fp = self.fn = 0

    def update(self, truth_ice, pred_ice):
        self.tp += int(np.sum(truth_ice & pred_ice))
        self.fp += int(np.sum(~truth_ice & pred_ice))
        self.fn += int(np.sum(truth_ice & ~pred_ice))
        return self

    def result(self):
        d = 2 * self.tp + self.fp + self.fn
        return float("nan") if d == 0 else 2.0 * self.tp / d


class SceneEvaluation:
    """Accumulators of one scene, or of the pool of all scenes."""

    def __init__(self):
        self.pixel = RegressionAccumulator()
        self.polygon = RegressionAccumulator()
        self.truth = RegressionAccumulator()
        self.f1 = _F1Counts()
        self.has_truth = False
        self.classes = {}   # chart -> ClassConfusion against the pixel class truth (ice-chart models)
        self.sod_sic = RegressionAccumulator()   # 1 - P(open water) of the SOD head vs truth SIC
        self.gap = RegressionAccumulator()       # 1 - P(open water) vs the SIC head (its RMSE is the gap)

    def figures(self):
        pixel, polygon, truth = self.pixel.result(), self.polygon.result(), self.truth.result()
        out = {"pixel_rmse": pixel["rmse"], "pixel_r2": pixel["r2"],
               "polygon_rmse": polygon["rmse"], "polygon_r2": polygon["r2"]}
        if self.has_truth:
            out.update(truth_pixel_rmse=truth["rmse"], truth_pixel_r2=truth["r2"],
                       truth_ice_water_f1=self.f1.result())
        else:
            out.update(truth_pixel_rmse=None, truth_pixel_r2=None, truth_ice_water_f1=None)
        out.update(pixel_count=pixel["n"], polygon_count=polygon["n"],
                   truth_pixel_count=truth["n"] if self.has_truth else None)
        if self.gap.n:
            out["sic_sod_gap_rmse"] = self.gap.result()["rmse"]
        if self.sod_sic.n:
            sod_sic = self.sod_sic.result()
            out.update(truth_sic_from_sod_rmse=sod_sic["rmse"], truth_sic_from_sod_r2=sod_sic["r2"])
        for chart, conf in self.classes.items():
            out[f"truth_{chart.lower()}_f1"] = conf.score() / 100
            out[f"truth_{chart.lower()}_pixel_count"] = conf.pixel_count
        return {k: _clean(v) for k, v in out.items()}

    def add_class_truth(self, heads, scene, sar_finite):
        """Add the predicted SOD/FLOE classes of `heads` against the scene's class truth (where both exist)."""
        for chart, (head, truth_name, _) in CLASS_TRUTH.items():
            truth = getattr(scene, truth_name, None)
            if head in heads and truth is not None:
                reference = np.where(sar_finite, truth, np.uint8(UNLABELLED))
                self.classes.setdefault(chart, ClassConfusion(chart)).update(reference, heads[head])

    def add_consistency(self, heads, scene, sar_finite):
        """SIC read off the SOD head, 1 - P(open water), against the SIC head and the SIC truth.

        Two heads of one model say how much ice there is; where they disagree a
        user must know which to serve (README). Pixels: finite SAR; the truth
        figures over the truth_pixel pixels (inside the chart, finite truth).
        """
        if "sod_probability" not in heads:
            return
        from_sod = 1.0 - heads["sod_probability"][..., 0]
        self.gap.update(from_sod, heads["sic"], mask=sar_finite)
        if scene.sic_truth is not None and scene.has_chart:
            self.sod_sic.update(scene.sic_truth, from_sod, mask=sar_finite & (scene.chart_ids >= 0))


def _clean(v):
    """JSON-safe: NaN/Inf -> None, numpy scalars -> Python."""
    if v is None:
        return None
    if isinstance(v, (int, np.integer)):
        return int(v)
    v = float(v)
    return v if math.isfinite(v) else None


def evaluate_arrays(pred, chart_ids, table, sar_finite, truth=None, threshold=ICE_THRESHOLD,
                    into=None, rows_per_chunk=1024):
    """Add one scene's prediction [H,W] to SceneEvaluations (a new one by default).

    `sar_finite` [H,W] bool: every SAR channel finite. `into`: list of
    SceneEvaluation to update (e.g. [this scene, pooled]). Streams over row
    chunks, so no scene-sized temporaries. Returns the first evaluation.
    """
    into = into if into is not None else [SceneEvaluation()]
    for r in range(0, pred.shape[0], rows_per_chunk):
        sl = slice(r, r + rows_per_chunk)
        p_all, ids = pred[sl], chart_ids[sl]
        chart = table.lookup(ids)
        pred_ok = np.isfinite(p_all) & sar_finite[sl]
        labelled = pred_ok & np.isfinite(chart)
        y, yhat = chart[labelled], p_all[labelled]
        for ev in into:
            ev.pixel.update(y, yhat)
        if truth is not None:
            t_all = truth[sl]
            inside = pred_ok & np.isfinite(t_all) & (ids >= 0)
            t, p = t_all[inside], p_all[inside]
            for ev in into:
                ev.has_truth = True
                ev.truth.update(t, p)
                ev.f1.update(t >= threshold, p >= threshold)
    stats = polygon_means(pred, chart_ids, usable=sar_finite)  # (finite prediction is implied)
    if len(stats.ids):
        target = table.lookup(stats.ids).astype(np.float64)
        keep = np.isfinite(target) & (stats.count > 0)
        for ev in into:
            ev.polygon.update(target[keep], stats.mean[keep])
    return into[0]


def evaluate_scenes(model, scene_paths, channels=ai4arctic.DEFAULT_CHANNELS, downsample=2,
                    truth_variable="sic_truth", raw_glob=None, tile=DEFAULT_TILE, overlap=64, batch_size=DEFAULT_BATCH_SIZE,
                    threshold=ICE_THRESHOLD, reference_glob=None, land_mask="distance_map",
                    sod_truth_variable="sod_truth", floe_truth_variable="floe_truth"):
    """Paper Table 1 (and truth metrics) per scene and pooled, plus the AutoICE scores; returns the JSON dict.

    Args:
      model: SIC model for `tfseaice.serving.scene_inference.predict_scene` (Keras model,
        TFSMLayer, loaded SavedModel or callable) taking `channels` in file units.
      scene_paths: scene files (raw AI4Arctic or ready-to-train; with or without a chart).
      channels, downsample, raw_glob, land_mask: as `ai4arctic.read_scene`.
      truth_variable: pixel-truth variable read when present ("" / None = never).
      sod_truth_variable, floe_truth_variable: SOD/FLOE class-truth variables, likewise.
      tile, overlap, batch_size: tiled inference settings.
      threshold: ice/water threshold (ice = SIC >= threshold).
      reference_glob: AutoICE reference files (`*_reference.nc`); without them
        the `autoice` object uses each scene's own chart.
    """
    scene_paths = list(scene_paths)
    if not scene_paths:
        raise InputError("scenes", "no scene files to evaluate")
    expected = model_channels(model)
    if expected is not None and expected != len(channels):
        raise InputError(scene_paths[0], f"the model takes {expected} channel(s) but {len(channels)} were asked for ({', '.join(channels)})")
    pooled = SceneEvaluation()
    challenge = AutoiceEvaluation(reference_glob)
    scenes = {}
    for k, path in enumerate(scene_paths, 1):
        scene = scene_files.read_scene(path, channels, downsample, raw_glob=raw_glob,
                                       truth_variable=truth_variable or None, land_mask=land_mask,
                                       sod_truth_variable=sod_truth_variable or None,
                                       floe_truth_variable=floe_truth_variable or None)
        logging.info("[%d/%d] %s: %dx%d pixels%s", k, len(scene_paths), scene.scene_id, *scene.shape,
                     "" if scene.has_chart else " (no chart)")
        heads = predict_scene_charts(model, scene.sar, tile=tile, overlap=overlap, batch_size=batch_size,
                                     mask_nodata=False, probabilities=True)
        unmasked = heads["sic"]
        sar_finite = finite_mask(scene.sar)
        pred = np.where(sar_finite, unmasked, np.float32(np.nan))
        ev = SceneEvaluation()
        if scene.has_chart:
            evaluate_arrays(pred, scene.chart_ids, scene.table, sar_finite, truth=scene.sic_truth,
                            threshold=threshold, into=[ev, pooled])
            if ev.pixel.n == 0:
                logging.warning("%s has no labelled pixel: it adds nothing to the pooled chart figures", path)
        for e in (ev, pooled):
            e.add_class_truth(heads, scene, sar_finite)
            e.add_consistency(heads, scene, sar_finite)
        scene_autoice = challenge.add(scene, heads)
        if not scene.has_chart and scene_autoice is None:
            raise InputError(path, "has no ice chart and no reference chart to score against (give the "
                                   "reference files with --reference_glob, or the raw files with --raw_glob)")
        key = scene.scene_id
        n = 2
        while key in scenes:
            key = f"{scene.scene_id}#{n}"
            n += 1
        scenes[key] = {**ev.figures(), "path": os.path.abspath(path), "shape": list(scene.shape),
                       "has_chart": scene.has_chart, "has_truth": scene.sic_truth is not None}
        if scene_autoice is not None:
            scenes[key]["autoice"] = {k: _clean(v) for k, v in scene_autoice.items()}
        del scene, pred, unmasked, heads
    result = pooled.figures()
    result["scene_count"] = len(scenes)
    result["truth_scene_count"] = sum(1 for v in scenes.values() if v["has_truth"])
    result["ice_water_threshold"] = float(threshold)
    autoice_result = challenge.result()
    if autoice_result is not None:
        result["autoice"] = {k: v if isinstance(v, (str, dict)) else _clean(v) for k, v in autoice_result.items()}
    if pooled.classes:   # ice-chart model with class truth: the confusions behind truth_*_f1
        result["truth_confusion"] = {c: {"classes": list(CLASS_TRUTH[c][2]), "counts": conf.counts.tolist(),
                                         "rows": "truth class", "columns": "predicted class"}
                                     for c, conf in pooled.classes.items()}
    result["scenes"] = scenes
    result["settings"] = {"channels": list(channels), "downsample": int(downsample),
                          "truth_variable": truth_variable or None, "raw_glob": raw_glob,
                          "sod_truth_variable": sod_truth_variable or None,
                          "floe_truth_variable": floe_truth_variable or None,
                          "reference_glob": reference_glob, "land_mask": land_mask,
                          "tile": tile, "overlap": overlap, "batch_size": batch_size,
                          "precision": model_precision(model)}
    result["definitions"] = DEFINITIONS
    return result


def evaluate_model_dir(model_dir, scene_paths, output, weights="best", downsample=None,
                       truth_variable="sic_truth", raw_glob=None, tile=DEFAULT_TILE, overlap=64, batch_size=DEFAULT_BATCH_SIZE,
                       threshold=ICE_THRESHOLD, overwrite=False, reference_glob=None, land_mask="distance_map",
                       precision="auto", sod_truth_variable="sod_truth", floe_truth_variable="floe_truth",
                       flip_tta=False):
    """Evaluate the SIC model of `model_dir` on scene files; write OUTPUT (.json) and .md.

    `precision`: inference precision ("auto" = bf16 where the CPU computes it natively, as
    training; "fp32"; "bf16"), recorded in the settings, as `flip_tta` (the mean of each tile's four
    flips, tfseaice.models.flip_average). Returns the Markdown table (also
    written). Outputs are refused before any work unless `overwrite`.
    """
    check_outputs(output, overwrite)
    model, meta = load_trained(model_dir, weights, expect_task=SIC_TASKS + ICECHART_TASKS, precision=precision)
    model = inference_network(model, flip_tta)
    info = meta["dataset_info"]
    channels = tuple(info.get("channels") or ("hh", "hv"))
    downsample = downsample or int(info.get("downsample") or 2)
    if info.get("downsample") and downsample != int(info["downsample"]):
        logging.warning("evaluating at --downsample=%d but the model was trained at %s",
                        downsample, info["downsample"])
    result = evaluate_scenes(model, scene_paths, channels=channels, downsample=downsample,
                             truth_variable=truth_variable, raw_glob=raw_glob, tile=tile, overlap=overlap,
                             batch_size=batch_size, threshold=threshold, reference_glob=reference_glob,
                             land_mask=land_mask, sod_truth_variable=sod_truth_variable,
                             floe_truth_variable=floe_truth_variable)
    result["settings"].update(model_dir=os.path.abspath(model_dir), task=meta["task"], weights=weights,
                              flip_tta=bool(flip_tta))
    title = f"{meta['task']} — {os.path.basename(os.path.normpath(model_dir))}"
    return write_report(result, output, overwrite=overwrite, title=title)


# --------------------------------------------------------------------- report
def _fmt(v, digits=3):
    if v is None:
        return "–"
    if isinstance(v, int):
        return str(v)
    return f"{v:.{digits}f}"


def markdown_table(result, title=None):
    """Markdown table: one row per scene, then the pooled row (bold)."""
    cols = [("pixels", "pixel_count"), ("pixel RMSE", "pixel_rmse"), ("pixel R²", "pixel_r2"),
            ("polygons", "polygon_count"), ("polygon RMSE", "polygon_rmse"), ("polygon R²", "polygon_r2"),
            ("truth RMSE", "truth_pixel_rmse"), ("truth R²", "truth_pixel_r2"),
            ("ice/water F1", "truth_ice_water_f1")]
    cols += [(f"truth {k.split('_')[1].upper()} F1", k) for k in CLASS_KEYS
             if any(k in s for s in (result, *result["scenes"].values()))]
    lines = []
    if title:
        lines += [f"### {title}", ""]
    lines.append("| scene | " + " | ".join(c for c, _ in cols) + " |")
    lines.append("|---|" + "|".join("---:" for _ in cols) + "|")
    for sid, s in result["scenes"].items():
        lines.append(f"| {sid} | " + " | ".join(_fmt(s.get(k)) for _, k in cols) + " |")
    lines.append(f"| **pooled ({result['scene_count']} scenes)** | "
                 + " | ".join(f"**{_fmt(result.get(k))}**" for _, k in cols) + " |")
    if result.get("autoice"):
        a = result["autoice"]
        parts = [f"{name} {_fmt(a.get(key), 2)}" for name, key in
                 (("SIC R²", "sic_r2"), ("SOD F1", "sod_f1"), ("FLOE F1", "floe_f1"), ("score", "score"))
                 if a.get(key) is not None]
        lines += ["", f"**AutoICE** (percent, against {a['reference']}, {a['sic_pixel_count']} pixels): "
                  + ", ".join(parts)]
    lines += ["", "Pixel and polygon figures are against the rasterised ice chart (paper Table 1); "
              "truth figures against the pixel truth. Ice/water: ice = SIC ≥ "
              f"{result['ice_water_threshold']:g}. Pooled = over all pixels/polygons of all scenes. "
              "– = not available."]
    return "\n".join(lines) + "\n"


def report_paths(output):
    """(JSON path, Markdown path): the Markdown file is the JSON's name with `.md`."""
    stem, _ = os.path.splitext(output)
    return output, stem + ".md"


def confusion_paths(output):
    """{(source, chart): PNG path} of the confusion matrices an ice-chart model's report may draw
    beside the JSON: `{stem}_confusion_SOD.png` (AutoICE reference), `{stem}_confusion_truth_SOD.png`
    (pixel truth); the JSON's stem keeps several reports in one folder apart."""
    stem, _ = os.path.splitext(output)
    return {(src, c): f"{stem}_confusion_{'truth_' if src == 'truth' else ''}{c}.png"
            for src in ("autoice", "truth") for c in CLASS_TRUTH}


def check_outputs(output, overwrite):
    """Refuse existing report files unless `overwrite` (call before the work)."""
    for p in (*report_paths(output), *confusion_paths(output).values()):
        io_utils.refuse_existing(p, overwrite)


def write_confusions(result, output):
    """Draw the row-normalised confusion matrices of `result` (ice-chart models); returns the paths."""
    written = []
    sources = {"autoice": (result.get("autoice") or {}).get("confusion", {}), "truth": result.get("truth_confusion", {})}
    for (src, chart), path in confusion_paths(output).items():
        if chart in sources[src]:
            conf = sources[src][chart]
            against = "AutoICE " + result["autoice"]["reference"] if src == "autoice" else "pixel truth"
            viz.save_confusion_matrix(conf["counts"], conf["classes"], path, f"{chart} against {against}")
            written.append(path)
    return written


def write_report(result, output, overwrite=False, title=None):
    """Write the JSON and its Markdown table atomically; returns the Markdown text."""
    check_outputs(output, overwrite)
    json_path, md_path = report_paths(output)
    text = markdown_table(result, title=title)
    io_utils.write_json(json_path, result)
    with io_utils.atomic_path(md_path) as tmp:
        with open(tmp, "w") as f:
            f.write(text)
    write_confusions(result, output)
    return text
