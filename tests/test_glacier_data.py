"""Glacier data: CaFFe reader, synthetic fjord scenes, Beam conversion to TFRecords."""

import glob
import json
import os
import re

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tfseaice.data import glacier, records
from tfseaice.errors import InputError
from tfseaice.data import glacier_masks
from tfseaice.simulate import glaciers

NAME_RE = re.compile(r"^(SI|DBE|Mapple|COL|JAC)_\d{4}-\d{2}-\d{2}_(ERS|ENVISAT|RSAT|PALSAR|TSX|TDX|S1)_\d+_\d_\d+$")


def _png(path, arr, mode=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    img = Image.fromarray(arr) if mode is None else Image.fromarray(arr, mode)
    img.save(path)


def _caffe(root, name="SI_2011-04-12_TSX_7_1_123", h=40, w=50, split="train", seed=0):
    rng = np.random.default_rng(seed)
    classes = rng.integers(0, 4, (h, w)).astype(np.uint8)
    sar = rng.integers(1, 256, (h, w)).astype(np.uint8)
    _png(os.path.join(root, "sar_images", split, name + ".png"), sar)
    _png(os.path.join(root, "zones", split, name + "_zones.png"), glacier.classes_to_zones(classes))
    return sar, classes


# ------------------------------------------------------------------ reader

def test_zone_values_map_to_class_indices_and_back():
    zones = np.array([[0, 64], [127, 254]], np.uint8)
    classes = glacier.zones_to_classes(zones)
    np.testing.assert_array_equal(classes, [[0, 1], [2, 3]])
    np.testing.assert_array_equal(glacier.classes_to_zones(classes), zones)


def test_zone_values_outside_the_set_are_an_input_error(tmp_path):
    _caffe(str(tmp_path))
    bad = np.full((40, 50), 64, np.uint8)
    bad[3, 4] = 128
    _png(str(tmp_path / "zones/train/SI_2011-04-12_TSX_7_1_123_zones.png"), bad)
    with pytest.raises(InputError) as err:
        glacier.read_image(str(tmp_path), "train", "SI_2011-04-12_TSX_7_1_123")
    assert err.value.path.endswith("_zones.png") and "128" in err.value.what


def test_image_without_mask_is_an_input_error(tmp_path):
    _caffe(str(tmp_path))
    os.remove(tmp_path / "zones/train/SI_2011-04-12_TSX_7_1_123_zones.png")
    with pytest.raises(InputError) as err:
        glacier.list_pairs(str(tmp_path), "train")
    assert err.value.path.endswith("SI_2011-04-12_TSX_7_1_123.png") and "no mask" in err.value.what
    with pytest.raises(InputError, match="no mask"):
        glacier.read_image(str(tmp_path), "train", "SI_2011-04-12_TSX_7_1_123")


def test_mask_of_another_size_is_an_input_error(tmp_path):
    _caffe(str(tmp_path))
    _png(str(tmp_path / "zones/train/SI_2011-04-12_TSX_7_1_123_zones.png"), np.full((41, 50), 64, np.uint8))
    with pytest.raises(InputError) as err:
        glacier.read_image(str(tmp_path), "train", "SI_2011-04-12_TSX_7_1_123")
    assert "41x50" in err.value.what and "40x50" in err.value.what


def test_unreadable_image_is_an_input_error(tmp_path):
    _caffe(str(tmp_path))
    (tmp_path / "sar_images/train/SI_2011-04-12_TSX_7_1_123.png").write_bytes(b"not a png at all")
    with pytest.raises(InputError) as err:
        glacier.read_image(str(tmp_path), "train", "SI_2011-04-12_TSX_7_1_123")
    assert err.value.path.endswith("SI_2011-04-12_TSX_7_1_123.png") and "cannot read" in err.value.what


def test_rgb_and_16_bit_pngs_are_converted(tmp_path):
    sar, classes = _caffe(str(tmp_path))
    name = "SI_2011-04-12_TSX_7_1_123"
    _png(str(tmp_path / f"sar_images/train/{name}.png"), np.repeat(sar[..., None], 3, -1))
    rgb_mask = np.repeat(glacier.classes_to_zones(classes)[..., None], 3, -1)
    _png(str(tmp_path / f"zones/train/{name}_zones.png"), rgb_mask)
    img = glacier.read_image(str(tmp_path), "train", name)
    np.testing.assert_array_equal(img.sar, sar)
    np.testing.assert_array_equal(img.classes, classes)
    _png(str(tmp_path / f"sar_images/train/{name}.png"), sar.astype(np.uint16) * 257)
    img = glacier.read_image(str(tmp_path), "train", name)
    assert img.sar.dtype == np.uint8
    np.testing.assert_array_equal(img.sar, sar)


def test_extra_channels_are_found_and_required(tmp_path):
    _caffe(str(tmp_path))
    name = "SI_2011-04-12_TSX_7_1_123"
    assert glacier.find_extra_channels(str(tmp_path)) == []
    elev = np.linspace(0, 1, 40 * 50, dtype=np.float32).reshape(40, 50)
    os.makedirs(tmp_path / "elevation/train")
    np.save(tmp_path / f"elevation/train/{name}_elevation.npy", elev)
    assert glacier.find_extra_channels(str(tmp_path)) == ["elevation"]
    img = next(glacier.iter_split(str(tmp_path), "train"))
    assert img.extra.shape == (40, 50, 1) and img.extra_names == ("elevation",)
    np.testing.assert_allclose(img.extra[..., 0], elev)
    _caffe(str(tmp_path), name="DBE_2012-01-01_S1_20_1_1", seed=1)
    with pytest.raises(InputError, match="elevation"):
        list(glacier.iter_split(str(tmp_path), "train"))


# ------------------------------------------------------------ sample scenes

@pytest.fixture(scope="module")
def sample_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("glaciers") / "raw")
    glaciers.make_sample_dataset(root, 5, seed=3, with_elevation=True, min_size=300, max_size=420)
    return root


