"""Cut a Scene into training patches with patch-local polygon ids and target tables."""

import dataclasses

import numpy as np

from tfseaice.errors import InputError


@dataclasses.dataclass
class Patch:
    sar: np.ndarray                  # float32 [P, P, C]
    polygon_ids: np.ndarray          # int32 [P, P], 0..K-1, -1 = not usable
    polygon_sic: np.ndarray          # float32 [K]
    polygon_global_id: np.ndarray    # int64 [K]
    polygon_pixel_count: np.ndarray  # int64 [K]
    offset: tuple                    # (row, col) on the scene grid
    sic_truth: np.ndarray | None     # float32 [P, P]
    polygon_sod: np.ndarray = None         # float32 [K, 6] SOD composition, NaN row = unlabelled
    polygon_floe: np.ndarray = None        # float32 [K, 7] FLOE composition
    polygon_sod_class: np.ndarray = None   # uint8 [K] dominant SOD class, 255 = unlabelled
    polygon_floe_class: np.ndarray = None  # uint8 [K]
    sod_truth: np.ndarray | None = None    # uint8 [P, P], 255 = no truth
    floe_truth: np.ndarray | None = None   # uint8 [P, P]

    def record_tables(self):
        """The SOD/FLOE keyword arguments of `records.encode_sic` for this patch."""
        return {k: getattr(self, k) for k in ("polygon_sod", "polygon_floe", "polygon_sod_class",
                                               "polygon_floe_class", "sod_truth", "floe_truth")}


def patch_origins(length, patch_size, stride):
    """Top-left offsets of a regular grid of patches inside `length` pixels."""
    if length < patch_size:
        return []
    return list(range(0, length - patch_size + 1, stride))


def local_polygons(chart_ids, usable, table):
    """Renumber the usable chart ids of one patch to 0..K-1 (-1 elsewhere)."""
    ids = np.where(usable, chart_ids, -1)
    present, inverse, counts = np.unique(ids, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(ids.shape)
    keep = present >= 0
    if keep.any():
        first = np.argmax(keep)  # -1 sorts first when present
        local = np.where(ids >= 0, inverse - first, -1).astype(np.int32)
    else:
        local = np.full(ids.shape, -1, np.int32)
    global_ids = present[keep].astype(np.int64)
    return local, global_ids, table.lookup(global_ids).astype(np.float32), counts[keep].astype(np.int64)


def iter_patches(scene, patch_size, stride, stats=None):
    """Yield the Patches of `scene` that hold at least one labelled polygon.

    `stats` (a dict) receives counts: kept, dropped_unlabelled.
    """
    if not scene.has_chart:
        raise InputError(scene.path, "has no ice chart (no polygon_icechart/polygon_codes; a ready-to-train file "
                                     "needs its raw twin via --raw_glob): nothing to train on")
    h, w = scene.shape
    if h < patch_size or w < patch_size:
        raise InputError(scene.path, f"scene is {h}x{w} pixels after downsampling, smaller than one {patch_size}x{patch_size} patch")
    stats = {} if stats is None else stats
    stats.setdefault("kept", 0)
    stats.setdefault("dropped_unlabelled", 0)
    usable_all = scene.valid_mask()
    for r in patch_origins(h, patch_size, stride):
        for c in patch_origins(w, patch_size, stride):
            sl = (slice(r, r + patch_size), slice(c, c + patch_size))
            local, gids, sic, counts = local_polygons(scene.chart_ids[sl], usable_all[sl], scene.table)
            if len(gids) == 0:
                stats["dropped_unlabelled"] += 1
                continue
            stats["kept"] += 1
            rows = scene.table.rows(gids)  # every id of a patch is in the table (valid_mask needs its SIC)
            truth = {k: None if getattr(scene, k) is None else getattr(scene, k)[sl]
                     for k in ("sic_truth", "sod_truth", "floe_truth")}
            yield Patch(sar=scene.sar[sl], polygon_ids=local, polygon_sic=sic, polygon_global_id=gids,
                        polygon_pixel_count=counts, offset=(r, c), polygon_sod=scene.table.sod_composition[rows],
                        polygon_floe=scene.table.floe_composition[rows], polygon_sod_class=scene.table.sod_class[rows],
                        polygon_floe_class=scene.table.floe_class[rows], **truth)
