r"""Data preparation on each Beam runner: the same sample scenes, timed end to end.

  python -m bench.data_prep --runners=direct,multiprocess,flink,spark [--num_scenes=8 --scene_size=2048]

Each runner converts the same seeded sample scenes (made once with
`data_prep.make_sample_scenes` and cached under /tmp/tfseaice_bench) by the
converter's own command line in a fresh process, as a user would run it:
wall time includes Python start-up and, for Flink and Spark, starting the
job server's JVM and the local cluster. `pipeline_s` is the converter's own
`seconds` (the Beam pipeline alone). `peak_rss_mb` adds up the resident memory
of the whole process group (Python + JVM), sampled every 0.2 s. Every runner's
shards are compared byte for byte with the in-process runner's.
"""

import glob
import json
import os
import subprocess
import sys
import time

from bench.lib.data import CACHE_DIR
from bench.lib.machine import REPO_DIR, loadavg, machine_info
from bench.lib.results import merge_result, print_table, progress, summary_line

ENGINES_DIR = os.path.join(REPO_DIR, ".cache", "beam-engines")
CONVERTER = ["-m", "data_prep.ai4arctic_to_tfrecord", "--val_fraction=0.25", "--seed=1", "--num_shards=4"]


def runner_args(name, workers, engines_dir=ENGINES_DIR):
    """The converter's Beam options for one runner of this benchmark (the README shows the same)."""
    return {
        "direct": [],
        "multiprocess": ["--direct_running_mode=multi_processing", f"--direct_num_workers={workers}"],
        "flink": ["--runner=FlinkRunner", "--flink_master=[local]", f"--parallelism={workers}",
                  f"--flink_job_server_jar={engines_dir}/flink-job-server.jar"],
        "spark": ["--runner=SparkRunner", f"--spark_master_url=local[{workers}]",
                  f"--spark_job_server_jar={engines_dir}/spark-job-server.jar"],
    }[name]


def _group_rss_mb(pgid):
    total = 0
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            with open(stat) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid:  # fields after "(comm)": state ppid pgrp ... rss is the 22nd
                total += int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            continue
    return total / 2**20


def run_timed(cmd, log_path):
    """Run cmd in its own process group: (exit code, wall seconds, peak group RSS in MB)."""
    env = dict(os.environ, PYTHONPATH=REPO_DIR, TF_CPP_MIN_LOG_LEVEL="2")
    peak = 0.0
    t = time.perf_counter()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, cwd=REPO_DIR, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        while proc.poll() is None:
            peak = max(peak, _group_rss_mb(proc.pid))
            time.sleep(0.2)
    return proc.returncode, time.perf_counter() - t, peak


def sample_scenes(num_scenes, size, seed):
    folder = os.path.join(CACHE_DIR, f"runner_scenes_{num_scenes}x{size}_seed{seed}")
    if len(glob.glob(os.path.join(folder, "*.nc"))) != num_scenes:
        progress(f"making {num_scenes} sample scenes of {size}^2 px in {folder}")
        subprocess.run([sys.executable, "-m", "data_prep.make_sample_scenes", f"--out_dir={folder}",
                        f"--num_scenes={num_scenes}", f"--size={size}", f"--seed={seed}", "--overwrite"],
                       cwd=REPO_DIR, env=dict(os.environ, PYTHONPATH=REPO_DIR), check=True)
    return folder


def _shards(folder):
    return {os.path.basename(p): open(p, "rb").read() for p in sorted(glob.glob(os.path.join(folder, "*.tfrecord")))}


def time_runners(runners, num_scenes=8, size=2048, seed=5, workers=2, engines_dir=ENGINES_DIR):
    """Convert the same scenes on each runner; returns the result rows (direct first: the reference)."""
    scenes = sample_scenes(num_scenes, size, seed)
    in_mb = sum(os.path.getsize(p) for p in glob.glob(os.path.join(scenes, "*.nc"))) / 1e6
    work = os.path.join(CACHE_DIR, "runner_outputs")
    os.makedirs(work, exist_ok=True)
    order = ["direct"] + [r for r in runners if r != "direct"]
    rows, reference = [], None
    for name in order:
        out = os.path.join(work, name)
        cmd = [sys.executable] + CONVERTER + [f"--input_glob={scenes}/*.nc", f"--output_dir={out}",
                                              "--overwrite"] + runner_args(name, workers, engines_dir)
        progress(f"{name}: {' '.join(cmd[1:])}")
        load = loadavg()
        rc, wall, peak = run_timed(cmd, os.path.join(work, f"{name}.log"))
        row = {"runner": name, "exit_code": rc, "wall_s": wall, "peak_rss_mb": peak, "loadavg_before": load,
               "command": "python " + " ".join(cmd[1:]), "log": os.path.join(work, f"{name}.log")}
        if rc == 0:
            with open(os.path.join(out, "dataset_info.json")) as f:
                info = json.load(f)
            row["pipeline_s"] = info["seconds"]
            row["patches"] = info["splits"]["train"]["num_examples"] + info["splits"]["val"]["num_examples"]
            row["input_mb_per_s"] = in_mb / wall
            shards = _shards(out)
            reference = reference if reference is not None else shards
            row["identical_to_direct"] = shards == reference
        rows.append(row)
        if name == "direct" and rc != 0:
            raise SystemExit(f"ERROR: the in-process runner failed; see {row['log']}")
    if "direct" not in runners:
        rows = rows[1:]
    return {"num_scenes": num_scenes, "scene_size": size, "seed": seed, "workers": workers,
            "input_mb": in_mb, "rows": rows}


def main(args, results_dir):
    """`bench/data_prep.py --runners=...`: print the table, add "runners" to data_prep.json (other keys kept)."""
    runners = [r for r in args.runners.split(",") if r]
    unknown = set(runners) - {"direct", "multiprocess", "flink", "spark"}
    if unknown:
        raise SystemExit(f"ERROR: --runners: unknown {sorted(unknown)} (direct, multiprocess, flink, spark)")
    result = time_runners(runners, args.num_scenes, args.scene_size, args.seed, args.workers)
    print_table(result["rows"], ["runner", ("wall_s", "wall s"), ("pipeline_s", "pipeline s"),
                                        ("peak_rss_mb", "peak MB"), "identical_to_direct"],
                       title=f"\n{args.num_scenes} sample scenes of {args.scene_size}^2 px "
                             f"({result['input_mb']:.0f} MB netCDF), {args.workers} workers")
    path = merge_result("data_prep", "runners", {"command": " ".join([os.path.basename(sys.argv[0])] + sys.argv[1:]),
                                                 "machine": machine_info(), **result}, results_dir)
    print(f"wrote {path} (key \"runners\")")
    ok = all(r["exit_code"] == 0 and r.get("identical_to_direct") for r in result["rows"])
    summary_line({f"{r['runner']}_s": r["wall_s"] for r in result["rows"]})
    return 0 if ok else 1
