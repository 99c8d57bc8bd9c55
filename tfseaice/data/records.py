"""The one TFRecord schema of tfseaice: encoders (numpy) and decoders (tf graph).

SIC examples (schema version SCHEMA_VERSION) hold one patch:
  sar                 float32 [H, W, C] raw little-endian bytes (file units, NaN allowed)
  polygon_ids         int32 [H, W] patch-local ids 0..K-1, -1 = not usable
  polygon_sic         float32 [K] charted SIC in [0, 1]
  polygon_global_id   int64 [K] the chart's own poly_id
  polygon_pixel_count int64 [K] usable pixels of each polygon in this patch
  polygon_sod         float32 [K * 6] SOD composition per polygon (NaN row = unlabelled)   (v2)
  polygon_floe        float32 [K * 7] FLOE composition per polygon                          (v2)
  polygon_sod_class   int64 [K] AutoICE dominant SOD class, 255 = unlabelled                (v2)
  polygon_floe_class  int64 [K] AutoICE dominant FLOE class                                 (v2)
  sic_truth           float32 [H, W] optional per-pixel truth (sample scenes)
  sod_truth, floe_truth  uint8 [H, W] optional per-pixel class truth, 255 = none            (v2)
  scene_id, patch_offset [row, col] on the (downsampled) scene grid
Glacier examples hold a SAR patch (uint8), its zone mask as class indices
(0 no data, 1 rock, 2 glacier, 3 ocean) and optional extra float32 channels;
they did not change in version 2, so version-1 glacier folders stay readable.
"""

import numpy as np
import tensorflow as tf

from tfseaice.data.egg_codes import NUM_FLOE, NUM_SOD, UNLABELLED

SCHEMA_VERSION = 2
READABLE_VERSIONS = {"sic": (2,), "glacier": (1, 2)}  # per dataset kind
CLASS_FILL = UNLABELLED


def _bytes(value):
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _ints(values):
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(v) for v in values]))


def _floats(values):
    return tf.train.Feature(float_list=tf.train.FloatList(value=[float(v) for v in values]))


def _class_raster(name, a, hw):
    a = np.asarray(a)
    if a.shape != hw:
        raise ValueError(f"{name} shape {a.shape} != sar {hw}")
    if a.size and (a.min() < 0 or a.max() > 255):
        raise ValueError(f"{name} must hold classes 0..255")
    return _bytes(a.astype(np.uint8).tobytes())


def encode_sic(sar, polygon_ids, polygon_sic, polygon_global_id, polygon_pixel_count,
               scene_id, patch_offset, sic_truth=None, *, polygon_sod=None, polygon_floe=None,
               polygon_sod_class=None, polygon_floe_class=None, sod_truth=None, floe_truth=None):
    """Serialize one SIC patch. Arrays are numpy; returns bytes.

    SOD/FLOE tables not given are written unlabelled (NaN rows, class 255);
    `sod_truth`/`floe_truth` only when given.
    """
    sar = np.asarray(sar, dtype="<f4")
    if sar.ndim != 3:
        raise ValueError(f"sar must be [H, W, C], got shape {sar.shape}")
    h, w, c = sar.shape
    ids = np.asarray(polygon_ids, dtype="<i4")
    if ids.shape != (h, w):
        raise ValueError(f"polygon_ids shape {ids.shape} != sar {(h, w)}")
    k = len(polygon_sic)
    if not (len(polygon_global_id) == len(polygon_pixel_count) == k):
        raise ValueError("polygon table columns differ in length")
    if ids.size and ids.max(initial=-1) >= k:
        raise ValueError(f"polygon_ids reference id {ids.max()} but the table has {k} rows")
    sod = np.full((k, NUM_SOD), np.nan, np.float32) if polygon_sod is None else np.asarray(polygon_sod, np.float32)
    floe = np.full((k, NUM_FLOE), np.nan, np.float32) if polygon_floe is None else np.asarray(polygon_floe, np.float32)
    sod_cls = np.full(k, CLASS_FILL) if polygon_sod_class is None else np.asarray(polygon_sod_class)
    floe_cls = np.full(k, CLASS_FILL) if polygon_floe_class is None else np.asarray(polygon_floe_class)
    if sod.shape != (k, NUM_SOD) or floe.shape != (k, NUM_FLOE) or sod_cls.shape != (k,) or floe_cls.shape != (k,):
        raise ValueError(f"SOD/FLOE tables must be [{k}, {NUM_SOD}], [{k}, {NUM_FLOE}], [{k}], [{k}]; got "
                         f"{sod.shape}, {floe.shape}, {sod_cls.shape}, {floe_cls.shape}")
    feature = {
        "sar": _bytes(sar.tobytes()),
        "shape": _ints([h, w, c]),
        "polygon_ids": _bytes(ids.tobytes()),
        "polygon_sic": _floats(polygon_sic),
        "polygon_global_id": _ints(polygon_global_id),
        "polygon_pixel_count": _ints(polygon_pixel_count),
        "polygon_sod": _floats(sod.ravel()),
        "polygon_floe": _floats(floe.ravel()),
        "polygon_sod_class": _ints(sod_cls),
        "polygon_floe_class": _ints(floe_cls),
        "scene_id": _bytes(str(scene_id).encode()),
        "patch_offset": _ints(patch_offset),
        "schema_version": _ints([SCHEMA_VERSION]),
    }
    if sic_truth is not None:
        truth = np.asarray(sic_truth, dtype="<f4")
        if truth.shape != (h, w):
            raise ValueError(f"sic_truth shape {truth.shape} != sar {(h, w)}")
        feature["sic_truth"] = _bytes(truth.tobytes())
    for name, raster in (("sod_truth", sod_truth), ("floe_truth", floe_truth)):
        if raster is not None:
            feature[name] = _class_raster(name, raster, (h, w))
    example = tf.train.Example(features=tf.train.Features(feature=feature))
    return example.SerializeToString(deterministic=True)


