"""Regional SIC loss: vectorised version == the paper's per-image, per-polygon loop.

The per-polygon target table is a tf.RaggedTensor [B,(K_b)]; padded [B,K]
tables are accepted and must give the same loss and gradients.
"""

import numpy as np
import pytest
import tensorflow as tf

from tfseaice.losses import regional as regional_losses
from tfseaice.distribute import make_strategy
from tfseaice.losses import (as_polygon_table, pixel_sic_loss, polygon_means, polygon_segments,
                             rasterize_polygon_sic, regional_sic_loss)

B, H, W, K = 5, 16, 16, 7
COUNTS = [4, 0, 1, 4, 7]  # real rows of each image's table in _batch()


def _batch(seed=0):
    """A batch with every awkward case (K = 7, padded).

    image 0: random ids 0..3 and -1 (K padded: rows 4..6 unused, sic 0)
    image 1: every pixel excluded (-1)
    image 2: a single polygon (plus a few excluded pixels)
    image 3: a patch cut from a larger "scene" of vertical-strip polygons, so
             polygons 0 and 3 are cut by the patch edge (only part of them lies
             in the patch; their mean is over the in-patch pixels)
    image 4: all 7 ids, random, with land (-1) blobs
    """
    rng = np.random.default_rng(seed)
    ids = np.full((B, H, W), -1, np.int32)
    ids[0] = rng.integers(-1, 4, (H, W))
    ids[2] = 0
    ids[2, rng.random((H, W)) < 0.2] = -1
    scene = np.repeat(np.arange(6), 6)[None, :].repeat(H, 0)  # 36 columns, strips of 6
    ids[3] = scene[:, 4:4 + W]  # columns 4..19: strip 0 cut, 1, 2 whole, 3 cut
    ids[3, :3, :] = -1  # some land along the top
    ids[4] = rng.integers(0, K, (H, W))
    ids[4, 5:9, 5:9] = -1
    sic = rng.uniform(0, 1, (B, K)).astype(np.float32)
    sic[0, 4:] = 0.0  # padding
    sic[1, :] = 0.0
    sic[2, 1:] = 0.0
    sic[3, 4:] = 0.0
    pred = rng.uniform(0, 1, (B, H, W, 1)).astype(np.float32)
    return pred, ids, sic


def _ragged(sic, counts=COUNTS):
    """The table as a RaggedTensor built from Python lists (not from the padded tensor)."""
    return tf.ragged.constant([list(sic[b, :n]) for b, n in enumerate(counts)], dtype=tf.float32,
                              ragged_rank=1)


def _table(kind, sic, counts=COUNTS):
    return {"padded": sic, "ragged": _ragged(sic, counts),
            "from_tensor": tf.RaggedTensor.from_tensor(sic, lengths=counts)}[kind]


def _loop_terms(pred, ids, sic):
    """Algorithm 1, literally: for every image, for every polygon id in it."""
    out = []  # per image: list of (mean_pred_tensor, target, pixel_count)
    for img in range(pred.shape[0]):
        terms = []
        for pid in np.unique(ids[img]):
            if pid < 0:
                continue
            mask = ids[img] == pid
            aoi = tf.boolean_mask(pred[img, ..., 0], mask)
            c_hat = tf.reduce_sum(aoi) / tf.cast(tf.size(aoi), tf.float32)
            terms.append((c_hat, float(sic[img, pid]), int(mask.sum())))
        out.append(terms)
    return out


def _loop_loss(pred, ids, sic, reduction="polygon", weighting="polygon"):
    per_image = _loop_terms(pred, ids, sic)
    if reduction == "polygon":
        num, den = 0.0, 0.0
        for terms in per_image:
            for c_hat, c, n in terms:
                w = n if weighting == "area" else 1.0
                num += w * (c_hat - c) ** 2
                den += w
        return num / den if den else tf.constant(0.0)
    total, patches = 0.0, 0
    for terms in per_image:
        if not terms:
            continue
        num = sum((n if weighting == "area" else 1.0) * (c_hat - c) ** 2 for c_hat, c, n in terms)
        den = sum((n if weighting == "area" else 1.0) for _, _, n in terms)
        total += num / den
        patches += 1
    return total / patches


