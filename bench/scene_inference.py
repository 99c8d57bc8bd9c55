r"""Whole-scene tiled SIC inference: seconds, pixels/s and peak RSS per scene size.

  python -m bench.scene_inference [--sizes=2500x2600,5000x5200] [--tile=512 --overlap=64
      --batch_size=4 --precision=fp32|bf16 --threads=0] [--variants]

Each scene size runs in its own subprocess, so that its peak RSS (ru_maxrss)
belongs to that size alone. The scene is a synthetic 2-channel (HH, HV dB)
80 m scene with a no-data border (NaN), the model the package's default SIC
U-Net (`build_sic_unet(2)`, filters 16,32,64,64, random weights: speed does not
depend on them), called through `tfseaice.serving.scene_inference.predict_scene`.

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
import sys

from bench.lib.results import print_table, progress, summary_line, write_result
from bench.lib.scene import child, run_size

TARGET_SECONDS = 30.0


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
        progress(f"scene {h}x{w}: tile {args.tile}, overlap {args.overlap}, batch {args.batch_size}, "
                        f"{args.precision}")
        r = run_size(args, h, w, args.tile, args.batch_size, args.precision, args.threads)
        r["kind"] = "default"
        rows.append(r)
        print(f"    -> {r['seconds']:.1f} s, {r['pixels_per_s'] / 1e6:.2f} Mpx/s, peak RSS {r['peak_rss_mb']:.0f} MB")
    variants = []
    for v in [v for v in args.variants.split(",") if v]:
        tile, batch, precision, threads = v.split(":")
        h, w = sizes[-1]
        progress(f"variant {h}x{w}: tile {tile}, batch {batch}, {precision}, threads {threads}")
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
    print_table(table, ["scene", "setting", ("s", "seconds"), ("first", "cold s"), ("mpx_s", "Mpx/s"),
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
    path = write_result("scene_inference", payload, args.results_dir)
    print(f"wrote {path}")
    summary_line(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