_SIC_SPEC = {
    "sar": tf.io.FixedLenFeature([], tf.string),
    "shape": tf.io.FixedLenFeature([3], tf.int64),
    "polygon_ids": tf.io.FixedLenFeature([], tf.string),
    "polygon_sic": tf.io.VarLenFeature(tf.float32),
    "polygon_global_id": tf.io.VarLenFeature(tf.int64),
    "polygon_pixel_count": tf.io.VarLenFeature(tf.int64),
    "scene_id": tf.io.FixedLenFeature([], tf.string),
    "patch_offset": tf.io.FixedLenFeature([2], tf.int64),
    "schema_version": tf.io.FixedLenFeature([1], tf.int64),
    "sic_truth": tf.io.FixedLenFeature([], tf.string, default_value=b""),
    "polygon_sod": tf.io.VarLenFeature(tf.float32),
    "polygon_floe": tf.io.VarLenFeature(tf.float32),
    "polygon_sod_class": tf.io.VarLenFeature(tf.int64),
    "polygon_floe_class": tf.io.VarLenFeature(tf.int64),
    "sod_truth": tf.io.FixedLenFeature([], tf.string, default_value=b""),
    "floe_truth": tf.io.FixedLenFeature([], tf.string, default_value=b""),
}


def _decode_classes(raw, h, w):
    """A uint8 class raster as int32 [h, w]; CLASS_FILL everywhere when the example has none."""
    return tf.cond(tf.strings.length(raw) > 0,
                   lambda: tf.cast(tf.reshape(tf.io.decode_raw(raw, tf.uint8), [h, w]), tf.int32),
                   lambda: tf.fill([h, w], tf.constant(CLASS_FILL, tf.int32)))


def decode_sic(serialized):
    """Parse one serialized SIC example into tensors (graph-safe).

    Returns a dict: sar [H,W,C] float32, polygon_ids [H,W] int32,
    polygon_sic [K] float32, polygon_global_id [K] int64,
    polygon_pixel_count [K] int64, polygon_count scalar int32, scene_id string,
    patch_offset [2] int64, sic_truth [H,W] float32 (NaN where the scene has no
    truth) and has_truth bool; polygon_sod [K,6] and polygon_floe [K,7] float32
    (NaN rows unlabelled), polygon_sod_class and polygon_floe_class [K] int32
    (255 unlabelled), sod_truth and floe_truth [H,W] int32 (255 = no truth).
    """
    ex = tf.io.parse_single_example(serialized, _SIC_SPEC)
    shape = tf.cast(ex["shape"], tf.int32)
    h, w = shape[0], shape[1]
    sar = tf.reshape(tf.io.decode_raw(ex["sar"], tf.float32, little_endian=True), shape)
    ids = tf.reshape(tf.io.decode_raw(ex["polygon_ids"], tf.int32, little_endian=True), [h, w])
    has_truth = tf.strings.length(ex["sic_truth"]) > 0
    truth = tf.cond(
        has_truth,
        lambda: tf.reshape(tf.io.decode_raw(ex["sic_truth"], tf.float32, little_endian=True), [h, w]),
        lambda: tf.fill([h, w], tf.constant(float("nan"), tf.float32)),
    )
    polygon_sic = tf.sparse.to_dense(ex["polygon_sic"])
    return {
        "sar": sar,
        "polygon_ids": ids,
        "polygon_sic": polygon_sic,
        "polygon_global_id": tf.sparse.to_dense(ex["polygon_global_id"]),
        "polygon_pixel_count": tf.sparse.to_dense(ex["polygon_pixel_count"]),
        "polygon_count": tf.size(polygon_sic, out_type=tf.int32),
        "scene_id": ex["scene_id"],
        "patch_offset": ex["patch_offset"],
        "sic_truth": truth,
        "has_truth": has_truth,
        "polygon_sod": tf.reshape(tf.sparse.to_dense(ex["polygon_sod"]), [-1, NUM_SOD]),
        "polygon_floe": tf.reshape(tf.sparse.to_dense(ex["polygon_floe"]), [-1, NUM_FLOE]),
        "polygon_sod_class": tf.cast(tf.sparse.to_dense(ex["polygon_sod_class"]), tf.int32),
        "polygon_floe_class": tf.cast(tf.sparse.to_dense(ex["polygon_floe_class"]), tf.int32),
        "sod_truth": _decode_classes(ex["sod_truth"], h, w),
        "floe_truth": _decode_classes(ex["floe_truth"], h, w),
    }


