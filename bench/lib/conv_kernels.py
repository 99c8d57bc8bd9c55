"""Each convolution of a model timed alone: forward, weight gradient, input gradient.

Why: the train-step profile sums op time over two executor threads that run ops at the same
time, so it says which op types lead but not how fast each kernel is. Timed alone, one layer
at a time on random tensors of the layer's shapes, each kernel gets the whole CPU, and its
GFLOP/s says whether the time is in the work or in the kernel: on the 2-core AMD EPYC
(AVX512-BF16) oneDNN's bf16 weight-gradient kernel ran well below its forward kernel on the
same shapes (docs/performance.md).

Only stride-1 "same" Conv2D layers are timed (every conv of the SIC U-Net with the default
bilinear decoder); any other conv is listed as skipped. A first layer's input gradient is not
timed: training never computes it.
"""

import statistics
import time

KINDS = ("forward", "weight_grad", "input_grad")


def _median_ms(fn, calls, warmup=2):
    for _ in range(warmup):
        fn().numpy()
    times = []
    for _ in range(calls):
        t = time.perf_counter()
        fn().numpy()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def _kernels(tf, x, dy, kernel, first):
    """{kind: tf.function returning a scalar} for one layer's three kernels."""
    ones = [1, 1, 1, 1]
    fns = {
        "forward": lambda: tf.nn.conv2d(x, kernel, 1, "SAME")[0, 0, 0, 0],
        "weight_grad": lambda: tf.raw_ops.Conv2DBackpropFilter(
            input=x, filter_sizes=tf.shape(kernel), out_backprop=dy, strides=ones, padding="SAME")[0, 0, 0, 0],
        "input_grad": lambda: tf.raw_ops.Conv2DBackpropInput(
            input_sizes=tf.shape(x), filter=kernel, out_backprop=dy, strides=ones, padding="SAME")[0, 0, 0, 0],
    }
    if first:
        del fns["input_grad"]
    return {k: tf.function(f) for k, f in fns.items()}


def time_conv_kernels(shapes, batch_size, dtype, calls=5, seed=0):
    """(rows, skipped): one row per timed layer {name, h, w, cin, cout, gflop, <kind>_ms,
    <kind>_gflops} at `batch_size`, tensors of `dtype`; `shapes` from bench.lib.models.conv_shapes."""
    import tensorflow as tf

    rng = tf.random.Generator.from_seed(seed)
    rows, skipped = [], []
    logger, level = tf.get_logger(), tf.get_logger().level
    logger.setLevel("ERROR")   # a tf.function per layer and kernel is traced once: TF's retracing warning is noise
    try:
        for s in shapes:
            if s["kind"] != "Conv2D" or s["strides"] != (1, 1) or s["groups"] != 1:
                skipped.append(s["name"])
            else:
                rows.append(_time_layer(tf, rng, s, batch_size, dtype, calls))
    finally:
        logger.setLevel(level)
    return rows, skipped


def _time_layer(tf, rng, s, batch_size, dtype, calls):
    """The row of one stride-1 "same" Conv2D layer `s`."""
    kh, kw = s["kernel"]
    x = tf.cast(rng.normal([batch_size, s["h"], s["w"], s["cin"]]), dtype)
    dy = tf.cast(rng.normal([batch_size, s["h"], s["w"], s["cout"]]), dtype)
    kernel = tf.cast(rng.normal([kh, kw, s["cin"], s["cout"]]), dtype)
    gflop = s["flops"] * batch_size / 1e9
    row = {"name": s["name"], "h": s["h"], "w": s["w"], "cin": s["cin"], "cout": s["cout"], "gflop": gflop}
    for kind, fn in _kernels(tf, x, dy, kernel, s["first"]).items():
        ms = _median_ms(fn, calls)
        row[f"{kind}_ms"] = ms
        row[f"{kind}_gflops"] = gflop / ms * 1000
    return row


def kernel_totals(rows):
    """{kind: {ms, gflop, gflops}} summed over the layers, and what the weight gradients would
    take at the forward kernels' rate ("weight_grad_at_forward_rate_ms")."""
    totals = {}
    for kind in KINDS:
        timed = [r for r in rows if f"{kind}_ms" in r]
        ms = sum(r[f"{kind}_ms"] for r in timed)
        gflop = sum(r["gflop"] for r in timed)
        totals[kind] = {"ms": ms, "gflop": gflop, "gflops": gflop / ms * 1000 if ms else 0.0}
    fwd = totals["forward"]
    totals["weight_grad_at_forward_rate_ms"] = (totals["weight_grad"]["gflop"] / fwd["gflops"] * 1000
                                                if fwd["gflops"] else 0.0)
    return totals
