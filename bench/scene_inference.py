r"""Whole-scene tiled SIC inference: seconds, Mpx/s and peak RSS per scene size; fp32 and bf16 side by
side with the agreement of their products; the PyTorch forward pass of the same U-Net as reference.

  python -m bench.scene_inference [--sizes=2500x2600,5000x5200] [--tile=512 --overlap=64
      --batch_size=4 --precision=auto|fp32|bf16 --threads=0 --onednn=1] [--precisions=fp32,bf16]
      [--fold_batchnorm=1] [--variants=tile:batch:precision:threads[:onednn[:fold]],...] [--torch_modes=fp32,fp32_cl,bf16,bf16_cl]

Each measurement runs in its own subprocess, so that its peak RSS (ru_maxrss), its Keras
precision policy and its oneDNN setting belong to it alone. The scene is a synthetic
2-channel (HH, HV dB) 80 m scene with a no-data border (NaN), the model the package's
default SIC U-Net (`build_sic_unet(2)`, filters 16,32,64,64, random weights: speed does not
depend on them; for bf16 the fp32 model's weights copied into a mixed_bfloat16 twin, as
`tfseaice.serving.loading` does), called through `tfseaice.serving.scene_inference.predict_scene`.
`--precision=auto` (default, as `python -m tfseaice.predict`) = bf16 where the CPU has
AMX/AVX512-BF16, else fp32; `--onednn=1` (default, as the entry points: tfseaice/onednn.py).

Reported per size: `seconds` (the timed call, after one untimed call on a small scene
that traces the tf.function and creates the oneDNN primitives), `first_call_seconds`,
Mpx/s of scene pixels (tiling, copies, blending and the no-data mask included), and memory:
RSS before the call (model + the input array), peak RSS, and peak minus (RSS before + the
output array) = the working memory of the tiling, which must not grow with the scene.

--precisions: the largest size once more in each listed precision (the default row is
reused where it already is one), the predictions saved, and the agreement of bf16 with fp32:
max and mean |ΔSIC|, ice/water agreement % (SIC >= 0.5) and AutoICE SIC class agreement %
(round(10 SIC)) over pixels with data. A run whose CPU stall fraction was > 0.5 (another job
held the cores) is run once more and the faster run kept (`--retries`).

PyTorch reference (bench/torch_unet_reference.py --inference, a separate interpreter with
torch, see bench/README.md): the forward pass alone on `--batch_size` tiles of `--tile`²
(4 x 512²), per mode; the summary's `speedup_vs_torch` = our default pipeline's Mpx/s over
PyTorch's fastest forward pass (target 1.3).
"""

import argparse
import os
import sys
import tempfile

from bench.lib.results import print_table, progress, summary_line, write_result
from bench.lib.scene import agreement, child, run_size, torch_forward

TARGET_SECONDS = 30.0
TARGET_VS_TORCH = 1.3


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="2500x2600,5000x5200", help="HxW,... (the last one is the target size)")
    ap.add_argument("--tile", type=int, default=512)
    ap.add_argument("--overlap", type=int, default=64)
    ap.add_argument("--batch_size", type=int, default=4)
    ap.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    ap.add_argument("--precisions", default="fp32,bf16", help="precisions compared on the largest size ('' = none)")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--onednn", type=int, default=1, choices=[0, 1], help="TF_ENABLE_ONEDNN_OPTS of the children")
    ap.add_argument("--fold_batchnorm", type=int, default=1, choices=[0, 1],
                    help="BatchNorm folded into the convolutions, as predict/evaluate/autoice run the model")
    ap.add_argument("--variants", default="",
                    help="extra settings for the largest size: 'tile:batch:precision:threads[:onednn[:fold]],...' "
                         "e.g. 1024:1:fp32:0,512:4:fp32:0:0,512:4:bf16:0:1:0 (the last: BatchNorm not folded)")
    ap.add_argument("--torch_modes", default="fp32,fp32_cl,bf16,bf16_cl")
    ap.add_argument("--torch_filters", default="16,32,64,64", help="the SIC U-Net's default filters")
    ap.add_argument("--torch_steps", type=int, default=3)
    ap.add_argument("--no_torch", action="store_true")
    ap.add_argument("--retries", type=int, default=1, help="re-runs of a contended measurement")
    ap.add_argument("--quiet_load", type=float, default=1.5, help="wait for the 1-min load to fall below this ...")
    ap.add_argument("--quiet_wait", type=float, default=0, help="... for at most this many seconds per run")
    ap.add_argument("--child_timeout", type=float, default=1200)
    ap.add_argument("--results_dir", default=None)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--height", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--width", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--save_pred", default=None, help=argparse.SUPPRESS)
    return ap.parse_args(argv)


