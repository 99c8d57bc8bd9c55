"""SIC task models (regional and pixel benchmark) and the metrics they report."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfseaice import losses
from tfseaice.losses import regional as regional_losses
from tfseaice.distribute import make_strategy
from tfseaice.metrics import (PooledRegressionMetric, RegressionAccumulator, f1_score,
                              r2_score, rmse)
from tfseaice.models.unet import build_sic_unet
from tfseaice.tasks.sic import SicPixelModel, SicRegionalModel

FILTERS = (4, 8, 8, 8)
MEAN, STD = [-15.0, -24.0], [4.0, 2.5]
S = 32


# --- synthetic data: pixel SIC is a known function of the SAR ---------------

def _truth(rng, n):
    """Smooth SIC fields in [0, 1] (sums of a few Gaussian bumps, clipped)."""
    yy, xx = np.mgrid[0:S, 0:S].astype(np.float32)
    out = np.zeros((n, S, S), np.float32)
    for i in range(n):
        for _ in range(3):
            cy, cx = rng.uniform(0, S, 2)
            out[i] += rng.uniform(0.5, 1.2) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 60.0)
    return np.clip(out, 0, 1)


def _ids(block, land=True):
    ids = (np.arange(S)[:, None] // block) * (S // block) + (np.arange(S)[None, :] // block)
    ids = ids.astype(np.int32)
    if land:
        ids[:4, :6] = -1
    return ids


def make_batch(seed=0, blocks=(8, 8, 16, 32)):
    """4 patches; patch i is cut into square polygons of side blocks[i].

    SAR (dB): HH = -21 + 12 t, HV = -27 + 6 t (+ small noise), t = pixel SIC.
    Polygon SIC = mean of t over the polygon's usable pixels. The default
    blocks give 16, 16, 4 and 1 polygons: the two halves of the batch (the two
    replicas, or the two eval batches of 2) hold 32 and 5 polygons.
    """
    rng = np.random.default_rng(seed)
    t = _truth(rng, len(blocks))
    sar = np.stack([-21 + 12 * t, -27 + 6 * t], -1) + rng.normal(0, 0.3, t.shape + (2,))
    sar = sar.astype(np.float32)
    ids = np.stack([_ids(b) for b in blocks])
    k = int(ids.max()) + 1
    sic = np.zeros((len(blocks), k), np.float32)
    for i in range(len(blocks)):
        for pid in np.unique(ids[i]):
            if pid >= 0:
                sic[i, pid] = t[i][ids[i] == pid].mean()
    count = np.array([len(np.unique(i[i >= 0])) for i in ids], np.int32)
    sar[0, 10, 10:14, :] = np.nan  # a few no-data pixels; the model zeroes them
    return {"sar": sar, "polygon_ids": ids, "polygon_sic": sic, "polygon_count": count,
            "sic_truth": t}


def _dataset(batch, batch_size):
    return tf.data.Dataset.from_tensor_slices(batch).batch(batch_size)


def _model(cls, seed=1, **kwargs):
    keras.utils.set_random_seed(seed)
    return cls(build_sic_unet(2, filters=FILTERS, norm_mean=MEAN, norm_std=STD), **kwargs)


def hand_polygon_stats(pred, ids, sic):
    """Per (image, polygon) pairs by a plain loop: list of (image, y, yhat)."""
    pairs = []
    for img in range(pred.shape[0]):
        for pid in np.unique(ids[img]):
            if pid >= 0:
                pairs.append((img, float(sic[img, pid]),
                              float(pred[img, ..., 0][ids[img] == pid].mean())))
    return pairs


def hand_metrics(pairs):
    y = np.array([p[1] for p in pairs])
    yhat = np.array([p[2] for p in pairs])
    sse = np.sum((y - yhat) ** 2)
    return {"rmse": np.sqrt(sse / len(y)), "r2": 1 - sse / np.sum((y - y.mean()) ** 2),
            "mse": sse / len(y)}


# --- models -----------------------------------------------------------------

def _hand_loss(cls, kwargs, pred, ids, sic, batches):
    """The loss by plain loops: mean over `batches` (lists of image indices)."""
    out = []
    for images in batches:
        if cls is SicRegionalModel and kwargs.get("reduction", "polygon") == "polygon":
            pairs = hand_polygon_stats(pred[images], ids[images], sic[images])
            out.append(hand_metrics(pairs)["mse"])
        elif cls is SicRegionalModel:  # reduction="patch", weighting="area"
            per_patch = []
            for img in images:
                n = [np.sum(ids[img] == pid) for pid in range(sic.shape[1])]
                se = [(pred[img, ..., 0][ids[img] == pid].mean() - sic[img, pid]) ** 2
                      for pid in range(sic.shape[1]) if n[pid]]
                w = [x for x in n if x]
                per_patch.append(np.dot(w, se) / np.sum(w))
            out.append(np.mean(per_patch))
        else:
            total, count = 0.0, 0
            for img in images:
                for r in range(S):
                    for c in range(S):
                        pid = ids[img, r, c]
                        if pid < 0:
                            continue
                        p, t = float(pred[img, r, c, 0]), float(sic[img, pid])
                        if kwargs.get("loss") == "bce":
                            total -= t * np.log(p) + (1 - t) * np.log(1 - p)
                        else:
                            total += (p - t) ** 2
                        count += 1
            out.append(total / count)
    return float(np.mean(out))


VARIANTS = [(SicRegionalModel, {}), (SicRegionalModel, {"reduction": "patch", "weighting": "area"}),
            (SicPixelModel, {}), (SicPixelModel, {"loss": "bce"})]
VARIANT_IDS = ["regional", "regional-patch-area", "pixel-mse", "pixel-bce"]


@pytest.mark.parametrize("cls,kwargs", VARIANTS, ids=VARIANT_IDS)
def test_train_step_loss_and_metrics_match_hand_computation(cls, kwargs):
    batch = make_batch()
    model = _model(cls, **kwargs)
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    pred = model(batch["sar"], training=True).numpy()  # what the step will see
    logs = model.train_on_batch(batch, return_dict=True)
    assert set(logs) == {"loss", "polygon_rmse", "polygon_r2"}
    ids, sic = batch["polygon_ids"], batch["polygon_sic"]
    want = hand_metrics(hand_polygon_stats(pred, ids, sic))
    assert logs["loss"] == pytest.approx(_hand_loss(cls, kwargs, pred, ids, sic, [[0, 1, 2, 3]]),
                                         rel=1e-5)
    assert logs["polygon_rmse"] == pytest.approx(want["rmse"], rel=1e-5)
    assert logs["polygon_r2"] == pytest.approx(want["r2"], rel=1e-4, abs=1e-5)


@pytest.mark.parametrize("cls", [SicRegionalModel, SicPixelModel])
def test_overfit_tiny_batch_and_evaluate_matches_hand_computation(cls):
    batch = make_batch()
    model = _model(cls)
    model.compile(optimizer=keras.optimizers.Adam(3e-2))
    initial = model.test_on_batch(batch, return_dict=True)["polygon_rmse"]
    history = model.fit(_dataset(batch, 4).repeat(), epochs=2, steps_per_epoch=20, verbose=0)
    losses_seen = history.history["loss"]
    assert losses_seen[1] < 0.6 * losses_seen[0]

    # evaluation in two batches of 2 (32 and 5 polygons): the trackers must pool
    logs = model.evaluate(_dataset(batch, 2), verbose=0, return_dict=True)
    pred = model.predict(batch["sar"], verbose=0)
    ids, sic = batch["polygon_ids"], batch["polygon_sic"]
    pairs = hand_polygon_stats(pred, ids, sic)
    want = hand_metrics(pairs)
    assert logs["polygon_rmse"] == pytest.approx(want["rmse"], rel=1e-4)
    assert logs["polygon_r2"] == pytest.approx(want["r2"], rel=1e-4, abs=1e-4)
    # (a mean of per-batch RMSEs would be a different number)
    per_batch = [hand_metrics([p for p in pairs if p[0] // 2 == b])["rmse"] for b in (0, 1)]
    assert abs(np.mean(per_batch) - want["rmse"]) > 1e-3
    # loss: mean over the two eval batches of each batch's loss
    assert logs["loss"] == pytest.approx(_hand_loss(cls, {}, pred, ids, sic, [[0, 1], [2, 3]]),
                                         rel=1e-4)
    # it learned the polygons (inference mode, moving BatchNorm statistics)
    assert want["rmse"] < 0.2 and want["rmse"] < 0.6 * initial


def test_train_step_calls_regional_sic_loss_with_ragged_table(monkeypatch):
    """The step hands regional_sic_loss the table as a RaggedTensor with polygon_count rows."""
    from tfseaice.tasks import sic

    seen = []

    def spy(pred, polygon_ids, table, **kwargs):
        seen.append((table, kwargs))
        return losses.regional_sic_loss(pred, polygon_ids, table, **kwargs)

    monkeypatch.setattr(sic, "regional_sic_loss", spy)
    batch = make_batch()
    model = _model(SicRegionalModel, reduction="patch", weighting="area")
    model.compile(optimizer=keras.optimizers.SGD(0.1), run_eagerly=True)
    model.train_on_batch(batch)
    assert len(seen) == 1
    table, kwargs = seen[0]
    assert isinstance(table, tf.RaggedTensor)
    np.testing.assert_array_equal(table.row_lengths().numpy(), batch["polygon_count"])
    np.testing.assert_array_equal(table.flat_values.numpy(),
                                  np.concatenate([batch["polygon_sic"][i, :n]
                                                  for i, n in enumerate(batch["polygon_count"])]))
    assert kwargs["reduction"] == "patch" and kwargs["weighting"] == "area"


@pytest.mark.parametrize("cls,kwargs", VARIANTS[:3], ids=VARIANT_IDS[:3])
def test_batch_without_polygon_count_and_xla_give_the_same_logs(cls, kwargs):
    """Rows of polygon_count, rows of the padded width K (no count) and XLA: same loss and metrics."""
    batch = make_batch()
    model = _model(cls, **kwargs)
    model.compile(optimizer="sgd")
    want = model.test_on_batch(batch, return_dict=True)
    without = {k: v for k, v in batch.items() if k != "polygon_count"}
    model.reset_metrics()
    got = model.test_on_batch(without, return_dict=True)
    xla = _model(cls, **kwargs)
    xla.compile(optimizer="sgd", jit_compile=True)
    assert xla.jit_compile  # else this compares nothing new
    got_xla = xla.test_on_batch(batch, return_dict=True)
    for key in ("loss", "polygon_rmse", "polygon_r2"):
        assert got[key] == pytest.approx(want[key], rel=1e-6), key
        assert got_xla[key] == pytest.approx(want[key], rel=1e-4), key


def test_predict_call_and_dict_input():
    batch = make_batch()
    model = _model(SicRegionalModel)
    y = model.predict(batch["sar"], verbose=0)
    assert y.shape == (4, S, S, 1) and np.all(np.isfinite(y))
    np.testing.assert_allclose(model({"sar": batch["sar"]}, training=False).numpy(), y, atol=1e-6)
    np.testing.assert_allclose(model.unet(batch["sar"], training=False).numpy(), y, atol=1e-6)


def test_missing_batch_keys_raise():
    batch = make_batch()
    del batch["polygon_sic"]
    model = _model(SicRegionalModel)
    model.compile(optimizer="adam")
    with pytest.raises(KeyError, match="polygon_sic"):
        model.train_on_batch(batch)


def test_bad_options_raise():
    unet = build_sic_unet(2, filters=FILTERS)
    with pytest.raises(ValueError):
        SicRegionalModel(unet, reduction="pixel")
    with pytest.raises(ValueError):
        SicRegionalModel(unet, weighting="pixel")
    with pytest.raises(ValueError):
        SicPixelModel(unet, loss="l1")


def test_save_and_load(tmp_path):
    batch = make_batch()
    model = _model(SicRegionalModel, reduction="patch", weighting="area")
    model(batch["sar"], training=True)  # move the BatchNorm statistics
    want = model(batch["sar"], training=False).numpy()
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert type(loaded) is SicRegionalModel
    assert (loaded.reduction, loaded.weighting) == ("patch", "area")
    np.testing.assert_allclose(loaded(batch["sar"], training=False).numpy(), want, atol=1e-6)
    weights = str(tmp_path / "m.weights.h5")
    model.save_weights(weights)
    fresh = _model(SicRegionalModel, seed=7)
    fresh.load_weights(weights)
    np.testing.assert_allclose(fresh(batch["sar"], training=False).numpy(), want, atol=1e-6)
    pixel = SicPixelModel.from_config(_model(SicPixelModel, loss="bce").get_config())
    assert type(pixel) is SicPixelModel and pixel.pixel_loss == "bce"


# --- MirroredStrategy: 2 replicas == 1 device --------------------------------
# make_batch() puts 32 polygons in images 0-1 (replica 0) and 5 in images 2-3
# (replica 1), so dividing by the replica's own count gives a different loss.

OPTIMIZERS = {"sgd": lambda: keras.optimizers.SGD(0.5), "adam": lambda: keras.optimizers.Adam(1e-3)}


def _one_step(optimizer, strategy, init_weights, eager):
    with strategy.scope():
        model = _model(SicRegionalModel)
        model.set_weights(init_weights)
        model.compile(optimizer=OPTIMIZERS[optimizer](), run_eagerly=eager)
    history = model.fit(_dataset(make_batch(), 4), epochs=1, verbose=0, shuffle=False)
    return history.history, [w.copy() for w in model.get_weights()]


@pytest.fixture(scope="module")
def single_device_step():
    """Initial weights and, per optimizer, one default-strategy step's logs and weights."""
    init = _model(SicRegionalModel).get_weights()
    cache = {}

    def get(optimizer, eager):
        if (optimizer, eager) not in cache:
            cache[optimizer, eager] = _one_step(optimizer, tf.distribute.get_strategy(), init, eager)
        return init, cache[optimizer, eager]
    return get


