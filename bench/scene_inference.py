r"""Whole-scene tiled SIC inference: seconds, pixels/s and peak RSS per scene size.

  python bench/scene_inference.py [--sizes=2500x2600,5000x5200] [--tile=512 --overlap=64
      --batch_size=4 --precision=fp32|bf16 --threads=0] [--variants]

Each scene size runs in its own subprocess, so that its peak RSS (ru_maxrss)
belongs to that size alone. The scene is a synthetic 2-channel (HH, HV dB)
80 m scene with a no-data border (NaN), the model the package's default SIC
U-Net (`build_sic_unet(2)`, filters 16,32,64,64, random weights: speed does not
depend on them), called through `tfseaice.inference.predict_scene`.

Reported per size: `seconds` (the timed call, after one untimed call on a small
scene that traces the tf.function and creates the oneDNN primitives),
`first_call_seconds` (a cold process's first scene: tracing included),
pixels/s, and memory: RSS before the call (model + the input array), peak RSS,
and peak minus (RSS before + the output array) = the working memory of the
tiling, which must not grow with the scene.

--variants also times the largest size with other settings (tile size, batch,
bf16, threads) to find what meets the 30 s target.
"""

import argparse
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from bench import common  # noqa: E402

TARGET_SECONDS = 30.0


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


def child(args):
    import keras

    import tensorflow as tf

    common.set_threads(args.threads)
    if args.precision == "bf16":
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
    from tfseaice import inference
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
    rss_before = common.current_rss_mb()
    peak_before = common.peak_rss_mb()
    load_before = common.loadavg()
    cpu0 = time.process_time()
    t = time.perf_counter()
    with common.Contention() as contention:
        pred = inference.predict_scene(model, sar, tile=args.tile, overlap=args.overlap, batch_size=args.batch_size)
    seconds = time.perf_counter() - t
    cpu_s = time.process_time() - cpu0
    load_after = common.loadavg()
    peak = common.peak_rss_mb()
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
        "cpu_seconds": cpu_s, "cpu_utilisation": cpu_s / (seconds * common.num_cores()),
        "cpu_stall_fraction": contention.stall, "input_mb": in_mb, "output_mb": out_mb, "rss_before_mb": rss_before,
        "peak_rss_before_call_mb": peak_before, "peak_rss_mb": peak,
        "working_mb": peak - rss_before - out_mb,
        "nan_mask_ok": nan_ok, "pred_range": [float(np.nanmin(pred)), float(np.nanmax(pred))],
        "loadavg_before": load_before, "loadavg_after": load_after,
    }
    print(json.dumps(res))
    return 0


def run_size(args, h, w, tile, batch, precision, threads):
    argv = [sys.executable, os.path.abspath(__file__), "--child", f"--height={h}", f"--width={w}",
            f"--tile={tile}", f"--overlap={args.overlap}", f"--batch_size={batch}", f"--precision={precision}",
            f"--threads={threads}"]
    proc = subprocess.run(argv, capture_output=True, text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        print(proc.stdout[-2000:], proc.stderr[-3000:])
        raise SystemExit(f"scene_inference child failed ({h}x{w})")
    return json.loads(lines[-1])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="2500x2600,5000x5200", help="HxW,... (the last one is the target size)")
    ap.add_argument("--tile", type=int, default=512)
    ap.add_argument("--overlap", type=int, default=64)
    ap.add_argument("--batch_size", type=int, default=4)
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--variants", default="",
                    help="extra settings for the largest size: 'tile:batch:precision:threads,...' "
                         "e.g. 1024:2:fp32:0,512:4:bf16:0")
    ap.add_argument("--results_dir", default=None)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--height", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--width", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        return child(args)

    import tensorflow as tf  # noqa: F401  (versions in the machine info)

    sizes = [tuple(int(v) for v in s.lower().split("x")) for s in args.sizes.split(",") if s]
    rows = []
    for h, w in sizes:
        common.progress(f"scene {h}x{w}: tile {args.tile}, overlap {args.overlap}, batch {args.batch_size}, "
                        f"{args.precision}")
        r = run_size(args, h, w, args.tile, args.batch_size, args.precision, args.threads)
        r["kind"] = "default"
        rows.append(r)
        print(f"    -> {r['seconds']:.1f} s, {r['pixels_per_s'] / 1e6:.2f} Mpx/s, peak RSS {r['peak_rss_mb']:.0f} MB")
    variants = []
    for v in [v for v in args.variants.split(",") if v]:
        tile, batch, precision, threads = v.split(":")
        h, w = sizes[-1]
        common.progress(f"variant {h}x{w}: tile {tile}, batch {batch}, {precision}, threads {threads}")
        r = run_size(args, h, w, int(tile), int(batch), precision, int(threads))
        r["kind"] = "variant"
        variants.append(r)
        print(f"    -> {r['seconds']:.1f} s, {r['pixels_per_s'] / 1e6:.2f} Mpx/s, peak RSS {r['peak_rss_mb']:.0f} MB")

    table = [{"scene": f"{r['height']}x{r['width']}", "setting": f"tile {r['tile']} b{r['batch_size']} "
              f"{r['precision']}{' t' + str(r['threads']['intra_op']) if r['threads']['intra_op'] else ''}",
              "s": r["seconds"], "first": r["first_call_seconds"], "mpx_s": r["pixels_per_s"] / 1e6,
              "overlap": r["overlap_factor"], "in_mb": r["input_mb"], "out_mb": r["output_mb"],
              "peak": r["peak_rss_mb"], "work": r["working_mb"], "stall": r["cpu_stall_fraction"],
              "load": r["loadavg_after"][0]}
             for r in rows + variants]
    common.print_table(table, ["scene", "setting", ("s", "seconds"), ("first", "cold s"), ("mpx_s", "Mpx/s"),
                               ("overlap", "tile px/scene px"), ("in_mb", "input MB"), ("out_mb", "output MB"),
                               ("peak", "peak RSS MB"), ("work", "working MB"), ("stall", "CPU stall"),
                               ("load", "load1")],
                       title="\nwhole-scene inference (predict_scene, default U-Net)", floatfmt="{:.4g}")
    big, small = rows[-1], rows[0]
    growth = big["working_mb"] - small["working_mb"]
    best = min(rows[-1:] + variants, key=lambda r: r["seconds"])
    summary = {
        "seconds": big["seconds"], "first_call_seconds": big["first_call_seconds"],
        "pixels_per_s": big["pixels_per_s"], "peak_rss_mb": big["peak_rss_mb"],
        "peak_rss_small_mb": small["peak_rss_mb"], "working_mb": big["working_mb"],
        "working_growth_mb": growth, "target_s": TARGET_SECONDS, "meets_target": big["seconds"] <= TARGET_SECONDS,
        "best_seconds": best["seconds"],
        "best_setting": f"tile{best['tile']}_b{best['batch_size']}_{best['precision']}",
        "load1": big["loadavg_after"][0],
    }
    payload = {"config": {k: v for k, v in vars(args).items() if k not in ("child", "height", "width")},
               "sizes": rows, "variants": variants, "summary": summary, "target_seconds": TARGET_SECONDS,
               "memory_note": "working MB = peak RSS - (RSS before the call, i.e. model + input) - output array; "
                              "constant across sizes = memory does not grow with the scene"}
    path = common.write_result("scene_inference", payload, args.results_dir)
    print(f"wrote {path}")
    common.summary_line(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
