"""Scenes -> Beam (DirectRunner) -> TFRecord shards -> tf.data: the round trip."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from data_prep.ai4arctic_to_tfrecord import convert
from tfseaice.data import ai4arctic, dataset_info, pipeline, records
from tfseaice.data.patches import iter_patches
from tfseaice.errors import InputError

from sic_fixtures import write_scenes

ARGS = dict(channels=("hh", "hv", "incidence_angle"), patch_size=64, stride=64, downsample=2,
            val_fraction=0.25, seed=7)


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    d = tmp_path_factory.mktemp("conv")
    raw, _ = write_scenes(str(d / "scenes"), 4, size=256, seed=11)
    (d / "scenes" / "S1A_EW_GRDM_1SDH_20200101T000000_junk_icechart_dmi.nc").write_text("garbage")
    info, failed = convert(str(d / "scenes" / "*.nc"), str(d / "records"), **ARGS)
    return d, raw, info, failed


def _decoded(data_dir, info, split):
    out = {}
    for path in dataset_info.shard_paths(data_dir, info, split):
        for rec in tf.data.TFRecordDataset(path):
            ex = {k: v.numpy() for k, v in records.decode_sic(rec).items()}
            out[(ex["scene_id"].decode(), tuple(ex["patch_offset"]))] = ex
    return out


def test_failed_scene_is_reported_and_the_rest_converted(converted):
    d, raw, info, failed = converted
    assert [os.path.basename(f["path"]) for f in failed] == ["S1A_EW_GRDM_1SDH_20200101T000000_junk_icechart_dmi.nc"]
    assert "cannot be read as netCDF" in failed[0]["error"]
    on_disk = json.load(open(d / "records" / "failed_scenes.json"))
    assert on_disk == failed
    assert info["num_scenes_failed"] == 1
    scenes = info["splits"]["train"]["scenes"] + info["splits"]["val"]["scenes"]
    assert sorted(scenes) == sorted(ai4arctic.scene_id_of(p) for p in raw)
    assert not set(info["splits"]["train"]["scenes"]) & set(info["splits"]["val"]["scenes"])
    assert not [n for n in os.listdir(d / "records") if n.startswith(".staging")]


def test_round_trip_returns_the_readers_pixels_ids_and_targets(converted):
    d, raw, info, _ = converted
    data_dir = str(d / "records")
    examples = {**_decoded(data_dir, info, "train"), **_decoded(data_dir, info, "val")}
    total = 0
    dropped = 0
    for path in raw:
        scene = ai4arctic.read_scene(path, ARGS["channels"], ARGS["downsample"])
        stats = {}
        for p in iter_patches(scene, 64, 64, stats):
            ex = examples[(scene.scene_id, p.offset)]
            np.testing.assert_array_equal(ex["sar"], p.sar)  # NaN in the same places too
            np.testing.assert_array_equal(ex["polygon_ids"], p.polygon_ids)
            np.testing.assert_array_equal(ex["polygon_sic"], p.polygon_sic)
            np.testing.assert_array_equal(ex["polygon_global_id"], p.polygon_global_id)
            np.testing.assert_array_equal(ex["polygon_pixel_count"], p.polygon_pixel_count)
            np.testing.assert_array_equal(ex["sic_truth"], p.sic_truth)
            rows = scene.table.rows(p.polygon_global_id)  # schema 2: the SOD/FLOE tables of the same polygons
            np.testing.assert_array_equal(ex["polygon_sod"], scene.table.sod_composition[rows])
            np.testing.assert_array_equal(ex["polygon_floe"], scene.table.floe_composition[rows])
            assert ex["polygon_sod_class"].tolist() == scene.table.sod_class[rows].tolist()
            assert ex["has_truth"] and ex["polygon_count"] == len(p.polygon_sic)
            total += 1
        dropped += stats["dropped_unlabelled"]
    assert total == len(examples) == info["splits"]["train"]["num_examples"] + info["splits"]["val"]["num_examples"]
    assert dropped == info["num_patches_dropped_unlabelled"]


def test_normalisation_statistics_come_from_the_training_split(converted):
    d, _, info, _ = converted
    ex = _decoded(str(d / "records"), info, "train")
    sar = np.stack([e["sar"] for e in ex.values()]).reshape(-1, 3).astype(np.float64)
    mean = np.nanmean(sar, axis=0)
    std = np.nanstd(sar, axis=0)
    np.testing.assert_allclose(info["normalization"]["mean"], mean, rtol=1e-6)
    np.testing.assert_allclose(info["normalization"]["std"], std, rtol=1e-5)
    assert info["channels"] == ["hh", "hv", "incidence_angle"] and info["pixel_spacing_m"] == 80


def test_tf_data_pipeline_batches_the_same_way_for_the_same_seed(converted):
    d, _, info, _ = converted
    ds = pipeline.sic_dataset(str(d / "records"), "train", 3, training=True, seed=5, info=info, max_polygons=40)
    batch = next(iter(ds))
    assert batch["sar"].shape == (3, 64, 64, 3) and batch["polygon_sic"].shape == (3, 40)
    again = next(iter(pipeline.sic_dataset(str(d / "records"), "train", 3, training=True, seed=5, info=info,
                                           max_polygons=40)))
    np.testing.assert_array_equal(batch["polygon_ids"], again["polygon_ids"])
    # Padding: ids index real table rows only, padded rows are 0; NaN truth only where ids are not usable.
    for b in range(3):
        ids = batch["polygon_ids"][b].numpy()
        n = int(batch["polygon_count"][b])
        assert ids.max() < n and (batch["polygon_sic"][b, n:].numpy() == 0).all()
        truth = batch["sic_truth"][b].numpy()
        assert np.isfinite(truth[ids >= 0]).all()


# Augmentation: patches whose ids, truth and other SAR channels are pixelwise functions of SAR channel 0,
# so a transform that moves one of them without the others breaks the function somewhere.
AUG_P, AUG_K = 8, 4


def _ids_of(v):
    return np.where(v % 5 == 0, -1, v % AUG_K).astype(np.int32)


def _truth_of(v):
    return np.where(_ids_of(v) >= 0, (v % 10) / 10.0, np.nan).astype(np.float32)


def _dihedral(a):
    """The 8 flips/90° rotations of a [H, W, ...] array."""
    rots = [np.rot90(a, k) for k in range(4)]
    return rots + [np.fliplr(r) for r in rots]


def _write_aug_patches(folder, n, seed=0):
    """`n` SIC patches (channel 0 = a permutation of distinct values) in one shard; returns (info, patches)."""
    rng = np.random.default_rng(seed)
    folder.mkdir()
    patches = {}
    with tf.io.TFRecordWriter(str(folder / "train-00000-of-00001.tfrecord")) as w:
        for i in range(n):
            v = (rng.permutation(AUG_P * AUG_P).reshape(AUG_P, AUG_P) + 100 * i).astype(np.float32)
            sar = np.stack([v, 2 * v + 1, -v], axis=-1)
            ids = _ids_of(v)
            counts = np.bincount(ids[ids >= 0], minlength=AUG_K)
            sic = np.arange(1, AUG_K + 1, dtype=np.float32) / AUG_K
            w.write(records.encode_sic(sar, ids, sic, np.arange(AUG_K) + 10 * i, counts, f"scene{i}", (0, 0),
                                       _truth_of(v)))
            patches[f"scene{i}"] = (v, sic)
    info = {"patch_size": AUG_P, "channels": ["hh", "hv", "incidence_angle"],
            "splits": {"train": {"shards": ["train-00000-of-00001.tfrecord"], "num_examples": n}}}
    return info, patches


def _augmented(folder, info, augment, seed=5, gain_db=0.0):
    ds = pipeline.sic_dataset(str(folder), "train", 1, training=True, seed=seed, info=info, augment=augment,
                              max_polygons=AUG_K, repeat=False, keys=pipeline.SIC_TRAIN_KEYS + ("scene_id",),
                              gain_db=gain_db)
    return [{k: v[0].numpy() for k, v in b.items()} for b in ds]


def test_augmentation_moves_sar_ids_and_truth_together(tmp_path):
    info, patches = _write_aug_patches(tmp_path / "aug", 8)
    out = _augmented(tmp_path / "aug", info, augment=True)
    assert sorted(ex["scene_id"].decode() for ex in out) == sorted(patches)
    transforms = []
    for ex in out:
        v, sic = patches[ex["scene_id"].decode()]
        sar, ids, truth = ex["sar"], ex["polygon_ids"], ex["sic_truth"]
        # Alignment, pixel by pixel: every channel, the ids and the truth moved with SAR channel 0.
        np.testing.assert_array_equal(sar[..., 1], 2 * sar[..., 0] + 1)
        np.testing.assert_array_equal(sar[..., 2], -sar[..., 0])
        np.testing.assert_array_equal(ids, _ids_of(sar[..., 0]))
        np.testing.assert_array_equal(truth, _truth_of(sar[..., 0]))  # NaN in the same places too
        # A flip/rotation of the stored patch (values moved, none changed) ...
        matches = [t for t, im in enumerate(_dihedral(v)) if np.array_equal(im, sar[..., 0])]
        assert matches, "augmented SAR is not a flip/rotation of the stored patch"
        transforms.append(matches[0])
        # ... so every polygon keeps its pixel count and SAR sum, and the table is unchanged.
        for k in range(AUG_K):
            assert (ids == k).sum() == (_ids_of(v) == k).sum()
            assert sar[..., 0][ids == k].sum() == v[_ids_of(v) == k].sum()
        np.testing.assert_array_equal(ex["polygon_sic"], sic)
        assert ex["polygon_count"] == AUG_K
    # Augmentation happened (seed 5), and not as one transform for every example.
    assert any(t != 0 for t in transforms) and len(set(transforms)) > 1, transforms
    # Without augmentation every patch comes out as stored.
    for ex in _augmented(tmp_path / "aug", info, augment=False):
        np.testing.assert_array_equal(ex["sar"][..., 0], patches[ex["scene_id"].decode()][0])


def test_backscatter_gain_shifts_hh_and_hv_by_one_offset_each(tmp_path):
    """`sar_gain_db`: one offset per patch and dB channel, within ±gain, seeded; ids and incidence untouched."""
    info, patches = _write_aug_patches(tmp_path / "aug", 8)
    out = _augmented(tmp_path / "aug", info, augment=False, gain_db=3.0)
    offsets = []
    for ex in out:
        v, _ = patches[ex["scene_id"].decode()]
        sar = ex["sar"]
        shift = np.stack([sar[..., 0] - v, sar[..., 1] - (2 * v + 1)])
        np.testing.assert_allclose(shift, shift[:, :1, :1] * np.ones_like(shift), atol=1e-3)  # constant per channel
        np.testing.assert_array_equal(sar[..., 2], -v)                # incidence angle: not a dB channel
        np.testing.assert_array_equal(ex["polygon_ids"], _ids_of(v))
        offsets.append(shift[:, 0, 0])
    offsets = np.array(offsets)
    assert np.abs(offsets).max() <= 3.0 and np.abs(offsets).max() > 1.0, offsets
    assert len(np.unique(np.round(offsets, 4))) == offsets.size     # per channel and per patch
    again = np.array([ex["sar"][0, 0, :2] for ex in _augmented(tmp_path / "aug", info, False, gain_db=3.0)])
    other = np.array([ex["sar"][0, 0, :2] for ex in _augmented(tmp_path / "aug", info, False, seed=6, gain_db=3.0)])
    first = np.array([ex["sar"][0, 0, :2] for ex in out])
    np.testing.assert_array_equal(again, first)
    assert not np.allclose(np.sort(other, axis=0), np.sort(first, axis=0))
    # With the flips too: the gain is added before them, so ids still follow the (unshifted) incidence channel.
    for ex in _augmented(tmp_path / "aug", info, augment=True, gain_db=3.0):
        np.testing.assert_array_equal(ex["polygon_ids"], _ids_of(-ex["sar"][..., 2]))
        np.testing.assert_allclose(np.ptp(ex["sar"][..., 0] + ex["sar"][..., 2]), 0.0, atol=1e-3)


def test_sar_gain_db_option_refuses_negative_and_nan():
    from tfseaice.tasks.icechart import IcechartOptions
    assert IcechartOptions.from_extra({"sar_gain_db": 2}).sar_gain_db == 2.0
    assert IcechartOptions.from_extra({}).sar_gain_db == 0.0        # model folders written before it
    for bad in (-1.0, float("nan"), "x"):
        with pytest.raises(ValueError, match="sar_gain_db"):
            IcechartOptions.from_extra({"sar_gain_db": bad})


def test_rerun_refuses_without_overwrite_and_replaces_with_it(converted, tmp_path):
    d, raw, _, _ = converted
    with pytest.raises(InputError, match="pass --overwrite"):
        convert(str(d / "scenes" / "*.nc"), str(d / "records"), **ARGS)
    out = tmp_path / "again"
    info1, _ = convert(raw[0], str(out), **dict(ARGS, val_fraction=0.0))
    info2, _ = convert(raw[1], str(out), overwrite=True, **dict(ARGS, val_fraction=0.0))
    assert dataset_info.load(str(out))["splits"]["train"]["scenes"] == [ai4arctic.scene_id_of(raw[1])]
    assert sorted(os.listdir(out)) == ["dataset_info.json", "failed_scenes.json", "train-00000-of-00001.tfrecord"]


def test_multi_processing_runner_writes_identical_shards(converted, tmp_path):
    d, _, info, _ = converted
    convert(str(d / "scenes" / "*.nc"), str(tmp_path / "mp"), **ARGS,
            beam_args=["--direct_running_mode=multi_processing", "--direct_num_workers=2"])
    for name in info["splits"]["train"]["shards"] + info["splits"]["val"]["shards"]:
        assert (tmp_path / "mp" / name).read_bytes() == (d / "records" / name).read_bytes()


def test_cli_exits_zero_with_summary_and_error_lines(converted, tmp_path):
    d, _, _, _ = converted
    cmd = [sys.executable, "-m", "data_prep.ai4arctic_to_tfrecord", f"--input_glob={d / 'scenes' / '*.nc'}",
           f"--output_dir={tmp_path / 'cli'}", "--patch_size=64", "--stride=64", "--val_fraction=0.25"]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=os.path.dirname(os.path.dirname(__file__)))
    assert r.returncode == 0, r.stderr[-2000:]
    assert "Converted 4 scenes (1 failed" in r.stdout
    assert "ERROR: " in r.stderr and "junk_icechart_dmi.nc: cannot be read as netCDF" in r.stderr
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=os.path.dirname(os.path.dirname(__file__)))
    assert r.returncode == 1 and "pass --overwrite" in r.stderr.strip().splitlines()[-1]
    r = subprocess.run(cmd[:3] + [f"--input_glob={tmp_path / 'none*.nc'}", f"--output_dir={tmp_path / 'x'}"],
                       capture_output=True, text=True, cwd=os.path.dirname(os.path.dirname(__file__)))
    assert r.returncode == 1 and r.stderr.strip().splitlines()[-1].endswith("--input_glob matches no file")