# Adam's first step is ~ lr * sign(g): it magnifies float rounding of near-zero
# gradients, so its weights get an absolute tolerance of 3 % of lr. The SGD case
# runs the compiled (tf.function) step as training does; Adam and the negative
# control run eagerly (same step code, much less tracing time on 2 shared cores).
@pytest.mark.parametrize("optimizer,eager,atol", [("sgd", False, 1e-6), ("adam", True, 3e-5)])
def test_mirrored_one_step_equals_single_device(optimizer, eager, atol, single_device_step):
    init, (want_logs, want_w) = single_device_step(optimizer, eager)
    strategy = make_strategy("mirrored", 2)
    assert strategy.num_replicas_in_sync == 2
    got_logs, got_w = _one_step(optimizer, strategy, init, eager)
    for key in ("loss", "polygon_rmse", "polygon_r2"):
        assert got_logs[key][0] == pytest.approx(want_logs[key][0], rel=1e-5), key
    assert max(np.abs(w - w0).max() for w, w0 in zip(want_w, init)) > 1e-4  # it moved
    for g, w in zip(got_w, want_w):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=atol)


def test_mirrored_with_local_count_would_fail(single_device_step, monkeypatch):
    """Negative control: dividing by the replica's own polygon count breaks equality."""
    init, (want_logs, want_w) = single_device_step("sgd", True)
    monkeypatch.setattr(regional_losses, "cross_replica_sum", lambda x: x)
    got_logs, got_w = _one_step("sgd", make_strategy("mirrored", 2), init, True)
    assert abs(got_logs["loss"][0] - want_logs["loss"][0]) > 1e-3
    assert max(np.abs(g - w).max() for g, w in zip(got_w, want_w)) > 1e-3


