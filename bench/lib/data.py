"""Data for the benchmarks: synthetic in-memory batches and scenes, cached sample scenes and records.

The batches only need numpy (torch_unet_reference.py trains on `sic_batch`
under a torch-only interpreter). The sample scenes and TFRecords come from
tfseaice.simulate.scenes and data_prep, imported inside the functions that use
them (Beam and TF are slow to import and absent from that interpreter); they
are made once and kept under CACHE_DIR, never in the repository.
"""

import glob
import logging
import os

import numpy as np

from bench.lib.results import progress

CACHE_DIR = os.environ.get("TFSEAICE_BENCH_CACHE", "/tmp/tfseaice_bench")


def voronoi_ids(rng, n, p, min_k=20, max_k=60):
    """[n,p,p] int32 patch-local polygon ids (Voronoi, wiggly), -1 on a land blob; [n,K] SIC."""
    yy, xx = np.mgrid[0:p, 0:p].astype(np.float32)
    ids = np.zeros((n, p, p), np.int32)
    for i in range(n):
        k = int(rng.integers(min_k, max_k + 1))
        seeds = rng.uniform(0, p, (k, 2)).astype(np.float32)
        wy = yy + 0.03 * p * np.sin(xx / (0.05 * p + 1))
        wx = xx + 0.03 * p * np.cos(yy / (0.05 * p + 1))
        d = (wy[None] - seeds[:, 0, None, None]) ** 2 + (wx[None] - seeds[:, 1, None, None]) ** 2
        ids[i] = np.argmin(d, axis=0)
        cy, cx, r = rng.uniform(0, p), rng.uniform(0, p), rng.uniform(0.1, 0.25) * p
        ids[i][(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = -1
    sic = rng.choice(np.arange(11) / 10.0, size=(n, max_k)).astype(np.float32)
    return ids, sic


def sic_batch(batch_size, patch_size, channels, seed=0):
    """{"sar" [n,p,p,c] dB, "polygon_ids" [n,p,p], "polygon_sic" [n,K]}: a SIC training batch."""
    rng = np.random.default_rng(seed)
    ids, sic = voronoi_ids(rng, batch_size, patch_size, min_k=min(20, patch_size), max_k=min(60, patch_size))
    # SAR in dB: brighter where the polygon's SIC is high (so the loss has something to learn)
    level = np.take_along_axis(sic, np.maximum(ids, 0).reshape(batch_size, -1), 1).reshape(ids.shape)
    sar = np.empty((batch_size, patch_size, patch_size, channels), np.float32)
    for c in range(channels):
        base = -20.0 - 5.0 * c + 8.0 * level
        sar[..., c] = base + rng.normal(0, 3.0, ids.shape)
    return {"sar": sar, "polygon_ids": ids, "polygon_sic": sic}


def glacier_batch(batch_size, patch_size, extra_channels, seed=0):
    """{"mask" [n,p,p] zone classes, "sar" [n,p,p,1], "extra"?}: a pix2pix training batch."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:patch_size, 0:patch_size] / patch_size
    mask = np.zeros((batch_size, patch_size, patch_size), np.int32)
    sar = np.zeros((batch_size, patch_size, patch_size, 1), np.float32)
    for i in range(batch_size):
        a, b = rng.uniform(0.3, 0.7, 2)
        front = yy > a + 0.1 * np.sin(6 * xx + b * 6)
        rock = (xx - b) ** 2 + (yy - a / 2) ** 2 < 0.03
        mask[i] = np.where(front, 3, np.where(rock, 1, 2))
        mask[i][:4] = 0
        level = np.array([0.0, 0.6, 0.45, 0.2])[mask[i]]
        sar[i, ..., 0] = np.clip(level + rng.normal(0, 0.08, level.shape), 0, 1)
    out = {"mask": mask, "sar": sar}
    if extra_channels:
        out["extra"] = rng.normal(0, 1, (batch_size, patch_size, patch_size, extra_channels)).astype(np.float32)
    return out


def synthetic_scene(h, w, seed=0):
    """float32 [h, w, 2] dB (HH ~ -14.5 +- 5.7, HV ~ -24.7 +- 4.8) with a NaN border, made in row chunks."""
    rng = np.random.default_rng(seed)
    sar = np.empty((h, w, 2), np.float32)
    cols = np.arange(w, dtype=np.float32)
    for r in range(0, h, 256):
        rows = slice(r, min(r + 256, h))
        n = rows.stop - rows.start
        block = sar[rows]
        rng.standard_normal((n, w, 2), dtype=np.float32, out=block)
        ramp = np.float32(4.0) * np.sin(cols / 300.0)[None, :]
        block[..., 0] *= 5.7
        block[..., 0] += -14.5 + ramp
        block[..., 1] *= 4.8
        block[..., 1] += -24.7 + ramp
        # no-data wedge on the left edge, as in real EW scenes
        edge = (np.arange(rows.start, rows.stop) * 0.02).astype(int)
        for i, e in enumerate(edge[:n]):
            block[i, :min(e % 160, w)] = np.nan
    return sar


def cached_raw_scene(size, seed=7, cache_dir=None):
    """Path of a synthetic raw AI4Arctic scene (size x size, 40 m) cached on disk.

    Made once with tfseaice.simulate.scenes (a 10000^2 scene takes ~80 s and
    ~2.7 GB of memory) and kept under CACHE_DIR, never in the repository.
    """
    from tfseaice.simulate.scenes import make_scene, raw_file_name
    from tfseaice.simulate.writers import write_scene

    folder = os.path.join(cache_dir or CACHE_DIR, f"raw_{size}_seed{seed}")
    done = os.path.join(folder, "DONE")
    if os.path.exists(done):
        with open(done) as f:
            path = f.read().strip()
        if os.path.exists(path):
            return path
    os.makedirs(folder, exist_ok=True)
    progress(f"making a {size}x{size} sample scene (seed {seed}) into {folder} (cached for later runs)")
    ds = make_scene(seed=seed, size=size)
    path = os.path.join(folder, raw_file_name(ds))
    write_scene(ds, path)
    del ds
    with open(done, "w") as f:
        f.write(path)
    return path


def cached_records(n_scenes, size, cache_dir=None):
    """Folder of SIC TFRecords converted from `n_scenes` sample scenes of `size`^2 (cached)."""
    from tfseaice.simulate.scenes import make_scene, raw_file_name
    from tfseaice.simulate.writers import write_scene

    root = os.path.join(cache_dir or CACHE_DIR, f"pipeline_{n_scenes}x{size}")
    records = os.path.join(root, "records")
    if os.path.exists(os.path.join(records, "dataset_info.json")):
        return records
    scenes = os.path.join(root, "scenes")
    os.makedirs(scenes, exist_ok=True)
    for i in range(n_scenes):
        progress(f"making sample scene {i + 1}/{n_scenes} ({size}^2)")
        ds = make_scene(seed=100 + i, size=size)
        path = os.path.join(scenes, raw_file_name(ds))
        if not os.path.exists(path):
            write_scene(ds, path)
    logging.getLogger("apache_beam").setLevel(logging.WARNING)
    from data_prep.ai4arctic_to_tfrecord import convert

    progress("converting them to TFRecords")
    convert(os.path.join(scenes, "*.nc"), records, val_fraction=0.0, overwrite=True)
    for f in glob.glob(os.path.join(scenes, "*.nc")):
        os.remove(f)  # the records are what we keep
    return records
