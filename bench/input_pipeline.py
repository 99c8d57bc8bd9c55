r"""Input pipeline: patches/s from TFRecords (parse + augmentation) vs the train step's consumption.

  python -m bench.input_pipeline [--batch_size=16 --batches=60 --precision=auto|fp32|bf16
                                 --scenes=4 --scene_size=2048 --train_steps=5]

Three numbers, on the same cores:
  1. pipeline alone: `tfseaice.data.pipeline.sic_dataset(..., training=True)`
     (interleaved shards, parse, shuffle, repeat, seeded flips/rotations,
     padded batching, prefetch), iterated as fast as possible: patches/s;
  2. the train step's consumption: the SIC regional model trained on one
     in-memory batch (no pipeline): images/s;
  3. the same model trained from the pipeline (model.fit(dataset)): images/s.
The pipeline is not the bottleneck when 1 >= 3 x 2 (the issue's criterion; it
then costs the step at most ~1/3 of the CPU it needs) and 3 is close to 2.

The records are made once with data_prep.ai4arctic_to_tfrecord.convert from
synthetic raw scenes (tfseaice.simulate.scenes) and cached under /tmp/tfseaice_bench.
"""

import argparse
import sys

from bench.lib.data import cached_records
from bench.lib.machine import loadavg, num_cores
from bench.lib.models import build
from bench.lib.results import print_table, progress, summary_line, write_result
from bench.lib.timing import time_fit, time_pipeline

TARGET_RATIO = 3.0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch_size", type=int, default=16)
    ap.add_argument("--batches", type=int, default=60, help="timed batches of the pipeline alone")
    ap.add_argument("--warmup", type=int, default=5, help="untimed batches first (fills the shuffle buffer)")
    ap.add_argument("--scenes", type=int, default=4)
    ap.add_argument("--scene_size", type=int, default=2048, help="raw 40 m pixels (patches are 256^2 at 80 m)")
    ap.add_argument("--data_dir", default=None, help="use these records instead of the cached sample ones")
    ap.add_argument("--train_steps", type=int, default=5, help="timed steps for the consumption rates (0 = skip)")
    ap.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"],
                    help="train step precision; auto = the package default (tfseaice.precision.resolve)")
    ap.add_argument("--filters", default="16,32,64,64")
    ap.add_argument("--results_dir", default=None)
    args = ap.parse_args(argv)

    import keras  # TF and tfseaice here, not at the top: --help starts without TF
    import tensorflow as tf

    from tfseaice import precision
    from tfseaice.data import dataset_info, pipeline

    args.precision = precision.resolve(args.precision)

    data_dir = args.data_dir or cached_records(args.scenes, args.scene_size)
    info = dataset_info.load(data_dir, kind="sic")
    k = int(info.get("max_polygons_per_patch") or 0) or None
    patch = info["patch_size"]
    n_examples = info["splits"]["train"]["num_examples"]
    progress(f"pipeline alone: {n_examples} patches of {patch}^2 in {data_dir}, batch {args.batch_size}")
    ds = pipeline.sic_dataset(data_dir, "train", args.batch_size, training=True, seed=1, info=info,
                              augment=True, max_polygons=k)
    load_before = loadavg()
    pipe_ps, pipe_s, pipe_cpu = time_pipeline(ds, args.batches, args.warmup)
    progress(f"  {pipe_ps:.0f} patches/s")
    rows = [{"what": "pipeline alone (parse + augment + batch)", "per_s": pipe_ps,
             "cpu": pipe_cpu / (pipe_s * num_cores())}]
    step_ips = fed_ips = None
    step_times = fed_times = []
    if args.train_steps:
        if args.precision == "bf16":
            keras.mixed_precision.set_global_policy("mixed_bfloat16")
        keras.utils.set_random_seed(1)
        filters = [int(f) for f in args.filters.split(",")]
        model, _ = build("sic_regional", len(info["channels"]), filters, False)
        batch = next(iter(ds))
        in_memory = tf.data.Dataset.from_tensors(batch).repeat()
        progress(f"train step consumption ({args.precision}, in-memory batch)")
        step_ips, step_times = time_fit(model, in_memory, args.train_steps, 2, args.batch_size)
        progress(f"  {step_ips:.2f} images/s; now fed by the pipeline")
        fed_ips, fed_times = time_fit(model, ds, args.train_steps, 2, args.batch_size)
        progress(f"  {fed_ips:.2f} images/s")
        rows.append({"what": f"train step, in-memory batch ({args.precision})", "per_s": step_ips})
        rows.append({"what": f"train step fed by the pipeline ({args.precision})", "per_s": fed_ips})
    load_after = loadavg()
    ratio = pipe_ps / step_ips if step_ips else float("nan")
    print_table(rows, ["what", ("per_s", "patches/s"), ("cpu", "CPU use")],
                       title=f"\ninput pipeline vs train step, batch {args.batch_size} x {patch}^2")
    if step_ips:
        print(f"pipeline / step consumption = {ratio:.1f}x (target >= {TARGET_RATIO:.0f}x); "
              f"fed / in-memory step = {fed_ips / step_ips:.2f}")
    payload = {
        "config": vars(args), "data_dir": data_dir, "patches_in_dataset": n_examples, "patch_size": patch,
        "pipeline_patches_per_s": pipe_ps, "pipeline_seconds": pipe_s, "pipeline_cpu_seconds": pipe_cpu,
        "step_images_per_s": step_ips, "step_times": step_times,
        "fed_images_per_s": fed_ips, "fed_times": fed_times,
        "ratio": ratio, "fed_over_in_memory": (fed_ips / step_ips) if step_ips else None,
        "target_ratio": TARGET_RATIO, "loadavg_before": load_before, "loadavg_after": load_after,
    }
    path = write_result("input_pipeline", payload, args.results_dir)
    print(f"wrote {path}")
    summary_line({"patches_per_s": pipe_ps, "step_images_per_s": step_ips if step_ips else float("nan"),
                         "ratio": ratio, "fed_images_per_s": fed_ips if fed_ips else float("nan"),
                         "fed_over_in_memory": payload["fed_over_in_memory"] or float("nan"),
                         "meets_target": bool(step_ips) and ratio >= TARGET_RATIO, "load1": load_after[0]})
    return 0


if __name__ == "__main__":
    sys.exit(main())
