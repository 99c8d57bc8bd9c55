"""Beam plumbing shared by the converters: flags, staged outputs, deterministic shards.

Unknown command-line flags are passed through to Beam's PipelineOptions, so
`--runner=DataflowRunner --project=... --region=...` (or Flink/Spark options)
work with no code change. Outputs are staged in `OUTPUT_DIR/.staging-*` and
moved into place at the end, `dataset_info.json` last: a reader never takes an
interrupted conversion for a finished one.
"""

import json
import math
import os
import sys
import threading
import uuid
import zlib

import apache_beam as beam
import tensorflow as tf
from absl import flags, logging
from apache_beam.options.pipeline_options import (FlinkRunnerOptions, PipelineOptions, PortableOptions,
                                                  SparkRunnerOptions)

from tfseaice import cli, io_utils, run_lock
from tfseaice.data import dataset_info
from tfseaice.errors import InputError



def define_beam_flags():
    """Flags every converter shares (call from the entry point's define_flags)."""
    flags.DEFINE_string("runner", "DirectRunner", "Beam runner (DirectRunner, DataflowRunner, FlinkRunner, SparkRunner).")
    flags.DEFINE_bool("overwrite", False, "Replace an existing conversion in --output_dir.")
    flags.DEFINE_integer("num_shards", 0, "Shards per split; 0 = about --shard_mb each.")
    flags.DEFINE_integer("shard_mb", 128, "Target shard size in MB when --num_shards=0.")

OUTPUT_PATTERNS = ("*.tfrecord", dataset_info.FILENAME, "failed_*.json")


def parse_flags(argv):
    """absl flags_parser: parse our flags, keep the rest for Beam.

    A flag that neither the converter nor Beam's PipelineOptions knows (a typo
    such as `--patchsize`) is an InputError: Beam itself would only log a
    warning and drop it.
    """
    rest = flags.FLAGS(argv, known_only=True)
    unknown = unknown_beam_args(rest[1:])
    if unknown:
        name = unknown[0].split("=", 1)[0]
        found = cli.find_in_flagfiles(argv, name.lstrip("-"))
        where = f"{found[0]}" if found else name
        line = f"line {found[1]}: " if found else ""
        raise InputError(where, f"{line}unknown flag {name} (neither a converter flag nor an Apache Beam pipeline option)")
    return rest


def unknown_beam_args(args):
    """The arguments in `args` that no Apache Beam PipelineOptions class parses."""
    from apache_beam.options.pipeline_options import _BeamArgumentParser

    parser = _BeamArgumentParser(allow_abbrev=False)
    seen = {}
    for cls in PipelineOptions.__subclasses__():  # as PipelineOptions.get_all_options does
        seen.setdefault(str(cls), cls)
    for cls in seen.values():
        cls._add_argparse_args(parser)  # pylint: disable=protected-access
    _, unknown = parser.parse_known_args(list(args))
    return unknown


# One netCDF read at a time per process. A Beam SDK harness runs bundles in
# threads (FlinkRunner/SparkRunner with LOOPBACK or a worker pool, parallelism
# > 1), and two threads opening netCDF files at once crashed libnetcdf/HDF5
# with a segmentation fault (SparkRunner local[2], found by tests_engines/).
# Kept in this importable module so that every DoFn copy in a process shares it
# (a converter run as `python -m` is `__main__`, whose globals Beam pickles by value).
NETCDF_LOCK = threading.Lock()

# Where `make beam-engines` puts Beam's Flink and Spark job servers.
ENGINES_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".cache", "beam-engines")
_ENGINES = {"flink": ("flink_job_server_jar", FlinkRunnerOptions),
            "spark": ("spark_job_server_jar", SparkRunnerOptions)}
_LOCAL_HOSTS = ("[local]", "[auto]", "localhost", "127.0.0.1")


def engine_of(runner):
    """'flink' / 'spark' for Beam's FlinkRunner / SparkRunner (any spelling Beam takes), else None."""
    name = runner.rsplit(".", 1)[-1].lower()
    name = name[:-len("runner")] if name.endswith("runner") else name
    return name if name in _ENGINES else None