def encode_glacier(sar, mask, name, patch_offset, extra=None, extra_names=()):
    """Serialize one glacier patch: sar uint8 [H,W], mask class indices uint8 [H,W]."""
    sar = np.asarray(sar)
    mask = np.asarray(mask)
    if sar.dtype != np.uint8 or mask.dtype != np.uint8:
        raise ValueError("glacier sar and mask must be uint8")
    if sar.shape != mask.shape or sar.ndim != 2:
        raise ValueError(f"sar {sar.shape} and mask {mask.shape} must be equal 2-D shapes")
    h, w = sar.shape
    feature = {
        "sar": _bytes(sar.tobytes()),
        "mask": _bytes(mask.tobytes()),
        "shape": _ints([h, w]),
        "name": _bytes(str(name).encode()),
        "patch_offset": _ints(patch_offset),
        "schema_version": _ints([SCHEMA_VERSION]),
    }
    if extra is not None:
        extra = np.asarray(extra, dtype="<f4")
        if extra.shape[:2] != (h, w) or extra.ndim != 3 or extra.shape[2] != len(extra_names):
            raise ValueError("extra must be [H, W, E] with one name per channel")
        feature["extra"] = _bytes(extra.tobytes())
        feature["extra_names"] = tf.train.Feature(
            bytes_list=tf.train.BytesList(value=[n.encode() for n in extra_names]))
    example = tf.train.Example(features=tf.train.Features(feature=feature))
    return example.SerializeToString(deterministic=True)


_GLACIER_SPEC = {
    "sar": tf.io.FixedLenFeature([], tf.string),
    "mask": tf.io.FixedLenFeature([], tf.string),
    "shape": tf.io.FixedLenFeature([2], tf.int64),
    "name": tf.io.FixedLenFeature([], tf.string),
    "patch_offset": tf.io.FixedLenFeature([2], tf.int64),
    "schema_version": tf.io.FixedLenFeature([1], tf.int64),
    "extra": tf.io.FixedLenFeature([], tf.string, default_value=b""),
}


def decode_glacier(serialized, num_extra=0):
    """Parse one glacier example: sar [H,W,1] float32 in [0,1], mask [H,W] int32 classes.

    `extra` [H,W,num_extra] float32 is returned when num_extra > 0 (from
    dataset_info.json); `name` and `patch_offset` identify the patch.
    """
    ex = tf.io.parse_single_example(serialized, _GLACIER_SPEC)
    shape = tf.cast(ex["shape"], tf.int32)
    sar = tf.reshape(tf.io.decode_raw(ex["sar"], tf.uint8), [shape[0], shape[1], 1])
    mask = tf.reshape(tf.io.decode_raw(ex["mask"], tf.uint8), [shape[0], shape[1]])
    out = {
        "sar": tf.cast(sar, tf.float32) / 255.0,
        "mask": tf.cast(mask, tf.int32),
        "name": ex["name"],
        "patch_offset": ex["patch_offset"],
    }
    if num_extra:
        extra = tf.io.decode_raw(ex["extra"], tf.float32, little_endian=True)
        out["extra"] = tf.reshape(extra, [shape[0], shape[1], num_extra])
    return out
