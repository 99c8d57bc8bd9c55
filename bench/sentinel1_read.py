r"""Reading a full-size Sentinel-1 GRD product: seconds and peak RSS of `read_product`; HV seam steps.

  python -m bench.sentinel1_read [--mode=EW --lines=10400 --samples=10000] [--zip] [--seed=0]
      [--seam_size=1024] [--results_dir=DIR] [--result_key=KEY]

A sample product of the given size (EW GRDM 40 m by default, the size of a real
EW scene; `--mode=IW --lines=16700 --samples=26000` for a full IW GRDH at 10 m)
is written with tfseaice.simulate.safe_products (smooth HH/HV fields with
Gamma speckle, an HV band under the noise floor, a no-data border; cached in
$TFSEAICE_BENCH_CACHE, default /tmp/tfseaice_bench), then read by
`tfseaice.data.sentinel1.read_product` in its own process (`--child`): wall
seconds, CPU seconds and the child's own peak RSS (VmHWM). Targets (issue 23):
EW GRDM to a scene in <= 60 s on 2 cores; a full IW GRDH within 4 GB peak RSS.

Seams (`--seam_size`, 0 = skip): the product of sample scene 0 (seed `--seed`,
seam_size^2 at 40 m) read with the noise correction range x azimuth blocks,
range only, and none; for each sub-swath seam, the HV step in dB (median of
the 16 columns right of it minus the 16 left of it, over all lines) of each
read and of the scene's own HV (its truth).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

from bench.lib.children import child_env
from bench.lib.machine import image_peak_rss_mb, loadavg, num_cores
from bench.lib.results import merge_result, print_table, progress, summary_line, write_result
from bench.lib.sentinel1 import CACHE_DIR, cached_product

TARGET_EW_SECONDS = 60.0
TARGET_IW_RSS_MB = 4096.0
SEAM_HALF_WIDTH = 16


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mode", default="EW", choices=["EW", "IW"])
    ap.add_argument("--lines", type=int, default=10400)
    ap.add_argument("--samples", type=int, default=10000)
    ap.add_argument("--zip", action="store_true", help="write and read the product as a .zip")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--seam_size", type=int, default=1024, help="side of the seam-measurement product (0: skip)")
    ap.add_argument("--results_dir", default=None)
    ap.add_argument("--result_key", default=None,
                    help="store this run under KEY of sentinel1_read.json, keeping its other keys (e.g. iw)")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)  # read this product, print JSON
    return ap.parse_args(argv)


def child(path):
    """Read one product in this process; print the measurements as JSON."""
    from tfseaice.data.sentinel1 import read_product

    cpu0, t = os.times(), time.perf_counter()
    ds = read_product(path)
    seconds = time.perf_counter() - t
    cpu1 = os.times()
    hv = ds["nersc_sar_secondary"].values
    print(json.dumps({"seconds": seconds, "cpu_seconds": (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system),
                      "peak_rss_mb": image_peak_rss_mb(), "shape": list(hv.shape),
                      "finite_fraction": float(np.isfinite(hv).mean()),
                      "noise_correction": ds.attrs["noise_correction"]}))
    return 0


def seam_steps(size, seed):
    """HV step (dB) at each sub-swath seam of a sample-scene product, per noise correction and in the truth."""
    from tfseaice.data.sentinel1 import read_product
    from tfseaice.simulate import sample_products, scenes
    from tfseaice.simulate.safe_products import seam_samples

    scene = scenes.make_scene(scenes.scene_seed(seed, 0), size)
    tmp = tempfile.mkdtemp(prefix="s1_seams_", dir=CACHE_DIR)
    try:
        path = sample_products.product_from_scene(scene, tmp)
        reads = {c: read_product(path, noise_correction=c)["nersc_sar_secondary"].values
                 for c in ("range_azimuth", "range", "none")}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    reads["truth"] = scene["nersc_sar_secondary"].values
    rows = []
    for k, s in enumerate(seam_samples("EW", size)):
        row = {"seam": f"EW{k + 1}|EW{k + 2}", "sample": int(s)}
        for name, hv in reads.items():
            left = np.nanmedian(hv[:, s - SEAM_HALF_WIDTH:s])
            right = np.nanmedian(hv[:, s:s + SEAM_HALF_WIDTH])
            row[name] = float(right - left)
        rows.append(row)
    return rows


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.child:
        return child(args.child)
    os.makedirs(CACHE_DIR, exist_ok=True)
    path, write_s = cached_product(args)
    progress(f"reading {os.path.basename(path)} in a child process")
    load_before = loadavg()
    proc = subprocess.run([sys.executable, "-m", "bench.sentinel1_read", f"--child={path}"], capture_output=True,
                          text=True, env=child_env())
    if proc.returncode != 0:
        print(proc.stdout[-2000:], proc.stderr[-3000:])
        return 1
    read = json.loads(proc.stdout.strip().splitlines()[-1])
    load_after = loadavg()
    rows = [{"what": f"read_product {args.mode} {args.lines}x{args.samples}{' zip' if args.zip else ''}",
             "seconds": read["seconds"], "cpu_seconds": read["cpu_seconds"], "peak_rss_mb": read["peak_rss_mb"]}]
    print_table(rows, ["what", ("seconds", "s"), ("cpu_seconds", "CPU s"), ("peak_rss_mb", "peak RSS MB")])
    seams = []
    if args.seam_size:
        progress(f"seam steps on the product of sample scene 0 ({args.seam_size}^2)")
        seams = seam_steps(args.seam_size, args.seed)
        print_table(seams, ["seam", "sample", ("truth", "truth dB"), ("range_azimuth", "range x azimuth dB"),
                            ("range", "range only dB"), ("none", "no noise removal dB")],
                    title="\nHV step across each sub-swath seam (right minus left, 16 columns each side)")
    payload = {"config": vars(args), "product": path, "product_bytes": _size(path), "write_seconds": write_s,
               "read": read, "cores": num_cores(), "loadavg_before": load_before, "loadavg_after": load_after,
               "target_ew_seconds": TARGET_EW_SECONDS, "target_iw_peak_rss_mb": TARGET_IW_RSS_MB,
               "seam_steps_db": seams}
    if args.result_key:
        out = merge_result("sentinel1_read", args.result_key, payload, args.results_dir)
    else:
        out = write_result("sentinel1_read", payload, args.results_dir)
    print(f"wrote {out}")
    summary = {"mode": args.mode, "seconds": read["seconds"], "cpu_seconds": read["cpu_seconds"],
               "peak_rss_mb": read["peak_rss_mb"], "load1": load_after[0]}
    if seams:
        summary["max_seam_step_range_azimuth_db"] = max(abs(r["range_azimuth"] - r["truth"]) for r in seams)
        summary["max_seam_step_range_only_db"] = max(abs(r["range"] - r["truth"]) for r in seams)
    summary_line(summary)
    return 0


def _size(path):
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(r, n)) for r, _, names in os.walk(path) for n in names)


if __name__ == "__main__":
    sys.exit(main())