def test_sample_dataset_has_the_caffe_layout(sample_root):
    for split in ("train", "test"):
        names = [os.path.basename(p)[:-4] for p in glob.glob(f"{sample_root}/sar_images/{split}/*.png")]
        assert names, split
        for n in names:
            assert NAME_RE.match(n), n
            sar = np.asarray(Image.open(f"{sample_root}/sar_images/{split}/{n}.png"))
            zones = np.asarray(Image.open(f"{sample_root}/zones/{split}/{n}_zones.png"))
            front = np.asarray(Image.open(f"{sample_root}/fronts/{split}/{n}_front.png"))
            assert sar.dtype == np.uint8 and sar.shape == zones.shape == front.shape
            assert all(300 <= s <= 420 and s % 256 for s in sar.shape)
            assert set(np.unique(zones)) <= {0, 64, 127, 254}
            assert {64, 127, 254} <= set(np.unique(zones))
            assert set(np.unique(front)) == {0, 255}
            np.testing.assert_array_equal(sar == 0, zones == 0)  # no data: 0 in both
            assert os.path.exists(f"{sample_root}/elevation/{split}/{n}_elevation.png")


def test_sample_scenes_look_like_fjords():
    """Rock brightest, open water darkest, melange close to glacier brightness."""
    from scipy import ndimage

    stats = {"rock": [], "glacier": [], "melange": [], "water": []}
    for i in range(4):
        s = glaciers.make_scene(np.random.default_rng([11, i]), "SI", "TSX", size=(400, 360))
        sar, cls = s["sar"].astype(float), s["classes"]
        d = ndimage.distance_transform_edt(~glacier_masks.front_line(cls))
        stats["rock"].append(sar[cls == 1].mean())
        stats["glacier"].append(sar[cls == 2].mean())
        stats["melange"].append(sar[(cls == 3) & (d < 15)].mean())
        stats["water"].append(sar[(cls == 3) & (d > 150)].mean())
        assert sar[cls == 1].std() > sar[cls == 3][d[cls == 3] > 150].std() * 0.5  # rock is textured
    m = {k: np.mean(v) for k, v in stats.items()}
    assert m["rock"] > m["glacier"] > m["water"] + 30
    assert abs(m["melange"] - m["glacier"]) < abs(m["melange"] - m["water"])


def test_random_fjord_masks_are_seeded_and_plausible():
    a = glacier_masks.random_fjord_mask(300, 700, 5)
    b = glacier_masks.random_fjord_mask(300, 700, 5)
    c = glacier_masks.random_fjord_mask(300, 700, 6)
    assert a.shape == (300, 700) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert {1, 2, 3} <= set(np.unique(a).tolist()) <= {0, 1, 2, 3}
    assert glacier_masks.front_line(a).sum() > 50  # a calving front exists


# ------------------------------------------------------------ Beam conversion

def _read(path):
    return list(tf.data.TFRecordDataset(path).as_numpy_iterator())