def _value_and_grad(fn, pred):
    var = tf.Variable(pred)
    with tf.GradientTape() as tape:
        loss = fn(var)
    return float(loss), tape.gradient(loss, var).numpy()


VARIANTS = [("polygon", "polygon"), ("polygon", "area"), ("patch", "polygon"), ("patch", "area")]


@pytest.mark.parametrize("table", ["ragged", "padded"])
@pytest.mark.parametrize("reduction,weighting", VARIANTS)
def test_loss_and_gradient_equal_loop(reduction, weighting, table):
    pred, ids, sic = _batch()
    targets = _table(table, sic)
    got, got_grad = _value_and_grad(
        lambda p: regional_sic_loss(p, ids, targets, reduction=reduction, weighting=weighting), pred)
    want, want_grad = _value_and_grad(
        lambda p: _loop_loss(p, ids, sic, reduction, weighting), pred)
    assert got == pytest.approx(want, rel=1e-5, abs=1e-7)
    np.testing.assert_allclose(got_grad, want_grad, rtol=1e-5, atol=1e-5)
    assert np.abs(want_grad).max() > 1e-4  # the comparison is not vacuous
    assert np.all(got_grad[1] == 0) and np.all(got_grad[ids == -1] == 0)


def test_options_give_different_values():
    """The four variants really differ on this batch (else the tests above prove little)."""
    pred, ids, sic = _batch()
    values = {(r, w): float(regional_sic_loss(pred, ids, sic, reduction=r, weighting=w))
              for r in ("polygon", "patch") for w in ("polygon", "area")}
    assert len({round(v, 6) for v in values.values()}) == 4, values


@pytest.mark.parametrize("reduction,weighting", VARIANTS)
def test_ragged_and_padded_tables_give_identical_loss_and_gradient(reduction, weighting):
    pred, ids, sic = _batch()
    kwargs = dict(reduction=reduction, weighting=weighting)
    want, want_grad = _value_and_grad(lambda p: regional_sic_loss(p, ids, sic, **kwargs), pred)
    for kind in ("ragged", "from_tensor"):
        targets = _table(kind, sic)
        assert isinstance(targets, tf.RaggedTensor)
        got, got_grad = _value_and_grad(lambda p: regional_sic_loss(p, ids, targets, **kwargs), pred)
        assert got == pytest.approx(want, rel=1e-6, abs=0), kind
        np.testing.assert_allclose(got_grad, want_grad, rtol=1e-6, atol=1e-9)
    # and inside a tf.function (as in the train step), the same
    graph = tf.function(lambda p, i, t: regional_sic_loss(p, i, t, **kwargs))
    assert float(graph(pred, ids, _ragged(sic))) == pytest.approx(want, rel=1e-6)


def test_segments_come_from_row_splits():
    """Image b's polygon k is segment row_splits[b] + k; ids beyond the row (k >= K_b) are excluded."""
    table = tf.ragged.constant([[0.1, 0.2], [], [0.3, 0.4, 0.5]])  # row_splits 0, 2, 2, 5
    ids = np.array([[[0, 1], [2, -1]],      # id 2 >= K_0 = 2: excluded
                    [[0, 0], [-1, -1]],     # empty row: nothing usable
                    [[2, 1], [0, 3]]], np.int32)
    segments, usable = (t.numpy() for t in polygon_segments(ids, table))
    np.testing.assert_array_equal(segments, [0, 1, -1, -1, -1, -1, -1, -1, 4, 3, 2, -1])
    np.testing.assert_array_equal(usable, segments >= 0)
    pred = np.arange(12, dtype=np.float32).reshape(3, 2, 2) / 12
    means, counts = polygon_means(pred, ids, table)
    np.testing.assert_array_equal(means.row_splits.numpy(), [0, 2, 2, 5])
    np.testing.assert_allclose(means.flat_values.numpy(), np.array([0, 1, 10, 9, 8]) / 12, rtol=1e-6)
    np.testing.assert_array_equal(counts.flat_values.numpy(), [1, 1, 1, 1, 1])
    # a padded table of width 3 would count image 0's id-2 pixel as a polygon with SIC 0
    padded = table.to_tensor()
    assert float(regional_sic_loss(pred, ids, padded)) != pytest.approx(
        float(regional_sic_loss(pred, ids, table)), rel=1e-3)


