"""Ice-chart models (regional and pixel baseline): losses and trackers against hand computation, learning.

Batches are made by hand with the schema-2 keys (polygon_sod [B,K,6],
polygon_floe [B,K,7], polygon_*_class [B,K], 255 = unlabelled).
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfseaice import precision
from tfseaice.losses import composition_loss, pixel_class_loss, pixel_sic_loss, regional_sic_loss
from tfseaice.models.unet import build_icechart_unet
from tfseaice.tasks import get_task
from tfseaice.tasks.icechart import IcechartPixelModel, IcechartRegionalModel

FILTERS = (4, 8)
S = 32
SOD_SAR = np.array([[-22, -30], [-19, -28], [-16, -25], [-13, -22], [-11, -19], [-8, -14]], np.float32)


def make_batch(seed=0, n=4, block=8):
    """Patches of square polygons; each pixel's SOD class drawn from its polygon's mix.

    SAR (dB) is a function of the pixel's SOD class (+ noise); SIC = 1 - share of
    open water; FLOE class = SOD class (so the FLOE head can learn it too; class 6
    never occurs). Compositions are the pixel class shares of each polygon; the
    dominant class is the one with >= 65 %, else 255. Polygon 1 of image 0 is
    unlabelled (NaN composition rows, class 255), and image 0 has a land corner.
    """
    rng = np.random.default_rng(seed)
    per_side = S // block
    ids = np.stack([(np.arange(S)[:, None] // block) * per_side + np.arange(S)[None, :] // block] * n)
    ids = ids.astype(np.int32)
    ids[0, :4, :6] = -1
    k = per_side * per_side
    mixes = rng.dirichlet(np.full(6, 0.3), (n, k))
    sod = np.zeros((n, S, S), np.int32)
    for i in range(n):
        for pid in range(k):
            mask = ids[i] == pid
            sod[i][mask] = rng.choice(6, mask.sum(), p=mixes[i, pid])
    sar = SOD_SAR[sod] + rng.normal(0, 0.5, sod.shape + (2,)).astype(np.float32)
    polygon = {"sod": np.zeros((n, k, 6), np.float32), "floe": np.zeros((n, k, 7), np.float32)}
    for i in range(n):
        for pid in range(k):
            shares = np.bincount(sod[i][ids[i] == pid], minlength=6) / np.sum(ids[i] == pid)
            polygon["sod"][i, pid] = shares
            polygon["floe"][i, pid, :6] = shares
    classes = {c: np.where(polygon[c].max(-1) >= 0.65, polygon[c].argmax(-1), 255).astype(np.int32)
               for c in polygon}
    sic = (1 - polygon["sod"][..., 0]).astype(np.float32)
    for c in polygon:
        polygon[c][0, 1] = np.nan
        classes[c][0, 1] = 255
    return {"sar": sar.astype(np.float32), "polygon_ids": ids, "polygon_sic": sic,
            "polygon_count": np.full(n, k, np.int32), "polygon_sod": polygon["sod"],
            "polygon_floe": polygon["floe"], "polygon_sod_class": classes["sod"],
            "polygon_floe_class": classes["floe"], "sod_truth": sod}


def _model(cls, seed=1, **kwargs):
    keras.utils.set_random_seed(seed)
    return cls(build_icechart_unet(2, filters=FILTERS, norm_mean=[-15, -23], norm_std=[4, 4]), **kwargs)


TRACKERS = {"loss", "polygon_rmse", "polygon_r2", "sic_loss", "sod_loss", "floe_loss", "sod_accuracy",
            "floe_accuracy", "sod_composition_rmse", "floe_composition_rmse", "sic_sod_gap"}


@pytest.mark.parametrize("cls,kwargs", [(IcechartRegionalModel, {"composition_loss": "xent"}),
                                        (IcechartPixelModel, {"chart_weights": (1, 3, 0.5)})])
def test_train_step_matches_hand_computation_and_learns(cls, kwargs):
    """The first step's loss and trackers by hand; a few more steps lower every chart's loss."""
    batch = make_batch()
    model = _model(cls, **kwargs)
    model.compile(optimizer=keras.optimizers.Adam(3e-2))
    out = {k: v.numpy() for k, v in model(batch["sar"], training=True).items()}  # what the step sees
    logs = model.train_on_batch(batch, return_dict=True)
    assert set(logs) == TRACKERS
    ids = batch["polygon_ids"]
    if cls is IcechartRegionalModel:
        terms = [float(regional_sic_loss(out["sic"], ids, batch["polygon_sic"]))] + [
            float(composition_loss(out[c], ids, batch[f"polygon_{c}"], kind="xent")) for c in ("sod", "floe")]
        weights = (2, 2, 1)
    else:
        terms = [float(pixel_sic_loss(out["sic"], ids, batch["polygon_sic"]))] + [
            float(pixel_class_loss(out[c], ids, batch[f"polygon_{c}_class"])) for c in ("sod", "floe")]
        weights = (1, 3, 0.5)
    assert [logs[f"{c}_loss"] for c in ("sic", "sod", "floe")] == pytest.approx(terms, rel=1e-5)
    assert logs["loss"] == pytest.approx(np.dot(weights, terms) / sum(weights), rel=1e-5)
    for c in ("sod", "floe"):  # pixel accuracy against the polygon's dominant class, by hand
        label = np.take_along_axis(batch[f"polygon_{c}_class"], np.maximum(ids, 0).reshape(4, -1), 1)
        label = label.reshape(ids.shape)
        valid = (ids >= 0) & (label != 255)
        want = np.mean(out[c].argmax(-1)[valid] == label[valid])
        assert logs[f"{c}_accuracy"] == pytest.approx(want, rel=1e-5)
        # composition RMSE over every class share of every labelled polygon
        errs = [out[c][i][ids[i] == p].mean(0) - batch[f"polygon_{c}"][i, p]
                for i in range(4) for p in range(16) if np.isfinite(batch[f"polygon_{c}"][i, p, 0])]
        assert logs[f"{c}_composition_rmse"] == pytest.approx(np.sqrt(np.mean(np.square(errs))), rel=1e-4)
    gap = np.abs(out["sic"][..., 0] - (1 - out["sod"][..., 0]))[ids >= 0].mean()
    assert logs["sic_sod_gap"] == pytest.approx(gap, rel=1e-5)
    for _ in range(6):
        last = model.train_on_batch(batch, return_dict=True)  # (trackers are reset per call)
    for key in ("sic", "sod", "floe"):  # xent's minimum is the compositions' mean entropy
        floor = 0.0 if key == "sic" or cls is IcechartPixelModel else _mean_entropy(batch[f"polygon_{key}"])
        assert last[f"{key}_loss"] - floor < 0.8 * (logs[f"{key}_loss"] - floor), (key, logs, last)


def _mean_entropy(table):
    q = table[np.isfinite(table[..., 0])]
    return float(np.mean(-np.sum(np.where(q > 0, q * np.log(np.maximum(q, 1e-30)), 0), -1)))


def test_model_outputs_options_and_config():
    model = _model(IcechartRegionalModel, reduction="patch", weighting="area", composition_loss="xent",
                   chart_weights=(1, 1, 1))
    out = model(make_batch()["sar"], training=False)
    assert {k: tuple(v.shape) for k, v in out.items()} == {"sic": (4, S, S, 1), "sod": (4, S, S, 6),
                                                           "floe": (4, S, S, 7)}
    np.testing.assert_allclose(out["sod"].numpy().sum(-1), 1.0, atol=1e-5)
    copy = IcechartRegionalModel.from_config(model.get_config())
    assert (copy.reduction, copy.weighting, copy.composition_loss, copy.chart_weights) == (
        "patch", "area", "xent", (1.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="composition_loss"):
        _model(IcechartRegionalModel, composition_loss="kl")
    with pytest.raises(ValueError, match="chart_weights"):
        _model(IcechartPixelModel, chart_weights=(1, 2))
    with precision.policy("bf16"):
        bf16 = build_icechart_unet(2, filters=FILTERS)
    assert all(v.dtype == tf.float32 for v in bf16(make_batch()["sar"][:1]).values())


def test_missing_chart_keys_raise():
    batch = make_batch()
    del batch["polygon_floe_class"]
    model = _model(IcechartPixelModel)
    model.compile(optimizer="sgd")
    with pytest.raises(KeyError, match="polygon_floe_class"):
        model.train_on_batch(batch)


def test_task_builds_the_models():
    from tfseaice.training.config import TrainConfig

    info = {"channels": ["HH", "HV"], "normalization": {"mean": [-15, -23], "std": [4, 4]},
            "splits": {"train": {"num_examples": 4}}}
    for name, cls in (("icechart_regional", IcechartRegionalModel), ("icechart_pixel", IcechartPixelModel)):
        cfg = TrainConfig(task=name, data_dir="", model_dir="",
                          extra={"filters": [4, 8], "composition_loss": "xent", "chart_weights": [1, 2, 3]})
        task = get_task(name)
        assert task.data_kind == "sic" and task.monitor == ("val_loss", "min")
        model = task.build_model(cfg, info)
        assert type(model) is cls and model.chart_weights == (1.0, 2.0, 3.0)
        assert cls is IcechartPixelModel or model.composition_loss == "xent"
