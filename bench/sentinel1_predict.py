r"""`predict` straight from a full-size EW product vs the same scene from its netCDF: seconds and their ratio.

  python -m bench.sentinel1_predict [--lines=10400 --samples=10000] [--zip] [--repeats=2] [--seed=0]
      [--tile=512 --overlap=64 --batch_size=4] [--results_dir=DIR]

The product is bench.sentinel1_read's (same cache, $TFSEAICE_BENCH_CACHE), its
scene netCDF is written once by tfseaice.data.sentinel1_scenes (no chart).
Each measurement is `tfseaice.serving.sic_scene.predict_scene_file` (read,
GSHHG land mask for the product, tiled inference at 80 m, netCDF + PNG) in a
process of its own, with the package's default SIC U-Net (random weights: speed
does not depend on them) built before the clock starts; `--repeats` runs of
each, alternated, the fastest kept (the cores are shared). Target (issue 23):
product / netCDF <= 1.3. With --convert=1 (default) the product -> scene
conversion (`sentinel1_scenes.write_product_scene`: read, GSHHG distance_map,
netCDF; no chart) is measured once in its own process too (targets: <= 60 s,
<= 4 GB peak RSS).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from bench.lib.children import child_env
from bench.lib.machine import image_peak_rss_mb, loadavg, num_cores
from bench.lib.results import print_table, progress, summary_line, write_result
from bench.lib.sentinel1 import CACHE_DIR, cached_product

TARGET_RATIO = 1.3


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lines", type=int, default=10400)
    ap.add_argument("--samples", type=int, default=10000)
    ap.add_argument("--zip", action="store_true", help="the product as a .zip")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--tile", type=int, default=512)
    ap.add_argument("--overlap", type=int, default=64)
    ap.add_argument("--batch_size", type=int, default=4)
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    ap.add_argument("--results_dir", default=None)
    ap.add_argument("--convert", type=int, default=1, choices=[0, 1],
                    help="also measure the product -> scene conversion (write_product_scene) in its own process")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)   # predict this scene, print JSON
    ap.add_argument("--convert_child", default=None, help=argparse.SUPPRESS)   # convert this product, print JSON
    return ap.parse_args(argv)


def scene_of(product):
    """The product's scene netCDF (chart-less), written once beside it."""
    from tfseaice.data import sentinel1_scenes

    folder = os.path.join(os.path.dirname(product), "scene")
    path = os.path.join(folder, sentinel1_scenes.scene_file_name(product))
    if not os.path.exists(path):
        progress(f"writing the scene netCDF of {os.path.basename(product)}")
        sentinel1_scenes.write_product_scene(product, folder)
    return path


def convert_child(product):
    """write_product_scene (read, GSHHG distance_map, netCDF) in this process; print the measurements as JSON."""
    from tfseaice.data import sentinel1_scenes

    out = tempfile.mkdtemp(prefix="s1_scene_")
    cpu0, t = os.times(), time.perf_counter()
    report = sentinel1_scenes.write_product_scene(product, out)
    seconds = time.perf_counter() - t
    cpu1 = os.times()
    size = os.path.getsize(os.path.join(out, report["scene"]))
    shutil.rmtree(out, ignore_errors=True)
    print(json.dumps({"seconds": seconds, "cpu_seconds": (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system),
                      "peak_rss_mb": image_peak_rss_mb(), "shape": report["shape"], "scene_bytes": size}))
    return 0


def child(args):
    """predict_scene_file on one scene in this process; print the measurements as JSON."""
    import keras

    from tfseaice.models.unet import build_sic_unet
    from tfseaice.serving.sic_scene import predict_scene_file

    if args.precision == "bf16":
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
    keras.utils.set_random_seed(0)
    model = build_sic_unet(2, norm_mean=[-14.5, -24.7], norm_std=[5.7, 4.8])
    info = {"channels": ["hh", "hv"], "downsample": 2, "source": "bench"}
    out = os.path.join(tempfile.mkdtemp(prefix="s1_predict_"), "map.nc")
    cpu0, t = os.times(), time.perf_counter()
    ds = predict_scene_file(model, info, args.child, out, tile=args.tile, overlap=args.overlap,
                            batch_size=args.batch_size)
    seconds = time.perf_counter() - t
    cpu1 = os.times()
    print(json.dumps({"seconds": seconds, "cpu_seconds": (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system),
                      "peak_rss_mb": image_peak_rss_mb(), "shape": list(ds["sic"].shape)}))
    return 0


def _run(path, args, convert=False):
    argv = [sys.executable, "-m", "bench.sentinel1_predict", f"--child={path}", f"--tile={args.tile}",
            f"--overlap={args.overlap}", f"--batch_size={args.batch_size}", f"--precision={args.precision}"]
    if convert:
        argv = [sys.executable, "-m", "bench.sentinel1_predict", f"--convert_child={path}"]
    proc = subprocess.run(argv, capture_output=True, text=True, env=child_env())
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.child:
        return child(args)
    if args.convert_child:
        return convert_child(args.convert_child)
    os.makedirs(CACHE_DIR, exist_ok=True)
    product, _ = cached_product(argparse.Namespace(mode="EW", lines=args.lines, samples=args.samples,
                                                                  seed=args.seed, zip=args.zip))
    scene = scene_of(product)
    runs = {"netcdf": [], "product": []}
    load_before = loadavg()
    for k in range(args.repeats):
        for what, path in (("netcdf", scene), ("product", product)):
            progress(f"run {k + 1}/{args.repeats}: predict from the {what}")
            runs[what].append(_run(path, args))
    conversion = None
    if args.convert:
        progress("the product -> scene conversion (write_product_scene, no chart) in its own process")
        conversion = _run(product, args, convert=True)
        print_table([{"what": "product -> scene netCDF", **conversion}],
                    ["what", ("seconds", "s"), ("cpu_seconds", "CPU s"), ("peak_rss_mb", "peak RSS MB")])
    best = {w: min(r, key=lambda x: x["seconds"]) for w, r in runs.items()}
    ratio = best["product"]["seconds"] / best["netcdf"]["seconds"]
    rows = [{"what": f"predict from the {w}", **best[w]} for w in ("netcdf", "product")]
    print_table(rows, ["what", ("seconds", "s"), ("cpu_seconds", "CPU s"), ("peak_rss_mb", "peak RSS MB")])
    print(f"product / netCDF = {ratio:.2f} (target <= {TARGET_RATIO})")
    payload = {"config": {k: v for k, v in vars(args).items() if k != "child"}, "product": product, "scene": scene,
               "runs": runs, "best": best, "conversion": conversion, "target_conversion_seconds": 60.0,
               "target_conversion_peak_rss_mb": 4096.0, "ratio_product_over_netcdf": ratio, "target_ratio": TARGET_RATIO,
               "cores": num_cores(), "loadavg_before": load_before, "loadavg_after": loadavg()}
    print(f"wrote {write_result('sentinel1_predict', payload, args.results_dir)}")
    summary_line({"ratio": ratio, "netcdf_seconds": best["netcdf"]["seconds"],
                  "product_seconds": best["product"]["seconds"], "load1": loadavg()[0]})
    return 0


if __name__ == "__main__":
    sys.exit(main())
