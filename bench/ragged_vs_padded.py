r"""Regional SIC loss: the ragged per-polygon table (tfseaice.losses) vs the padded reference it replaced.

  python -m bench.ragged_vs_padded [--batch_size=16 --patch_size=256 --steps=20 --warmup=3
                                    --repeats=3 --precision=auto --loss_calls=30]

* ragged (the package): SicRegionalModel's train step builds the table
  tf.RaggedTensor [B,(K_b)] from the padded batch and `polygon_count`
  (tf.RaggedTensor.from_tensor(..., lengths=...)), segment ids from its row
  splits, polygon means by tf.math.unsorted_segment_mean.
* padded reference: the loss as it was before, kept here verbatim in spirit
  (`padded_regional_loss_reference`): [B,K] padded table, segment b*K + id
  plus a trailing dump segment, two unsorted_segment_sum calls.

Measured: (1) SIC U-Net train-step throughput (img/s), model and batch of
bench/train_step.py (filters 16,32,64,64, precision auto as tfseaice.train,
op determinism on), both variants wrapping the SAME U-Net object (same
weights, same Adam settings); (2) loss + gradient alone (w.r.t. the logits) in
a tf.function. The cores are shared with other jobs, so the variants are
timed alternately (ABBA...) and medians reported. Goal: ragged at most 3 %
slower than padded.
"""

import argparse
import sys
import time

import numpy as np

from bench.lib.data import sic_batch
from bench.lib.machine import loadavg
from bench.lib.models import add_sic_batch_args, build
from bench.lib.results import print_table, progress, summary_line, write_result
from bench.lib.timing import Contention, run_steps

GOAL_SLOWDOWN = 0.03


# ------------------------------------------------------- padded reference

def padded_polygon_terms_reference(tf, pred, polygon_ids, polygon_sic):
    """The padded per-polygon terms the package used before the ragged table: dict of [B,K]."""
    ids = tf.cast(tf.convert_to_tensor(polygon_ids), tf.int32)
    sic = tf.cast(tf.convert_to_tensor(polygon_sic), tf.float32)
    pred = tf.reshape(tf.cast(pred, tf.float32), tf.shape(ids))
    b, k = tf.shape(ids)[0], tf.shape(sic)[1]
    valid = (ids >= 0) & (ids < k)
    dump = b * k
    segments = tf.reshape(tf.where(valid, ids + tf.reshape(tf.range(b) * k, [-1, 1, 1]), dump), [-1])
    sums = tf.math.unsorted_segment_sum(tf.reshape(pred, [-1]), segments, dump + 1)[:-1]
    counts = tf.math.unsorted_segment_sum(tf.reshape(tf.cast(valid, tf.float32), [-1]), segments,
                                          dump + 1)[:-1]
    mean = tf.reshape(sums / tf.maximum(counts, 1.0), [b, k])
    count = tf.reshape(counts, [b, k])
    present = (count > 0) & tf.math.is_finite(sic)
    target = tf.where(present, sic, tf.zeros_like(sic))
    presentf = tf.cast(present, tf.float32)
    return {"pred_mean": mean, "target": target, "count": count, "present": presentf,
            "sq_err": tf.square(mean - target) * presentf}


def padded_reduce_reference(tf, losses, terms, reduction="polygon", weighting="polygon"):
    """The padded reduction the package used before (denominator all-reduced across replicas)."""
    weight = terms["present"] * (terms["count"] if weighting == "area" else 1.0)
    weighted = weight * terms["sq_err"]
    if reduction == "polygon":
        numerator, denominator = tf.reduce_sum(weighted), tf.reduce_sum(weight)
    else:
        patch_weight = tf.reduce_sum(weight, axis=1)
        numerator = tf.reduce_sum(tf.math.divide_no_nan(tf.reduce_sum(weighted, axis=1), patch_weight))
        denominator = tf.reduce_sum(tf.cast(patch_weight > 0, tf.float32))
    return tf.math.divide_no_nan(numerator, losses.cross_replica_sum(denominator))


def padded_regional_loss_reference(tf, losses, pred, polygon_ids, polygon_sic, reduction="polygon",
                                   weighting="polygon"):
    terms = padded_polygon_terms_reference(tf, pred, polygon_ids, polygon_sic)
    return padded_reduce_reference(tf, losses, terms, reduction, weighting), terms


def padded_reference_model(unet):
    """SicRegionalModel whose step uses the padded reference loss on the padded batch (no RaggedTensor)."""
    import tensorflow as tf

    from tfseaice import losses
    from tfseaice.tasks.sic import SicRegionalModel

    class PaddedReferenceModel(SicRegionalModel):
        def _forward(self, batch, training):
            pred = self(batch["sar"], training=training)
            loss, terms = padded_regional_loss_reference(tf, losses, pred, batch["polygon_ids"],
                                                         batch["polygon_sic"], self.reduction, self.weighting)
            return pred, terms, loss

    return PaddedReferenceModel(unet)


