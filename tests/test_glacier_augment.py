"""Glacier augmentation (`pipeline.glacier_dataset`, training): SAR, zone mask and extra
channels move together.

Each stored patch has SAR = a permutation of the 256 uint8 values, and its mask
and extra channels are pixelwise functions of that SAR value: a flip or
rotation applied to one of them but not the others breaks a function somewhere.
"""

import numpy as np
import pytest
import tensorflow as tf

from tfseaice.data import pipeline, records

P = 16  # P * P = 256: each patch holds every uint8 value once
SHARD = "train-00000-of-00001.tfrecord"


def mask_of(v):
    return (v % 4).astype(np.int32)  # all four classes (0 = no data)


def extra_of(v):
    return np.stack([2.0 * v, -v + 0.5], axis=-1).astype(np.float32)


def dihedral(a):
    """The 8 flips/90° rotations of a [H, W, ...] array."""
    rots = [np.rot90(a, k) for k in range(4)]
    return rots + [np.fliplr(r) for r in rots]


def write_patches(folder, n, with_extra, seed=0):
    """`n` patches in one shard; returns (info, [stored SAR value grids])."""
    rng = np.random.default_rng(seed)
    folder.mkdir()
    stored = []
    names = ("elevation", "distance") if with_extra else ()
    with tf.io.TFRecordWriter(str(folder / SHARD)) as w:
        for i in range(n):
            v = rng.permutation(P * P).reshape(P, P).astype(np.uint8)
            w.write(records.encode_glacier(v, mask_of(v).astype(np.uint8), f"patch{i}", (0, 0),
                                           extra=extra_of(v.astype(np.float32)) if with_extra else None,
                                           extra_names=names))
            stored.append(v)
    info = {"patch_size": P, "extra_channels": list(names),
            "splits": {"train": {"shards": [SHARD], "num_examples": n}}}
    return info, stored


def augmented(folder, info, augment, seed=3):
    ds = pipeline.glacier_dataset(str(folder), "train", 1, training=True, seed=seed, info=info, augment=augment,
                                  repeat=False)
    return [{k: t[0].numpy() for k, t in b.items()} for b in ds]


@pytest.mark.parametrize("with_extra", [True, False], ids=["extra", "sar_mask_only"])
def test_augmentation_moves_sar_mask_and_extra_together(tmp_path, with_extra):
    info, stored = write_patches(tmp_path / "g", 8, with_extra)
    out = augmented(tmp_path / "g", info, augment=True)
    assert len(out) == len(stored)
    transforms, seen = [], []
    for ex in out:
        assert ("extra" in ex) == with_extra
        v = np.rint(ex["sar"][..., 0] * 255.0)
        # Alignment, pixel by pixel.
        np.testing.assert_array_equal(ex["mask"], mask_of(v))
        if with_extra:
            np.testing.assert_array_equal(ex["extra"], extra_of(v))
        # A flip/rotation of one stored patch (values moved, none changed) ...
        found = [(i, t) for i, s in enumerate(stored) for t, im in enumerate(dihedral(s)) if np.array_equal(im, v)]
        assert len(found) == 1, "augmented SAR is not a flip/rotation of a stored patch"
        i, t = found[0]
        seen.append(i)
        transforms.append(t)
        # ... so every class keeps its pixel count and SAR sum.
        for c in range(4):
            assert (ex["mask"] == c).sum() == (mask_of(stored[i]) == c).sum()
            assert v[ex["mask"] == c].sum() == stored[i][mask_of(stored[i]) == c].astype(np.float64).sum()
    assert sorted(seen) == list(range(len(stored)))
    # Augmentation happened (seed 3), and not as one transform for every example.
    assert any(t != 0 for t in transforms) and len(set(transforms)) > 1, transforms
    # Without augmentation every patch comes out as stored.
    for ex in augmented(tmp_path / "g", info, augment=False):
        v = np.rint(ex["sar"][..., 0] * 255.0)
        assert any(np.array_equal(v, s) for s in stored)
