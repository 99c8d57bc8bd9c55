"""Timing under shared cores: CPU contention, waiting for quiet, thread pools, per-step timers.

Other jobs share the 2 cores: every timing records how much CPU it got
(`Contention`) so that a contended run can be recognised and re-run.
TensorFlow and Keras are imported inside the functions that use them: the
torch-only interpreter of torch_unet_reference.py imports `Contention` from here.
"""

import os
import time

import numpy as np

from bench.lib.machine import loadavg, num_cores


def cpu_pressure_us():
    """Cumulative microseconds during which some runnable task waited for a CPU (Linux PSI), or None."""
    try:
        with open("/proc/pressure/cpu") as f:
            for line in f:
                if line.startswith("some"):
                    return int(line.split("total=")[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


class Contention:
    """Measures, over a block of code, how much CPU this process got and how contended the CPUs were.

    cpu_share: process CPU time / (wall x cores). stall: fraction of the wall time during
    which some runnable task (ours or anyone's) waited for a CPU (/proc/pressure/cpu).
    On a quiet machine a 2-thread TF step shows stall ~0; another busy job pushes it to ~1.
    """

    def __enter__(self):
        self.cpu0, self.wall0, self.psi0 = time.process_time(), time.perf_counter(), cpu_pressure_us()
        return self

    def __exit__(self, *exc):
        wall = time.perf_counter() - self.wall0
        self.cpu_share = (time.process_time() - self.cpu0) / (wall * num_cores())
        psi1 = cpu_pressure_us()
        self.stall = None if psi1 is None or self.psi0 is None else (psi1 - self.psi0) / 1e6 / wall
        return False


def wait_for_quiet(max_load=1.2, timeout_s=0, poll_s=10, log=print):
    """Wait (at most timeout_s) until the 1-minute load average is below max_load.

    Returns the load average seen last. Other people's jobs share the cores:
    timings taken under load are inflated, so we record the load with every result.
    """
    t0 = time.time()
    while os.getloadavg()[0] >= max_load and time.time() - t0 < timeout_s:
        log(f"  waiting for the 1-min load average ({os.getloadavg()[0]:.2f}) to fall below {max_load} ...")
        time.sleep(poll_s)
    return loadavg()


def set_threads(threads):
    """Pin TF's intra/inter-op pools (0 = TF's default). Call before TF runs anything."""
    import tensorflow as tf

    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(int(threads))
        tf.config.threading.set_inter_op_parallelism_threads(max(1, min(2, int(threads))))


class StepTimer:
    """Keras callback: wall time of each batch and the per-step losses."""

    def __init__(self, loss_key):
        import keras

        timer = self

        class _CB(keras.callbacks.Callback):
            def on_train_batch_begin(self, batch, logs=None):
                timer.t0 = time.perf_counter()

            def on_train_batch_end(self, batch, logs=None):
                timer.times.append(time.perf_counter() - timer.t0)
                timer.means.append(float(logs[loss_key]) if logs and loss_key in logs else float("nan"))

        self.callback = _CB()
        self.times, self.means, self.t0 = [], [], 0.0

    def losses(self):
        """Per-step losses recovered from Keras' running means within one fit() call."""
        out = []
        for n, m in enumerate(self.means, start=1):
            prev = self.means[n - 2] if n > 1 else 0.0
            out.append(n * m - (n - 1) * prev)
        return out


def run_steps(model, batch, steps, loss_key):
    """(seconds per step, loss per step) of `steps` fit() steps on one in-memory batch repeated."""
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensors(batch).repeat()
    timer = StepTimer(loss_key)
    model.fit(ds, steps_per_epoch=steps, epochs=1, verbose=0, shuffle=False, callbacks=[timer.callback])
    return timer.times, timer.losses()


def time_pipeline(ds, batches, warmup):
    """(patches/s, seconds, CPU seconds) of iterating `batches` batches of `ds` after `warmup`."""
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
    model.fit(ds, steps_per_epoch=max(1, warmup), epochs=1, verbose=0, shuffle=False)
    timer = StepTimer("loss")
    model.fit(ds, steps_per_epoch=steps, epochs=1, verbose=0, shuffle=False, callbacks=[timer.callback])
    return batch_size / float(np.median(timer.times)), timer.times


def cpu_share(r):
    """Fraction of the cores the run's threads could use that it actually got (contention check).

    process CPU time / (wall time x usable cores); TF's pools spin while waiting, so
    ~0.9-1.0 when the machine is ours, ~0.5 when another job holds one core.
    """
    threads = (r.get("config") or {}).get("threads") or 0
    usable = min(threads, num_cores()) if threads else num_cores()
    return r.get("cpu_utilisation", float("nan")) * num_cores() / usable
