"""Schema version 2: SOD/FLOE tables and class truth through records, tf.data batches, augmentation
and the converter (the data layer)."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from data_prep.ai4arctic_to_tfrecord import convert
from tfseaice.data import ai4arctic, dataset_info, egg_codes, pipeline, records
from tfseaice.data.downsampling import block_majority
from tfseaice.data.patches import iter_patches
from tfseaice.errors import InputError
from tfseaice.simulate.scenes import make_scene, raw_file_name
from tfseaice.simulate.writers import write_scene

U = egg_codes.UNLABELLED


def _tables(k, rng):
    sod = rng.dirichlet(np.ones(6), k).astype(np.float32)
    floe = rng.dirichlet(np.ones(7), k).astype(np.float32)
    sod[0] = np.nan  # an unlabelled polygon
    return sod, floe, rng.integers(0, 6, k), np.r_[U, rng.integers(0, 7, k - 1)]


def _example(p, k, rng, truth=True, tables=True, scene="s"):
    sar = rng.normal(size=(p, p, 2)).astype(np.float32)
    ids = rng.integers(-1, k, (p, p)).astype(np.int32)
    sod, floe, sod_cls, floe_cls = _tables(k, rng)
    sod_t = rng.integers(0, 6, (p, p)).astype(np.uint8)
    sod_t[0, 0] = U
    floe_t = rng.integers(0, 7, (p, p)).astype(np.uint8)
    kw = dict(polygon_sod=sod, polygon_floe=floe, polygon_sod_class=sod_cls, polygon_floe_class=floe_cls) if tables else {}
    if truth:
        kw.update(sod_truth=sod_t, floe_truth=floe_t)
    rec = records.encode_sic(sar, ids, np.linspace(0, 1, k), np.arange(k) + 100, np.ones(k), scene, (0, 0), **kw)
    return rec, dict(sar=sar, ids=ids, sod=sod, floe=floe, sod_cls=sod_cls, floe_cls=floe_cls, sod_t=sod_t, floe_t=floe_t)


def test_v2_round_trip_with_and_without_truth():
    rng = np.random.default_rng(0)
    rec, want = _example(8, 3, rng)
    ex = {k: v.numpy() for k, v in records.decode_sic(rec).items()}
    np.testing.assert_array_equal(ex["polygon_sod"], want["sod"])  # NaN row too
    np.testing.assert_array_equal(ex["polygon_floe"], want["floe"])
    assert ex["polygon_sod"].shape == (3, 6) and ex["polygon_floe"].shape == (3, 7)
    assert ex["polygon_sod_class"].tolist() == want["sod_cls"].tolist()
    assert ex["polygon_floe_class"].tolist() == want["floe_cls"].tolist() and ex["polygon_floe_class"].dtype == np.int32
    np.testing.assert_array_equal(ex["sod_truth"], want["sod_t"])
    np.testing.assert_array_equal(ex["floe_truth"], want["floe_t"])
    assert ex["sod_truth"].dtype == np.int32
    # No truth, no tables given: truth 255 everywhere, tables unlabelled (NaN rows, class 255).
    rec, _ = _example(8, 2, rng, truth=False, tables=False)
    ex = {k: v.numpy() for k, v in records.decode_sic(rec).items()}
    assert (ex["sod_truth"] == U).all() and (ex["floe_truth"] == U).all() and ex["sod_truth"].shape == (8, 8)
    assert np.isnan(ex["polygon_sod"]).all() and ex["polygon_sod"].shape == (2, 6)
    assert ex["polygon_sod_class"].tolist() == [U, U]
    assert tf.train.Example.FromString(rec).features.feature["schema_version"].int64_list.value[:] == [2]


def test_encode_refuses_tables_of_the_wrong_shape():
    with pytest.raises(ValueError, match="SOD/FLOE tables"):
        records.encode_sic(np.zeros((4, 4, 1)), np.zeros((4, 4)), [0.5, 0.5], [1, 2], [8, 8], "s", (0, 0),
                           polygon_sod=np.zeros((2, 7)))
    with pytest.raises(ValueError, match="sod_truth shape"):
        records.encode_sic(np.zeros((4, 4, 1)), np.zeros((4, 4)), [0.5], [1], [16], "s", (0, 0),
                           sod_truth=np.zeros((4, 3), np.uint8))


def _write_folder(folder, examples, patch, kind="sic", version=records.SCHEMA_VERSION):
    folder.mkdir()
    with tf.io.TFRecordWriter(str(folder / "train-00000-of-00001.tfrecord")) as w:
        for rec in examples:
            w.write(rec)
    info = {"schema_version": version, "kind": kind, "patch_size": patch, "channels": ["hh", "hv"],
            "splits": {"train": {"shards": ["train-00000-of-00001.tfrecord"], "num_examples": len(examples)}}}
    (folder / "dataset_info.json").write_text(json.dumps(info))
    return info


def test_version_1_folder_is_refused_in_one_line(tmp_path):
    _write_folder(tmp_path / "old", [], 8, version=1)
    with pytest.raises(InputError) as err:
        dataset_info.load(str(tmp_path / "old"), kind="sic")
    assert err.value.path == str(tmp_path / "old")
    assert err.value.what == "converted with schema version 1; this tfseaice reads version 2: convert again"
    assert "\n" not in str(err.value)
    # Glacier examples did not change in version 2: a version-1 glacier folder still reads.
    _write_folder(tmp_path / "glacier", [], 8, kind="glacier", version=1)
    assert dataset_info.load(str(tmp_path / "glacier"), kind="glacier")["schema_version"] == 1


def test_batches_pad_the_sod_floe_tables(tmp_path):
    rng = np.random.default_rng(2)
    recs = [_example(8, 2, rng, scene="a"), _example(8, 4, rng, truth=False, scene="b")]
    info = _write_folder(tmp_path / "d", [r for r, _ in recs], 8)
    ds = pipeline.sic_dataset(str(tmp_path / "d"), "train", 2, training=False, info=info,
                              keys=pipeline.ICECHART_TRAIN_KEYS)
    b = {k: v.numpy() for k, v in next(iter(ds)).items()}
    assert b["polygon_sod"].shape == (2, 4, 6) and b["polygon_floe"].shape == (2, 4, 7)
    assert b["polygon_sod_class"].shape == (2, 4) and b["sod_truth"].shape == (2, 8, 8)
    assert b["sod_truth"].dtype == np.int32 and b["polygon_sod_class"].dtype == np.int32
    first, second = recs[0][1], recs[1][1]
    np.testing.assert_array_equal(b["polygon_sod"][0, :2], first["sod"])
    assert np.isnan(b["polygon_sod"][0, 2:]).all() and np.isnan(b["polygon_floe"][0, 2:]).all()  # padding
    assert b["polygon_sod_class"][0].tolist() == first["sod_cls"].tolist() + [U, U]
    assert b["polygon_floe_class"][1].tolist() == second["floe_cls"].tolist()
    np.testing.assert_array_equal(b["sod_truth"][0], first["sod_t"])
    assert (b["sod_truth"][1] == U).all() and (b["floe_truth"][1] == U).all()   # the second has no truth
    assert b["polygon_count"].tolist() == [2, 4]
    # SIC keys alone: the batches the SIC tasks train on are as before.
    sic = next(iter(pipeline.sic_dataset(str(tmp_path / "d"), "train", 2, training=False, info=info)))
    assert sorted(sic) == sorted(pipeline.SIC_TRAIN_KEYS)


# Augmentation: ids and class truth are pixelwise functions of SAR channel 0 (distinct values), so a
# transform that moves one raster without the others breaks the function somewhere.
P, K = 8, 4


def _ids_of(v):
    return np.where(v % 5 == 0, -1, v % K).astype(np.int32)


def test_augmentation_moves_class_truth_with_the_sar(tmp_path):
    rng = np.random.default_rng(3)
    recs, stored = [], {}
    for i in range(8):
        v = (rng.permutation(P * P).reshape(P, P) + 100 * i).astype(np.float32)
        sod_t, floe_t = (v % 6).astype(np.uint8), (v % 7).astype(np.uint8)
        recs.append(records.encode_sic(np.stack([v, -v], -1), _ids_of(v), np.full(K, .5), np.arange(K),
                                       np.ones(K), f"s{i}", (0, 0), sod_truth=sod_t, floe_truth=floe_t))
        stored[f"s{i}"] = v
    info = _write_folder(tmp_path / "aug", recs, P)
    ds = pipeline.sic_dataset(str(tmp_path / "aug"), "train", 1, training=True, seed=5, info=info, repeat=False,
                              max_polygons=K, keys=pipeline.ICECHART_TRAIN_KEYS + ("scene_id",))
    moved = 0
    for b in ds:
        ex = {k: v[0].numpy() for k, v in b.items()}
        s0 = ex["sar"][..., 0]
        np.testing.assert_array_equal(ex["sar"][..., 1], -s0)
        np.testing.assert_array_equal(ex["polygon_ids"], _ids_of(s0))
        np.testing.assert_array_equal(ex["sod_truth"], s0 % 6)
        np.testing.assert_array_equal(ex["floe_truth"], s0 % 7)
        moved += not np.array_equal(s0, stored[ex["scene_id"].decode()])
    assert moved > 0  # seed 5 flips/rotates some patches


def _scene_with_class_truth(path):
    """A sample scene plus sod_truth/floe_truth rasters: the chart's dominant classes, 255 on a stripe."""
    ds = make_scene(seed=21, size=256)
    table = ai4arctic.parse_polygon_codes(ds["polygon_codes"].values)
    ids = np.nan_to_num(ds["polygon_icechart"].values, nan=-1).astype(np.int64)
    for name, chart in (("sod_truth", "SOD"), ("floe_truth", "FLOE")):
        if name not in ds:
            raster = table.lookup_class(ids, chart)
            raster[:, 100:104] = U
            ds[name] = (("sar_lines", "sar_samples"), raster)
    path = os.path.join(path, raw_file_name(ds))
    write_scene(ds, path)
    return path