@pytest.mark.parametrize("reduction,weighting", VARIANTS)
def test_xla_compiles_the_ragged_loss(reduction, weighting):
    """jit_compile: the ragged table built from the padded one and its lengths, as in the train step."""
    pred, ids, sic = _batch()
    kwargs = dict(reduction=reduction, weighting=weighting)
    want = float(regional_sic_loss(pred, ids, sic, **kwargs))
    xla = tf.function(lambda p, i, s, n: regional_sic_loss(p, i, as_polygon_table(s, n), **kwargs),
                      jit_compile=True)
    assert float(xla(pred, ids, sic, np.array(COUNTS, np.int32))) == pytest.approx(want, rel=1e-5)


def test_bad_table_rank_raises():
    pred, ids, sic = _batch()
    with pytest.raises(ValueError, match="per-polygon table"):
        regional_sic_loss(pred, ids, sic[0])


@pytest.mark.parametrize("table", ["ragged", "padded"])
def test_polygon_means_and_counts(table):
    pred, ids, sic = _batch()
    means, counts = (t.to_tensor(shape=[B, K]).numpy()
                     for t in polygon_means(pred, ids, _table(table, sic, [K] * B)))
    assert means.shape == (B, K) and counts.shape == (B, K)
    for img in range(B):
        for pid in range(K):
            mask = ids[img] == pid
            assert counts[img, pid] == mask.sum()
            want = pred[img, ..., 0][mask].mean() if mask.any() else 0.0
            assert means[img, pid] == pytest.approx(want, abs=1e-6)
    # the cut polygons count only their in-patch pixels: strip 0 has 2 of its 6
    # columns in the patch, strip 3 has 2; 13 rows are usable
    assert counts[3, 0] == 2 * 13 and counts[3, 1] == 6 * 13 and counts[3, 3] == 2 * 13
    # padding rows and the all-excluded image have no pixels
    assert np.all(counts[0, 4:] == 0) and np.all(counts[1] == 0)


def test_rank3_pred_and_single_polygon_patch():
    pred, ids, sic = _batch()
    four = float(regional_sic_loss(pred, ids, sic))
    three = float(regional_sic_loss(pred[..., 0], ids, sic))
    assert three == four
    # the single-polygon image alone: loss is that polygon's squared error
    one = float(regional_sic_loss(pred[2:3], ids[2:3], sic[2:3]))
    want = (pred[2, ..., 0][ids[2] == 0].mean() - sic[2, 0]) ** 2
    assert one == pytest.approx(want, rel=1e-5)


@pytest.mark.parametrize("reduction", ["polygon", "patch"])
@pytest.mark.parametrize("weighting", ["polygon", "area"])
def test_all_excluded_batch_is_zero_with_finite_gradient(reduction, weighting):
    pred, _, sic = _batch()
    ids = np.full((B, H, W), -1, np.int32)
    loss, grad = _value_and_grad(
        lambda p: regional_sic_loss(p, ids, sic, reduction=reduction, weighting=weighting), pred)
    assert loss == 0.0
    assert np.all(np.isfinite(grad)) and np.all(grad == 0)
    # and K = 0 (no polygon table at all)
    loss0 = regional_sic_loss(pred, ids, np.zeros((B, 0), np.float32), reduction=reduction)
    assert float(loss0) == 0.0


def test_nan_pred_on_excluded_pixels_and_nan_sic_are_ignored():
    pred, ids, sic = _batch()
    dirty = pred.copy()
    dirty[ids == -1] = np.nan
    sic_nan = sic.copy()
    sic_nan[4, 6] = np.nan  # an unknown polygon: ignored like an absent one
    ids_without = ids.copy()
    ids_without[4][ids_without[4] == 6] = -1
    got, grad = _value_and_grad(lambda p: regional_sic_loss(p, ids, sic_nan), dirty)
    want = float(regional_sic_loss(pred, ids_without, sic))
    assert got == pytest.approx(want, rel=1e-6)
    assert np.all(np.isfinite(grad))


