r"""Conversion memory and time against the downsampling factor (issue 12, "Coarse grids").

  python -m bench.data_prep --downsample_sweep=2,10,20 [--size=6000 --sweep_patch_size=64]

MMSeaIce's best input grid is 800 m (40 m raw x 20). The converter must keep
its memory flat in the factor: peak RSS at 10 and 20 no higher than at 2.
Each factor converts the same cached synthetic raw scene with
`data_prep.ai4arctic_to_tfrecord.convert` (in-process Beam runner) in its own
child process (`python -m bench.data_prep --child_downsample=F ...`), which
reports its own peak RSS (VmHWM: ru_maxrss would carry over the parent's
peak). Patches are `--sweep_patch_size` square with stride = size at every
factor, so that the coarsest grid still yields some.

After the conversion, the same child times `block_majority` alone on the
scene's full 40 m polygon-id raster (traced numpy peak = its working memory),
and at the `--pairwise_factors` the vote the converter used before the
O(pixels) one (every pair of pixels of every block compared at once: f^2
bytes per input pixel) on a `--majority_crop` square crop only, next to
`block_majority` on the same crop (same ids expected).
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc

import numpy as np

from bench.lib.children import child_env, module_argv
from bench.lib.data import CACHE_DIR, cached_raw_scene
from bench.lib.machine import current_rss_mb, image_peak_rss_mb, loadavg, machine_info, num_cores
from bench.lib.results import merge_result, print_table, progress, summary_line

SWEEP_SIZE = 6000          # default raw scene side (40 m px) of the sweep
FLAT_TOLERANCE = 0.05      # "flat": peak RSS at every factor within 5 % of the first (finest) factor's
RAW_M = 40


def pairwise_majority(ids, f):
    """The removed vote: per f x f block, every pair of pixels compared at once (f^2 bytes per pixel).

    Ties go to the first pixel in row-major order, as in block_majority.
    """
    h, w = ids.shape[0] // f * f, ids.shape[1] // f * f
    b = ids[:h, :w].reshape(h // f, f, w // f, f).swapaxes(1, 2).reshape(-1, f * f)
    counts = (b[:, :, None] == b[:, None, :]).sum(axis=2)
    return b[np.arange(len(b)), np.argmax(counts, axis=1)].reshape(h // f, w // f)


def traced(fn, repeats=1):
    """(result, best seconds, peak MB numpy/Python allocated during a call) of `fn()`."""
    best, peak, out = float("inf"), 0.0, None
    for _ in range(max(1, repeats)):
        out = None
        tracemalloc.start()
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
        peak = max(peak, tracemalloc.get_traced_memory()[1] / 2**20)
        tracemalloc.stop()
    return out, best, peak


def polygon_ids(path):
    """The scene's 40 m polygon ids as the converter votes on them (int64, -1 where no polygon)."""
    from tfseaice.data import ai4arctic

    ds = ai4arctic.open_dataset(path)
    try:
        a = ds["polygon_icechart"].values
    finally:
        ds.close()
    return np.where(np.isfinite(a), a, -1).astype(np.int64)


def time_majority(path, f, repeats, crop, pairwise_factors):
    """block_majority alone on the whole raster, and the pairwise reference on a crop at `pairwise_factors`."""
    from tfseaice.data.downsampling import block_majority

    ids = polygon_ids(path)
    _, seconds, peak = traced(lambda: block_majority(ids, f), repeats)
    res = {"pixels": int(ids.size), "seconds": seconds, "mpx_per_s": ids.size / seconds / 1e6,
           "traced_peak_mb": peak,
           "pairwise_would_need_mb": ids.size * f * f / 2**20}  # the removed vote's boolean array alone
    if f in pairwise_factors:
        small = np.ascontiguousarray(ids[:crop, :crop])
        new, new_s, new_mb = traced(lambda: block_majority(small, f), repeats)
        old, old_s, old_mb = traced(lambda: pairwise_majority(small, f), repeats)
        res["crop_reference"] = {
            "crop": list(small.shape), "block_majority_s": new_s, "block_majority_traced_mb": new_mb,
            "pairwise_s": old_s, "pairwise_traced_mb": old_mb, "speedup": old_s / new_s,
            "same_ids": bool(np.array_equal(new, old))}
    return res


def child(args):
    """One factor (`args.child_downsample`): convert, then time the vote; print the result as one JSON line."""
    import logging

    logging.getLogger("apache_beam").setLevel(logging.WARNING)
    from data_prep.ai4arctic_to_tfrecord import convert

    f, p = args.child_downsample, args.sweep_patch_size
    path = cached_raw_scene(args.size or SWEEP_SIZE, args.seed)
    out_dir = tempfile.mkdtemp(prefix=f"sweep_f{f}_", dir=CACHE_DIR)
    shutil.rmtree(out_dir)
    rss_before = current_rss_mb()
    load_before = loadavg()
    cpu0 = time.process_time()
    t = time.perf_counter()
    info, failed = convert(path, out_dir, patch_size=p, stride=p, downsample=f, val_fraction=0.0, overwrite=True)
    seconds = time.perf_counter() - t
    cpu_s = time.process_time() - cpu0
    peak = image_peak_rss_mb()  # read before the vote timings below add their own peak
    load_after = loadavg()
    out_mb = sum(os.path.getsize(os.path.join(out_dir, n)) for n in os.listdir(out_dir)) / 1e6
    shutil.rmtree(out_dir, ignore_errors=True)
    pairwise = [int(x) for x in args.pairwise_factors.split(",") if x]
    res = {
        "downsample": f, "grid_m": RAW_M * f, "patch_size": p, "stride": p, "seconds": seconds,
        "cpu_seconds": cpu_s, "cpu_utilisation": cpu_s / (seconds * num_cores()),
        "peak_rss_mb": peak, "rss_before_convert_mb": rss_before, "working_mb": peak - rss_before,
        "patches": info["splits"]["train"]["num_examples"] + info["splits"]["val"]["num_examples"],
        "output_mb": out_mb, "failed": failed, "loadavg_before": load_before, "loadavg_after": load_after,
        "majority": time_majority(path, f, args.sweep_repeats, args.majority_crop, pairwise),
    }
    print(json.dumps(res))
    return 0


