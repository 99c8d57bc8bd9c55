"""SIC products of a whole scene: pixel SIC, ice/water (paper Fig. 2f), polygon SIC (Fig. 2g);
SOD and FLOE class maps for an ice-chart model.

`predict_products(model, scene)` runs the tiled inference of
`tfseaice.serving.scene_inference` and derives every product from its pixel-SIC
map: `ice_water(pred)` thresholds it, `polygon_map(pred, chart_ids)` gives every
chart polygon the mean prediction of its usable pixels.
"""

import dataclasses

import numpy as np

from tfseaice.serving.scene_inference import DEFAULT_BATCH_SIZE, DEFAULT_TILE, ROW_CHUNK, predict_scene_charts

ICE_THRESHOLD = 0.5
ICE_WATER_FILL = 255


def ice_water(pred, threshold=ICE_THRESHOLD):
    """uint8 [H, W]: 1 = ice (SIC >= threshold), 0 = water, 255 = no data."""
    pred = np.asarray(pred)
    out = np.full(pred.shape, ICE_WATER_FILL, np.uint8)
    finite = np.isfinite(pred)
    out[finite] = (pred[finite] >= threshold).astype(np.uint8)
    return out


@dataclasses.dataclass
class PolygonStats:
    """Per-polygon mean prediction over the polygon's usable pixels."""

    ids: np.ndarray     # int64 [P] chart polygon ids with at least one usable pixel
    mean: np.ndarray    # float64 [P] mean prediction
    count: np.ndarray   # int64 [P] usable pixels

    def as_dict(self):
        return {"id": self.ids.tolist(), "mean_pred": self.mean.tolist(), "count": self.count.tolist()}

    def lookup(self, ids):
        """Mean prediction of each id in `ids` (NaN for ids not in the table)."""
        ids = np.asarray(ids)
        pos = np.clip(np.searchsorted(self.ids, ids), 0, max(len(self.ids) - 1, 0))
        if len(self.ids) == 0:
            return np.full(ids.shape, np.nan)
        return np.where(self.ids[pos] == ids, self.mean[pos], np.nan)


def polygon_means(pred, chart_ids, usable=None, rows_per_chunk=ROW_CHUNK):
    """PolygonStats of `pred` [H,W] over polygons `chart_ids` [H,W] (-1 = none).

    A pixel is usable when its id is >= 0, its prediction is finite and
    `usable` (optional [H, W] bool) is True there. Streams over row chunks.
    """
    pred = np.asarray(pred)
    chart_ids = np.asarray(chart_ids)
    if pred.shape != chart_ids.shape:
        raise ValueError(f"pred {pred.shape} and chart_ids {chart_ids.shape} differ in shape")
    sums, counts = {}, {}
    for r in range(0, pred.shape[0], rows_per_chunk):
        sl = slice(r, r + rows_per_chunk)
        ids, p = chart_ids[sl], pred[sl]
        keep = (ids >= 0) & np.isfinite(p)
        if usable is not None:
            keep &= np.asarray(usable[sl], bool)
        if not keep.any():
            continue
        uniq, inv = np.unique(ids[keep], return_inverse=True)
        s = np.bincount(inv, weights=p[keep].astype(np.float64), minlength=len(uniq))
        n = np.bincount(inv, minlength=len(uniq))
        for k, v in enumerate(uniq.tolist()):
            sums[v] = sums.get(v, 0.0) + s[k]
            counts[v] = counts.get(v, 0) + int(n[k])
    ids = np.array(sorted(sums), np.int64)
    count = np.array([counts[i] for i in ids.tolist()], np.int64)
    mean = np.array([sums[i] for i in ids.tolist()], np.float64) / np.maximum(count, 1)
    return PolygonStats(ids=ids, mean=mean, count=count)


def polygon_map(pred, chart_ids, usable=None, rows_per_chunk=ROW_CHUNK):
    """Polygon-SIC map (paper Fig. 2g) and the per-polygon table.

    Returns (map float32 [H, W] with each polygon's mean prediction, NaN where
    the pixel has no polygon or its polygon has no usable pixel; PolygonStats).
    Pixels of a polygon that were not usable themselves (e.g. NaN SAR) still
    show their polygon's value.
    """
    stats = polygon_means(pred, chart_ids, usable, rows_per_chunk)
    chart_ids = np.asarray(chart_ids)
    out = np.full(chart_ids.shape, np.nan, np.float32)
    for r in range(0, chart_ids.shape[0], rows_per_chunk):
        sl = slice(r, r + rows_per_chunk)
        out[sl] = stats.lookup(chart_ids[sl])
    return out, stats


CHART_PRODUCTS = ("polygon_sic", "chart_sic", "polygon_id")   # only for a scene with a chart


CLASS_PRODUCTS = ("sod", "floe", "sod_truth", "floe_truth")   # uint8 classes, CLASS_FILL = none


def predict_products(model, scene, tile=DEFAULT_TILE, overlap=64, batch_size=DEFAULT_BATCH_SIZE, threshold=0.5):
    """dict of [H, W] arrays: sic, ice_water; sod, floe (uint8 classes, 255 = no data) for an
    ice-chart model; polygon_sic, chart_sic, polygon_id when the scene has a chart; sic_truth
    when it carries one, and sod_truth/floe_truth too for an ice-chart model."""
    heads = predict_scene_charts(model, scene.sar, tile=tile, overlap=overlap, batch_size=batch_size)
    sic = heads.pop("sic")
    out = {"sic": sic, "ice_water": ice_water(sic, threshold), **heads}
    if scene.has_chart:
        out["polygon_sic"], _ = polygon_map(sic, scene.chart_ids)
        out["chart_sic"] = scene.chart_sic()
        out["polygon_id"] = np.where(scene.chart_ids >= 0, scene.chart_ids, -1).astype(np.int32)
    if scene.sic_truth is not None:
        out["sic_truth"] = scene.sic_truth.astype(np.float32)
    for head in ("sod", "floe"):   # class truth beside the model's classes (a SIC model's products stay as they were)
        if head in out and getattr(scene, f"{head}_truth", None) is not None:
            out[f"{head}_truth"] = np.asarray(getattr(scene, f"{head}_truth"), np.uint8)
    return out
