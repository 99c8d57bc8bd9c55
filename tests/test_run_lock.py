"""tfseaice.run_lock (issue 24): one run per output, stale locks recognised, released however a run ends;
and the shard checker's rules (tfseaice.data.pipeline.check_shards) on small hand-made folders.

In-process and fast; the real entry points racing, killed and resumed are rows of
tests/test_hostile_input.py.
"""

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from tfseaice import run_lock
from tfseaice.errors import InputError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _write_lock(output, **fields):
    path = run_lock.lock_path(output)
    holder = {"host": socket.gethostname(), "pid": os.getpid(), "start_time": time.time(),
              "heartbeat": time.time(), "boot_id": run_lock._boot_id(), "token": "someone-else"}
    holder.update(fields)
    with open(path, "w") as f:
        json.dump(holder, f)
    return path


def _dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_lock_lives_beside_the_output(tmp_path):
    assert run_lock.lock_path(tmp_path / "model") == str(tmp_path / ".model.lock")
    assert run_lock.lock_path(str(tmp_path / "out.nc")) == str(tmp_path / ".out.nc.lock")
    assert run_lock.lock_path(str(tmp_path / "model") + "/") == str(tmp_path / ".model.lock")


def test_a_second_run_refuses_naming_the_output_and_the_holder(tmp_path):
    out = tmp_path / "model"
    with run_lock.RunLock(out):
        holder = json.load(open(run_lock.lock_path(out)))
        assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname()
        with pytest.raises(InputError) as err:
            run_lock.RunLock(out).acquire()
        assert err.value.path == str(out)
        assert f"is in use by another run (host {socket.gethostname()}, pid {os.getpid()}, started 20" in err.value.what
    assert not os.path.exists(run_lock.lock_path(out))
    run_lock.RunLock(out).acquire().release()  # free again


def test_released_when_the_block_raises(tmp_path):
    out = tmp_path / "model"
    with pytest.raises(RuntimeError):
        with run_lock.RunLock(out):
            raise RuntimeError("the run failed")
    assert not os.path.exists(run_lock.lock_path(out))


def test_same_host_lock_of_a_gone_pid_is_taken_over_with_a_warning(tmp_path, caplog):
    out = tmp_path / "model"
    dead = _dead_pid()
    _write_lock(out, pid=dead)
    with caplog.at_level(logging.WARNING):
        lock = run_lock.RunLock(out).acquire()
    try:
        assert json.load(open(run_lock.lock_path(out)))["pid"] == os.getpid()
        assert f"taking over the stale lock of host {socket.gethostname()}, pid {dead}" in caplog.text
        assert f"pid {dead} is gone" in caplog.text
    finally:
        lock.release()


def test_same_host_lock_of_a_live_pid_is_kept(tmp_path):
    out = tmp_path / "model"
    _write_lock(out, pid=os.getppid(), start_time=time.time() - 86400, heartbeat=time.time() - 86400)
    with pytest.raises(InputError, match=f"pid {os.getppid()}"):
        run_lock.RunLock(out).acquire()  # its heartbeat is old, but on this host the pid decides


@pytest.mark.skipif(not run_lock._boot_id(), reason="no /proc boot_id")
def test_same_host_lock_from_before_a_reboot_is_stale(tmp_path):
    out = tmp_path / "model"
    _write_lock(out, pid=os.getppid(), boot_id="another-boot")
    run_lock.RunLock(out).acquire().release()


def test_other_host_lock_is_stale_only_without_a_recent_heartbeat(tmp_path):
    out = tmp_path / "model"
    _write_lock(out, host="elsewhere", pid=1, heartbeat=time.time() - 30)
    with pytest.raises(InputError, match="host elsewhere, pid 1"):
        run_lock.RunLock(out).acquire()
    _write_lock(out, host="elsewhere", pid=1, heartbeat=time.time() - run_lock.STALE_SECONDS - 60)
    run_lock.RunLock(out).acquire().release()


def test_an_unreadable_lock_is_stale_only_when_old(tmp_path):
    out = tmp_path / "model"
    path = run_lock.lock_path(out)
    open(path, "w").close()  # created, never written: its writer died at once, or is writing now
    with pytest.raises(InputError, match="still being written"):
        run_lock.RunLock(out).acquire()
    old = time.time() - run_lock.STALE_SECONDS - 60
    os.utime(path, (old, old))
    run_lock.RunLock(out).acquire().release()


