"""CaFFe evaluation of glacier zone predictions (`python -m tfseaice.evaluate --task=glacier_zones`).

Scores a zone model (or a folder of prediction PNGs) on one split of a
CaFFe-layout data root with the CaFFe benchmark's metrics
(tfseaice.evaluation.caffe_metrics, docs/caffe_metrics.md): per-image zone IoU averaged
over images, and the mean distance error of the calving front in metres.

Outputs, for `output` = `DIR/zones.json` (each refused when it exists, unless `overwrite`):

* `zones.json`: miou, iou per class, mde_m, images_without_front, num_images,
  zone_classes, glaciers {name: {miou, mde_m, n, images_without_front}}, images
  {name: {miou, iou, mde_m}}, settings.
* `zones_panel.png`: SAR | true zones | predicted zones with both fronts, a few images.
* with a model: `zones_predictions/NAME_zones.png` (CaFFe values 0/64/127/254),
  written through a temporary folder renamed at the end.
"""

import os

import numpy as np
import tensorflow as tf

from tfseaice import io_utils
from tfseaice.data import glacier
from tfseaice.errors import InputError
from tfseaice.evaluation import caffe_metrics, glacier_viz
from tfseaice.serving.glacier_images import TILE, tiled_apply
from tfseaice.serving.loading import load_trained

TASK = "glacier_zones"
PANEL_IMAGES = 3


# ------------------------------------------------------------------ model
def zone_classes_of(meta, source="task.json"):
    """Scored zone classes of a model's task.json: 2 when its config says zone_classes 2, else 3.

    Read defensively: the value may sit in config or config.extra; absent means
    the 4-class zones (3 zone classes + no data).
    """
    config = meta.get("config") or {}
    value = config.get("zone_classes")
    if value is None:
        value = (config.get("extra") or {}).get("zone_classes")
    return 3 if value is None else caffe_metrics.check_zone_classes(value, source)


def model_tile(meta):
    """Inference tile: the model's training patch size (256 when unknown)."""
    size = int((meta.get("dataset_info") or {}).get("patch_size") or TILE)
    return size if size >= 16 and size % 16 == 0 else TILE


def zone_predictor(model, tile=TILE, batch_size=8, source="model"):
    """Function uint8 SAR [H, W] (any size) -> class map uint8 [H, W]: tiled softmax, blended, argmax.

    The model gives one logit per class index (no data, rock, glacier, ocean), also when
    trained with 2 zone classes (rock relabelled glacier, its logit unused).
    """
    if model.output_shape[-1] != glacier.NUM_CLASSES:
        raise InputError(source, f"gives {model.output_shape[-1]} class logits; the zone evaluation "
                                     f"expects {glacier.NUM_CLASSES} ({', '.join(glacier.CLASS_NAMES)})")

    @tf.function(reduce_retracing=True)
    def probabilities(x):
        return tf.nn.softmax(model(x, training=False), axis=-1)

    def predict(sar):
        x = np.asarray(sar, np.float32)[..., None] / 255.0
        probs = tiled_apply(lambda t: probabilities(tf.constant(t, tf.float32)).numpy(), x, tile, batch_size)
        return np.argmax(probs, axis=-1).astype(np.uint8)

    return predict


# ------------------------------------------------------------------ paths
def output_paths(output, predictions_out=None):
    """{json, panel, predictions}: the panel and predictions folder sit beside the JSON, named after it."""
    stem, _ = os.path.splitext(output)
    return {"json": output, "panel": stem + "_panel.png",
            "predictions": predictions_out or stem + "_predictions"}


def check_outputs(paths, overwrite, with_predictions=True):
    """Refuse existing outputs unless `overwrite` (call before the work)."""
    for key in ("json", "panel") + (("predictions",) if with_predictions else ()):
        io_utils.refuse_existing(paths[key], overwrite)


def prediction_path(predictions_dir, name):
    return os.path.join(predictions_dir, name + glacier.ZONES_SUFFIX)


def _front_dir(data_root, split):
    d = os.path.join(data_root, "fronts", split)
    return d if os.path.isdir(d) else None


def check_inputs(data_root, split, predictions_dir=None):
    """Names of the split, checked before any work: CaFFe names, front files, prediction files."""
    pairs = glacier.list_pairs(data_root, split)
    if not pairs:
        raise InputError(os.path.join(data_root, "sar_images", split), "holds no image")
    fronts = _front_dir(data_root, split)
    for name, image_path, _ in pairs:
        caffe_metrics.parse_name(image_path)
        if fronts and not os.path.isfile(os.path.join(fronts, name + glacier.FRONT_SUFFIX)):
            raise InputError(os.path.join(fronts, name + glacier.FRONT_SUFFIX),
                             "front file missing (fronts/ has this split, so every image needs one)")
        if predictions_dir and not os.path.isfile(prediction_path(predictions_dir, name)):
            raise InputError(prediction_path(predictions_dir, name), f"prediction missing for image {name}")
    return [name for name, _, _ in pairs]


def read_front(data_root, split, name, shape):
    """True front (bool) from fronts/{split}/NAME_front.png, or None when the data has no fronts."""
    fronts = _front_dir(data_root, split)
    if not fronts:
        return None
    path = os.path.join(fronts, name + glacier.FRONT_SUFFIX)
    front = glacier.read_sar_png(path) > 0
    if front.shape != shape:
        raise InputError(path, f"front is {front.shape[0]}x{front.shape[1]} (HxW) but the image is "
                               f"{shape[0]}x{shape[1]}")
    return front


