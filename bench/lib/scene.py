"""Whole-scene inference measured in a child process: seconds, pixels/s, RSS and working memory.

Each scene size runs in its own process (`python -m bench.scene_inference
--child ...`), so that its peak RSS (ru_maxrss) belongs to that size alone.
TF, Keras and tfseaice are imported in `child`, the only code that runs in the
child process: the parent never imports them.
"""

import json
import subprocess
import time

import numpy as np

from bench.lib.children import child_env, module_argv
from bench.lib.data import synthetic_scene
from bench.lib.machine import current_rss_mb, loadavg, num_cores, peak_rss_mb
from bench.lib.timing import Contention, set_threads


def child(args):
    """Measure one scene size (`args`: scene_inference.py's flags); print the result as one JSON line."""
    import keras

    import tensorflow as tf

    set_threads(args.threads)
    if args.precision == "bf16":
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
    from tfseaice.serving import scene_inference as inference
    from tfseaice.models.unet import build_sic_unet

    h, w = args.height, args.width
    keras.utils.set_random_seed(1)
    model = build_sic_unet(2, norm_mean=[-14.5, -24.7], norm_std=[5.7, 4.8])
    t = time.perf_counter()
    small = synthetic_scene(1024, 1024, seed=1)
    inference.predict_scene(model, small, tile=args.tile, overlap=args.overlap, batch_size=args.batch_size)
    first_small_s = time.perf_counter() - t
    del small
    sar = synthetic_scene(h, w, seed=2)
    rss_before = current_rss_mb()
    peak_before = peak_rss_mb()
    load_before = loadavg()
    cpu0 = time.process_time()
    t = time.perf_counter()
    with Contention() as contention:
        pred = inference.predict_scene(model, sar, tile=args.tile, overlap=args.overlap, batch_size=args.batch_size)
    seconds = time.perf_counter() - t
    cpu_s = time.process_time() - cpu0
    load_after = loadavg()
    peak = peak_rss_mb()
    rows = inference.axis_tiles(h, args.tile, args.overlap)
    cols = inference.axis_tiles(w, args.tile, args.overlap)
    n_tiles = len(rows.origins) * len(cols.origins)
    computed_px = n_tiles * rows.size * cols.size
    finite = np.isfinite(pred)
    nan_ok = bool(np.array_equal(~finite, ~np.isfinite(sar).all(-1)))
    in_mb = sar.nbytes / 2**20
    out_mb = pred.nbytes / 2**20
    res = {
        "height": h, "width": w, "pixels": h * w, "tile": args.tile, "overlap": args.overlap,
        "batch_size": args.batch_size, "precision": args.precision,
        "threads": {"intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
                    "inter_op": tf.config.threading.get_inter_op_parallelism_threads()},
        "tiles": n_tiles, "tile_pixels_computed": computed_px, "overlap_factor": computed_px / (h * w),
        "seconds": seconds, "first_call_seconds": seconds + first_small_s,
        "warmup_call_seconds_1024": first_small_s, "pixels_per_s": h * w / seconds,
        "cpu_seconds": cpu_s, "cpu_utilisation": cpu_s / (seconds * num_cores()),
        "cpu_stall_fraction": contention.stall, "input_mb": in_mb, "output_mb": out_mb, "rss_before_mb": rss_before,
        "peak_rss_before_call_mb": peak_before, "peak_rss_mb": peak,
        "working_mb": peak - rss_before - out_mb,
        "nan_mask_ok": nan_ok, "pred_range": [float(np.nanmin(pred)), float(np.nanmax(pred))],
        "loadavg_before": load_before, "loadavg_after": load_after,
    }
    print(json.dumps(res))
    return 0


def run_size(args, h, w, tile, batch, precision, threads):
    """The result dict of one scene size, measured by `child` in a fresh process."""
    argv = module_argv("scene_inference") + [
        "--child", f"--height={h}", f"--width={w}", f"--tile={tile}", f"--overlap={args.overlap}",
        f"--batch_size={batch}", f"--precision={precision}", f"--threads={threads}"]
    proc = subprocess.run(argv, capture_output=True, text=True, env=child_env())
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        print(proc.stdout[-2000:], proc.stderr[-3000:])
        raise SystemExit(f"scene_inference child failed ({h}x{w})")
    return json.loads(lines[-1])
