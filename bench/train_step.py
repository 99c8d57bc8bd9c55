r"""Training-step throughput of the SIC U-Net and pix2pix: images/s, GFLOP/s vs the CPU's peak.

One configuration (writes <results_dir>/train_step.json):

  python -m bench.train_step --task=sic_regional --batch_size=16 --patch_size=256 \
      --channels=2 --filters=16,32,64,64 --steps=8 [--precision=auto|fp32|bf16] [--jit] [--threads=N]

The suite that `make bench` runs (each configuration in its own process, because
the mixed-precision policy and XLA are process-wide; merged into train_step.json,
with the PyTorch reference if /tmp/torchvenv or $TFSEAICE_TORCH_PYTHON has torch):

  python -m bench.train_step --suite [--suite_scale=1.0]

Without flags a single run uses the package's own defaults (what
`python -m tfseaice.train` does for the SIC task): --precision=auto (bf16 on a
CPU with AMX/AVX512-BF16, else fp32), Keras' jit_compile="auto" (= no XLA on a
CPU-only machine), the fused BatchNorm kernel (tfseaice.models.batchnorm), op determinism on (TrainConfig.deterministic),
TF's default thread pools.

What is timed: `model.fit` on one in-memory batch repeated (no input pipeline;
see bench/input_pipeline.py for that), the custom `train_step` of the task (forward,
loss, gradients, optimizer update) compiled by Keras as in training. The first
`--warmup` steps (tracing, oneDNN primitive creation) are not timed; the time
per step is the median over the timed steps.

FLOPs (counted, not sampled): every Conv2D / Conv2DTranspose of the model with
its output shapes at this patch size: forward = 2 x H_out x W_out x k_h x k_w x
C_in x C_out (Conv2DTranspose: 2 x H_in x W_in x k_h x k_w x C_in x C_out).
Training counts each conv's forward, its weight gradient (same FLOPs) and its
input gradient (same FLOPs, not needed for a first layer fed by the model
input): ~3 x forward for a plain network; for pix2pix the discriminator runs
forward twice (real, fake), back-propagates both for its own loss and the fake
one again for the generator's loss: ~7 x its forward. BatchNorm, activations,
resizing, the loss and Adam are not counted (a few % of the work for these
models), so the achieved GFLOP/s is a slight under-estimate of the work done.
"""

# First, as `python -m tfseaice.train` does: oneDNN kernels on before TensorFlow is imported.
import tfseaice.onednn  # noqa: F401  isort: skip

import argparse
import sys

from bench.lib.results import summary_line, write_result
from bench.lib.step import print_single, single
from bench.lib.suite import suite
from tfseaice import precision


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", default="sic_regional", choices=["sic_regional", "sic_pixel", "pix2pix"])
    ap.add_argument("--batch_size", type=int, default=16)
    ap.add_argument("--patch_size", type=int, default=256)
    ap.add_argument("--channels", type=int, default=2,
                    help="SIC: SAR channels; pix2pix: extra channels beside the 4 one-hot classes (default 0)")
    ap.add_argument("--filters", default=None,
                    help="SIC: encoder filters (default 16,32,64,64); pix2pix: first-layer filters (default 64)")
    ap.add_argument("--steps", type=int, default=6, help="timed steps")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps first (tracing, XLA)")
    ap.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"],
                    help="auto = the package default (tfseaice.precision.resolve: bf16 where the CPU has "
                         "AMX/AVX512-BF16, else fp32)")
    ap.add_argument("--jit", action="store_true", help="XLA: model.compile(jit_compile=True)")
    ap.add_argument("--threads", type=int, default=0, help="intra-op threads (0 = TF default = cores)")
    ap.add_argument("--deterministic", default="true", choices=["true", "false"],
                    help="tf.config.experimental.enable_op_determinism(), as tfseaice.train does by default")
    ap.add_argument("--parity_steps", type=int, default=3, help="bf16: steps of the fp32/bf16 loss comparison (0 = skip)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--results_dir", default=None)
    ap.add_argument("--suite", action="store_true", help="run the whole matrix (each config in a subprocess)")
    ap.add_argument("--suite_scale", type=float, default=1.0, help="suite: multiply step counts")
    ap.add_argument("--suite_tiny", action="store_true",
                    help="suite: use --batch_size/--patch_size and tiny filters in every config (smoke test)")
    ap.add_argument("--suite_only", default="", help="suite: comma-separated tags to run")
    ap.add_argument("--no_torch", action="store_true", help="suite: skip the PyTorch reference")
    ap.add_argument("--torch_modes", default="fp32,bf16_cl",
                    help="suite: PyTorch reference modes (fp32, fp32_cl, bf16, bf16_cl, *_compile): by default "
                         "the issue's two reference settings")
    ap.add_argument("--child_timeout", type=float, default=900)
    ap.add_argument("--quiet_load", type=float, default=1.2,
                    help="suite: before each configuration wait until the 1-min load is below this ...")
    ap.add_argument("--quiet_wait", type=float, default=15, help="suite: ... but at most this many seconds")
    ap.add_argument("--max_stall", type=float, default=0.5,
                    help="suite: a run during which tasks waited for a CPU more than this fraction of the "
                         "time (/proc/pressure/cpu) was contended: run it again")
    ap.add_argument("--max_retries", type=int, default=3, help="suite: at most this many re-runs in all")
    ap.add_argument("--retry_budget_s", type=float, default=600, help="suite: no re-runs after this many seconds")
    args = ap.parse_args(argv)
    if args.filters is None:
        args.filters = "64" if args.task == "pix2pix" else "16,32,64,64"
    args.filters = [int(x) for x in str(args.filters).split(",")]
    args.deterministic = args.deterministic == "true"
    if args.precision == "auto" and not args.suite:
        args.precision = precision.resolve("auto")
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.suite:
        return suite(args)
    import tensorflow as tf  # noqa: F401  (machine_info reports its version)

    r = single(args)
    print()
    print_single(r)
    path = write_result("train_step", r, args.results_dir)
    print(f"wrote {path}")
    summary = {"task": args.task, "precision": args.precision, "jit": args.jit,
               "steps_per_s": r["steps_per_s"], "images_per_s": r["images_per_s"],
               "gflops": r["achieved_gflops"], "fraction_of_peak": r["fraction_of_peak"],
               "cpu_utilisation": r["cpu_utilisation"],
               "cpu_stall": r["cpu_stall_fraction"] if r["cpu_stall_fraction"] is not None else float("nan"),
               "loss_finite": r["loss_finite"], "load1": r["loadavg_after"][0]}
    if "bf16_parity" in r:
        summary["bf16_parity_ok"] = r["bf16_parity"]["ok"]
    summary_line(summary)
    ok = r["loss_finite"] and r.get("bf16_parity", {}).get("ok", True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
