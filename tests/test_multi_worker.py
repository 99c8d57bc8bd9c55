"""--strategy=multi_worker: chief election, FILE/DATA sharding, and two real worker processes
under TF_CONFIG on localhost training the SIC task and pix2pix."""

import glob
import json
import os
import re
import socket
import subprocess
import sys
import time
import types

import numpy as np
import pytest
import tensorflow as tf

from data_prep import glacier_to_tfrecord
from tfseaice import distribute
from tfseaice.serving.loading import load_trained
from tfseaice.data import dataset_info, pipeline
from tfseaice.errors import InputError
from tfseaice.simulate import glaciers

from sic_fixtures import convert_tiny

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ------------------------------------------------------------ chief and TF_CONFIG

def _strategy(cluster, task_type, task_id):
    resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
        tf.train.ClusterSpec(cluster), task_type=task_type, task_id=task_id)
    return types.SimpleNamespace(cluster_resolver=resolver)


def test_chief_is_the_chief_task_else_worker_0():
    two = {"worker": ["a:1", "b:1"]}
    with_chief = {"chief": ["c:1"], "worker": ["a:1", "b:1"]}
    assert distribute.is_chief(_strategy(two, "worker", 0))
    assert not distribute.is_chief(_strategy(two, "worker", 1))
    assert distribute.is_chief(_strategy(with_chief, "chief", 0))
    assert not distribute.is_chief(_strategy(with_chief, "worker", 0))  # the draft said yes when TF_CONFIG disagreed
    assert not distribute.is_chief(_strategy({**with_chief, "evaluator": ["e:1"]}, "evaluator", 0))
    assert distribute.num_workers(_strategy(with_chief, "worker", 1)) == 3
    # Outside a cluster every process is its own chief.
    assert distribute.is_chief(None) and distribute.is_chief(tf.distribute.get_strategy())
    assert distribute.num_workers(tf.distribute.get_strategy()) == 1


def test_malformed_tf_config_is_an_input_error(monkeypatch):
    for value, what in (("{not json", "not valid JSON"),
                        ('{"cluster": {"worker": ["a:1"]}}', "no 'task'"),
                        ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 3}}', "out of range"),
                        ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "chief", "index": 0}}', "not in the cluster")):
        monkeypatch.setenv("TF_CONFIG", value)
        with pytest.raises(InputError, match=what) as e:
            distribute.read_tf_config()
        assert e.value.path == "TF_CONFIG"
    monkeypatch.delenv("TF_CONFIG")
    assert distribute.read_tf_config() == {}


# ------------------------------------------------------------------- sharding

@pytest.fixture(scope="module")
def sic_data(tmp_path_factory):
    return convert_tiny(tmp_path_factory.mktemp("mw_sic"))[0]


def test_training_data_is_sharded_by_file_when_every_worker_gets_a_shard(sic_data, tmp_path):
    from tensorflow.python.data.experimental.ops.distribute import _AutoShardDataset  # what tf.distribute applies

    info = dataset_info.load(sic_data)
    files = dataset_info.shard_paths(sic_data, info, "train")
    keys = ("scene_id", "patch_offset")
    per_worker = []
    for index in range(2):
        ds = pipeline.sic_dataset(sic_data, "train", 2, training=True, seed=1, info=info, keys=keys,
                                 repeat=False, augment=False)
        ds, policy = pipeline.shard_across_workers(ds, files, 2)
        assert policy == "FILE"
        seen = set()
        for b in _AutoShardDataset(ds, 2, index, 2):
            seen |= {(s.decode(), tuple(o)) for s, o in zip(b["scene_id"].numpy(), b["patch_offset"].numpy())}
        per_worker.append(seen)
    assert per_worker[0] and per_worker[1] and not per_worker[0] & per_worker[1]
    assert len(per_worker[0] | per_worker[1]) >= info["splits"]["train"]["num_examples"] - 2  # drop_remainder
    # Too few (non-empty) shards for the workers: DATA.
    empty = tmp_path / "empty.tfrecord"
    with tf.io.TFRecordWriter(str(empty)):
        pass
    assert not pipeline.files_per_worker_ok([files[0], str(empty)], 2)
    assert not pipeline.files_per_worker_ok(files, 3)
    _, policy = pipeline.shard_across_workers(tf.data.Dataset.range(3), files[:1], 2)
    assert policy == "DATA"
    assert pipeline.shard_across_workers(tf.data.Dataset.range(3), files, 1)[1] is None


# ------------------------------------------------------ two worker processes

DRIVER = r"""
import json, os, sys
import numpy as np
from absl import logging
from tfseaice.training.config import TrainConfig
from tfseaice.train_lib import run_training
logging.set_verbosity(logging.INFO)
out, specs = sys.argv[1], json.loads(sys.argv[2])
print("PID", os.getpid(), flush=True)
for spec in specs:
    name = spec.pop("name")
    history = run_training(TrainConfig(**spec))
    np.savez(os.path.join(out, f"{name}-{os.environ['WORKER_INDEX']}.npz"),
             *[np.asarray(v) for v in history.model.weights])
    print("DONE", name, flush=True)
"""


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@pytest.fixture(scope="module")
def glacier_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("mw_glacier")
    glaciers.make_sample_dataset(str(root / "raw"), 3, seed=1, test_fraction=0.34,
                                        min_size=520, max_size=540)
    glacier_to_tfrecord.convert(str(root / "raw"), str(root / "records"), patch_size=256, val_fraction=0.3,
                                seed=1, num_shards=2)
    return str(root / "records")


