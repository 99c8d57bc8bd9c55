r"""Regional (per-polygon) SIC loss + gradient: vectorised vs the paper's Algorithm 1 loop.

  python -m bench.regional_loss [--batch_size=16 --patch_size=256 --min_polygons=20
                                --max_polygons=60 --repeats=3]

Both compute paper Eq. 1 (mean over every (image, polygon) pair of the batch of
(mean sigmoid over the polygon's non-land pixels - charted SIC)^2) and its
gradient with respect to the logits:

* loop: Algorithm 1 as a user would write it in TF eager: per image,
  np.unique of the polygon ids, per polygon a boolean mask (polygon & not land),
  tf.boolean_mask + tf.reduce_mean, squared error, all under a GradientTape.
  (Algorithm 1's pseudo-code writes |c - c_hat| and a plain sum; we use Eq. 1's
  square and mean so that both sides compute the same number.)
* vectorised: tfseaice.losses.regional_sic_loss (one segment sum of [pred, 1] over
  the batch, XLA-compiled: tfseaice/losses/segments.py), traced once with tf.function as in
  the train step; also timed eagerly.

Polygons: each patch is a Voronoi partition of 20-60 random seeds (distorted so
that boundaries are irregular), with a land blob (excluded pixels) and a few
polygons lying wholly on land (present in the chart, but no usable pixel).
"""

import argparse
import sys
import time

import numpy as np

from bench.lib.machine import loadavg
from bench.lib.regional import loop_loss_and_grad, make_batch, timed, vectorised_loss_and_grad
from bench.lib.results import print_table, progress, summary_line, write_result


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch_size", type=int, default=16)
    ap.add_argument("--patch_size", type=int, default=256)
    ap.add_argument("--min_polygons", type=int, default=20)
    ap.add_argument("--max_polygons", type=int, default=60)
    ap.add_argument("--repeats", type=int, default=3, help="timed calls of the loop (vectorised: 10x more)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--results_dir", default=None)
    args = ap.parse_args(argv)

    import tensorflow as tf  # here, not at the top: --help starts without TF

    from tfseaice import losses

    progress(f"regional loss: batch {args.batch_size} x {args.patch_size}^2, "
                    f"{args.min_polygons}-{args.max_polygons} polygons per patch")
    logits, charts, land, sic, local = make_batch(args.batch_size, args.patch_size, args.min_polygons,
                                                  args.max_polygons, args.seed)
    n_pairs = sum(len(np.unique(charts[i][~land[i]])) for i in range(len(charts)))
    logits_t, local_t, sic_t = tf.constant(logits), tf.constant(local), tf.constant(sic)

    graph_fn = tf.function(lambda a, b, c: vectorised_loss_and_grad(tf, losses, a, b, c))
    t = time.perf_counter()
    graph_fn(logits_t, local_t, sic_t)
    trace_s = time.perf_counter() - t
    v_reps = max(10, 10 * args.repeats)
    load_before = loadavg()
    vec_s, vec_all, (vec_loss, vec_grad) = timed(lambda: graph_fn(logits_t, local_t, sic_t), v_reps)
    vec_eager_s, _, _ = timed(lambda: vectorised_loss_and_grad(tf, losses, logits_t, local_t, sic_t),
                              max(3, args.repeats))
    progress("vectorised done; running the Algorithm 1 loop")
    loop_loss_and_grad(tf, logits[:1], charts[:1], land[:1], sic[:1])  # warm up eager kernels
    loop_s, loop_all, (loop_loss, loop_grad) = timed(
        lambda: loop_loss_and_grad(tf, logits, charts, land, sic), args.repeats)
    load_after = loadavg()

    loss_diff = abs(float(vec_loss) - float(loop_loss))
    grad_diff = float(np.max(np.abs(np.asarray(vec_grad) - np.asarray(loop_grad))))
    grad_scale = float(np.max(np.abs(np.asarray(loop_grad))))
    equal = loss_diff <= 1e-5 and grad_diff <= 1e-5 * max(grad_scale, 1e-30) + 1e-12
    ratio = loop_s / vec_s
    rows = [
        {"method": "Algorithm 1 loop (TF eager)", "seconds": loop_s, "loss": float(loop_loss),
         "speedup": 1.0},
        {"method": "vectorised, eager", "seconds": vec_eager_s, "loss": float(vec_loss),
         "speedup": loop_s / vec_eager_s},
        {"method": "vectorised, tf.function", "seconds": vec_s, "loss": float(vec_loss), "speedup": ratio},
    ]
    print_table(rows, ["method", ("seconds", "s per loss+grad"), "loss", ("speedup", "x loop")],
                       title=f"\nregional loss + gradient, batch {args.batch_size} x {args.patch_size}^2, "
                             f"{n_pairs} (image, polygon) pairs", floatfmt="{:.6g}")
    print(f"|loss diff| = {loss_diff:.2e}, max |grad diff| = {grad_diff:.2e} "
          f"(max |grad| {grad_scale:.2e}); equal within 1e-5: {equal}")
    payload = {
        "config": vars(args),
        "pairs": n_pairs,
        "loop_seconds": loop_s, "loop_seconds_all": loop_all,
        "vectorised_seconds": vec_s, "vectorised_seconds_all": vec_all, "vectorised_trace_seconds": trace_s,
        "vectorised_eager_seconds": vec_eager_s,
        "speedup": ratio, "speedup_eager": loop_s / vec_eager_s, "target_speedup": 200,
        "loss_loop": float(loop_loss), "loss_vectorised": float(vec_loss),
        "loss_abs_diff": loss_diff, "grad_max_abs_diff": grad_diff, "grad_max_abs": grad_scale,
        "equal_within_1e-5": bool(equal),
        "equality_rule": "|loss diff| <= 1e-5 and max|grad diff| <= 1e-5 * max|grad| (the gradient "
                         "entries are ~1/(pairs x polygon pixels), so an absolute 1e-5 would be vacuous)",
        "loadavg_before": load_before, "loadavg_after": load_after,
    }
    path = write_result("regional_loss", payload, args.results_dir)
    print(f"wrote {path}")
    summary_line({"speedup": ratio, "loop_s": loop_s, "vectorised_s": vec_s,
                         "loss_abs_diff": loss_diff, "grad_max_abs_diff": grad_diff,
                         "equal": bool(equal), "pairs": n_pairs, "load1": load_after[0]})
    return 0 if equal else 1


if __name__ == "__main__":
    sys.exit(main())
