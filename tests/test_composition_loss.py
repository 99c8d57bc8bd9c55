"""Composition loss (SOD/FLOE per polygon) and the pixel class loss: vectorised == literal loops.

The composition table is a tf.RaggedTensor [B,(K_b),C] (or padded [B,K,C] +
counts); a NaN row is an unlabelled polygon. Every case is checked against a
per-image, per-polygon Python loop, value and gradient.
"""

import numpy as np
import pytest
import tensorflow as tf

from tfseaice import losses
from tfseaice.losses import regional as regional_losses
from tfseaice.distribute import make_strategy
from tfseaice.losses import (composition_loss, pixel_class_loss, polygon_means,
                             rasterize_polygon_classes)

B, H, W, K, C = 4, 12, 12, 6, 5
COUNTS = [4, 0, 1, 6]


def _batch(seed=0):
    """image 0: random ids 0..3 and -1; image 1: all excluded; image 2: one polygon;
    image 3: all 6 ids with a land blob and polygon 5 unlabelled (NaN row)."""
    rng = np.random.default_rng(seed)
    ids = np.full((B, H, W), -1, np.int32)
    ids[0] = rng.integers(-1, 4, (H, W))
    ids[2] = 0
    ids[2, rng.random((H, W)) < 0.2] = -1
    ids[3] = rng.integers(0, K, (H, W))
    ids[3, 3:6, 3:7] = -1
    comp = rng.dirichlet(np.ones(C) * 0.7, (B, K)).astype(np.float32)
    for b, n in enumerate(COUNTS):
        comp[b, n:] = np.nan  # padding rows
    comp[3, 5] = np.nan
    logits = rng.normal(0, 1.5, (B, H, W, C)).astype(np.float32)
    return logits, ids, comp


def _ragged(comp, counts=COUNTS):
    return tf.ragged.constant([comp[b, :n].tolist() for b, n in enumerate(counts)], dtype=tf.float32,
                              ragged_rank=1, inner_shape=(C,))


def _loop(logits, ids, comp, kind, reduction, weighting, counts=COUNTS):
    """The loss by a literal loop over images and the polygon ids present in each."""
    probs = tf.nn.softmax(logits)
    per_image = []
    for img in range(logits.shape[0]):
        terms = []
        for pid in np.unique(ids[img]):
            if pid < 0 or pid >= counts[img] or not np.all(np.isfinite(comp[img, pid])):
                continue
            mask = ids[img] == pid
            mean = tf.reduce_mean(tf.boolean_mask(probs[img], mask), axis=0)
            q = comp[img, pid]
            err = tf.reduce_sum((mean - q) ** 2) if kind == "sse" else -tf.reduce_sum(q * tf.math.log(mean))
            terms.append((err, float(mask.sum()) if weighting == "area" else 1.0))
        per_image.append(terms)
    if reduction == "polygon":
        pairs = [t for terms in per_image for t in terms]
        return tf.add_n([w * e for e, w in pairs]) / sum(w for _, w in pairs)
    patch = [tf.add_n([w * e for e, w in t]) / sum(w for _, w in t) for t in per_image if t]
    return tf.add_n(patch) / len(patch)


def _value_and_grad(fn, x):
    var = tf.Variable(x)
    with tf.GradientTape() as tape:
        loss = fn(var)
    return float(loss), tape.gradient(loss, var).numpy()


VARIANTS = [(k, r, w) for k in ("sse", "xent") for r in ("polygon", "patch") for w in ("polygon", "area")]


