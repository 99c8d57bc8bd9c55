"""Whole-scene inference measured in a child process: seconds, pixels/s, RSS and working memory;
bf16-vs-fp32 agreement of the products; the PyTorch forward-pass reference.

Each scene size runs in its own process (`python -m bench.scene_inference
--child ...`), so that its peak RSS (ru_maxrss) belongs to that size alone and the
precision (Keras policy) and oneDNN setting (`TF_ENABLE_ONEDNN_OPTS`, read when
TensorFlow loads) are its own. TF, Keras and tfseaice are imported in `child`, the
only code that runs in the child process: the parent never imports them.
"""

import json
import os
import subprocess
import time

import numpy as np

from bench.lib.children import child_env, module_argv, run_child, torch_python
from bench.lib.data import synthetic_scene
from bench.lib.machine import current_rss_mb, loadavg, num_cores, peak_rss_mb
from bench.lib.timing import Contention, set_threads, wait_for_quiet

STALL_RETRY = 0.5   # re-run a measurement whose CPU stall fraction was above this (keep the faster run)
ROWS = 512          # row chunk of the agreement statistics


def child(args):
    """Measure one scene size (`args`: scene_inference.py's flags); print the result as one JSON line."""
    import keras

    import tensorflow as tf

    set_threads(args.threads)
    from tfseaice import onednn, precision as precisions
    from tfseaice.models.unet import build_sic_unet
    from tfseaice.serving import scene_inference as inference

    h, w = args.height, args.width
    precision = precisions.resolve(args.precision)

    def build():
        keras.utils.set_random_seed(1)
        return build_sic_unet(2, norm_mean=[-14.5, -24.7], norm_std=[5.7, 4.8])

    # The serving path: fp32 weights, copied into a mixed_bfloat16 twin for bf16, BatchNorm folded.
    model = precisions.twin(build(), build, precision)
    if args.fold_batchnorm:
        from tfseaice.models.fold_batchnorm import fold_batchnorm

        model = fold_batchnorm(model)
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
    if args.save_pred:
        np.save(args.save_pred, pred)
    res = {
        "height": h, "width": w, "pixels": h * w, "tile": args.tile, "overlap": args.overlap,
        "tile_shape": [rows.size, cols.size], "batch_size": args.batch_size, "precision": precision,
        "precision_flag": args.precision, "model_compute_dtype": model.dtype_policy.compute_dtype,
        "onednn": onednn.enabled(), "fold_batchnorm": bool(args.fold_batchnorm), "tf_enable_onednn_opts": os.environ.get(onednn.ENV),
        "threads": {"intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
                    "inter_op": tf.config.threading.get_inter_op_parallelism_threads()},
        "tiles": n_tiles, "tile_pixels_computed": computed_px, "overlap_factor": computed_px / (h * w),
        "seconds": seconds, "first_call_seconds": seconds + first_small_s,
        "warmup_call_seconds_1024": first_small_s, "pixels_per_s": h * w / seconds,
        "tile_pixels_per_s": computed_px / seconds,
        "cpu_seconds": cpu_s, "cpu_utilisation": cpu_s / (seconds * num_cores()),
        "cpu_stall_fraction": contention.stall, "input_mb": in_mb, "output_mb": out_mb, "rss_before_mb": rss_before,
        "peak_rss_before_call_mb": peak_before, "peak_rss_mb": peak,
        "working_mb": peak - rss_before - out_mb, "output_dtype": str(pred.dtype),
        "nan_mask_ok": nan_ok, "pred_range": [float(np.nanmin(pred)), float(np.nanmax(pred))],
        "loadavg_before": load_before, "loadavg_after": load_after,
    }
    print(json.dumps(res))
    return 0


def run_size(args, h, w, tile, batch, precision, threads, onednn=None, save_pred=None, fold=None):
    """The result dict of one scene size, measured by `child` in a fresh process.

    A run whose CPU stall fraction exceeds STALL_RETRY (another job held the cores) is
    measured once more after waiting for quiet; the faster run is kept, both are in "attempts".
    """
    onednn = args.onednn if onednn is None else onednn
    fold = args.fold_batchnorm if fold is None else fold
    argv = module_argv("scene_inference") + [
        "--child", f"--height={h}", f"--width={w}", f"--tile={tile}", f"--overlap={args.overlap}",
        f"--batch_size={batch}", f"--precision={precision}", f"--threads={threads}",
        f"--fold_batchnorm={int(fold)}"]
    if save_pred:
        argv.append(f"--save_pred={save_pred}")
    env = dict(child_env(), TF_ENABLE_ONEDNN_OPTS=str(onednn))
    runs = []
    for _ in range(1 + max(0, args.retries)):
        wait_for_quiet(args.quiet_load, args.quiet_wait, log=lambda m: None)
        proc = subprocess.run(argv, capture_output=True, text=True, env=env)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
        if proc.returncode != 0 or not lines:
            print(proc.stdout[-2000:], proc.stderr[-3000:])
            raise SystemExit(f"scene_inference child failed ({h}x{w})")
        runs.append(json.loads(lines[-1]))
        if (runs[-1]["cpu_stall_fraction"] or 0) <= STALL_RETRY:
            break
    best = min(runs, key=lambda r: r["seconds"])
    best["attempts"] = [{k: r[k] for k in ("seconds", "cpu_stall_fraction", "cpu_utilisation", "loadavg_before")}
                        for r in runs]
    if save_pred and best is not runs[-1]:
        best["note"] = "prediction saved by the last attempt (same weights and scene: the same numbers)"
    return best