def test_global_polygon_count_overrides_denominator():
    pred, ids, sic = _batch()
    _, counts = polygon_means(pred, ids, _ragged(sic))
    n = int(np.sum(counts.flat_values.numpy() > 0))
    base = float(regional_sic_loss(pred, ids, sic))
    double = float(regional_sic_loss(pred, ids, sic, global_polygon_count=2 * n))
    assert double == pytest.approx(base / 2, rel=1e-6)


def test_bad_options_raise():
    pred, ids, sic = _batch()
    with pytest.raises(ValueError, match="reduction"):
        regional_sic_loss(pred, ids, sic, reduction="image")
    with pytest.raises(ValueError, match="weighting"):
        regional_sic_loss(pred, ids, sic, weighting="pixel")
    with pytest.raises(ValueError, match="loss"):
        pixel_sic_loss(pred, ids, sic, loss="l1")


# --- pixel-wise benchmark loss --------------------------------------------

@pytest.mark.parametrize("table", ["ragged", "padded"])
def test_rasterize_polygon_sic(table):
    _, ids, sic = _batch()
    target, usable = rasterize_polygon_sic(ids, _table(table, sic))
    for img in range(B):
        for r in range(H):
            for c in range(W):
                pid = ids[img, r, c]
                assert bool(usable[img, r, c]) == (pid >= 0)
                assert float(target[img, r, c]) == (sic[img, pid] if pid >= 0 else 0.0)


@pytest.mark.parametrize("table", ["ragged", "padded"])
@pytest.mark.parametrize("kind", ["mse", "bce"])
def test_pixel_loss_equals_loop(kind, table):
    pred, ids, sic = _batch(1)

    def loop(p):
        total, n = 0.0, 0
        for img in range(B):
            for pid in np.unique(ids[img]):
                if pid < 0:
                    continue
                x = tf.boolean_mask(p[img, ..., 0], ids[img] == pid)
                t = float(sic[img, pid])
                if kind == "mse":
                    total += tf.reduce_sum((x - t) ** 2)
                else:
                    total += -tf.reduce_sum(t * tf.math.log(x) + (1 - t) * tf.math.log(1 - x))
                n += int(np.sum(ids[img] == pid))
        return total / n

    targets = _table(table, sic)
    got, got_grad = _value_and_grad(lambda p: pixel_sic_loss(p, ids, targets, loss=kind), pred)
    want, want_grad = _value_and_grad(loop, pred)
    assert got == pytest.approx(want, rel=1e-5)
    np.testing.assert_allclose(got_grad, want_grad, rtol=1e-4, atol=1e-6)
    empty, grad = _value_and_grad(
        lambda p: pixel_sic_loss(p, np.full_like(ids, -1), targets, loss=kind), pred)
    assert empty == 0.0 and np.all(grad == 0)


# --- MirroredStrategy: all-reduce of the denominator ------------------------

def _mirrored_batch():
    """Replica 0 (images 0, 1) has 12 polygons, replica 1 (images 2, 3) has 2."""
    rng = np.random.default_rng(3)
    ids = np.zeros((4, H, W), np.int32)
    ids[0] = rng.integers(0, 6, (H, W))
    ids[1] = rng.integers(0, 6, (H, W))
    ids[2] = 0
    ids[3] = -1
    ids[3, :, :5] = 0  # a small polygon
    sic = rng.uniform(0, 1, (4, 6)).astype(np.float32)
    pred = rng.uniform(0, 1, (4, H, W, 1)).astype(np.float32)
    return pred, ids, sic


@pytest.mark.parametrize("reduction,weighting", [
    ("polygon", "polygon"), ("polygon", "area"), ("patch", "polygon")])
