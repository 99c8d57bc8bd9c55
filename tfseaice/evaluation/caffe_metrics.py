"""The CaFFe benchmark's zone metrics in numpy/scipy: per-image zone IoU and calving-front distance error.

CaFFe (Gourmelon et al. 2022) scores a zone segmentation twice: the IoU of
the zone classes, per image and then averaged over images, and the mean
distance error (MDE) of the calving front that its post-processing extracts
from the zones. What is matched and where this module deliberately differs:
docs/caffe_metrics.md.

Class maps here hold the package's class indices (tfseaice.data.glacier:
0 no data, 1 rock, 2 glacier, 3 ocean incl. ice melange).
"""

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from tfseaice.data import glacier
from tfseaice.errors import InputError

ROCK, GLACIER, OCEAN = 1, 2, 3
# Zone classes scored: 3 (rock, glacier, ocean) or 2 (glacier incl. rock, ocean).
ZONE_CLASSES = {3: {"rock": ROCK, "glacier": GLACIER, "ocean": OCEAN},
                2: {"glacier": GLACIER, "ocean": OCEAN}}
FRONT_MIN_LENGTH_M = 750.0   # CaFFe drops front pieces of at most 750 m / resolution pixels
NAME_FIELDS = ("glacier", "date", "satellite", "resolution", "quality", "orbit")
_EIGHT = np.ones((3, 3), bool)   # 8-connectivity (skimage's connectivity=2)
_FOUR = ndimage.generate_binary_structure(2, 1)


# ------------------------------------------------------------------ names
def _stem(name):
    """File name or path -> acquisition name (no folder, .png, _zones/_front suffix)."""
    stem = str(name).replace("\\", "/").rsplit("/", 1)[-1]
    for suffix in (".png", ".PNG", glacier.ZONES_SUFFIX[:-4], glacier.FRONT_SUFFIX[:-4]):
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
    return stem


def parse_name(name):
    """`Glacier_Date_Satellite_Resolution_Quality_Orbit` -> dict of those fields (resolution: float m/pixel).

    As CaFFe, the resolution is the third field from the end and the glacier the first.
    A name that does not follow the pattern is an InputError naming it.
    """
    stem = _stem(name)
    parts = stem.split("_")
    if len(parts) < len(NAME_FIELDS) or not parts[0]:
        raise InputError(name, "name is not Glacier_Date_Satellite_Resolution_Quality_Orbit "
                               "(needed for the pixel size in metres)")
    try:
        resolution = float(parts[-3])
    except ValueError:
        resolution = float("nan")
    if not np.isfinite(resolution) or resolution <= 0:
        raise InputError(name, f"resolution field {parts[-3]!r} (4th of Glacier_Date_Satellite_Resolution_"
                               f"Quality_Orbit) is not a positive number of metres per pixel")
    return {"glacier": parts[0], "date": "_".join(parts[1:-4]), "satellite": parts[-4],
            "resolution": resolution, "quality": parts[-2], "orbit": parts[-1]}


def pixel_size_m(name):
    """Metres per pixel of an image, from its CaFFe file name."""
    return parse_name(name)["resolution"]


# ------------------------------------------------------------------ zone IoU
def check_zone_classes(zone_classes, source="zone_classes"):
    """2 or 3 scored zone classes; 4 (the class count incl. no data) means 3. InputError otherwise.

    The rule lives in `data.glacier.zone_count`, which `train`'s data options read too.
    """
    return glacier.zone_count(zone_classes, source)


def merge_rock(classes):
    """Class map with rock relabelled glacier (the 2-class zones: ocean vs glacier + rock)."""
    classes = np.array(classes, copy=True)
    classes[classes == ROCK] = GLACIER
    return classes


def zone_iou(pred, true, zone_classes=3):
    """{class name: IoU} of one image over the pixels whose *true* class is not no data.

    IoU_c = TP / (TP + FP + FN); a class absent from both truth and prediction
    (on those pixels) gets NaN. With zone_classes=2, rock is merged into glacier
    in both maps first.
    """
    pred, true = np.asarray(pred), np.asarray(true)
    if pred.shape != true.shape:
        raise ValueError(f"prediction {pred.shape} and truth {true.shape} differ in shape")
    zone_classes = check_zone_classes(zone_classes)
    if zone_classes == 2:
        pred, true = merge_rock(pred), merge_rock(true)
    valid = true != glacier.NO_DATA
    p, t = pred[valid], true[valid]
    out = {}
    for name, c in ZONE_CLASSES[zone_classes].items():
        pc, tc = p == c, t == c
        union = np.count_nonzero(pc | tc)
        out[name] = float(np.count_nonzero(pc & tc) / union) if union else float("nan")
    return out


def macro_iou(ious):
    """Mean of the non-NaN class IoUs of one image (NaN when all are NaN)."""
    vals = [v for v in ious.values() if not np.isnan(v)]
    return float(np.mean(vals)) if vals else float("nan")