def run_factor(args, f, size, timeout=3600):
    """The result dict of one factor, measured by `child` in a fresh process."""
    argv = module_argv("data_prep") + [
        f"--child_downsample={f}", f"--size={size}", f"--seed={args.seed}",
        f"--sweep_patch_size={args.sweep_patch_size}", f"--sweep_repeats={args.sweep_repeats}",
        f"--majority_crop={args.majority_crop}", f"--pairwise_factors={args.pairwise_factors}"]
    proc = subprocess.run(argv, capture_output=True, text=True, env=child_env(), timeout=timeout)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        print(proc.stdout[-2000:], proc.stderr[-3000:])
        raise SystemExit(f"ERROR: data_prep sweep child failed (--downsample={f}, {size}^2)")
    return json.loads(lines[-1])


def parse_factors(text):
    try:
        factors = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise SystemExit(f"ERROR: --downsample_sweep: integers separated by commas, got {text!r}")
    if not factors or min(factors) < 1:
        raise SystemExit(f"ERROR: --downsample_sweep: positive factors, got {text!r}")
    return factors


def sweep(args, results_dir):
    """`bench/data_prep.py --downsample_sweep=...`: table, "downsample_sweep" in data_prep.json, summary line."""
    factors = parse_factors(args.downsample_sweep)
    size, p = args.size or SWEEP_SIZE, args.sweep_patch_size
    for f in factors:
        if size // f < p:
            raise SystemExit(f"ERROR: --sweep_patch_size={p}: a {size}^2 scene at --downsample={f} is "
                             f"{size // f}^2 px, smaller than one patch")
    path = cached_raw_scene(size, args.seed)
    load_before = loadavg()
    rows = []
    for f in factors:
        progress(f"--downsample={f} ({RAW_M * f} m, {size // f}^2 px, {p}^2 patches) in its own process")
        rows.append(run_factor(args, f, size))
    load_after = loadavg()
    base = rows[0]["peak_rss_mb"]
    for r in rows:
        r["peak_ratio_to_first"] = r["peak_rss_mb"] / base
    flat = all(r["peak_ratio_to_first"] <= 1 + FLAT_TOLERANCE for r in rows)
    mb = ("peak_rss_mb", "working_mb")
    table = [{**r, **{k: round(r[k]) for k in mb}, "vote_s": r["majority"]["seconds"],
              "vote_mb": round(r["majority"]["traced_peak_mb"]),
              "old_vote_mb": round(r["majority"]["pairwise_would_need_mb"])} for r in rows]
    print_table(table, ["downsample", ("grid_m", "grid m"), ("seconds", "convert s"), ("peak_rss_mb", "peak RSS MB"),
                        ("working_mb", "working MB"), "patches", ("vote_s", "vote s"), ("vote_mb", "vote MB"),
                        ("old_vote_mb", "pairwise would need MB")],
                title=f"\nraw {size}^2 40 m scene ({os.path.getsize(path) / 1e6:.0f} MB), {p}^2 patches, stride {p}")
    refs = [{"downsample": r["downsample"], **r["majority"]["crop_reference"]} for r in rows
            if "crop_reference" in r["majority"]]
    if refs:
        print_table(refs, ["downsample", "crop", ("pairwise_s", "pairwise s"), ("block_majority_s", "vote s"),
                           "speedup", ("pairwise_traced_mb", "pairwise MB"), ("block_majority_traced_mb", "vote MB"),
                           "same_ids"], title="\nremoved pairwise vote vs block_majority, on a crop")
    doc = {"command": "python -m bench.data_prep " + " ".join(sys.argv[1:]), "machine": machine_info(),
           "scene": path, "size": size, "seed": args.seed, "patch_size": p, "stride": p, "factors": factors,
           "flat": flat, "flat_tolerance": FLAT_TOLERANCE, "loadavg_before": load_before,
           "loadavg_after": load_after, "rows": rows}
    out = merge_result("data_prep", "downsample_sweep", doc, results_dir)
    print(f"wrote {out} (key \"downsample_sweep\")")
    values = {}
    for r in rows:
        f = r["downsample"]
        values.update({f"f{f}_s": r["seconds"], f"f{f}_peak_mb": r["peak_rss_mb"], f"f{f}_patches": r["patches"],
                       f"f{f}_vote_s": r["majority"]["seconds"]})
    values.update({"flat": flat, "load1": load_after[0]})
    summary_line(values)
    return 0 if not any(r["failed"] for r in rows) else 1