@pytest.mark.parametrize("kind,reduction,weighting", VARIANTS)
def test_composition_loss_and_gradient_equal_loop(kind, reduction, weighting):
    logits, ids, comp = _batch()
    kwargs = dict(kind=kind, reduction=reduction, weighting=weighting)
    want, want_grad = _value_and_grad(lambda x: _loop(x, ids, comp, kind, reduction, weighting), logits)
    got, got_grad = _value_and_grad(
        lambda x: composition_loss(tf.nn.softmax(x), ids, _ragged(comp), **kwargs), logits)
    assert got == pytest.approx(want, rel=1e-5)
    np.testing.assert_allclose(got_grad, want_grad, rtol=1e-4, atol=1e-7)
    assert np.abs(want_grad).max() > 1e-4
    # the NaN row's polygon, the excluded pixels and the empty image get no gradient
    assert np.all(got_grad[3][ids[3] == 5] == 0) and np.all(got_grad[ids == -1] == 0)
    # a padded [B,K,C] table with the counts: the same
    padded = losses.as_polygon_table(comp, COUNTS)
    assert float(composition_loss(tf.nn.softmax(logits), ids, padded, **kwargs)) == pytest.approx(got, rel=1e-6)


def test_kinds_and_nan_rows_matter():
    """sse and xent differ, and labelling the NaN row changes the loss (so it was ignored)."""
    logits, ids, comp = _batch()
    probs = tf.nn.softmax(logits)
    sse = float(composition_loss(probs, ids, _ragged(comp), kind="sse"))
    xent = float(composition_loss(probs, ids, _ragged(comp), kind="xent"))
    assert abs(sse - xent) > 0.1
    filled = comp.copy()
    filled[3, 5] = np.eye(C)[0]
    assert abs(float(composition_loss(probs, ids, _ragged(filled))) - sse) > 1e-3
    # a NaN row is the same as a polygon with no pixel
    ids_without = ids.copy()
    ids_without[3][ids_without[3] == 5] = -1
    assert float(composition_loss(probs, ids_without, _ragged(filled))) == pytest.approx(sse, rel=1e-6)


def test_composition_means_are_per_class_polygon_means():
    logits, ids, comp = _batch()
    probs = tf.nn.softmax(logits).numpy()
    means, counts = polygon_means(probs, ids, _ragged(comp))
    assert means.flat_values.shape == (sum(COUNTS), C)
    means = means.to_tensor(shape=[B, K, C]).numpy()
    for img in range(B):
        for pid in range(COUNTS[img]):
            mask = ids[img] == pid
            want = probs[img][mask].mean(0) if mask.any() else np.zeros(C)
            np.testing.assert_allclose(means[img, pid], want, atol=1e-6)


def test_bad_kind_raises():
    logits, ids, comp = _batch()
    with pytest.raises(ValueError, match="composition loss"):
        composition_loss(tf.nn.softmax(logits), ids, _ragged(comp), kind="kl")


# --- pixel cross-entropy on the dominant class --------------------------------

def test_pixel_class_loss_equals_loop_and_masks_255():
    logits, ids, _ = _batch(1)
    classes = np.array([[0, 3, 255, 1, 9, 9], [9] * 6, [2, 9, 9, 9, 9, 9], [4, 255, 0, 1, 2, 3]], np.int32)
    table = tf.ragged.constant([classes[b, :n].tolist() for b, n in enumerate(COUNTS)], dtype=tf.int32)

    def loop(x):
        probs = tf.nn.softmax(x)
        total, n = 0.0, 0
        for img in range(B):
            for r in range(H):
                for c in range(W):
                    pid = ids[img, r, c]
                    if pid < 0 or pid >= COUNTS[img] or classes[img, pid] == 255:
                        continue
                    total += -tf.math.log(probs[img, r, c, classes[img, pid]])
                    n += 1
        return total / n

    want, want_grad = _value_and_grad(loop, logits)
    got, got_grad = _value_and_grad(lambda x: pixel_class_loss(tf.nn.softmax(x), ids, table), logits)
    assert got == pytest.approx(want, rel=1e-5)
    np.testing.assert_allclose(got_grad, want_grad, rtol=1e-4, atol=1e-7)
    unlabelled = ((ids[0] == 2)[None], (ids[3] == 1)[None])
    assert np.all(got_grad[0][unlabelled[0][0]] == 0) and np.all(got_grad[3][unlabelled[1][0]] == 0)
    # padded [B,K] + counts: the same; the rasterised labels are the polygons' classes
    padded = losses.as_polygon_table(classes, COUNTS)
    assert float(pixel_class_loss(tf.nn.softmax(logits), ids, padded)) == pytest.approx(got, rel=1e-6)
    label, valid = (t.numpy() for t in rasterize_polygon_classes(ids, table))
    assert valid.sum() == sum(np.sum((ids[b] >= 0) & (ids[b] < COUNTS[b])
                                     & (classes[b][np.clip(ids[b], 0, K - 1)] != 255)) for b in range(B))
    np.testing.assert_array_equal(label[3][valid[3]], classes[3][ids[3][valid[3]]])
    # nothing labelled: 0 with a zero gradient
    empty, grad = _value_and_grad(
        lambda x: pixel_class_loss(tf.nn.softmax(x), ids, np.full((B, K), 255, np.int32)), logits)
    assert empty == 0.0 and np.all(grad == 0)


