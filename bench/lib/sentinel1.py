"""The benchmark Sentinel-1 product (written once per size, mode and seed, kept in the bench cache),
shared by bench/sentinel1_read.py and bench/sentinel1_predict.py."""

import json
import os
import shutil
import time

import numpy as np

from bench.lib.results import progress

CACHE_DIR = os.environ.get("TFSEAICE_BENCH_CACHE", "/tmp/tfseaice_bench")


def _sigma_rows(shape, seed):
    """Callables f(l0, l1) -> linear sigma0 rows: smooth fields, Gamma speckle, an HV band under the noise."""
    height, width = shape
    x = np.arange(width) / width

    def make(pol):
        def rows(l0, l1):
            rng = np.random.default_rng([seed, pol, l0])
            y = (np.arange(l0, l1) / height)[:, None]
            db = (-13.0 - 5.0 * x + 2.0 * np.sin(7 * y + 3 * x)) if pol == 0 else (-22.0 - 4.0 * x + np.cos(5 * y))
            if pol == 1:
                db = np.where((y > 0.4) & (y < 0.6), -32.0, db)
            s = 10 ** (db / 10) * rng.gamma(4.4, 1 / 4.4, (l1 - l0, width))
            s[:, : width // 100] = np.nan
            return s
        return rows
    return make(0), make(1)


def cached_product(args):
    """The benchmark product (written once per size, mode and seed)."""
    from tfseaice.simulate.safe_products import write_safe_product

    key = f"s1_{args.mode}_{args.lines}x{args.samples}_{args.seed}{'_zip' if args.zip else ''}"
    folder = os.path.join(CACHE_DIR, key)
    done = os.path.join(folder, "done.json")
    if os.path.exists(done):
        with open(done) as f:
            return json.load(f)["path"], None
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    shape = (args.lines, args.samples)
    gl, gs = np.linspace(0, shape[0] - 1, 21).round(), np.linspace(0, shape[1] - 1, 21).round()
    L, S = np.meshgrid(gl, gs, indexing="ij")
    spacing = 40.0 if args.mode == "EW" else 10.0
    hh, hv = _sigma_rows(shape, args.seed)
    progress(f"writing a {args.mode} product of {shape[0]} x {shape[1]} samples to {folder}")
    t = time.perf_counter()
    path = write_safe_product(folder, mode=args.mode, sigma0_hh=hh, sigma0_hv=hv, shape=shape,
                              lat=75.0 + L * spacing / 111320.0, lon=-20.0 + S * spacing / 28800.0,
                              incidence=19.0 + 27.0 * S / (shape[1] - 1), grid_lines=gl, grid_samples=gs,
                              start_time="2021-01-15T08:00:00", seed=args.seed, zip=args.zip)
    write_s = time.perf_counter() - t
    with open(done, "w") as f:
        json.dump({"path": path, "write_seconds": write_s}, f)
    return path, write_s
