r"""Data preparation: seconds and MB/s per raw 40 m scene converted to TFRecords.

  python -m bench.data_prep [--size=10000 --seed=7 --breakdown]
  python -m bench.data_prep --runners=direct,multiprocess,flink,spark [--num_scenes=8 --scene_size=2048]

The scene is a synthetic raw AI4Arctic file (tfseaice.simulate.scenes, the real
layout: HH/HV, polygon_icechart, GCPs, AMSR2/ERA5 grids) made once and cached
under /tmp/tfseaice_bench (a 10000^2 scene: ~80 s and ~2.7 GB of memory to
make, ~0.95 GB on disk). It is converted with
`data_prep.ai4arctic_to_tfrecord.convert` (Beam DirectRunner, the defaults:
HH+HV, 256^2 patches, stride 256, 40 m -> 80 m) into a temporary folder.
Input MB = the netCDF file's size. With --breakdown, the reading +
downsampling step (`ai4arctic.read_scene`) is also timed on its own.

With --downsample_sweep=2,10,20, only the downsampling sweep of
bench/lib/dataprep.py runs: one raw scene (default 6000^2) converted at each
factor in its own process (seconds, peak RSS, patches; 64^2 patches so that
the 800 m grid still gives some) and `block_majority` timed alone; its
figures go to the "downsample_sweep" key of data_prep.json.

With --runners, only the runner comparison of bench/lib/runners.py runs
(Flink and Spark need `make beam-engines`); its figures go to the "runners"
key of data_prep.json, the other keys are kept.
"""

import argparse
import os
import shutil
import sys
import tempfile
import time

from bench.lib import dataprep
from bench.lib.data import CACHE_DIR, cached_raw_scene
from bench.lib.machine import loadavg, num_cores, peak_rss_mb
from bench.lib.results import print_table, progress, summary_line, write_result


def dir_mb(path):
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            total += os.path.getsize(os.path.join(root, f))
    return total / 1e6


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=None,
                    help="scene side in 40 m pixels (default 10000; 6000 with --downsample_sweep)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--breakdown", action="store_true", help="also time read_scene alone")
    ap.add_argument("--keep_output", default=None, help="keep the TFRecords in this folder")
    ap.add_argument("--results_dir", default=None)
    ap.add_argument("--runners", default=None, help="compare Beam runners instead: direct,multiprocess,flink,spark")
    ap.add_argument("--num_scenes", type=int, default=8, help="with --runners: sample scenes to convert")
    ap.add_argument("--scene_size", type=int, default=2048, help="with --runners: scene side in 40 m pixels")
    ap.add_argument("--workers", type=int, default=2, help="with --runners: processes / parallelism")
    ap.add_argument("--downsample_sweep", default=None, help="convert at each factor instead, e.g. 2,10,20")
    ap.add_argument("--sweep_patch_size", type=int, default=64, help="with --downsample_sweep: patch size = stride")
    ap.add_argument("--sweep_repeats", type=int, default=1, help="with --downsample_sweep: vote timings, best of")
    ap.add_argument("--majority_crop", type=int, default=1200,
                    help="with --downsample_sweep: side of the crop the removed pairwise vote is timed on")
    ap.add_argument("--pairwise_factors", default="2,10", help="with --downsample_sweep: factors timing it")
    ap.add_argument("--child_downsample", type=int, default=None, help=argparse.SUPPRESS)  # one sweep factor
    args = ap.parse_args(argv)
    if args.child_downsample:
        return dataprep.child(args)
    if args.downsample_sweep:
        return dataprep.sweep(args, args.results_dir)
    args.size = args.size or 10000
    if args.runners:
        from bench.lib import runners

        return runners.main(args, args.results_dir)

    import logging

    logging.getLogger("apache_beam").setLevel(logging.WARNING)
    import tensorflow as tf  # noqa: F401  (versions in the machine info)

    from data_prep.ai4arctic_to_tfrecord import convert
    from tfseaice.data import ai4arctic

    path = cached_raw_scene(args.size, args.seed)
    in_mb = os.path.getsize(path) / 1e6
    out_dir = args.keep_output or tempfile.mkdtemp(prefix="records_", dir=CACHE_DIR)
    if not args.keep_output:
        shutil.rmtree(out_dir)
    rows = []
    read_s = None
    progress(f"converting {os.path.basename(path)} ({in_mb:.0f} MB, {args.size}^2) with convert()")
    load_before = loadavg()
    cpu0 = os.times()
    t = time.perf_counter()
    info, failed = convert(path, out_dir, val_fraction=0.0, overwrite=True)
    seconds = time.perf_counter() - t
    cpu1 = os.times()
    load_after = loadavg()
    cpu_s = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system) + (cpu1.children_user - cpu0.children_user) \
        + (cpu1.children_system - cpu0.children_system)
    out_mb = dir_mb(out_dir)
    patches = info["splits"]["train"]["num_examples"] + info["splits"]["val"]["num_examples"]
    rows.append({"step": "convert (whole pipeline)", "seconds": seconds, "mb_per_s": in_mb / seconds})
    if args.breakdown:
        # After convert, so that both see the same (warm) page cache.
        progress("timing read_scene (read netCDF + 2x2 downsampling) alone")
        t = time.perf_counter()
        scene = ai4arctic.read_scene(path, ai4arctic.DEFAULT_CHANNELS, 2)
        read_s = time.perf_counter() - t
        del scene
        rows.append({"step": "  read_scene alone (netCDF -> 80 m arrays)", "seconds": read_s,
                     "mb_per_s": in_mb / read_s})
        if seconds > read_s:
            rows.append({"step": "  rest: patches + encode + write + Beam (difference)", "seconds": seconds - read_s,
                         "mb_per_s": None})
    print_table(rows, ["step", ("seconds", "s"), ("mb_per_s", "input MB/s")],
                       title=f"\n{args.size}^2 raw scene ({in_mb:.0f} MB netCDF) -> {patches} patches, "
                             f"{out_mb:.0f} MB of TFRecords")
    payload = {
        "config": vars(args), "scene": path, "input_mb": in_mb, "output_mb": out_mb, "patches": patches,
        "failed": failed, "seconds": seconds, "mb_per_s": in_mb / seconds, "patches_per_s": patches / seconds,
        "cpu_seconds": cpu_s, "cpu_utilisation": cpu_s / (seconds * num_cores()),
        "read_scene_seconds": read_s, "peak_rss_mb": peak_rss_mb(),
        "converter_seconds_reported": info.get("seconds"),
        "loadavg_before": load_before, "loadavg_after": load_after,
    }
    if not args.keep_output:
        shutil.rmtree(out_dir, ignore_errors=True)
    out = write_result("data_prep", payload, args.results_dir)
    print(f"wrote {out}")
    summary_line({"seconds": seconds, "mb_per_s": in_mb / seconds, "input_mb": in_mb,
                         "output_mb": out_mb, "patches": patches, "patches_per_s": patches / seconds,
                         "peak_rss_mb": payload["peak_rss_mb"], "load1": load_after[0]})
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main())