def agreement(path_a, path_b, threshold=0.5):
    """Agreement of two SIC maps (.npy, e.g. bf16 vs fp32), in row chunks.

    max/mean |ΔSIC| over pixels finite in both; ice/water agreement (SIC >= threshold) and
    AutoICE SIC class agreement (classes round(10 SIC), clipped to 0..10, as
    tfseaice.data.codes.sic_classes) in percent of those pixels; whether the NaN masks agree.
    """
    a, b = np.load(path_a, mmap_mode="r"), np.load(path_b, mmap_mode="r")
    if a.shape != b.shape:
        raise ValueError(f"{path_a} {a.shape} and {path_b} {b.shape} differ in shape")
    n = same_ice = same_class = 0
    dmax, dsum, nan_equal = 0.0, 0.0, True
    for r in range(0, a.shape[0], ROWS):
        x, y = np.asarray(a[r:r + ROWS], np.float64), np.asarray(b[r:r + ROWS], np.float64)
        fx, fy = np.isfinite(x), np.isfinite(y)
        nan_equal &= bool(np.array_equal(fx, fy))
        both = fx & fy
        x, y = x[both], y[both]
        if not x.size:
            continue
        d = np.abs(x - y)
        dmax, dsum, n = max(dmax, float(d.max())), dsum + float(d.sum()), n + x.size
        same_ice += int(np.sum((x >= threshold) == (y >= threshold)))
        same_class += int(np.sum(_sic_class(x) == _sic_class(y)))
    return {"pixels": n, "max_abs_diff": dmax, "mean_abs_diff": dsum / max(n, 1),
            "ice_water_agreement_pct": 100.0 * same_ice / max(n, 1),
            "sic_class_agreement_pct": 100.0 * same_class / max(n, 1), "nan_mask_equal": nan_equal,
            "ice_water_threshold": threshold}


def _sic_class(sic):
    return np.clip(np.rint(sic * 10), 0, 10)


def torch_forward(args, modes):
    """(rows, note, failures): bench/torch_unet_reference.py --inference per mode, same tiles as ours."""
    tpy = torch_python()
    if not tpy or args.no_torch:
        return [], ("PyTorch reference not run (--no_torch)" if tpy else
                    "PyTorch not installed (see bench/README.md: /tmp/torchvenv or $TFSEAICE_TORCH_PYTHON)"), []
    rows, failures = [], []
    for mode in modes:
        targs = module_argv("torch_unet_reference", tpy) + [
            "--inference", f"--mode={mode}", f"--batch_size={args.batch_size}", f"--patch_size={args.tile}",
            f"--filters={args.torch_filters}", f"--steps={args.torch_steps}", "--warmup=1"]
        runs = []
        for _ in range(1 + max(0, args.retries)):
            wait_for_quiet(args.quiet_load, args.quiet_wait, log=lambda m: None)
            code, text = run_child(targs, args.child_timeout)
            line = [ln for ln in text.splitlines() if ln.startswith("{")]
            if code != 0 or not line:
                failures.append({"tag": f"torch_{mode}", "returncode": code, "tail": text[-2000:]})
                break
            runs.append(json.loads(line[-1]))
            if (runs[-1]["cpu_stall_fraction"] or 0) <= STALL_RETRY:
                break
        if runs:
            best = max(runs, key=lambda r: r["mpx_per_s"])
            best["attempts"] = [{"mpx_per_s": r["mpx_per_s"], "cpu_stall_fraction": r["cpu_stall_fraction"]}
                                for r in runs]
            rows.append(best)
            print(f"    -> PyTorch {best['label']}: {best['mpx_per_s']:.3f} Mpx/s", flush=True)
    return rows, "measured here with bench/torch_unet_reference.py --inference", failures