# ------------------------------------------------------------------ fronts
def _largest(labels, n):
    """Label of the largest component (labels 1..n), or 0 when n == 0."""
    if n == 0:
        return 0
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    sizes[0] = 0
    return int(np.argmax(sizes))


def postprocess_zones(classes):
    """CaFFe's zone post-processing: one ocean, without holes.

    1. Holes in the ocean are filled: every 8-connected non-ocean region other
       than the largest one becomes ocean.
    2. Only the largest 8-connected ocean component stays ocean; the other
       ocean pixels become glacier (they no longer touch the front).
    """
    out = np.array(classes, copy=True)
    labels, n = ndimage.label(out != OCEAN, structure=_EIGHT)
    keep = _largest(labels, n)
    out[(labels > 0) & (labels != keep)] = OCEAN
    labels, n = ndimage.label(out == OCEAN, structure=_EIGHT)
    if n == 0:
        return out
    keep = _largest(labels, n)
    out[out == OCEAN] = GLACIER
    out[labels == keep] = OCEAN
    return out


def front_pixels(classes):
    """Ocean pixels with a glacier pixel among their 4 neighbours (outside the image counts as no data)."""
    classes = np.asarray(classes)
    near_glacier = ndimage.binary_dilation(classes == GLACIER, structure=_FOUR)
    return (classes == OCEAN) & near_glacier


def drop_short_pieces(front, max_pixels):
    """Front without its 8-connected pieces of at most `max_pixels` pixels."""
    labels, n = ndimage.label(front, structure=_EIGHT)
    if n == 0:
        return np.zeros_like(front, dtype=bool)
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    keep = sizes > max_pixels
    keep[0] = False
    return keep[labels]


def front_from_zones(classes, resolution_m, min_length_m=FRONT_MIN_LENGTH_M):
    """Calving front (bool [H, W]) of a zone class map by CaFFe's post-processing.

    Largest ocean component (holes filled), ocean pixels 4-adjacent to glacier,
    pieces of at most min_length_m / resolution_m pixels removed.
    """
    front = front_pixels(postprocess_zones(classes))
    return drop_short_pieces(front, float(min_length_m) / float(resolution_m))


def front_distances(pred_front, true_front):
    """Nearest-point distances in pixels, both directions, concatenated; None if either front is empty.

    For each predicted front pixel the distance to the nearest true one, and
    for each true front pixel the distance to the nearest predicted one.
    """
    p = np.argwhere(np.asarray(pred_front) > 0).astype(np.float64)
    t = np.argwhere(np.asarray(true_front) > 0).astype(np.float64)
    if len(p) == 0 or len(t) == 0:
        return None
    d_pt, _ = cKDTree(t).query(p)
    d_tp, _ = cKDTree(p).query(t)
    return np.concatenate([d_pt, d_tp])


# ------------------------------------------------------------------ summary
def score_image(pred, true, true_front, name, zone_classes=3, min_length_m=FRONT_MIN_LENGTH_M):
    """One image's row: iou {class: IoU}, miou, front distances in metres (None without both fronts).

    `pred`, `true`: class maps; `true_front`: bool [H, W], or None to extract it
    from `true` as for the prediction. The predicted front always comes from
    the unmerged prediction.
    """
    res = pixel_size_m(name)
    ious = zone_iou(pred, true, zone_classes)
    if true_front is None:
        true_front = front_from_zones(true, res, min_length_m)
    dist = front_distances(front_from_zones(pred, res, min_length_m), true_front)
    return {"name": _stem(name), "glacier": parse_name(name)["glacier"], "resolution_m": res,
            "iou": ious, "miou": macro_iou(ious),
            "distances_m": None if dist is None else dist * res}


def _nanmean(values):
    vals = [v for v in values if v is not None and not np.isnan(v)]
    return float(np.mean(vals)) if vals else None


def _pooled(rows):
    dists = [r["distances_m"] for r in rows if r["distances_m"] is not None]
    return float(np.mean(np.concatenate(dists))) if dists else None


def summarize(rows, zone_classes=3):
    """CaFFe summary of score_image rows: miou, iou per class, mde_m, images_without_front, num_images, glaciers.

    miou and each class IoU are means over the images where they are defined;
    mde_m is the mean of all images' distances pooled (None when no image has
    both fronts); per glacier: {miou, mde_m, n, images_without_front}.
    """
    zone_classes = check_zone_classes(zone_classes)
    out = {"miou": _nanmean(r["miou"] for r in rows),
           "iou": {c: _nanmean(r["iou"][c] for r in rows) for c in ZONE_CLASSES[zone_classes]},
           "mde_m": _pooled(rows),
           "images_without_front": sum(r["distances_m"] is None for r in rows),
           "num_images": len(rows), "zone_classes": zone_classes, "glaciers": {}}
    for g in sorted({r["glacier"] for r in rows}):
        sub = [r for r in rows if r["glacier"] == g]
        out["glaciers"][g] = {"miou": _nanmean(r["miou"] for r in sub), "mde_m": _pooled(sub), "n": len(sub),
                              "images_without_front": sum(r["distances_m"] is None for r in sub)}
    return out
