r"""Input pipeline: patches/s from TFRecords (parse + augmentation) vs the train step's consumption.

  python bench/input_pipeline.py [--batch_size=16 --batches=60 --precision=auto|fp32|bf16
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
import glob
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from bench import common  # noqa: E402

TARGET_RATIO = 3.0


def cached_records(n_scenes, size, cache_dir=None):
    """Folder of SIC TFRecords converted from `n_scenes` sample scenes of `size`^2 (cached)."""
    from tfseaice.simulate.scenes import make_scene, raw_file_name
    from tfseaice.simulate.writers import write_scene

    root = os.path.join(cache_dir or common.CACHE_DIR, f"pipeline_{n_scenes}x{size}")
    records = os.path.join(root, "records")
    if os.path.exists(os.path.join(records, "dataset_info.json")):
        return records
    scenes = os.path.join(root, "scenes")
    os.makedirs(scenes, exist_ok=True)
    for i in range(n_scenes):
        common.progress(f"making sample scene {i + 1}/{n_scenes} ({size}^2)")
        ds = make_scene(seed=100 + i, size=size)
        path = os.path.join(scenes, raw_file_name(ds))
        if not os.path.exists(path):
            write_scene(ds, path)
    import logging

    logging.getLogger("apache_beam").setLevel(logging.WARNING)
    from data_prep.ai4arctic_to_tfrecord import convert

    common.progress("converting them to TFRecords")
    convert(os.path.join(scenes, "*.nc"), records, val_fraction=0.0, overwrite=True)
    for f in glob.glob(os.path.join(scenes, "*.nc")):
        os.remove(f)  # the records are what we keep
    return records


def time_pipeline(ds, batches, warmup):
    it = iter(ds)
    for _ in range(warmup):
        next(it)
    n = 0
    cpu0 = time.process_time()
    t = time.perf_counter()
    for _ in range(batches):
        b = next(it)
        n += int(b["sar"].shape[0])
    seconds = time.perf_counter() - t
    return n / seconds, seconds, time.process_time() - cpu0


def time_fit(model, ds, steps, warmup, batch_size):
    """images/s of model.fit over `steps` steps (median step) after `warmup` steps."""
    from bench.train_step import StepTimer

    model.fit(ds, steps_per_epoch=max(1, warmup), epochs=1, verbose=0, shuffle=False)
    timer = StepTimer("loss")
    model.fit(ds, steps_per_epoch=steps, epochs=1, verbose=0, shuffle=False, callbacks=[timer.callback])
    return batch_size / float(np.median(timer.times)), timer.times


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

    import keras
    import tensorflow as tf

    from tfseaice import precision
    from tfseaice.data import dataset_info, pipeline

    args.precision = precision.resolve(args.precision)

    data_dir = args.data_dir or cached_records(args.scenes, args.scene_size)
    info = dataset_info.load(data_dir, kind="sic")
    k = int(info.get("max_polygons_per_patch") or 0) or None
    patch = info["patch_size"]
    n_examples = info["splits"]["train"]["num_examples"]
    common.progress(f"pipeline alone: {n_examples} patches of {patch}^2 in {data_dir}, batch {args.batch_size}")
    ds = pipeline.sic_dataset(data_dir, "train", args.batch_size, training=True, seed=1, info=info,
                              augment=True, max_polygons=k)
    load_before = common.loadavg()
    pipe_ps, pipe_s, pipe_cpu = time_pipeline(ds, args.batches, args.warmup)
    common.progress(f"  {pipe_ps:.0f} patches/s")
    rows = [{"what": "pipeline alone (parse + augment + batch)", "per_s": pipe_ps,
             "cpu": pipe_cpu / (pipe_s * common.num_cores())}]
    step_ips = fed_ips = None
    step_times = fed_times = []
    if args.train_steps:
        from bench.train_step import build

        if args.precision == "bf16":
            keras.mixed_precision.set_global_policy("mixed_bfloat16")
        keras.utils.set_random_seed(1)
        filters = [int(f) for f in args.filters.split(",")]
        model, _ = build("sic_regional", len(info["channels"]), filters, False)
        batch = next(iter(ds))
        in_memory = tf.data.Dataset.from_tensors(batch).repeat()
        common.progress(f"train step consumption ({args.precision}, in-memory batch)")
        step_ips, step_times = time_fit(model, in_memory, args.train_steps, 2, args.batch_size)
        common.progress(f"  {step_ips:.2f} images/s; now fed by the pipeline")
        fed_ips, fed_times = time_fit(model, ds, args.train_steps, 2, args.batch_size)
        common.progress(f"  {fed_ips:.2f} images/s")
        rows.append({"what": f"train step, in-memory batch ({args.precision})", "per_s": step_ips})
        rows.append({"what": f"train step fed by the pipeline ({args.precision})", "per_s": fed_ips})
    load_after = common.loadavg()
    ratio = pipe_ps / step_ips if step_ips else float("nan")
    common.print_table(rows, ["what", ("per_s", "patches/s"), ("cpu", "CPU use")],
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
    path = common.write_result("input_pipeline", payload, args.results_dir)
    print(f"wrote {path}")
    common.summary_line({"patches_per_s": pipe_ps, "step_images_per_s": step_ips if step_ips else float("nan"),
                         "ratio": ratio, "fed_images_per_s": fed_ips if fed_ips else float("nan"),
                         "fed_over_in_memory": payload["fed_over_in_memory"] or float("nan"),
                         "meets_target": bool(step_ips) and ratio >= TARGET_RATIO, "load1": load_after[0]})
    return 0


if __name__ == "__main__":
    sys.exit(main())
