"""tfseaice against the PyTorch reference, pair by pair, interleaved, with repeats (bench/compare.py).

Why interleaved: on a shared machine the load drifts over minutes. Running ours, then
PyTorch's, then ours again within one repeat, each in its own process, puts both sides of a
ratio under the same conditions; the spread of the ratio over the repeats says how much
the conditions moved. Each side of a pair is its own child process (process-wide state:
precision policy, oneDNN, thread pools), all children of one parent.
"""

import json
import os
import statistics
import tempfile
import types

from bench.lib.children import module_argv, run_child
from bench.lib.scene import run_size, torch_forward

# The goals: ours / PyTorch's best (inference, training), vectorised / loop (regional loss).
TARGETS = {"inference": 1.3, "training": 2.0, "regional_loss": 200.0}
PAIRS = tuple(TARGETS)


def cpu_kind(flags):
    """The CPU kinds the project meets, from ISA flags: amx, avx512_bf16, avx512, avx2 (or baseline)."""
    flags = set(flags)
    if {"amx_bf16", "amx_tile"} & flags:
        return "amx"
    if "avx512_bf16" in flags:
        return "avx512_bf16"
    if "avx512f" in flags:
        return "avx512"
    return "avx2" if "avx2" in flags else "baseline"


def ratio_summary(ours, theirs, target):
    """Per-repeat ratios ours/theirs with their median, min and max, and whether the worst meets `target`."""
    ratios = [a / b for a, b in zip(ours, theirs) if a and b]
    if not ratios:
        return {"ratios": [], "median": None, "min": None, "max": None, "target": target, "meets_target": None}
    return {"ratios": ratios, "median": statistics.median(ratios), "min": min(ratios), "max": max(ratios),
            "target": target, "meets_target": min(ratios) >= target}


def _result_file(argv, results_dir, name, timeout):
    """Run a bench script with --results_dir and return the NAME.json it wrote; RuntimeError if none."""
    code, text = run_child(argv + [f"--results_dir={results_dir}"], timeout)
    path = os.path.join(results_dir, f"{name}.json")
    if not os.path.exists(path):
        raise RuntimeError(f"{name} failed (exit {code}): {text[-1500:]}")
    with open(path) as f:
        return json.load(f)


def _json_child(argv, timeout, tag):
    """The last JSON line a child prints; RuntimeError with its tail when it fails."""
    code, text = run_child(argv, timeout)
    lines = [ln for ln in text.splitlines() if ln.startswith("{")]
    if code != 0 or not lines:
        raise RuntimeError(f"{tag} failed (exit {code}): {text[-1500:]}")
    return json.loads(lines[-1])


def _scene_args(args, batch_size, tile):
    """The namespace bench.lib.scene's helpers read (scene_inference.py's flags)."""
    return types.SimpleNamespace(
        overlap=16 if args.tiny else 64, onednn=1, fold_batchnorm=1, retries=0, quiet_load=99.0, quiet_wait=0, no_torch=False,
        batch_size=batch_size, tile=tile, torch_filters="4,4,8,8" if args.tiny else "16,32,64,64", torch_steps=args.torch_steps,
        child_timeout=args.child_timeout)


def inference_once(args, torch_py):
    """(ours Mpx/s: whole predict_scene incl. tiling and blending, PyTorch's fastest forward pass Mpx/s, detail).

    Ours runs the package's default tiling (--our_batch_size x --our_tile); PyTorch runs every mode on
    --batch_size x --tile² and, if different, on our tiling too (one tile of it), and its fastest is kept.
    """
    h, w = (int(v) for v in args.scene.lower().split("x"))
    ours = run_size(_scene_args(args, args.our_batch_size, args.our_tile), h, w, args.our_tile, args.our_batch_size,
                    "auto", 0)
    os.environ["TFSEAICE_TORCH_PYTHON"] = torch_py
    shapes = dict.fromkeys([(args.batch_size, args.tile), (args.our_batch_size, min(args.our_tile, max(h, w)))])
    rows = []
    for batch, tile in shapes:
        got, _, failures = torch_forward(_scene_args(args, batch, tile), args.torch_inference_modes.split(","))
        if failures or not got:
            raise RuntimeError(f"PyTorch forward pass failed: {failures}")
        rows += [dict(r, mode=f"{r['mode']}@{batch}x{tile}") for r in got]
    best = max(rows, key=lambda r: r["mpx_per_s"])
    return ours["pixels_per_s"] / 1e6, best["mpx_per_s"], {
        "ours_detail": {"precision": ours["precision"], "seconds": ours["seconds"], "stall": ours["cpu_stall_fraction"],
                        "tile": args.our_tile, "batch_size": args.our_batch_size, "tile_shape": ours["tile_shape"]},
        "torch_modes": {r["mode"]: r["mpx_per_s"] for r in rows}, "torch_best_mode": best["mode"]}


def _tiny_step(args):
    return ["--batch_size=2", "--patch_size=64", "--filters=4,4,8,8"] if args.tiny else []


def training_once(args, torch_py):
    """(ours images/s: the package-default train step, PyTorch's best images/s, detail)."""
    with tempfile.TemporaryDirectory(prefix="tfseaice-compare-") as tmp:
        ours = _result_file(module_argv("train_step") + [f"--steps={args.train_steps}", "--parity_steps=0"]
                            + _tiny_step(args), tmp, "train_step", args.child_timeout)
    torch_rows = {}
    for mode in args.torch_training_modes.split(","):
        t = _json_child(module_argv("torch_unet_reference", torch_py) + [
            f"--mode={mode}", f"--steps={args.train_steps}", "--warmup=1"] + _tiny_step(args), args.child_timeout,
            f"torch {mode}")
        torch_rows[mode] = t["images_per_s"]
    best = max(torch_rows, key=torch_rows.get)
    return ours["images_per_s"], torch_rows[best], {
        "ours_detail": {"label": ours.get("label"), "stall": ours.get("cpu_stall_fraction")},
        "torch_modes": torch_rows, "torch_best_mode": best}


def regional_once(args):
    """(vectorised loss+grad calls/s, the per-polygon loop's calls/s, detail) from bench.regional_loss."""
    with tempfile.TemporaryDirectory(prefix="tfseaice-compare-") as tmp:
        tiny = ["--batch_size=2", "--patch_size=64", "--min_polygons=3", "--max_polygons=6"] if args.tiny else []
        doc = _result_file(module_argv("regional_loss") + [f"--repeats={args.loop_repeats}"] + tiny, tmp,
                           "regional_loss", args.child_timeout)
    return 1.0 / doc["vectorised_seconds"], 1.0 / doc["loop_seconds"], {
        "equal_within_1e-5": doc["equal_within_1e-5"], "loss_abs_diff": doc["loss_abs_diff"],
        "loop_s": doc["loop_seconds"], "vectorised_s": doc["vectorised_seconds"]}
