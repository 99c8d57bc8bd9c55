"""The converters on FlinkRunner and SparkRunner write what the in-process runner writes.

Run by `make test-engines` (not by `make test`: Java 17 and the job servers of
`make beam-engines` are needed). Each conversion is the converter's command
line in a subprocess of its own process group, so the job server's JVM that
Beam starts is checked to be gone when the conversion ends (and killed if not).
"""

import glob
import json
import os
import signal
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENGINES = os.path.abspath(os.environ.get("TFSEAICE_ENGINES", os.path.join(ROOT, ".cache", "beam-engines")))
TIMEOUT_S = 900
RUNNERS = {
    "flink": ["--runner=FlinkRunner", "--flink_master=[local]", "--parallelism=2",
              f"--flink_job_server_jar={ENGINES}/flink-job-server.jar"],
    "spark": ["--runner=SparkRunner", "--spark_master_url=local[2]",
              f"--spark_job_server_jar={ENGINES}/spark-job-server.jar"],
}
SIC = ["-m", "data_prep.ai4arctic_to_tfrecord", "--patch_size=64", "--stride=64", "--val_fraction=0.34",
       "--seed=1", "--num_shards=2"]
SENTINEL1 = ["-m", "data_prep.sentinel1_to_scenes"]
GLACIER = ["-m", "data_prep.glacier_to_tfrecord", "--patch_size=128", "--val_fraction=0.25", "--seed=4",
           "--num_shards=2"]