def test_the_heartbeat_is_renewed_while_held(tmp_path, monkeypatch):
    monkeypatch.setattr(run_lock, "HEARTBEAT_SECONDS", 0.05)
    out = tmp_path / "model"
    with run_lock.RunLock(out):
        first = json.load(open(run_lock.lock_path(out)))["heartbeat"]
        for _ in range(200):
            if json.load(open(run_lock.lock_path(out)))["heartbeat"] > first:
                break
            time.sleep(0.05)
        assert json.load(open(run_lock.lock_path(out)))["heartbeat"] > first


def test_sigterm_releases_the_lock(tmp_path):
    out = tmp_path / "model"
    code = ("import sys, time\nfrom tfseaice import run_lock\nrun_lock.RunLock(sys.argv[1]).acquire()\n"
            "print('HELD', flush=True)\ntime.sleep(600)\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(out)], cwd=REPO, stdout=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONPATH=REPO))
    assert proc.stdout.readline().strip() == "HELD"
    assert os.path.exists(run_lock.lock_path(out))
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 128 + signal.SIGTERM
    assert not os.path.exists(run_lock.lock_path(out))


def test_a_conversion_refuses_a_folder_another_one_writes(tmp_path):
    from data_prep.beam_common import StagedOutput

    out = tmp_path / "records"
    with run_lock.RunLock(out):
        with pytest.raises(InputError, match="is in use by another run") as err:
            StagedOutput(str(out), overwrite=False)
        assert err.value.path == str(out) and not out.exists()  # nothing staged
    with StagedOutput(str(out), overwrite=False) as staged:
        assert os.path.exists(run_lock.lock_path(out)) and os.path.isdir(staged.staging)
    assert not os.path.exists(run_lock.lock_path(out))


def test_a_conversion_neither_writes_nor_lists_a_shard_without_examples(tmp_path):
    import tensorflow as tf

    from data_prep.beam_common import StagedOutput

    out = tmp_path / "records"
    names = ["train-00000-of-00002.tfrecord", "train-00001-of-00002.tfrecord"]
    with StagedOutput(str(out), overwrite=False) as staged:
        with tf.io.TFRecordWriter(os.path.join(staged.staging, names[0])) as w:
            w.write(b"one example")  # no example hashed to the second shard
        info = {"splits": {"train": {"shards": list(names), "num_examples": 1}}}
        staged.commit(names, info)
    assert sorted(os.listdir(out)) == ["dataset_info.json", names[0]]
    assert json.load(open(out / "dataset_info.json"))["splits"]["train"]["shards"] == names[:1]


# ------------------------------------------------------------ shard checks
def _folder(tmp_path, shard_records, num_examples):
    """A sic folder whose train shards hold `shard_records` records each (0 = an empty file)."""
    import tensorflow as tf

    names = [f"train-{i:05d}-of-{len(shard_records):05d}.tfrecord" for i in range(len(shard_records))]
    for name, n in zip(names, shard_records):
        with tf.io.TFRecordWriter(str(tmp_path / name)) as w:
            for k in range(n):
                w.write(b"x" * (100 + k))
    info = {"splits": {"train": {"shards": names, "num_examples": num_examples}}}
    return str(tmp_path), info, [str(tmp_path / n) for n in names]


def test_an_old_converters_empty_placeholder_shard_is_accepted(tmp_path):
    from tfseaice.data import pipeline

    data_dir, info, paths = _folder(tmp_path, [3, 0], 3)  # the other shard holds every example
    assert pipeline.check_shards(data_dir, info, "train") == paths[:1]


def test_an_empty_shard_that_lost_examples_is_refused_or_skipped(tmp_path, caplog):
    from tfseaice.data import pipeline

    data_dir, info, paths = _folder(tmp_path, [3, 0], 6)
    with pytest.raises(InputError, match=r"empty \(0 bytes\): not data") as err:
        pipeline.check_shards(data_dir, info, "train")
    assert err.value.path == paths[1]
    with caplog.at_level(logging.WARNING):
        assert pipeline.check_shards(data_dir, info, "train", skip_corrupt=True) == paths[:1]
    assert f"skipping the empty (0 bytes) TFRecord shard {paths[1]}" in caplog.text


def test_a_shard_cut_after_its_second_record_is_named_with_what_is_whole(tmp_path):
    from tfseaice.data import pipeline

    data_dir, info, paths = _folder(tmp_path, [4], 4)
    data = open(paths[0], "rb").read()
    open(paths[0], "wb").write(data[: 2 * (12 + 100 + 4) + 1 + 20])  # records 1 and 2 whole, 3 cut
    count, why = pipeline.scan_shard(paths[0])
    assert count == 2 and why.startswith("cut inside record 3")
    with pytest.raises(InputError, match="cut inside record 3"):
        pipeline.check_shards(data_dir, info, "train")
    assert pipeline.check_shards(data_dir, info, "train", skip_corrupt=True) == paths