# ------------------------------------------------------------------ timing

def bench_batch(args):
    batch = sic_batch(args.batch_size, args.patch_size, args.channels, args.seed)
    ids = batch["polygon_ids"]
    # real rows: every id of the patch is below its count (the rest of the K = 60 columns is padding)
    batch["polygon_count"] = (ids.reshape(len(ids), -1).max(axis=1) + 1).astype(np.int32)
    return batch


def count_traces(model, counter, name):
    """Count the Python runs of `model.train_step` (one per tf.function trace): retracing shows up here."""
    step = model.train_step
    counter[name] = 0

    def counted(data):
        counter[name] += 1
        return step(data)

    model.train_step = counted


def time_train_steps(args, batch):
    """{variant: [img/s per repeat]}, per-repeat step times, trace counts."""
    import keras

    keras.mixed_precision.set_global_policy("mixed_bfloat16" if args.precision == "bf16" else "float32")
    keras.utils.set_random_seed(args.seed)
    ragged, (unet,) = build("sic_regional", args.channels, args.filters, jit=False)
    padded = padded_reference_model(unet)
    padded.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=False)
    models = {"ragged": ragged, "padded": padded}
    traces = {}
    for name, model in models.items():
        count_traces(model, traces, name)
        progress(f"train step, {name}: warm-up {args.warmup} step(s)")
        run_steps(model, batch, args.warmup, "loss")
    ips = {name: [] for name in models}
    step_s = {name: [] for name in models}
    losses_seen = {name: [] for name in models}
    for rep in range(args.repeats):
        order = ["ragged", "padded"] if rep % 2 == 0 else ["padded", "ragged"]
        for name in order:
            times, losses = run_steps(models[name], batch, args.steps, "loss")
            med = float(np.median(times))
            ips[name].append(args.batch_size / med)
            step_s[name].append(times)
            losses_seen[name].append(losses)
            progress(f"train step, repeat {rep + 1}/{args.repeats}, {name}: "
                            f"{args.batch_size / med:.2f} img/s (median of {len(times)} steps)")
    finite = all(np.all(np.isfinite(v)) for runs in losses_seen.values() for v in runs)
    return ips, step_s, traces, finite