# --- numpy metrics and the Keras tracker, against hand-computed values ------

def test_rmse_r2_hand_values():
    assert rmse([0, 1, 2], [0, 1, 4]) == pytest.approx(np.sqrt(4 / 3))
    # SSres = 1, SStot = 5 (mean 2.5)
    assert r2_score([1, 2, 3, 4], [1, 2, 3, 5]) == pytest.approx(0.8)
    # NaN in either array drops the pair; mask drops more
    assert r2_score([1, 2, np.nan, 3, 4], [1, 2, 9, 3, 5]) == pytest.approx(0.8)
    assert r2_score([1, 2, 3, 4, 7], [1, 2, 3, 5, np.nan]) == pytest.approx(0.8)
    assert r2_score([1, 2, 3, 4, 100], [1, 2, 3, 5, 0], mask=[1, 1, 1, 1, 0]) == pytest.approx(0.8)
    assert rmse([1, np.nan], [3, 1]) == pytest.approx(2.0)
    assert np.isnan(rmse([np.nan], [1.0])) and np.isnan(r2_score([2, 2], [1, 2]))
    assert r2_score([0, 1], [0.5, 0.5]) == pytest.approx(0.0)


def test_f1_hand_values():
    # TP = 2, FP = 1, FN = 1 -> 4 / 6
    assert f1_score([1, 1, 0, 0, 1], [1, 0, 1, 0, 1]) == pytest.approx(2 / 3)
    assert f1_score([True, False], [True, False]) == 1.0
    assert f1_score([1, 0], [0, 1]) == 0.0
    assert np.isnan(f1_score([0, 0], [0, 0]))
    assert f1_score([1, 1, 0, 0, 1], [1, 0, 1, 0, 1], mask=[1, 1, 0, 1, 1]) == pytest.approx(0.8)


