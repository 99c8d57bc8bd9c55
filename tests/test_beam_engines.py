"""Options the converters add for FlinkRunner / SparkRunner (no Java needed: nothing is run)."""

import os
import subprocess
import sys

import pytest

from data_prep import beam_common

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setattr(beam_common, "ENGINES_DIR", str(tmp_path))
    for engine in ("flink", "spark"):
        (tmp_path / f"{engine}-job-server.jar").write_bytes(b"PK")
    return tmp_path


@pytest.mark.parametrize("runner", ["DirectRunner", "DataflowRunner", "PrismRunner"])
def test_other_runners_get_nothing(cache, runner):
    assert beam_common.engine_args([], runner) == []


@pytest.mark.parametrize("runner,engine", [("FlinkRunner", "flink"), ("flink", "flink"),
                                           ("apache_beam.runners.portability.spark_runner.SparkRunner", "spark")])
def test_a_local_run_gets_the_cached_jar_and_loopback_workers(cache, runner, engine):
    assert beam_common.engine_args([], runner) == [
        f"--{engine}_job_server_jar={os.path.join(cache, engine + '-job-server.jar')}",
        "--environment_type=LOOPBACK"]


@pytest.mark.parametrize("args", [["--flink_master=localhost:8081"], ["--flink_master=[local]"],
                                  ["--flink_master=http://127.0.0.1:8081"]])
def test_a_flink_master_on_this_machine_gets_loopback(cache, args):
    assert beam_common.engine_args(args, "FlinkRunner")[-1] == "--environment_type=LOOPBACK"


@pytest.mark.parametrize("runner,args", [("FlinkRunner", ["--flink_master=jobmanager:8081"]),
                                         ("SparkRunner", ["--spark_master_url=spark://spark-master:7077"])])
def test_a_remote_cluster_keeps_beams_environment(cache, runner, args):
    extra = beam_common.engine_args(args, runner)
    assert len(extra) == 1 and extra[0].endswith("-job-server.jar")


def test_given_options_are_kept(cache):
    args = ["--spark_job_server_jar=/opt/js.jar", "--environment_type=EXTERNAL", "--environment_config=localhost:50000"]
    assert beam_common.engine_args(args, "SparkRunner") == []


def test_without_a_cached_jar_beam_is_left_to_fetch_one(tmp_path, monkeypatch):
    monkeypatch.setattr(beam_common, "ENGINES_DIR", str(tmp_path))
    assert beam_common.engine_args([], "SparkRunner") == ["--environment_type=LOOPBACK"]


THREADED_CONVERT = r"""
import glob, sys, threading
import h5py, tensorflow  # noqa: F401  (as in a Beam worker: their HDF5 and libnetcdf's share the process)
from data_prep.ai4arctic_to_tfrecord import ConvertScene

paths = sorted(glob.glob(sys.argv[1]))
dofn = ConvertScene(("hh", "hv"), 64, 64, 2, None, "sic_truth", "distance_map")
errors = []

def work():
    for _ in range(int(sys.argv[2])):
        for p in paths:
            out = list(dofn.process((p, "train")))
            if p.endswith("junk.nc") != (len(out) == 1):
                errors.append(p)

threads = [threading.Thread(target=work) for _ in range(2)]
[t.start() for t in threads]
[t.join() for t in threads]
print("errors", errors)
sys.exit(1 if errors else 0)
"""


def test_two_threads_convert_scenes_without_crashing(tmp_path):
    # A Beam SDK harness runs bundles in threads (Flink/Spark): reading two netCDF files at once
    # crashed the process (SIGSEGV/SIGBUS) before the converter took beam_common.NETCDF_LOCK.
    from sic_fixtures import write_scenes

    write_scenes(str(tmp_path), 3, size=128, seed=2)
    (tmp_path / "junk.nc").write_text("not netCDF")
    r = subprocess.run([sys.executable, "-c", THREADED_CONVERT, str(tmp_path / "*.nc"), "20"],
                       capture_output=True, text=True, timeout=600,
                       env=dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2"))
    assert r.returncode == 0, f"exit {r.returncode}: {r.stdout[-500:]} {r.stderr[-1500:]}"