def _setting(r):
    threads = f" t{r['threads']['intra_op']}" if r["threads"]["intra_op"] else ""
    return (f"tile {r['tile']} ({r['tile_shape'][0]}x{r['tile_shape'][1]}) b{r['batch_size']} {r['precision']}"
            f"{threads}{'' if r['onednn'] else ' no-oneDNN'}{'' if r.get('fold_batchnorm', True) else ' BN unfolded'}")


def _report(r):
    print(f"    -> {r['seconds']:.1f} s, {r['pixels_per_s'] / 1e6:.2f} Mpx/s, peak RSS {r['peak_rss_mb']:.0f} MB, "
          f"stall {r['cpu_stall_fraction'] or 0:.2f}", flush=True)


def main(argv=None):
    args = parse_args(argv)
    if args.child:
        return child(args)

    import tensorflow as tf  # noqa: F401  (versions in the machine info)

    from tfseaice.precision import resolve  # noqa: E402  (after TF, as the machine info)

    sizes = [tuple(int(v) for v in s.lower().split("x")) for s in args.sizes.split(",") if s]
    default_precision = resolve(args.precision)
    rows = []
    tmp = tempfile.mkdtemp(prefix="tfseaice_scene_bench_")
    for k, (h, w) in enumerate(sizes):
        progress(f"scene {h}x{w}: tile {args.tile}, overlap {args.overlap}, batch {args.batch_size}, "
                 f"{args.precision} = {default_precision}")
        save = os.path.join(tmp, f"{default_precision}.npy") if k == len(sizes) - 1 else None
        r = run_size(args, h, w, args.tile, args.batch_size, default_precision, args.threads, save_pred=save)
        r["kind"] = "default"
        rows.append(r)
        _report(r)

    h, w = sizes[-1]
    precision_rows = {default_precision: rows[-1]}
    for p in [p for p in args.precisions.split(",") if p and p != default_precision]:
        progress(f"precision {p} {h}x{w}")
        r = run_size(args, h, w, args.tile, args.batch_size, p, args.threads, save_pred=os.path.join(tmp, f"{p}.npy"))
        r["kind"] = "precision"
        precision_rows[p] = r
        _report(r)
    agree = None
    if {"fp32", "bf16"} <= set(precision_rows):
        agree = agreement(os.path.join(tmp, "bf16.npy"), os.path.join(tmp, "fp32.npy"))
        print(f"    bf16 vs fp32: max |dSIC| {agree['max_abs_diff']:.4f}, mean {agree['mean_abs_diff']:.5f}, "
              f"ice/water {agree['ice_water_agreement_pct']:.3f} %, SIC classes {agree['sic_class_agreement_pct']:.3f} %")
    for f in os.listdir(tmp):
        os.remove(os.path.join(tmp, f))
    os.rmdir(tmp)

    variants = []
    for v in [v for v in args.variants.split(",") if v]:
        tile, batch, precision, threads, *rest = v.split(":")
        onednn = int(rest[0]) if rest else args.onednn
        fold = int(rest[1]) if len(rest) > 1 else args.fold_batchnorm
        progress(f"variant {h}x{w}: tile {tile}, batch {batch}, {precision}, threads {threads}, onednn {onednn}, "
                 f"fold_batchnorm {fold}")
        r = run_size(args, h, w, int(tile), int(batch), precision, int(threads), onednn=onednn, fold=fold)
        r["kind"] = "variant"
        variants.append(r)
        _report(r)

    progress(f"PyTorch forward pass, {args.batch_size} x {args.tile}²")
    torch_rows, torch_note, failures = torch_forward(args, [m for m in args.torch_modes.split(",") if m])

    extra = [r for p, r in precision_rows.items() if r is not rows[-1]]
    table = [{"scene": f"{r['height']}x{r['width']}", "setting": _setting(r), "s": r["seconds"],
              "first": r["first_call_seconds"], "mpx_s": r["pixels_per_s"] / 1e6, "overlap": r["overlap_factor"],
              "in_mb": r["input_mb"], "out_mb": r["output_mb"], "peak": r["peak_rss_mb"], "work": r["working_mb"],
              "stall": r["cpu_stall_fraction"], "load": r["loadavg_after"][0]}
             for r in rows + extra + variants]
    print_table(table, ["scene", "setting", ("s", "seconds"), ("first", "cold s"), ("mpx_s", "Mpx/s"),
                        ("overlap", "tile px/scene px"), ("in_mb", "input MB"), ("out_mb", "output MB"),
                        ("peak", "peak RSS MB"), ("work", "working MB"), ("stall", "CPU stall"), ("load", "load1")],
                title="\nwhole-scene inference (predict_scene, default U-Net)", floatfmt="{:.4g}")
    if torch_rows:
        print_table([{"mode": t["label"], "mpx_s": t["mpx_per_s"], "s": t["call_seconds_median"],
                      "stall": t["cpu_stall_fraction"], "load": t["loadavg_after"][0]} for t in torch_rows],
                    ["mode", ("mpx_s", "Mpx/s"), ("s", "s/call"), ("stall", "CPU stall"), ("load", "load1")],
                    title=f"\nPyTorch {torch_rows[0]['torch_version']} forward pass only", floatfmt="{:.4g}")

    big, small = rows[-1], rows[0]
    best = min(rows[-1:] + extra + variants, key=lambda r: r["seconds"])
    torch_best = max(torch_rows, key=lambda t: t["mpx_per_s"]) if torch_rows else None
    summary = {
        "seconds": big["seconds"], "first_call_seconds": big["first_call_seconds"],
        "pixels_per_s": big["pixels_per_s"], "mpx_per_s": big["pixels_per_s"] / 1e6, "precision": big["precision"],
        "peak_rss_mb": big["peak_rss_mb"], "peak_rss_small_mb": small["peak_rss_mb"], "working_mb": big["working_mb"],
        "working_growth_mb": big["working_mb"] - small["working_mb"], "target_s": TARGET_SECONDS,
        "meets_target": big["seconds"] <= TARGET_SECONDS, "best_seconds": best["seconds"],
        "best_setting": f"tile{best['tile']}_b{best['batch_size']}_{best['precision']}",
        "load1": big["loadavg_after"][0],
    }
    for p, r in precision_rows.items():
        summary[f"{p}_mpx_per_s"] = r["pixels_per_s"] / 1e6
    if agree:
        summary.update(bf16_max_abs_dsic=agree["max_abs_diff"], bf16_mean_abs_dsic=agree["mean_abs_diff"],
                       bf16_ice_water_agreement_pct=agree["ice_water_agreement_pct"],
                       bf16_sic_class_agreement_pct=agree["sic_class_agreement_pct"])
    if torch_best:
        summary.update(torch_best_mpx_per_s=torch_best["mpx_per_s"], torch_best_mode=torch_best["mode"],
                       speedup_vs_torch=summary["mpx_per_s"] / torch_best["mpx_per_s"],
                       target_vs_torch=TARGET_VS_TORCH,
                       meets_torch_target=summary["mpx_per_s"] / torch_best["mpx_per_s"] >= TARGET_VS_TORCH)
    payload = {"config": {k: v for k, v in vars(args).items() if k not in ("child", "height", "width", "save_pred")},
               "sizes": rows, "variants": variants, "precisions": precision_rows, "bf16_vs_fp32": agree,
               "pytorch": {"rows": torch_rows, "note": torch_note, "failures": failures},
               "summary": summary, "target_seconds": TARGET_SECONDS, "target_vs_torch": TARGET_VS_TORCH,
               "memory_note": "working MB = peak RSS - (RSS before the call, i.e. model + input) - output array; "
                              "constant across sizes = memory does not grow with the scene",
               "speed_note": "Mpx/s = scene pixels / seconds of the whole predict_scene call (tiling, copies, "
                             "blending, no-data mask); PyTorch's Mpx/s = tile pixels / seconds of its forward "
                             "pass alone"}
    path = write_result("scene_inference", payload, args.results_dir)
    print(f"wrote {path}")
    summary_line(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
