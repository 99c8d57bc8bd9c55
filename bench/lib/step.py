"""One train-step configuration measured: images/s, GFLOP/s vs peak, and the bf16 ~ fp32 check.

What is timed and how FLOPs are counted: bench/train_step.py's docstring.
TF and Keras are imported inside the functions (see bench/lib/models.py).
"""

import time

import numpy as np

from bench.lib.data import glacier_batch, sic_batch
from bench.lib.machine import loadavg, peak_flops
from bench.lib.models import build, loss_key, train_flops
from bench.lib.results import print_table, progress
from bench.lib.timing import Contention, run_steps, set_threads

# Tolerance for bf16 vs fp32 (justification in the README): bf16 keeps 8 significant
# bits (unit round-off 2^-9 = 0.2 %); oneDNN/AMX accumulate in fp32, so each conv adds
# ~0.2-0.4 % relative noise to its output, partly renormalised by BatchNorm. Over the
# ~20 conv layers that compound as a random walk (sqrt(20) x 0.4 % ~ 2 %), and the
# regional loss squares a polygon-mean error: ~2 x that. So the first-step loss must
# agree within 5 % relative; later steps follow slightly different trajectories
# (different rounding of the updates), for which we allow 10 %.
BF16_RTOL_STEP0 = 0.05
BF16_RTOL_LATER = 0.10


def parity_check(args, batch, steps):
    """Losses of `steps` identical training steps in fp32 and in mixed bf16 from the same weights."""
    import keras

    out = {}
    weights = None
    for policy in ("float32", "mixed_bfloat16"):
        keras.mixed_precision.set_global_policy(policy)
        keras.utils.set_random_seed(args.seed)
        model, _ = build(args.task, args.channels, args.filters, args.jit)
        if weights is None:
            weights = model.get_weights()
        else:
            model.set_weights(weights)
        _, losses = run_steps(model, batch, steps, loss_key(args.task))
        out[policy] = losses
        del model
    keras.mixed_precision.set_global_policy("mixed_bfloat16" if args.precision == "bf16" else "float32")
    return out["float32"], out["mixed_bfloat16"]


def single(args):
    """The result dict of one configuration (train_step.json's keys): warm-up, timed steps, FLOPs, parity."""
    import keras
    import tensorflow as tf

    set_threads(args.threads)
    if args.deterministic:
        tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(args.seed)
    if args.task == "pix2pix":
        batch = glacier_batch(args.batch_size, args.patch_size, args.channels, args.seed)
    else:
        batch = sic_batch(args.batch_size, args.patch_size, args.channels, args.seed)
    parity = None
    if args.precision == "bf16" and args.parity_steps:
        progress("bf16 parity check: the same steps in fp32 and bf16 from the same weights")
        parity = parity_check(args, batch, args.parity_steps)
    keras.mixed_precision.set_global_policy("mixed_bfloat16" if args.precision == "bf16" else "float32")
    keras.utils.set_random_seed(args.seed)
    model, nets = build(args.task, args.channels, args.filters, args.jit)
    fwd, per_image, how = train_flops(args.task, nets, args.patch_size, args.channels)
    progress(f"{label(args)}: warm-up {args.warmup} step(s) (tracing{', XLA' if args.jit else ''})")
    t = time.perf_counter()
    run_steps(model, batch, args.warmup, loss_key(args.task))
    warm_s = time.perf_counter() - t
    load_before = loadavg()
    progress(f"{label(args)}: timing {args.steps} step(s)")
    with Contention() as contention:
        times, losses = run_steps(model, batch, args.steps, loss_key(args.task))
    cpu_util = contention.cpu_share
    load_after = loadavg()
    step_s = float(np.median(times))
    images_per_s = args.batch_size / step_s
    gflops = per_image * images_per_s / 1e9
    peak = peak_flops()
    peak_key = "bf16" if args.precision == "bf16" else "fp32"
    finite = bool(np.all(np.isfinite(losses)))
    result = {
        "config": {k: v for k, v in vars(args).items() if k not in ("suite", "results_dir")},
        "label": label(args),
        "jit_compile": bool(model.jit_compile),
        "threads": {"intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
                    "inter_op": tf.config.threading.get_inter_op_parallelism_threads()},
        "warmup_seconds": warm_s,
        "step_seconds_median": step_s, "step_seconds_all": times,
        "steps_per_s": 1.0 / step_s, "images_per_s": images_per_s,
        "forward_gflop_per_image": fwd / 1e9, "train_gflop_per_image": per_image / 1e9,
        "flops_derivation": how,
        "achieved_gflops": gflops,
        "peak_gflops": peak[peak_key]["gflops"], "peak_derivation": peak[peak_key]["derivation"],
        "peak_all": peak,
        "fraction_of_peak": gflops / peak[peak_key]["gflops"],
        "losses": losses, "loss_finite": finite,
        "cpu_utilisation": cpu_util, "cpu_stall_fraction": contention.stall,
        "loadavg_before": load_before, "loadavg_after": load_after,
    }
    if parity is not None:
        f32, b16 = parity
        rel = [abs(a - b) / max(abs(a), 1e-12) for a, b in zip(f32, b16)]
        ok = (all(np.isfinite(b16)) and rel[0] <= BF16_RTOL_STEP0
              and all(r <= BF16_RTOL_LATER for r in rel[1:]))
        result["bf16_parity"] = {"fp32_losses": f32, "bf16_losses": b16, "relative_diff": rel,
                                 "rtol_step0": BF16_RTOL_STEP0, "rtol_later": BF16_RTOL_LATER, "ok": bool(ok)}
    return result


def label(args):
    """Short name of a configuration, e.g. `sic 16,32,64,64 b16 256px bf16 xla`."""
    name = args.task if args.task != "sic_regional" else "sic"
    f = ",".join(str(x) for x in args.filters) if args.task != "pix2pix" else f"f{args.filters[0]}"
    extra = []
    if args.threads:
        extra.append(f"t{args.threads}")
    if not args.deterministic:
        extra.append("nondet")
    return (f"{name} {f} b{args.batch_size} {args.patch_size}px {args.precision}"
            f"{' xla' if args.jit else ''}{(' ' + ' '.join(extra)) if extra else ''}")


def print_single(r):
    """The table (and the bf16 ~ fp32 losses) of one configuration's result."""
    rows = [{"config": r["label"], "step_s": r["step_seconds_median"], "steps_per_s": r["steps_per_s"],
             "images_per_s": r["images_per_s"], "gflops": r["achieved_gflops"],
             "peak": r["fraction_of_peak"], "cpu": r["cpu_utilisation"], "load": r["loadavg_after"][0]}]
    print_table(rows, ["config", ("step_s", "s/step"), ("steps_per_s", "steps/s"), ("images_per_s", "img/s"),
                              ("gflops", "GFLOP/s"), ("peak", "of peak"), ("cpu", "CPU use"), ("load", "load1")])
    if "bf16_parity" in r:
        p = r["bf16_parity"]
        print("bf16 vs fp32 losses: " + ", ".join(f"{a:.4f}/{b:.4f}" for a, b in zip(p["fp32_losses"], p["bf16_losses"]))
              + f" -> max rel diff {max(p['relative_diff']):.3g} ({'ok' if p['ok'] else 'NOT ok'})")