# --- MirroredStrategy: two replicas == one device ---------------------------

def _mirrored_batch():
    """Replica 0 (images 0, 1) holds 12 polygons, replica 1 (images 2, 3) two."""
    rng = np.random.default_rng(4)
    ids = np.zeros((4, H, W), np.int32)
    ids[0] = rng.integers(0, 6, (H, W))
    ids[1] = rng.integers(0, 6, (H, W))
    ids[3] = -1
    ids[3, :, :4] = 0
    comp = rng.dirichlet(np.ones(C), (4, 6)).astype(np.float32)
    logits = rng.normal(0, 1.5, (4, H, W, C)).astype(np.float32)
    return logits, ids, comp


@pytest.mark.parametrize("kind,reduction,weighting,local_count", [
    ("sse", "polygon", "area", False), ("xent", "patch", "polygon", False), ("xent", "polygon", "polygon", True),
    ("pll_focal", "polygon", "area", False), ("pll_focal", "patch", "polygon", False),
    ("pll_focal", "polygon", "polygon", True)])
def test_mirrored_equals_single_device(kind, reduction, weighting, local_count, monkeypatch):
    """Summed replica losses and their gradients == one device; dividing by the replica's
    own count (local_count, the all-reduce disabled) must break that, so the test can tell."""
    logits, ids, comp = _mirrored_batch()
    kwargs = dict(kind=kind, reduction=reduction, weighting=weighting)
    want, want_grad = _value_and_grad(lambda x: composition_loss(tf.nn.softmax(x), ids, comp, **kwargs), logits)
    strategy = make_strategy("mirrored", 2)
    assert strategy.num_replicas_in_sync == 2
    if local_count:
        monkeypatch.setattr(regional_losses, "cross_replica_sum", lambda x: x)

    def shard(array, ragged=False):
        def part(ctx):
            lo = 2 * ctx.replica_id_in_sync_group
            if ragged:
                return tf.RaggedTensor.from_tensor(array[lo:lo + 2], lengths=[6, 6, 1, 1][lo:lo + 2])
            return tf.constant(array[lo:lo + 2])
        return strategy.experimental_distribute_values_from_function(part)

    def step(x, i, table):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = composition_loss(tf.nn.softmax(x), i, table, **kwargs)
        return loss, tape.gradient(loss, x)

    per_loss, per_grad = strategy.run(tf.function(step), args=(shard(logits), shard(ids), shard(comp, True)))
    got = float(strategy.reduce(tf.distribute.ReduceOp.SUM, per_loss, axis=None))
    got_grad = np.concatenate([g.numpy() for g in strategy.experimental_local_results(per_grad)])
    same = np.isclose(got, want, rtol=1e-5) and np.allclose(got_grad, want_grad, rtol=1e-4, atol=1e-7)
    assert same != local_count, (got, want)
