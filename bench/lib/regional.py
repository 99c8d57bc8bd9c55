"""The regional SIC loss two ways: the paper's Algorithm 1 loop (TF eager) and tfseaice's vectorised one.

Both compute paper Eq. 1 and its gradient with respect to the logits
(bench/regional_loss.py's docstring says how); TF and tfseaice.losses are
passed in by the script, so importing this module stays cheap.
"""

import time

import numpy as np


def make_batch(batch_size, patch_size, min_polygons, max_polygons, seed=0):
    """(logits [B,P,P], polygon_icecharts [B,P,P] int (chart ids, K..), land [B,P,P] bool,
    polygon_sic [B,K] float32, local_ids [B,P,P] int32 (-1 = land))."""
    rng = np.random.default_rng(seed)
    b, p = batch_size, patch_size
    k_max = max_polygons
    charts = np.zeros((b, p, p), np.int32)
    land = np.zeros((b, p, p), bool)
    yy, xx = np.mgrid[0:p, 0:p].astype(np.float32)
    for i in range(b):
        k = int(rng.integers(min_polygons, max_polygons + 1))
        seeds = rng.uniform(0, p, (k, 2)).astype(np.float32)
        # warp the coordinates so that polygon boundaries are wiggly, not straight
        wy = yy + 6 * np.sin(xx / rng.uniform(7, 19)) + 4 * np.cos(yy / rng.uniform(5, 13))
        wx = xx + 6 * np.cos(yy / rng.uniform(7, 19)) + 4 * np.sin(xx / rng.uniform(5, 13))
        d = (wy[None] - seeds[:, 0, None, None]) ** 2 + (wx[None] - seeds[:, 1, None, None]) ** 2
        charts[i] = np.argmin(d, axis=0)
        cy, cx, r = rng.uniform(0, p), rng.uniform(0, p), rng.uniform(0.1, 0.3) * p
        land[i] = (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
    sic = rng.choice(np.arange(11) / 10.0, size=(b, k_max)).astype(np.float32)
    local = np.where(land, -1, charts).astype(np.int32)
    logits = rng.normal(0, 2, (b, p, p)).astype(np.float32)
    return logits, charts, land, sic, local


def loop_loss_and_grad(tf, logits, charts, land, sic):
    """Algorithm 1 in TF eager, per image and per polygon (Eq. 1: squared error, mean)."""
    logits = tf.convert_to_tensor(logits)
    with tf.GradientTape() as tape:
        tape.watch(logits)
        output_sigmoid = tf.sigmoid(logits)
        total_loss = 0.0
        n = 0
        for img_id in range(logits.shape[0]):
            polygon_ids = np.unique(charts[img_id])
            for poly_id in polygon_ids:
                poly_mask = charts[img_id] == poly_id
                final_mask = np.logical_and(poly_mask, np.logical_not(land[img_id]))
                if not final_mask.any():
                    continue  # polygon wholly on land: no pixel to average
                c_t = sic[img_id, poly_id]
                aoi = tf.boolean_mask(output_sigmoid[img_id], final_mask)
                c_hat = tf.reduce_mean(aoi)
                total_loss += tf.square(c_t - c_hat)
                n += 1
        loss = total_loss / n
    return loss, tape.gradient(loss, logits)


def vectorised_loss_and_grad(tf, losses, logits, local_ids, sic):
    """tfseaice.losses.regional_sic_loss of sigmoid(logits) and its gradient w.r.t. the logits."""
    logits = tf.convert_to_tensor(logits)
    with tf.GradientTape() as tape:
        tape.watch(logits)
        loss = losses.regional_sic_loss(tf.sigmoid(logits), local_ids, sic)
    return loss, tape.gradient(loss, logits)


def timed(fn, repeats):
    """(best seconds, all seconds, last result) over `repeats` calls."""
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        _ = [np.asarray(o) for o in out]  # make sure the work is done
        times.append(time.perf_counter() - t)
    return min(times), times, out
