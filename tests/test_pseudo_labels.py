"""Proportion-matched pseudo-labels (tfseaice.losses.pseudo_labels): the targets against a numpy Sinkhorn loop,
the split they make inside a hedged polygon, the loss and its gradient, the options and the model's term."""

import numpy as np
import pytest
import tensorflow as tf

from tfseaice.losses.composition import composition_loss
from tfseaice.losses.pseudo_labels import proportion_pseudo_labels, pseudo_label_loss
from tfseaice.tasks.icechart import IcechartOptions

B, H, W, C, K = 2, 8, 8, 4, 3


def _data(seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(-1, K, (B, H, W)).astype(np.int32)
    comp = rng.dirichlet(np.ones(C), (B, K)).astype(np.float32)
    comp[0, 1, 2] = 0.0   # a class the chart does not hold
    comp[0, 1] /= comp[0, 1].sum()
    comp[1, 2] = np.nan   # an unlabelled polygon
    probs = tf.nn.softmax(rng.normal(0, 1.5, (B, H, W, C)).astype(np.float32)).numpy()
    return probs, ids, comp


def _sinkhorn_loop(probs, ids, comp, temperature, iterations):
    """The same scaling, polygon by polygon, in float64."""
    want = np.zeros(probs.shape)
    for b in range(B):
        for k in range(K):
            mask = ids[b] == k
            q = comp[b, k].astype(np.float64)
            if not mask.any() or not np.isfinite(q).all():
                continue
            v = (q > 0).astype(np.float64)
            centred = np.log(probs[b][mask].astype(np.float64))
            centred -= centred.mean(0)
            spread = np.sqrt(np.mean((centred ** 2 * v).sum(-1)) / v.sum())
            a = np.exp(centred / (temperature * spread))
            a /= a.sum(-1, keepdims=True)
            t = a * v / (a * v).sum(-1, keepdims=True)
            for _ in range(iterations):
                v = v * np.divide(q, t.mean(0), out=np.zeros_like(q), where=t.mean(0) > 0)
                t = a * v / (a * v).sum(-1, keepdims=True)
            want[b][mask] = t
    return want


@pytest.mark.parametrize("temperature", [1.0, 0.25])
def test_targets_equal_a_polygon_by_polygon_sinkhorn(temperature):
    probs, ids, comp = _data()
    targets, labelled = proportion_pseudo_labels(probs, ids, comp, temperature=temperature, iterations=5)
    want = _sinkhorn_loop(probs, ids, comp, temperature, 5)
    np.testing.assert_allclose(targets.numpy(), want, atol=2e-5)
    assert labelled.numpy().tolist() == ((ids >= 0) & ~((np.arange(B)[:, None, None] == 1) & (ids == 2))).tolist()
    t = targets.numpy()
    np.testing.assert_allclose(t.sum(-1)[labelled.numpy()], 1.0, atol=1e-5)
    assert not t[~labelled.numpy()].any()
    assert not t[0][ids[0] == 1][:, 2].any()   # the class the chart does not hold gets no pixel
    converged = proportion_pseudo_labels(probs, ids, comp, temperature=temperature, iterations=100)[0].numpy()
    for b, k in ((0, 0), (0, 1), (1, 0)):       # the polygons' shares approach the chart's
        np.testing.assert_allclose(converged[b][ids[b] == k].mean(0), comp[b, k], atol=1e-3)


def test_a_hedged_polygon_is_split_by_the_networks_ranking():
    # every pixel says thin ice 0.30, thick 0.70 give or take a little: argmax (and entropy minimisation)
    # would call all of them thick; the chart says a quarter is thin
    p_thin = np.linspace(0.28, 0.32, 64, dtype=np.float32)
    np.random.default_rng(3).shuffle(p_thin)
    probs = np.stack([p_thin, 1 - p_thin], -1).reshape(1, 8, 8, 2)
    ids = np.zeros((1, 8, 8), np.int32)
    targets, _ = proportion_pseudo_labels(probs, ids, np.array([[[0.25, 0.75]]], np.float32), temperature=0.1,
                                          iterations=200)
    thin = targets.numpy()[0, ..., 0].ravel()[np.argsort(-p_thin)]   # from the most likely thin pixel down
    assert thin.sum() == pytest.approx(16, abs=0.1)
    assert np.all(np.diff(thin) <= 1e-6)
    assert thin[:12].min() > 0.9 and thin[20:].max() < 0.1   # the boundary pixels share


def test_loss_is_the_cross_entropy_and_its_targets_carry_no_gradient():
    probs, ids, comp = _data(1)
    logits = tf.Variable(np.log(probs))
    with tf.GradientTape() as tape:
        p = tf.nn.softmax(logits)
        loss = pseudo_label_loss(p, ids, comp, temperature=0.25)
    targets, labelled = (x.numpy() for x in proportion_pseudo_labels(probs, ids, comp, temperature=0.25))
    n = labelled.sum()
    assert float(loss) == pytest.approx(-(targets * np.log(probs)).sum(-1)[labelled].sum() / n, rel=1e-5)
    # d/dlogits of -sum_c Q_c log softmax_c = p - Q when Q is a constant
    want = np.where(labelled[..., None], probs - targets, 0.0) / n
    np.testing.assert_allclose(tape.gradient(loss, logits).numpy(), want, atol=1e-6)


def test_bad_temperature_gives_a_one_line_error():
    probs, ids, comp = _data()
    with pytest.raises(ValueError, match=r"^temperature must be a number > 0, got 0"):
        proportion_pseudo_labels(probs, ids, comp, temperature=0)
    for bad in (0, -1, float("nan"), "x"):
        with pytest.raises(ValueError, match=r"^sod_pseudo_label_temperature must be"):
            IcechartOptions.from_extra({"sod_pseudo_label_temperature": bad})
    with pytest.raises(ValueError, match=r"^sod_pseudo_label_weight must be"):
        IcechartOptions.from_extra({"sod_pseudo_label_weight": -1})
    opts = IcechartOptions.from_extra({})
    assert (opts.sod_pseudo_label_weight, opts.sod_pseudo_label_temperature) == (0.0, 0.25)


def test_model_adds_the_weighted_pseudo_label_term_to_sod_only():
    import keras

    from test_icechart_model import _model, make_batch
    from tfseaice.tasks.icechart import IcechartRegionalModel

    batch = make_batch()
    model = _model(IcechartRegionalModel, sod_pseudo_label_weight=0.5, sod_pseudo_label_temperature=0.25)
    model.compile(optimizer=keras.optimizers.SGD(0.0))
    out = {k: v.numpy() for k, v in model(batch["sar"], training=True).items()}
    logs = model.train_on_batch(batch, return_dict=True)
    ids = batch["polygon_ids"]
    term = pseudo_label_loss(out["sod"], ids, batch["polygon_sod"], temperature=0.25)
    want = float(composition_loss(out["sod"], ids, batch["polygon_sod"], kind="xent")) + 0.5 * float(term)
    assert float(term) > 0.01
    assert logs["sod_loss"] == pytest.approx(want, rel=1e-5)
    assert logs["floe_loss"] == pytest.approx(float(composition_loss(out["floe"], ids, batch["polygon_floe"],
                                                                     kind="xent")), rel=1e-5)
    copy = IcechartRegionalModel.from_config(model.get_config())
    assert (copy.sod_pseudo_label_weight, copy.sod_pseudo_label_temperature) == (0.5, 0.25)