@pytest.fixture(scope="module")
def two_workers(sic_data, glacier_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("mw_run")
    specs = [
        {"name": "sic", "task": "sic_regional", "data_dir": sic_data, "model_dir": str(root / "sic"),
         "epochs": 2, "steps_per_epoch": 3, "batch_size": 4, "learning_rate": 3e-3, "seed": 1,
         "strategy": "multi_worker", "extra": {"filters": [4, 8, 8, 8]}},
        {"name": "pix2pix", "task": "pix2pix", "data_dir": glacier_data, "model_dir": str(root / "pix2pix"),
         "epochs": 2, "steps_per_epoch": 2, "batch_size": 2, "learning_rate": 2e-4, "seed": 1,
         "strategy": "multi_worker",
         "extra": {"generator_filters": 2, "discriminator_filters": 2, "checkpoint_every": 1,
                   "sync_batchnorm": True}},
    ]
    cluster = {"worker": [f"127.0.0.1:{p}" for p in _free_ports(2)]}
    procs, logs = [], []
    for i in range(2):
        tmp = root / f"tmp{i}"
        tmp.mkdir()
        env = dict(os.environ, TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}}),
                   WORKER_INDEX=str(i), TMPDIR=str(tmp), TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
        log = open(root / f"worker{i}.log", "w")
        logs.append(log)
        procs.append(subprocess.Popen([sys.executable, "-c", DRIVER, str(root), json.dumps(specs)], cwd=ROOT,
                                      env=env, stdout=log, stderr=subprocess.STDOUT))
    deadline = time.time() + 420
    failed_at = None
    try:
        while any(p.poll() is None for p in procs):
            assert time.time() < deadline, "the two workers did not finish within 420 s"
            if failed_at is None and any(p.poll() not in (None, 0) for p in procs):
                failed_at = time.time()  # the other one may wait on a collective: give it 30 s
            if failed_at is not None and time.time() - failed_at > 30:
                break
            time.sleep(0.2)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        for log in logs:
            log.close()
    texts = [(root / f"worker{i}.log").read_text() for i in range(2)]
    for i, p in enumerate(procs):
        assert p.returncode == 0, f"worker {i} failed:\n{texts[i][-4000:]}"
    pids = [int(re.search(r"^PID (\d+)$", t, re.M).group(1)) for t in texts]
    return root, texts, pids


@pytest.mark.parametrize("name", ["sic", "pix2pix"])
def test_two_workers_end_with_identical_weights_and_the_chiefs_checkpoint(two_workers, name):
    root, _, _ = two_workers
    w0, w1 = np.load(root / f"{name}-0.npz"), np.load(root / f"{name}-1.npz")
    assert len(w0.files) == len(w1.files) > 10
    for key in w0.files:
        np.testing.assert_array_equal(w0[key], w1[key], err_msg=f"{name} weight {key} differs")
    model, meta = load_trained(str(root / name), "latest")
    assert meta["state"] == "complete"
    assert [int(r.split(",")[0]) for r in (root / name / "history.csv").read_text().splitlines()[1:]] == [1, 2]
    for key, var in zip(w0.files, model.weights):
        np.testing.assert_array_equal(np.asarray(var), w0[key], err_msg=f"{name} checkpoint differs at {var.path}")


def test_only_the_chief_writes_into_model_dir(two_workers):
    root, texts, pids = two_workers
    chief_pid, other_pid = pids
    events = glob.glob(str(root / "*" / "logs" / "**" / "events.out.tfevents.*"), recursive=True)
    assert {os.path.basename(os.path.dirname(e)) for e in events} >= {"train", "validation", "images"}
    for path in events:  # events.out.tfevents.<time>.<host>.<pid>.<n>.v2
        assert f".{chief_pid}." in os.path.basename(path) and f".{other_pid}." not in os.path.basename(path)
    assert (root / "pix2pix" / "checkpoints" / "epoch_0002.weights.h5").exists()
    assert len(json.loads((root / "pix2pix" / "checkpoint_scores.json").read_text())["checkpoints"]) == 2
    # The non-chief wrote the same files into temporary folders, removed at the end.
    temp = re.findall(r"not chief: writes to (\S+?)\)", texts[1])
    assert len(temp) == 2 and all(t.startswith(str(root / "tmp1")) and not os.path.exists(t) for t in temp)
    assert "not chief" not in texts[0]
    assert not glob.glob(str(root / "tmp*" / "tfseaice-worker-*"))


def test_the_logs_state_the_global_batch_and_the_sharding(two_workers):
    _, texts, _ = two_workers
    for text in texts:
        assert "global batch 4 = 2 per worker x 2 worker(s), 2 per replica" in text
        assert "train data: 2 shard files over 2 workers: auto-sharding by FILE" in text
        assert "validation data: auto-sharding by DATA over 2 workers" in text
        assert text.count("DONE") == 2
