"""Time per TensorFlow op type inside a tf.function, read from the TF profiler's trace.

Why: the train-step profile (bench/train_step_profile.py) says the step is mostly the
backward pass; which kernels make that up (the convolutions' weight and input gradients,
BatchNorm, ReLU gradients, the resize, the casts) decides what is worth attacking next.

The profiler writes an XSpace protobuf; every op the executor runs is an event named
"op_name:OpType" on a "tf_Compute" thread line. Two executor threads run independent ops at
the same time on a CPU, so the summed op time can exceed the step's wall time: shares are
shares of the summed op time, not of the wall time.
"""

import collections
import glob
import os
import tempfile


def op_type_times(fn, calls):
    """{op type: summed ms per call} of `calls` calls of `fn` (already traced), under tf.profiler."""
    import tensorflow as tf
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        try:
            for _ in range(calls):
                out = fn()
            tf.nest.map_structure(lambda x: x.numpy() if hasattr(x, "numpy") else x, out)
        finally:
            tf.profiler.experimental.stop()
        paths = glob.glob(os.path.join(logdir, "plugins", "profile", "*", "*.xplane.pb"))
        if not paths:
            raise RuntimeError(f"{logdir}: the TF profiler wrote no trace")
        space = xplane_pb2.XSpace()
        with open(paths[0], "rb") as f:
            space.ParseFromString(f.read())
    totals = collections.Counter()
    for plane in space.planes:
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):
                continue
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name
                if ":" in name and "::" not in name:   # "op_name:OpType", not "ExecutorState::Process"
                    totals[_op_type(name)] += event.duration_ps / 1e9
    return {op: ms / calls for op, ms in totals.items()}


def _op_type(event_name):
    """"grad/conv/Conv2DBackpropFilter:_MklNativeConv2DBackpropFilter" -> "Conv2DBackpropFilter"."""
    op_type = event_name.rsplit(":", 1)[1]
    for prefix in ("_MklNative", "_Mkl"):
        if op_type.startswith(prefix):
            return op_type[len(prefix):]
    return op_type


def top_rows(times, n=12):
    """The `n` largest op types as rows {op, ms, share_pct} (share of the summed op time), then "other"."""
    total = sum(times.values()) or 1.0
    ranked = sorted(times.items(), key=lambda kv: -kv[1])
    rows = [{"op": op, "ms": ms, "share_pct": 100 * ms / total} for op, ms in ranked[:n]]
    rest = sum(ms for _, ms in ranked[n:])
    if rest:
        rows.append({"op": "other", "ms": rest, "share_pct": 100 * rest / total})
    return rows