def _is_local_master(engine, options):
    if engine == "flink":
        master = options.view_as(FlinkRunnerOptions).flink_master
    else:
        master = options.view_as(SparkRunnerOptions).spark_master_url
    master = master.split("://", 1)[-1]
    return master.startswith("local") or master.split(":", 1)[0] in _LOCAL_HOSTS


def engine_args(beam_args, runner):
    """Beam options a Flink or Spark run needs on top of the user's.

    - The job-server jar that `make beam-engines` cached, unless one is given:
      Beam would otherwise download one from Maven Central at run time.
    - `--environment_type=LOOPBACK` (Python workers in this process) when the
      master runs on this machine and no environment is given: Beam's default
      for other masters, DOCKER, needs Docker. A remote cluster needs workers
      of its own (EXTERNAL worker pool, PROCESS or DOCKER: see the README).
    """
    engine = engine_of(runner)
    if engine is None:
        return []
    options = PipelineOptions(list(beam_args))
    extra = []
    flag, view = _ENGINES[engine]
    if not getattr(options.view_as(view), flag):
        cached = os.path.join(ENGINES_DIR, f"{engine}-job-server.jar")
        if os.path.exists(cached):
            extra.append(f"--{flag}={cached}")
        else:
            logging.warning("No --%s and no %s: Beam will download its job server now "
                            "(`make beam-engines` fetches one once)", flag, cached)
    portable = options.view_as(PortableOptions)
    if not portable.environment_type and _is_local_master(engine, options):
        extra.append("--environment_type=LOOPBACK")
    return extra


def make_pipeline(beam_args, runner="DirectRunner"):
    """A Beam pipeline for --runner and the pass-through options.

    `DirectRunner` runs Beam's portable FnApiRunner in this process (or in
    `--direct_num_workers` processes with `--direct_running_mode=multi_processing`).
    Beam's own DirectRunner would first try to download the Prism binary,
    which needs internet access; ask for `--runner=PrismRunner` to use it.
    FlinkRunner and SparkRunner get `engine_args`.
    """
    beam_args = list(beam_args) + engine_args(beam_args, runner)
    options = PipelineOptions(beam_args + [f"--runner={runner}"])
    if runner == "DirectRunner":
        from apache_beam.runners.portability.fn_api_runner import FnApiRunner

        return beam.Pipeline(runner=FnApiRunner(), options=options)
    return beam.Pipeline(options=options)


def print_failures(failed):
    """One `ERROR: <path>: <reason>` line per input the conversion skipped."""
    for f in failed:
        print(f"ERROR: {f['path']}: {f['error']}", file=sys.stderr)


def shard_count(estimated_bytes, num_shards=0, shard_mb=128):
    if num_shards > 0:
        return num_shards
    return max(1, math.ceil(estimated_bytes / (shard_mb * 2**20)))


def shard_name(split, index, total):
    return f"{split}-{index:05d}-of-{total:05d}.tfrecord"


def shard_of(key, num_shards):
    """Stable shard index of an example key (same on every runner and run)."""
    return zlib.crc32(key.encode()) % num_shards


class _WriteShard(beam.DoFn):
    def __init__(self, staging_dir, split, num_shards):
        self.staging_dir, self.split, self.num_shards = staging_dir, split, num_shards

    def process(self, element):
        index, keyed = element
        keyed = sorted(keyed, key=lambda kv: kv[0])
        name = shard_name(self.split, index, self.num_shards)
        path = os.path.join(self.staging_dir, name)
        with tf.io.TFRecordWriter(path) as writer:
            for _, record in keyed:
                writer.write(record)
        yield name, len(keyed)


class WriteShards(beam.PTransform):
    """(key, serialized) pairs -> `split-NNNNN-of-NNNNN.tfrecord`, sorted by key.

    The key decides the shard and the order inside it, so every runner writes
    byte-identical shards for the same input.
    """

    def __init__(self, staging_dir, split, num_shards):
        super().__init__()
        self.staging_dir, self.split, self.num_shards = staging_dir, split, num_shards

    def expand(self, pcoll):
        n = self.num_shards
        return (pcoll
                | "KeyByShard" >> beam.Map(lambda kv: (shard_of(kv[0], n), kv))
                | "GroupShard" >> beam.GroupByKey()
                | "Write" >> beam.ParDo(_WriteShard(self.staging_dir, self.split, n)))