def test_beam_conversion_on_direct_runner(sample_root, tmp_path):
    from data_prep import glacier_to_tfrecord as g2t

    out = str(tmp_path / "records")
    info, failed = g2t.convert(sample_root, out, patch_size=128, val_fraction=0.25, seed=4)
    assert failed == []
    assert info["kind"] == "glacier" and info["schema_version"] == records.SCHEMA_VERSION
    assert info["extra_channels"] == ["elevation"] and info["class_names"][1:] == ["rock", "glacier", "ocean"]
    # every non-overlapping 128-patch of every train image, no data permitting
    expected = 0
    for img in glacier.iter_split(sample_root, "train"):
        patches, _ = g2t.image_patches(img, 128, 0.9)
        expected += len(patches)
    n_train, n_val = info["splits"]["train"]["num_examples"], info["splits"]["val"]["num_examples"]
    assert n_train + n_val == expected and n_val == round(expected * 0.25)
    names = sorted(os.path.basename(p) for p in glob.glob(f"{out}/*.tfrecord"))
    assert names == sorted(sum((v["shards"] for v in info["splits"].values()), []))
    assert all(re.match(r"^(train|val|test)-\d{5}-of-\d{5}\.tfrecord$", n) for n in names)
    recs = [r for s in info["splits"]["val"]["shards"] for r in _read(f"{out}/{s}")]
    assert len(recs) == n_val
    ex = records.decode_glacier(recs[0], num_extra=1)
    assert ex["sar"].shape == (128, 128, 1) and ex["extra"].shape == (128, 128, 1)
    assert set(np.unique(ex["mask"].numpy())) <= {0, 1, 2, 3}
    # the patch is the image's own pixels at its offset
    name = ex["name"].numpy().decode()
    r, c = ex["patch_offset"].numpy()
    img = glacier.read_image(sample_root, "train", name, ["elevation"])
    np.testing.assert_array_equal((ex["sar"].numpy()[..., 0] * 255).round(), img.sar[r:r + 128, c:c + 128])
    np.testing.assert_array_equal(ex["mask"].numpy(), img.classes[r:r + 128, c:c + 128])
    # the split is seeded: the same seed gives the same validation patches
    keys = sorted((records.decode_glacier(x)["name"].numpy(), tuple(records.decode_glacier(x)["patch_offset"].numpy()))
                  for x in recs)
    with pytest.raises(InputError, match="overwrite"):
        g2t.convert(sample_root, out, patch_size=128, val_fraction=0.25, seed=4)
    info2, _ = g2t.convert(sample_root, out, patch_size=128, val_fraction=0.25, seed=4, overwrite=True)
    recs2 = [r for s in info2["splits"]["val"]["shards"] for r in _read(f"{out}/{s}")]
    keys2 = sorted((records.decode_glacier(x)["name"].numpy(), tuple(records.decode_glacier(x)["patch_offset"].numpy()))
                   for x in recs2)
    assert keys == keys2
    assert info["splits"]["test"]["num_examples"] > 0


def test_beam_conversion_reports_broken_images_and_converts_the_rest(tmp_path):
    from data_prep import glacier_to_tfrecord as g2t

    root = str(tmp_path / "raw")
    for i in range(3):
        _caffe(root, name=f"SI_2011-04-1{i}_TSX_7_1_12{i}", h=300, w=270, seed=i)
    os.remove(f"{root}/zones/train/SI_2011-04-11_TSX_7_1_121_zones.png")
    info, failed = g2t.convert(root, str(tmp_path / "rec"), patch_size=256, val_fraction=0.0, seed=1)
    assert [os.path.basename(f["path"]) for f in failed] == ["SI_2011-04-11_TSX_7_1_121.png"]
    assert "no mask" in failed[0]["error"]
    assert info["splits"]["train"]["num_examples"] == 2 and info["num_images_failed"] == 1
    with open(tmp_path / "rec" / g2t.FAILED_REPORT) as f:
        assert json.load(f) == failed


def test_class_stats_are_the_same_whatever_order_patches_are_combined_in():
    # Beam runners combine patches in their own orders (Flink, Spark, in-process): the totals must not care.
    from data_prep import glacier_to_tfrecord as g2t

    rng = np.random.default_rng(8)
    sar = rng.integers(0, 256, (40, 32, 32), dtype=np.uint8)
    classes = rng.integers(0, 4, (40, 32, 32), dtype=np.uint8)
    stats = [g2t.class_stats(s, c) for s, c in zip(sar, classes)]
    once = g2t._stats_json(g2t._sum_stats(stats))
    in_parts = g2t._sum_stats([g2t._sum_stats(stats[i::3]) for i in (2, 0, 1)])
    assert g2t._stats_json(in_parts) == once
    assert g2t._stats_json(g2t._sum_stats(stats[::-1])) == once
    x = sar / 255.0
    for i, name in enumerate(glacier.CLASS_NAMES):
        sel = x[classes == i]
        assert once[name]["pixels"] == sel.size
        np.testing.assert_allclose([once[name]["mean"], once[name]["std"]], [sel.mean(), sel.std()], rtol=1e-12)