def read_prediction(predictions_dir, name, shape):
    """Predicted class map from NAME_zones.png (values 0/64/127/254), checked against the image size."""
    path = prediction_path(predictions_dir, name)
    if not os.path.isfile(path):
        raise InputError(path, f"prediction missing for image {name}")
    pred = glacier.read_zones_png(path)
    if pred.shape != shape:
        raise InputError(path, f"prediction is {pred.shape[0]}x{pred.shape[1]} (HxW) but the image is "
                               f"{shape[0]}x{shape[1]}")
    return pred


# ------------------------------------------------------------------ evaluation
def _image_row(row):
    d = row["distances_m"]
    return {"miou": row["miou"], "iou": row["iou"], "mde_m": None if d is None else float(np.mean(d)),
            "resolution_m": row["resolution_m"]}


def _score_split(data_root, split, names, predict, zone_classes, predictions_dir, panel_images):
    """Score every image; `predict(img)` or the PNG in `predictions_dir` gives its class map."""
    rows, panels = [], []
    for name in names:
        img = glacier.read_image(data_root, split, name)
        pred = predict(img) if predict else read_prediction(predictions_dir, name, img.classes.shape)
        true_front = read_front(data_root, split, name, img.classes.shape)
        row = caffe_metrics.score_image(pred, img.classes, true_front, img.image_path, zone_classes)
        rows.append(row)
        if len(panels) < panel_images:
            res = row["resolution_m"]
            panels.append({"name": name, "sar": img.sar, "true": img.classes, "pred": pred,
                           "true_front": true_front if true_front is not None
                           else caffe_metrics.front_from_zones(img.classes, res),
                           "pred_front": caffe_metrics.front_from_zones(pred, res),
                           "miou": row["miou"], "mde_m": _image_row(row)["mde_m"]})
    return rows, panels


def evaluate(data_root, split, output, model_dir=None, predictions_dir=None, predictions_out=None,
             weights="best", batch_size=8, overwrite=False, zone_classes=None, panel_images=PANEL_IMAGES):
    """Score a zone model (`model_dir`) or existing predictions (`predictions_dir`); write the outputs.

    `zone_classes`: 2 or 3 scored zone classes; None = the model's (task.json),
    3 for a predictions folder. Returns the zones.json dict.
    """
    if bool(model_dir) == bool(predictions_dir):
        raise InputError("--model_dir/--predictions_dir", "give exactly one of them")
    paths = output_paths(output, predictions_out)
    check_outputs(paths, overwrite, with_predictions=bool(model_dir))
    if predictions_dir and not os.path.isdir(predictions_dir):
        raise InputError(predictions_dir, "predictions folder not found")
    names = check_inputs(data_root, split, predictions_dir)
    settings = {"data_root": os.path.abspath(data_root), "split": split,
                "true_fronts": "fronts/ files" if _front_dir(data_root, split) else "extracted from the true zones",
                "front_min_length_m": caffe_metrics.FRONT_MIN_LENGTH_M}
    if model_dir:
        model, meta = load_trained(model_dir, weights, expect_task=TASK)
        model_zones = zone_classes_of(meta, os.path.join(model_dir, "task.json"))
        zone_classes = caffe_metrics.check_zone_classes(zone_classes or model_zones, "--zone_classes")
        tile = model_tile(meta)
        predictor = zone_predictor(model, tile, batch_size, source=model_dir)
        settings.update(model_dir=os.path.abspath(model_dir), weights=weights, tile=tile,
                        predictions=os.path.abspath(paths["predictions"]))
        with io_utils.atomic_path(paths["predictions"]) as tmp:
            os.makedirs(tmp)

            def predict(img):
                pred = predictor(img.sar)
                glacier.write_png(prediction_path(tmp, img.name), glacier.classes_to_zones(pred))
                return pred

            rows, panels = _score_split(data_root, split, names, predict, zone_classes, None, panel_images)
    else:
        zone_classes = caffe_metrics.check_zone_classes(zone_classes or 3, "--zone_classes")
        settings.update(predictions_dir=os.path.abspath(predictions_dir))
        rows, panels = _score_split(data_root, split, names, None, zone_classes, predictions_dir, panel_images)
    result = caffe_metrics.summarize(rows, zone_classes)
    result["images"] = {r["name"]: _image_row(r) for r in rows}
    result["settings"] = settings
    if panels:
        glacier_viz.save_zone_fronts_panel(panels, paths["panel"], zone_classes=zone_classes)
    io_utils.write_json(paths["json"], result)
    return result


def summary_text(result):
    """A few lines for the terminal."""
    def fmt(v, spec):
        return "n/a" if v is None else format(v, spec)

    ious = ", ".join(f"{c} {fmt(v, '.3f')}" for c, v in result["iou"].items())
    lines = [f"CaFFe zones ({result['zone_classes']} zone classes), {result['num_images']} images: "
             f"mIoU {fmt(result['miou'], '.4f')} ({ious}); MDE {fmt(result['mde_m'], '.1f')} m; "
             f"{result['images_without_front']} images without front"]
    for g, r in result["glaciers"].items():
        lines.append(f"  {g}: mIoU {fmt(r['miou'], '.4f')}, MDE {fmt(r['mde_m'], '.1f')} m, n {r['n']}")
    return "\n".join(lines)