class WriteJson(beam.PTransform):
    """Collect a PCollection into one JSON list file (small reports only)."""

    def __init__(self, path):
        super().__init__()
        self.path = path

    def expand(self, pcoll):
        path = self.path

        def write(items):
            with tf.io.gfile.GFile(path, "w") as f:
                json.dump(sorted(items, key=lambda x: json.dumps(x, sort_keys=True)), f)
            return path

        return pcoll | beam.combiners.ToList() | beam.Map(write)


class StagedOutput:
    """An output folder filled through a staging folder; committed all at once.

    Use as a context manager: leaving the block by an exception (or Ctrl-C)
    removes the staging folder and leaves the output folder as it was.
    """

    def __init__(self, output_dir, overwrite):
        self.output_dir = output_dir
        self.overwrite = overwrite
        # One conversion per folder: a second one into it refuses at once (shards never interleave).
        self.lock = run_lock.RunLock(output_dir).acquire()
        try:
            self._check()
            self.created = not tf.io.gfile.exists(output_dir)
            self.staging = os.path.join(output_dir, f".staging-{uuid.uuid4().hex[:8]}")
            tf.io.gfile.makedirs(self.staging)
        except BaseException:
            self.lock.release()
            raise

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        try:
            if exc_type is not None:
                self.abort()
        finally:
            self.lock.release()
        return False

    def _existing(self):
        if not tf.io.gfile.exists(self.output_dir):
            return []
        found = []
        for pattern in OUTPUT_PATTERNS:
            found += tf.io.gfile.glob(os.path.join(self.output_dir, pattern))
        return found

    def _check(self):
        existing = self._existing()
        if existing and not self.overwrite:
            raise InputError(self.output_dir, f"already holds a conversion ({len(existing)} files); pass --overwrite to replace it")

    def read_json(self, name, default=None):
        path = os.path.join(self.staging, name)
        if not tf.io.gfile.exists(path):
            return default
        with tf.io.gfile.GFile(path) as f:
            return json.load(f)

    def commit(self, shard_names, info, reports=None):
        """Move shards in, write reports, write dataset_info.json last.

        A shard that received no example is neither written nor listed in
        `info` (an empty shard is not data: readers refuse 0-byte shards).
        """
        written = {n for n in shard_names if tf.io.gfile.exists(os.path.join(self.staging, n))}
        for split in info.get("splits", {}).values():
            split["shards"] = [n for n in split.get("shards", []) if n in written]
        for old in self._existing():  # info first, so the folder reads incomplete while we swap
            if old.endswith(dataset_info.FILENAME):
                tf.io.gfile.remove(old)
        for old in self._existing():
            tf.io.gfile.remove(old)
        for name in shard_names:
            if name in written:
                tf.io.gfile.rename(os.path.join(self.staging, name), os.path.join(self.output_dir, name),
                                   overwrite=True)
        for name, obj in (reports or {}).items():
            io_utils.write_json(os.path.join(self.output_dir, name), obj)
        io_utils.write_json(os.path.join(self.output_dir, dataset_info.FILENAME), info)
        self.abort()

    def abort(self):
        """Remove the staging folder (and the output folder if we made it and it is empty)."""
        if tf.io.gfile.exists(self.staging):
            tf.io.gfile.rmtree(self.staging)
        if self.created and tf.io.gfile.isdir(self.output_dir) and not tf.io.gfile.listdir(self.output_dir):
            tf.io.gfile.rmtree(self.output_dir)


def seeded_split(names, val_fraction, seed):
    """Split sorted names into (train, val) with a seeded permutation.

    At least one validation item when there are two or more items and
    val_fraction > 0; never all of them.
    """
    import numpy as np

    names = sorted(names)
    if not names:
        return [], []
    n_val = int(round(len(names) * val_fraction))
    if val_fraction > 0 and len(names) >= 2:
        n_val = min(max(n_val, 1), len(names) - 1)
    order = np.random.default_rng(seed).permutation(len(names))
    val = sorted(names[i] for i in order[:n_val])
    train = sorted(names[i] for i in order[n_val:])
    return train, val