@pytest.mark.parametrize("local_count", [False, True])
def test_mirrored_loss_and_gradient_equal_single_device(reduction, weighting, local_count,
                                                        monkeypatch):
    """Two replicas: summed replica losses and their gradients == one device.

    With local_count=True the all-reduce is disabled (each replica divides by its
    own count), and the comparison must then FAIL: the test can tell.
    """
    pred, ids, sic = _mirrored_batch()
    kwargs = dict(reduction=reduction, weighting=weighting)
    want, want_grad = _value_and_grad(lambda p: regional_sic_loss(p, ids, sic, **kwargs), pred)

    strategy = make_strategy("mirrored", 2)
    assert strategy.num_replicas_in_sync == 2
    if local_count:
        monkeypatch.setattr(regional_losses, "cross_replica_sum", lambda x: x)

    def shard(array):
        return strategy.experimental_distribute_values_from_function(
            lambda ctx: tf.constant(array[2 * ctx.replica_id_in_sync_group:
                                          2 * ctx.replica_id_in_sync_group + 2]))

    def step(p, i, s):
        with tf.GradientTape() as tape:
            tape.watch(p)
            loss = regional_sic_loss(p, i, s, **kwargs)
        return loss, tape.gradient(loss, p)

    per_loss, per_grad = strategy.run(tf.function(step), args=(shard(pred), shard(ids), shard(sic)))
    got = float(strategy.reduce(tf.distribute.ReduceOp.SUM, per_loss, axis=None))
    got_grad = np.concatenate([g.numpy() for g in strategy.experimental_local_results(per_grad)])
    same = (np.isclose(got, want, rtol=1e-5, atol=0)
            and np.allclose(got_grad, want_grad, rtol=1e-5, atol=1e-7))
    assert same != local_count, (got, want)


@pytest.mark.parametrize("reduction,weighting", [("polygon", "area"), ("patch", "polygon")])
def test_mirrored_ragged_table_equals_single_device(reduction, weighting):
    """Two replicas, each given its images' ragged table: same loss and gradients as one device."""
    pred, ids, sic = _mirrored_batch()
    counts = [6, 6, 1, 1]
    kwargs = dict(reduction=reduction, weighting=weighting)
    want, want_grad = _value_and_grad(lambda p: regional_sic_loss(p, ids, sic, **kwargs), pred)
    strategy = make_strategy("mirrored", 2)

    def shard(array, ragged=False):
        def part(ctx):
            lo = 2 * ctx.replica_id_in_sync_group
            if ragged:
                return tf.RaggedTensor.from_tensor(array[lo:lo + 2], lengths=counts[lo:lo + 2])
            return tf.constant(array[lo:lo + 2])
        return strategy.experimental_distribute_values_from_function(part)

    def step(p, i, s):
        assert isinstance(s, tf.RaggedTensor)
        with tf.GradientTape() as tape:
            tape.watch(p)
            loss = regional_sic_loss(p, i, s, **kwargs)
        return loss, tape.gradient(loss, p)

    per_loss, per_grad = strategy.run(tf.function(step),
                                      args=(shard(pred), shard(ids), shard(sic, ragged=True)))
    got = float(strategy.reduce(tf.distribute.ReduceOp.SUM, per_loss, axis=None))
    got_grad = np.concatenate([g.numpy() for g in strategy.experimental_local_results(per_grad)])
    assert got == pytest.approx(want, rel=1e-5)
    np.testing.assert_allclose(got_grad, want_grad, rtol=1e-5, atol=1e-7)
    # each replica alone would divide by its own count: a different number
    local = [float(regional_sic_loss(pred[i:i + 2], ids[i:i + 2], sic[i:i + 2], **kwargs)) for i in (0, 2)]
    assert abs(sum(local) - want) > 1e-3


def test_mirrored_pixel_loss_equals_single_device():
    pred, ids, sic = _mirrored_batch()
    want = float(pixel_sic_loss(pred, ids, sic))
    strategy = make_strategy("mirrored", 2)

    def shard(array):
        return strategy.experimental_distribute_values_from_function(
            lambda ctx: tf.constant(array[2 * ctx.replica_id_in_sync_group:
                                          2 * ctx.replica_id_in_sync_group + 2]))

    per = strategy.run(tf.function(pixel_sic_loss), args=(shard(pred), shard(ids), shard(sic)))
    got = float(strategy.reduce(tf.distribute.ReduceOp.SUM, per, axis=None))
    assert got == pytest.approx(want, rel=1e-5)