def test_regression_accumulator_pools_exactly():
    rng = np.random.default_rng(0)
    y = rng.uniform(0, 1, 1000)
    yhat = y + rng.normal(0, 0.1, 1000)
    y[::17] = np.nan
    acc = RegressionAccumulator()
    for chunk in np.array_split(np.arange(1000), [3, 10, 400, 401, 999]):
        acc.update(y[chunk], yhat[chunk])
    acc.update(np.array([]), np.array([]))
    res = acc.result()
    ok = np.isfinite(y)
    assert res["n"] == ok.sum()
    assert res["rmse"] == pytest.approx(np.sqrt(np.mean((y[ok] - yhat[ok]) ** 2)), rel=1e-12)
    assert res["r2"] == pytest.approx(r2_score(y, yhat), rel=1e-12)
    small = RegressionAccumulator().update([1, 2], [1, 2]).update([3, 4], [3, 5]).result()
    assert small == {"rmse": pytest.approx(0.5), "r2": pytest.approx(0.8), "n": 4}
    empty = RegressionAccumulator().result()
    assert empty["n"] == 0 and np.isnan(empty["rmse"]) and np.isnan(empty["r2"])


def test_pooled_keras_tracker_matches_numpy():
    rng = np.random.default_rng(1)
    ys, yhats, ws = [], [], []
    rmse_m, r2_m = PooledRegressionMetric("rmse"), PooledRegressionMetric("r2")
    assert np.isnan(float(r2_m.result())) and np.isnan(float(rmse_m.result()))
    for n in (5, 40, 1):
        y = rng.uniform(0, 1, n).astype(np.float32)
        yhat = rng.uniform(0, 1, n).astype(np.float32)
        w = (rng.random(n) < 0.7).astype(np.float32)
        for m in (rmse_m, r2_m):
            m.update_state(y, yhat, sample_weight=w)
        ys.append(y), yhats.append(yhat), ws.append(w)
    y, yhat, w = (np.concatenate(a) for a in (ys, yhats, ws))
    assert float(rmse_m.result()) == pytest.approx(rmse(y, yhat, mask=w > 0), rel=1e-6)
    assert float(r2_m.result()) == pytest.approx(r2_score(y, yhat, mask=w > 0), rel=1e-5)
    rmse_m.reset_state()
    rmse_m.update_state([1.0, 2.0], [1.0, 4.0])
    assert float(rmse_m.result()) == pytest.approx(np.sqrt(2.0))
