"""The levers against the dominant SOD stage: class weights and logit adjustment in the composition loss,
the training charts' prior they are computed from, their options and the model's config.

Every loss value is checked against a per-polygon numpy loop on small seeded data made here.
"""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from tfseaice.data import records
from tfseaice.data.chart_prior import composition_prior
from tfseaice.losses.composition import (adjust_probs, composition_loss, pixel_entropy, prior_class_weights,
                                         prior_logit_offset)
from tfseaice.losses.options import check_class_vector, check_lever
from tfseaice.tasks.icechart import IcechartOptions, sod_levers

B, H, W, C, K = 2, 8, 8, 4, 3


def _data(seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(-1, K, (B, H, W)).astype(np.int32)
    comp = rng.dirichlet(np.ones(C), (B, K)).astype(np.float32)
    comp[1, 2] = np.nan  # an unlabelled polygon
    probs = tf.nn.softmax(rng.normal(0, 1.5, (B, H, W, C)).astype(np.float32)).numpy()
    return probs, ids, comp


def _loop(probs, ids, comp, kind, weights, offset):
    """Polygon-weighted mean over present (image, polygon) pairs, by hand."""
    w = np.ones(C) if weights is None else np.asarray(weights)
    p = probs if offset is None else np.exp(np.log(probs) + offset)
    p = p / p.sum(-1, keepdims=True)
    errors = []
    for b in range(B):
        for k in range(K):
            mask = ids[b] == k
            if not mask.any() or not np.isfinite(comp[b, k]).all():
                continue
            q, m = comp[b, k], p[b][mask].mean(0)
            errors.append(np.sum(w * ((m - q) ** 2 if kind == "sse" else -q * np.log(m))))
    return float(np.mean(errors))


@pytest.mark.parametrize("kind", ["xent", "sse", "pll_focal"])
def test_weights_of_one_and_zero_offset_reproduce_the_loss_exactly(kind):
    probs, ids, comp = _data()
    plain = composition_loss(probs, ids, comp, kind=kind).numpy()
    levered = composition_loss(probs, ids, comp, kind=kind, class_weights=[1.0] * C, logit_offset=[0.0] * C)
    assert levered.numpy() == plain


@pytest.mark.parametrize("kind", ["xent", "sse"])
def test_weighted_and_adjusted_loss_equal_hand_computation(kind):
    probs, ids, comp = _data(1)
    weights, offset = [0.5, 2.0, 1.0, 3.0], [-0.2, -2.0, 0.0, -1.0]
    for w, o in ((weights, None), (None, offset), (weights, offset)):
        got = composition_loss(probs, ids, comp, kind=kind, class_weights=w, logit_offset=o).numpy()
        assert got == pytest.approx(_loop(probs, ids, comp, kind, w, o), rel=1e-5), (w, o)
    # and the weights change the value (a test that can fail)
    assert composition_loss(probs, ids, comp, kind=kind, class_weights=weights).numpy() != pytest.approx(
        _loop(probs, ids, comp, kind, None, None), rel=1e-3)


def test_adjust_probs_is_a_shifted_softmax():
    probs = np.array([[0.7, 0.2, 0.1]], np.float32)
    got = adjust_probs(probs, (0.0, np.log(2.0), np.log(4.0))).numpy()
    np.testing.assert_allclose(got, [[0.7, 0.4, 0.4]] / np.float32(1.5), rtol=1e-5)
    assert adjust_probs(probs, None).numpy().tolist() == probs.tolist()


def test_prior_weights_and_offsets():
    prior = [0.6, 0.0, 0.1, 0.3]
    assert prior_class_weights(prior, 0) == (1.0, 1.0, 1.0, 1.0)
    w = prior_class_weights(prior, 1)
    floored = np.array([0.6, 1e-3, 0.1, 0.3]) / 1.001
    assert sum(p * x for p, x in zip(floored, w)) == pytest.approx(1.0)
    assert w[2] / w[0] == pytest.approx(6.0) and w[3] / w[0] == pytest.approx(2.0)
    assert prior_class_weights(prior, 0.5)[2] / prior_class_weights(prior, 0.5)[0] == pytest.approx(6 ** 0.5)
    assert prior_logit_offset(prior, 0) == (0.0, 0.0, 0.0, 0.0)
    np.testing.assert_allclose(prior_logit_offset(prior, 0.5), 0.5 * np.log(floored))


def test_pixel_entropy_is_the_mean_entropy_of_the_usable_pixels():
    probs, ids, _ = _data(2)
    ent = -(probs * np.log(probs)).sum(-1)
    assert pixel_entropy(probs, ids).numpy() == pytest.approx(ent[ids >= 0].mean(), rel=1e-5)
    assert pixel_entropy(np.full((1, 2, 2, C), 1 / C, np.float32), np.zeros((1, 2, 2), np.int32)).numpy() == \
        pytest.approx(np.log(C), rel=1e-6)
    assert pixel_entropy(np.eye(C, dtype=np.float32)[None, None, :, :], np.zeros((1, 1, C), np.int32)).numpy() == \
        pytest.approx(0.0, abs=1e-5)
    assert pixel_entropy(probs, np.full_like(ids, -1)).numpy() == 0.0


def test_bad_values_give_a_one_line_error():
    for bad in (-0.5, float("nan"), float("inf"), "x"):
        with pytest.raises(ValueError, match=r"^sod_predict_tau must be"):
            IcechartOptions.from_extra({"sod_predict_tau": bad})
        with pytest.raises(ValueError, match=r"^sod_entropy_weight must be"):
            IcechartOptions.from_extra({"sod_entropy_weight": bad})
        with pytest.raises(ValueError, match=r"^sod_class_weight_alpha must be a (finite )?number >= 0, got"):
            IcechartOptions.from_extra({"sod_class_weight_alpha": bad})
        with pytest.raises(ValueError, match=r"^sod_logit_adjust_tau must be"):
            IcechartOptions.from_extra({"sod_logit_adjust_tau": bad})
    assert check_lever("0.5", "x") == 0.5
    with pytest.raises(ValueError, match="class_weights must be 4 positive finite numbers"):
        check_class_vector([1, 0, 1, 1], 4, "class_weights", positive=True)
    probs, ids, comp = _data()
    with pytest.raises(ValueError, match="logit_offset must be 4 finite numbers"):
        composition_loss(probs, ids, comp, kind="xent", logit_offset=[0.0] * 3)


def test_flags_are_defined_with_todays_defaults():
    from absl import flags

    from tfseaice.training.options import define_flags

    fv = flags.FlagValues()
    define_flags([IcechartOptions], fv)
    fv(["prog", "--sod_logit_adjust_tau=0.5"])
    opts = IcechartOptions.from_flags(fv)
    assert (opts.sod_class_weight_alpha, opts.sod_logit_adjust_tau) == (0.0, 0.5)
    fv2 = flags.FlagValues()
    define_flags([IcechartOptions], fv2)
    with pytest.raises(flags.IllegalFlagValueError, match="--sod_class_weight_alpha: sod_class_weight_alpha must"):
        fv2(["prog", "--sod_class_weight_alpha=-1"])
    assert IcechartOptions.from_extra({}).sod_class_weight_alpha == 0.0  # an old task.json: off


def _write_records(folder):
    """Two training patches: polygons with known pixel counts and compositions (one unlabelled)."""
    os.makedirs(folder)
    tables = [([[0.5, 0, 0, 0.5, 0, 0], [np.nan] * 6], [30, 10]), ([[0, 0, 1, 0, 0, 0], [0, 0, 0, 0.2, 0.8, 0]], [6, 4])]
    with tf.io.TFRecordWriter(os.path.join(folder, "train.tfrecord")) as w:
        for i, (sod, counts) in enumerate(tables):
            ids = np.zeros((4, 10), np.int32)
            ids.ravel()[counts[0]:] = 1
            w.write(records.encode_sic(np.zeros((4, 10, 2), np.float32), ids, np.ones(2, np.float32), np.arange(2),
                                       np.array(counts), f"s{i}", (0, 0), polygon_sod=np.array(sod, np.float32)))
    info = {"schema_version": records.SCHEMA_VERSION, "kind": "sic",
            "splits": {"train": {"num_examples": 2, "shards": ["train.tfrecord"]}}}
    with open(os.path.join(folder, "dataset_info.json"), "w") as f:
        json.dump(info, f)


def test_prior_is_the_labelled_pixels_class_share(tmp_path):
    folder = str(tmp_path / "records")
    _write_records(folder)
    # pixels: 30 x (0.5 water, 0.5 thin) + 6 x young + 4 x (0.2 thin, 0.8 thick); the NaN row's 10 skipped
    want = np.array([15, 0, 6, 15 + 0.8, 3.2, 0]) / 40
    np.testing.assert_allclose(composition_prior(folder, "sod"), want, rtol=1e-6)
    opts = IcechartOptions.from_extra({"sod_class_weight_alpha": 1, "sod_logit_adjust_tau": 1})
    weights, offset, shift = sod_levers(opts, folder)
    np.testing.assert_allclose(weights, prior_class_weights(want, 1), rtol=1e-6)
    np.testing.assert_allclose(offset, prior_logit_offset(want, 1))
    assert shift is None
    assert sod_levers(IcechartOptions(), folder) == (None, None, None)
    # a model folder reloaded without its records: the loss levers are off (the loss is not used for inference)
    assert sod_levers(opts, str(tmp_path / "gone")) == (None, None, None)
    # the prediction shift: the loss's offset undoes it; the classes under 1 % (new ice, old ice here) unshifted
    weights, offset, shift = sod_levers(IcechartOptions(sod_predict_tau=0.5), folder)
    want_shift = [-0.5 * np.log(p) if p >= 0.01 else 0.0 for p in want]
    np.testing.assert_allclose(shift, want_shift, rtol=1e-6)
    assert weights is None and shift[1] == shift[5] == 0.0 and shift[2] > 0
    np.testing.assert_allclose(offset, -np.array(want_shift), rtol=1e-6)
    assert sod_levers(IcechartOptions(sod_predict_tau=0.5), str(tmp_path / "gone")) == (None, None, (0.0,) * 6)


def test_model_applies_the_levers_to_sod_only_and_keeps_them_in_its_config():
    import keras

    from test_icechart_model import _model, make_batch
    from tfseaice.tasks.icechart import IcechartRegionalModel

    batch = make_batch()
    weights, offset = (0.5, 9.0, 2.0, 2.0, 1.0, 3.0), (-0.4, -6.0, -2.7, -2.6, -1.6, -3.5)
    model = _model(IcechartRegionalModel, sod_class_weights=weights, sod_logit_offset=offset)
    model.compile(optimizer=keras.optimizers.SGD(0.0))
    out = {k: v.numpy() for k, v in model(batch["sar"], training=True).items()}
    logs = model.train_on_batch(batch, return_dict=True)
    ids = batch["polygon_ids"]
    want_sod = composition_loss(out["sod"], ids, batch["polygon_sod"], kind="xent", class_weights=weights,
                                logit_offset=offset)
    assert logs["sod_loss"] == pytest.approx(float(want_sod), rel=1e-5)
    assert logs["floe_loss"] == pytest.approx(float(composition_loss(out["floe"], ids, batch["polygon_floe"],
                                                                     kind="xent")), rel=1e-5)
    assert logs["sod_loss"] != pytest.approx(float(composition_loss(out["sod"], ids, batch["polygon_sod"],
                                                                    kind="xent")), rel=1e-3)
    copy = IcechartRegionalModel.from_config(model.get_config())
    assert (copy.sod_class_weights, copy.sod_logit_offset) == (weights, offset)
    plain = _model(IcechartRegionalModel).get_config()
    assert plain["sod_class_weights"] is None and plain["sod_logit_offset"] is None
    assert plain["sod_entropy_weight"] == 0.0


def test_model_adds_the_weighted_sod_entropy():
    import keras

    from test_icechart_model import _model, make_batch
    from tfseaice.tasks.icechart import IcechartRegionalModel

    batch = make_batch()
    model = _model(IcechartRegionalModel, sod_entropy_weight=0.25)
    model.compile(optimizer=keras.optimizers.SGD(0.0))
    out = {k: v.numpy() for k, v in model(batch["sar"], training=True).items()}
    logs = model.train_on_batch(batch, return_dict=True)
    ids = batch["polygon_ids"]
    ent = -(out["sod"] * np.log(np.maximum(out["sod"], 1e-7))).sum(-1)[ids >= 0].mean()
    want = float(composition_loss(out["sod"], ids, batch["polygon_sod"], kind="xent")) + 0.25 * ent
    assert logs["sod_loss"] == pytest.approx(want, rel=1e-5)
    assert IcechartRegionalModel.from_config(model.get_config()).sod_entropy_weight == 0.25
    with pytest.raises(ValueError, match="sod_class_weights must be 6 positive"):
        _model(IcechartRegionalModel, sod_class_weights=(1, 1, 1))


def test_prediction_shift_moves_the_output_and_not_the_loss(tmp_path):
    """The network with the shift predicts softmax(log p + shift); its loss equals the unshifted network's."""
    import keras

    from test_icechart_model import FILTERS, make_batch
    from tfseaice.models.fold_batchnorm import fold_batchnorm
    from tfseaice.models.unet import build_icechart_unet
    from tfseaice.tasks.icechart import IcechartRegionalModel

    shift = (0.0, 0.0, 2.0, 2.5, 1.0, 0.0)
    batch = make_batch()
    nets = []
    for offset in (None, shift):
        keras.utils.set_random_seed(3)
        nets.append(build_icechart_unet(2, filters=FILTERS, norm_mean=[-15, -23], norm_std=[4, 4], sod_offset=offset))
    plain, shifted = (n(batch["sar"], training=False)["sod"].numpy() for n in nets)
    want = np.exp(np.log(plain) + shift)
    np.testing.assert_allclose(shifted, want / want.sum(-1, keepdims=True), rtol=1e-4, atol=1e-6)
    assert np.mean(shifted.argmax(-1) != plain.argmax(-1)) > 0.05   # it moves predictions
    np.testing.assert_allclose(fold_batchnorm(nets[1])(batch["sar"])["sod"].numpy(), shifted, atol=1e-4)
    losses = []
    for net, offset in zip(nets, (None, tuple(-s for s in shift))):
        model = IcechartRegionalModel(net, sod_logit_offset=offset)
        model.compile(optimizer=keras.optimizers.SGD(0.0))
        losses.append(model.test_on_batch(batch, return_dict=True)["sod_loss"])
    assert losses[1] == pytest.approx(losses[0], rel=1e-4)
    # the offset is a weight: a network built with a zero placeholder predicts as trained after loading
    path = str(tmp_path / "shift.weights.h5")
    nets[1].save_weights(path)
    keras.utils.set_random_seed(4)
    again = build_icechart_unet(2, filters=FILTERS, norm_mean=[-15, -23], norm_std=[4, 4], sod_offset=(0.0,) * 6)
    again.load_weights(path)
    np.testing.assert_allclose(again(batch["sar"], training=False)["sod"].numpy(), shifted, atol=1e-6)