def test_converter_writes_tables_truth_and_class_counts(tmp_path):
    os.makedirs(tmp_path / "scenes")
    path = _scene_with_class_truth(str(tmp_path / "scenes"))
    info, failed = convert(path, str(tmp_path / "records"), channels=("hh", "hv"), patch_size=64, stride=64,
                           downsample=2, val_fraction=0.0, seed=1)
    assert not failed and info["has_sod_truth"] and info["has_floe_truth"]
    scene = ai4arctic.read_scene(path, ("hh", "hv"), 2)
    with ai4arctic.open_dataset(path) as raw:  # the truth on the output grid: a majority, never a mean
        np.testing.assert_array_equal(scene.sod_truth, block_majority(raw["sod_truth"].values, 2))
    decoded = {}
    for rec in tf.data.TFRecordDataset(dataset_info.shard_paths(str(tmp_path / "records"), info, "train")):
        ex = {k: v.numpy() for k, v in records.decode_sic(rec).items()}
        decoded[tuple(ex["patch_offset"])] = ex
    seen = set()
    for p in iter_patches(scene, 64, 64):
        ex = decoded.pop(p.offset)
        rows = scene.table.rows(p.polygon_global_id)
        np.testing.assert_array_equal(ex["polygon_sod"], scene.table.sod_composition[rows])
        np.testing.assert_array_equal(ex["polygon_floe"], scene.table.floe_composition[rows])
        assert ex["polygon_sod_class"].tolist() == scene.table.sod_class[rows].tolist()
        assert ex["polygon_floe_class"].tolist() == scene.table.floe_class[rows].tolist()
        np.testing.assert_array_equal(ex["sod_truth"], p.sod_truth)
        np.testing.assert_array_equal(ex["floe_truth"], p.floe_truth)
        seen.update(p.polygon_global_id.tolist())
    assert not decoded
    rows = scene.table.rows(sorted(seen))
    want = {"SOD": egg_codes.class_counts(scene.table.sod_class[rows], "SOD"),
            "FLOE": egg_codes.class_counts(scene.table.floe_class[rows], "FLOE")}
    assert info["polygon_classes"] == want == info["splits"]["train"]["polygon_classes"]
    assert sum(want["SOD"].values()) == len(seen) > 1
    assert info["polygon_compositions"]["polygons"] == len(seen)
    assert info["polygon_compositions"]["SOD"] == int(np.isfinite(scene.table.sod_composition[rows]).all(1).sum())
    on_disk = json.load(open(tmp_path / "records" / "dataset_info.json"))
    assert on_disk["schema_version"] == 2 and on_disk["polygon_classes"] == want
