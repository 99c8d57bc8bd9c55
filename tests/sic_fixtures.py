"""Shared helpers for SIC tests: small seeded sample scenes written to disk."""

import os

from tfseaice.simulate.ready_to_train import make_ready_to_train
from tfseaice.simulate.scenes import make_scene, raw_file_name, ready_file_name
from tfseaice.simulate.writers import write_scene


def write_scenes(out_dir, n, size=256, seed=0, ready_to_train=False):
    """Write `n` sample scenes (raw layout; optionally their ready-to-train twins)."""
    os.makedirs(out_dir, exist_ok=True)
    raw, rtt = [], []
    for i in range(n):
        ds = make_scene(seed=seed * 1000 + i, size=size)
        path = os.path.join(out_dir, raw_file_name(ds))
        write_scene(ds, path)
        raw.append(path)
        if ready_to_train:
            prep = make_ready_to_train(ds)
            p = os.path.join(out_dir, ready_file_name(ds))
            write_scene(prep, p)
            rtt.append(p)
    return raw, rtt


def convert_tiny(root, num_shards=2):
    """3 small scenes -> 32 x 32 patches (HH, HV), 2 train + 2 val shards under root/records."""
    from data_prep.ai4arctic_to_tfrecord import convert

    write_scenes(str(root / "scenes"), 3, size=256, seed=3)
    info, _ = convert(str(root / "scenes" / "*.nc"), str(root / "records"), channels=("hh", "hv"),
                      patch_size=32, stride=32, downsample=2, val_fraction=0.34, seed=1,
                      num_shards=num_shards)
    return str(root / "records"), info