def time_loss_only(args, batch):
    """Loss + gradient w.r.t. the logits in a tf.function: seconds per call, and the two results."""
    import tensorflow as tf

    from tfseaice import losses

    rng = np.random.default_rng(args.seed)
    logits = tf.constant(rng.normal(0, 2, batch["polygon_ids"].shape).astype(np.float32))
    ids, sic = tf.constant(batch["polygon_ids"]), tf.constant(batch["polygon_sic"])
    count = tf.constant(batch["polygon_count"])

    def ragged(lg, i, s, n):
        with tf.GradientTape() as tape:
            tape.watch(lg)
            loss = losses.regional_sic_loss(tf.sigmoid(lg), i, losses.as_polygon_table(s, n))
        return loss, tape.gradient(loss, lg)

    def padded(lg, i, s, n):
        with tf.GradientTape() as tape:
            tape.watch(lg)
            loss, _ = padded_regional_loss_reference(tf, losses, tf.sigmoid(lg), i, s)
        return loss, tape.gradient(loss, lg)

    fns = {"ragged": tf.function(ragged), "padded": tf.function(padded)}
    out = {name: [np.asarray(x) for x in fn(logits, ids, sic, count)] for name, fn in fns.items()}  # trace
    times = {name: [] for name in fns}
    for rep in range(args.loss_calls):
        for name in (["ragged", "padded"] if rep % 2 == 0 else ["padded", "ragged"]):
            t = time.perf_counter()
            _ = [np.asarray(x) for x in fns[name](logits, ids, sic, count)]
            times[name].append(time.perf_counter() - t)
    progress("loss+grad alone, median ms: " + ", ".join(
        f"{name} {1e3 * np.median(v):.2f}" for name, v in times.items()))
    return times, out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_sic_batch_args(ap)
    ap.add_argument("--steps", type=int, default=20, help="timed train steps per variant and repeat")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps per variant first (tracing)")
    ap.add_argument("--repeats", type=int, default=3, help="alternating rounds of both variants")
    ap.add_argument("--loss_calls", type=int, default=30, help="timed loss+gradient calls per variant")
    ap.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"],
                    help="auto = the package default (bf16 where the CPU has AMX/AVX512-BF16, else fp32)")
    ap.add_argument("--deterministic", default="true", choices=["true", "false"],
                    help="tf.config.experimental.enable_op_determinism(), as tfseaice.train does by default")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--results_dir", default=None)
    args = ap.parse_args(argv)
    args.filters = [int(x) for x in args.filters.split(",")]
    if args.precision == "auto":
        from tfseaice import precision

        args.precision = precision.resolve("auto")

    import tensorflow as tf

    if args.deterministic == "true":
        tf.config.experimental.enable_op_determinism()
    batch = bench_batch(args)
    pairs = int(batch["polygon_count"].sum())
    load_before = loadavg()
    progress(f"ragged vs padded: batch {args.batch_size} x {args.patch_size}^2, {args.precision}, "
                    f"{pairs} table rows (padded width {batch['polygon_sic'].shape[1]})")
    with Contention() as contention:
        loss_times, loss_out = time_loss_only(args, batch)
        ips, step_s, traces, finite = time_train_steps(args, batch)
    load_after = loadavg()

    loss_diff = abs(float(loss_out["ragged"][0]) - float(loss_out["padded"][0]))
    grad_diff = float(np.max(np.abs(loss_out["ragged"][1] - loss_out["padded"][1])))
    grad_scale = float(np.max(np.abs(loss_out["padded"][1])))
    equal = loss_diff <= 1e-6 * max(abs(float(loss_out["padded"][0])), 1e-30) and grad_diff <= 1e-5 * grad_scale
    med = {k: float(np.median(v)) for k, v in ips.items()}
    paired = [r / p for r, p in zip(ips["ragged"], ips["padded"])]
    slowdown = 1.0 - med["ragged"] / med["padded"]
    loss_ms = {k: 1e3 * float(np.median(v)) for k, v in loss_times.items()}
    loss_slowdown = loss_ms["ragged"] / loss_ms["padded"] - 1.0
    step_ms = {k: 1e3 * args.batch_size / v for k, v in med.items()}
    rows = [{"variant": name, "img_s": med[name], "all": " ".join(f"{x:.2f}" for x in ips[name]),
             "step_ms": step_ms[name], "loss_ms": loss_ms[name], "traces": traces[name]}
            for name in ("ragged", "padded")]
    print_table(rows, ["variant", ("img_s", "img/s (median)"), ("all", "img/s per repeat"),
                              ("step_ms", "ms/step"), ("loss_ms", "loss+grad ms"), ("traces", "train traces")],
                       title=f"\nSIC U-Net train step, batch {args.batch_size} x {args.patch_size}^2, "
                             f"{args.precision}: ragged table vs padded reference")
    print(f"train-step slowdown of ragged: {100 * slowdown:+.2f} % (paired per repeat: "
          f"{', '.join(f'{100 * (1 - r):+.2f}' for r in paired)} %); loss+grad alone: "
          f"{100 * loss_slowdown:+.1f} % ({loss_ms['ragged'] - loss_ms['padded']:+.2f} ms of a "
          f"{step_ms['padded']:.0f} ms step); |loss diff| {loss_diff:.2e}, max |grad diff| {grad_diff:.2e}")
    payload = {
        "config": vars(args),
        "table_rows": pairs, "padded_width": int(batch["polygon_sic"].shape[1]),
        "train_images_per_s": ips, "train_images_per_s_median": med, "train_step_seconds": step_s,
        "train_slowdown": slowdown, "train_ratio_paired": paired, "goal_slowdown": GOAL_SLOWDOWN,
        "within_goal": bool(slowdown <= GOAL_SLOWDOWN), "train_function_traces": traces,
        "loss_finite": bool(finite),
        "loss_grad_seconds": loss_times, "loss_grad_ms_median": loss_ms, "loss_slowdown": loss_slowdown,
        "loss_abs_diff": loss_diff, "grad_max_abs_diff": grad_diff, "grad_max_abs": grad_scale,
        "ragged_equals_padded": bool(equal),
        "cpu_utilisation": contention.cpu_share, "cpu_stall_fraction": contention.stall,
        "loadavg_before": load_before, "loadavg_after": load_after,
    }
    path = write_result("ragged_vs_padded", payload, args.results_dir)
    print(f"wrote {path}")
    summary_line({"ragged_img_s": med["ragged"], "padded_img_s": med["padded"],
                         "slowdown_pct": 100 * slowdown, "within_goal": bool(slowdown <= GOAL_SLOWDOWN),
                         "loss_ragged_ms": loss_ms["ragged"], "loss_padded_ms": loss_ms["padded"],
                         "loss_slowdown_pct": 100 * loss_slowdown, "equal": bool(equal),
                         "precision": args.precision, "load1": load_after[0]})
    return 0 if equal and finite else 1


if __name__ == "__main__":
    sys.exit(main())