def run(args, log):
    """Run `python args...` in a new process group; fail if it fails or leaves a process behind."""
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2")
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable] + args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            rc = proc.wait(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            rc = None
    left = _group_alive(proc.pid)
    if left:
        os.killpg(proc.pid, signal.SIGKILL)
    text = open(log).read()
    assert rc == 0, f"exit {rc} (log {log}):\n{text[-3000:]}"
    assert not left, f"a process (the job server?) outlived the conversion; killed (log {log})"
    return text


def _group_alive(pgid, wait_s=10):
    deadline = time.time() + wait_s
    while time.time() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        time.sleep(0.5)
    return True


def outputs(folder):
    """{file name: bytes} of a conversion, `seconds` (wall time) left out of dataset_info.json."""
    files = {}
    for path in sorted(glob.glob(os.path.join(folder, "*"))):
        data = open(path, "rb").read()
        if os.path.basename(path) == "dataset_info.json":
            info = json.loads(data)
            info.pop("seconds")
            data = json.dumps(info, sort_keys=True).encode()
        files[os.path.basename(path)] = data
    return files


@pytest.fixture(scope="module")
def jars():
    for engine in RUNNERS:
        path = os.path.join(ENGINES, f"{engine}-job-server.jar")
        assert os.path.exists(path), f"{path}: missing; run `make beam-engines`"


@pytest.fixture(scope="module")
def sic(tmp_path_factory, jars):
    d = tmp_path_factory.mktemp("sic")
    run(["-m", "data_prep.make_sample_scenes", f"--out_dir={d / 'scenes'}", "--num_scenes=3", "--size=256",
         "--seed=3"], d / "make.log")
    (d / "scenes" / "S1A_EW_GRDM_1SDH_20200101T000000_junk_icechart_dmi.nc").write_text("not netCDF")
    cli = SIC + [f"--input_glob={d / 'scenes' / '*.nc'}"]
    run(cli + [f"--output_dir={d / 'direct'}"], d / "direct.log")
    return d, cli


@pytest.fixture(scope="module")
def glaciers(tmp_path_factory, jars):
    d = tmp_path_factory.mktemp("glacier")
    run(["-m", "data_prep.make_sample_glaciers", f"--out_dir={d / 'raw'}", "--num_images=4", "--seed=3",
         "--with_elevation", "--min_size=300", "--max_size=320"], d / "make.log")
    broken = sorted(glob.glob(str(d / "raw" / "zones" / "train" / "*.png")))[0]
    os.remove(broken)
    cli = GLACIER + [f"--data_root={d / 'raw'}"]
    run(cli + [f"--output_dir={d / 'direct'}"], d / "direct.log")
    return d, cli


def _check_same(d, engine, cli, report, broken_name):
    run(cli + [f"--output_dir={d / engine}"] + RUNNERS[engine], d / f"{engine}.log")
    direct, other = outputs(d / "direct"), outputs(d / engine)
    assert sorted(other) == sorted(direct)
    shards = [n for n in direct if n.endswith(".tfrecord")]
    assert len(shards) >= 4 and sum(bool(direct[n]) for n in shards) >= 3, shards  # several shards compared
    for name in direct:
        assert other[name] == direct[name], f"{engine}: {name} differs from the in-process runner's"
    failed = json.loads(direct[report])
    assert [os.path.basename(f["path"]) for f in failed] == [broken_name]


@pytest.mark.parametrize("engine", ["flink", "spark"])
def test_sic_conversion_matches_the_in_process_runner(sic, engine):
    d, cli = sic
    _check_same(d, engine, cli, "failed_scenes.json", "S1A_EW_GRDM_1SDH_20200101T000000_junk_icechart_dmi.nc")


@pytest.mark.parametrize("engine", ["flink", "spark"])
def test_glacier_conversion_matches_the_in_process_runner(glaciers, engine):
    d, cli = glaciers
    missing = [os.path.basename(p) for p in glob.glob(str(d / "raw" / "sar_images" / "train" / "*.png"))
               if not os.path.exists(str(d / "raw" / "zones" / "train" / os.path.basename(p)[:-4]) + "_zones.png")]
    _check_same(d, engine, cli, "failed_images.json", missing[0])


@pytest.fixture(scope="module")
def sentinel1(tmp_path_factory, jars):
    d = tmp_path_factory.mktemp("sentinel1")
    run(["-m", "data_prep.make_sample_products", f"--out_dir={d / 'raw'}", "--num_products=3", "--size=256",
         "--seed=2"], d / "make.log")
    broken = d / "raw" / "products" / "S1A_EW_GRDM_1SDH_20200101T000000_20200101T000100_030000_036000_ABCD.zip"
    broken.write_bytes(b"PK\x03\x04 cut short")
    cli = SENTINEL1 + [f"--safe_glob={d / 'raw' / '*' / 'S1*'}", f"--chart_glob={d / 'raw' / 'charts' / '*'}"]
    run(cli + [f"--output_dir={d / 'direct'}"], d / "direct.log")
    return d, cli, broken.name


@pytest.mark.parametrize("engine", ["flink", "spark"])
def test_sentinel1_conversion_matches_the_in_process_runner(sentinel1, engine):
    """Products (one broken, one without a chart) -> the same scenes and reports on each runner."""
    import xarray as xr

    d, cli, broken = sentinel1
    run(cli + [f"--output_dir={d / engine}"] + RUNNERS[engine], d / f"{engine}.log")
    direct, other = sorted(os.listdir(d / "direct")), sorted(os.listdir(d / engine))
    assert other == direct
    scenes = [n for n in direct if n.endswith(".nc")]
    assert len(scenes) == 3, direct   # two with a chart, one chart-less; the broken product is in the report

    def report(folder):
        rows = json.loads((d / folder / "scenes.json").read_text())
        return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]

    assert report(engine) == report("direct") and sum(bool(r.get("chart")) for r in report("direct")) == 2
    failed = json.loads((d / "direct" / "failed_scenes.json").read_text())
    assert [os.path.basename(f["path"]) for f in failed] == [broken]
    assert json.loads((d / engine / "failed_scenes.json").read_text()) == failed
    for name in scenes:
        with xr.open_dataset(d / "direct" / name) as a, xr.open_dataset(d / engine / name) as b:
            assert b.identical(a), f"{engine}: {name} differs from the in-process runner's"
