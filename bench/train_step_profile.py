r"""Where the SIC train step's time goes: forward, regional loss, backward, optimizer + trackers.

  python -m bench.train_step_profile [--batch_size=16 --patch_size=256 --filters=16,32,64,64
                                      --precision=auto --steps=6 --repeats=3]

The package-default SIC step (`SicRegionalModel`, bench/train_step.py's `sic_default`) is cut
into nested pieces, each a tf.function on the same batch, timed interleaved over repeats:

  forward   the U-Net's forward pass in training mode (BatchNorm batch statistics)
  loss      forward + the regional loss (tfseaice.losses.regional_sic_loss)
  gradient  forward + loss + the gradient of the loss (GradientTape)
  step      the whole `train_step`: gradient + Adam's update + the polygon trackers

The parts are the differences of neighbours (loss = loss - forward, ...): what to attack first
for the training target of `make bench-compare` (2x PyTorch's best train step).

Then `--op_calls` whole steps run under the TF profiler, and the time of each op type is summed
from its trace (bench/lib/op_profile.py): which kernels make up the step (the convolutions'
weight and input gradients, BatchNorm, ReLU gradients, resize, casts). Two executor threads
overlap on a CPU, so these shares are of the summed op time, not of the step's wall time.

Last, `--kernel_calls` calls of each convolution's three kernels (forward, weight gradient,
input gradient) timed alone, layer by layer, in the step's precision (bench/lib/conv_kernels.py):
the GFLOP/s of each kernel kind, and the time the weight gradients would take at the forward
kernels' rate.
"""

# First, as `python -m tfseaice.train` does: oneDNN kernels on before TensorFlow is imported.
import tfseaice.onednn  # noqa: F401  isort: skip

import argparse
import statistics
import time

from bench.lib.conv_kernels import KINDS, kernel_totals, time_conv_kernels
from bench.lib.data import sic_batch
from bench.lib.machine import loadavg
from bench.lib.models import add_sic_batch_args, build, conv_shapes
from bench.lib.op_profile import op_type_times, top_rows
from bench.lib.results import print_table, progress, summary_line, write_result

PIECES = ("forward", "loss", "gradient", "step")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_sic_batch_args(ap)
    ap.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    ap.add_argument("--steps", type=int, default=6, help="calls per piece and repeat")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--op_calls", type=int, default=3, help="steps traced for the time per op type (0: none)")
    ap.add_argument("--kernel_calls", type=int, default=5,
                    help="timed calls of each conv kernel alone, per layer (0: none)")
    ap.add_argument("--results_dir", default=None)
    args = ap.parse_args(argv)

    import tensorflow as tf  # here, not at the top: --help starts without TF

    from tfseaice import precision
    from tfseaice.losses.regional import as_polygon_table, regional_sic_loss

    chosen = precision.resolve(args.precision)
    filters = [int(f) for f in args.filters.split(",")]
    with precision.policy(chosen):   # the model is built (and trains) in the chosen precision
        model, (unet,) = build("sic_regional", args.channels, filters, jit=False)
    batch = {k: tf.constant(v) for k, v in sic_batch(args.batch_size, args.patch_size, args.channels).items()}
    table = as_polygon_table(batch["polygon_sic"])

    def loss_of(training=True):
        return regional_sic_loss(unet(batch["sar"], training=training), batch["polygon_ids"], table)

    @tf.function
    def forward():
        return tf.reduce_sum(tf.cast(unet(batch["sar"], training=True), tf.float32))

    @tf.function
    def loss():
        return loss_of()

    @tf.function
    def gradient():
        with tf.GradientTape() as tape:
            value = loss_of()
        return tape.gradient(value, unet.trainable_variables)

    step = tf.function(model.train_step)
    calls = {"forward": forward, "loss": loss, "gradient": gradient, "step": lambda: step(batch)}
    for name, fn in calls.items():   # trace and warm up
        fn()
        progress(f"{name}: traced")
    times = {name: [] for name in PIECES}
    for r in range(args.repeats):
        for name in PIECES:
            fn = calls[name]
            t = time.perf_counter()
            for _ in range(args.steps):
                out = fn()
            tf.nest.map_structure(lambda x: x.numpy() if hasattr(x, "numpy") else x, out)
            times[name].append((time.perf_counter() - t) / args.steps * 1000)
        progress(f"repeat {r + 1}/{args.repeats}: " + ", ".join(f"{n} {times[n][-1]:.1f} ms" for n in PIECES))
    ms = {name: statistics.median(v) for name, v in times.items()}
    parts = {"forward": ms["forward"], "regional loss": ms["loss"] - ms["forward"],
             "backward": ms["gradient"] - ms["loss"], "optimizer + trackers": ms["step"] - ms["gradient"]}
    rows = [{"part": k, "ms": v, "share_pct": 100 * v / ms["step"]} for k, v in parts.items()]
    print_table(rows, [("part", "part of the step"), ("ms", "ms (median)"), ("share_pct", "% of the step")],
                title=f"SIC train step, batch {args.batch_size} x {args.patch_size}², {chosen}")
    biggest = max(parts, key=parts.get)
    op_rows = []
    if args.op_calls > 0:
        op_rows = top_rows(op_type_times(calls["step"], args.op_calls))
        print_table(op_rows, [("op", "op type"), ("ms", "ms per step (summed over threads)"),
                              ("share_pct", "% of the summed op time")], title="the step's ops, by type")
    kernel_rows, kernels = [], {}
    if args.kernel_calls > 0:
        dtype = tf.bfloat16 if chosen == "bf16" else tf.float32
        shapes = conv_shapes(unet, [(args.patch_size, args.patch_size, args.channels)])
        kernel_rows, skipped = time_conv_kernels(shapes, args.batch_size, dtype, args.kernel_calls)
        kernels = kernel_totals(kernel_rows) | {"skipped": skipped}
        print_table(kernel_rows, [("name", "conv"), ("h", "H"), ("cin", "C in"), ("cout", "C out"),
                                  ("forward_gflops", "forward GFLOP/s"), ("weight_grad_gflops", "weight grad"),
                                  ("input_grad_gflops", "input grad")], title="each conv's kernels alone")
    write_result("train_step_profile", {
        "settings": vars(args) | {"precision_chosen": chosen}, "piece_ms": ms, "piece_ms_repeats": times,
        "parts": rows, "op_types": op_rows, "images_per_s": args.batch_size / ms["step"] * 1000,
        "biggest": biggest, "conv_kernels": kernel_rows, "conv_kernel_totals": kernels,
        "loadavg_end": loadavg()}, args.results_dir)
    summary_line({"step_ms": ms["step"], "images_per_s": args.batch_size / ms["step"] * 1000,
                        "biggest": biggest.replace(" ", "_"),
                        **{f"{k.split()[0]}_pct": r["share_pct"] for k, r in zip(parts, rows)},
                        **{f"{k}_gflops": kernels[k]["gflops"] for k in KINDS if kernels}})


if __name__ == "__main__":
    main()
