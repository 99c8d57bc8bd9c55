"""BatchNorm folded into the convolutions (tfseaice.models.fold_batchnorm): the same function in
fp32 to 1e-5, for the SIC and the ice-chart U-Net, and a fold that gets the algebra wrong is caught."""

import keras
import numpy as np
import pytest

from tfseaice.models import fold_batchnorm as fb
from tfseaice.models.batchnorm import FusedBatchNormalization
from tfseaice.models.unet import build_icechart_unet, build_sic_unet

FILTERS = (4, 8, 8, 8)


def trained_like(model, rng):
    """Moving statistics of real activations (one training-mode batch with momentum 0), gamma/beta
    away from 1/0: every term of the fold matters."""
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            c = layer.gamma.shape[0]
            layer.gamma.assign(rng.uniform(0.5, 1.5, c))
            layer.beta.assign(rng.normal(0, 0.3, c))
            layer.momentum = 0.0
    model(rng.normal(-15, 5, (2, 64, 64, 2)).astype("float32"), training=True)
    return model


def scene(rng):
    x = rng.normal(-15, 5, (2, 64, 96, 2)).astype("float32")
    x[0, :7, :9] = np.nan
    return x


@pytest.mark.parametrize("build", [build_sic_unet, build_icechart_unet])
def test_folded_model_equals_the_original_in_fp32(build):
    rng = np.random.default_rng(3)
    model = trained_like(build(2, filters=FILTERS, norm_mean=[-14.5, -24.7], norm_std=[5.7, 4.8]), rng)
    folded = fb.fold_batchnorm(model)
    assert len(fb.foldable_pairs(model)) == 2 * (2 * len(FILTERS) + 1)
    assert not any(isinstance(l, keras.layers.BatchNormalization) for l in folded.layers)
    x = scene(rng)
    want, got = model(x, training=False), folded(x, training=False)
    want, got = (want, got) if isinstance(want, dict) else ({"sic": want}, {"sic": got})
    assert set(got) == set(want)
    for head in want:
        np.testing.assert_allclose(np.asarray(got[head]), np.asarray(want[head]), atol=1e-5, rtol=0)
    assert np.abs(np.asarray(want["sic"]) - 0.5).max() > 0.05   # not a constant output


def test_a_fold_without_epsilon_fails_the_same_comparison(monkeypatch):
    rng = np.random.default_rng(3)
    model = trained_like(build_sic_unet(2, filters=FILTERS, norm_mean=[-14.5, -24.7], norm_std=[5.7, 4.8]), rng)
    right = fb._bn_parameters
    monkeypatch.setattr(fb, "_bn_parameters", lambda bn: (*right(bn)[:4], 0.0))
    x = scene(rng)
    diff = np.abs(np.asarray(fb.fold_batchnorm(model)(x)) - np.asarray(model(x, training=False)))
    assert np.nanmax(diff) > 1e-5


def test_a_bf16_model_folds_into_a_bf16_model():
    from tfseaice import precision

    model = build_sic_unet(2, filters=FILTERS)
    twin = precision.twin(model, lambda: build_sic_unet(2, filters=FILTERS), "bf16")
    folded = fb.fold_batchnorm(twin)
    assert precision.model_precision(folded) == "bf16"
    assert folded.get_layer("enc0_conv1").compute_dtype == "bfloat16"
    assert keras.mixed_precision.global_policy().name == "float32"   # restored


def test_instance_statistics_and_shared_convs_are_not_folded():
    inp = keras.Input((None, None, 3))
    conv = keras.layers.Conv2D(4, 3, padding="same", use_bias=False, name="c")(inp)
    bn = FusedBatchNormalization(name="bn")
    out = bn(conv)
    branch = keras.layers.Conv2D(4, 3, padding="same", name="c2")(inp)
    both = keras.layers.Add(name="add")([keras.layers.BatchNormalization(name="bn2")(branch), branch])
    model = keras.Model(inp, [out, both])
    assert fb.foldable_pairs(model) == {"bn": "c"}      # c2 feeds bn2 and the Add: not foldable
    bn.stats_at_inference = "instance"
    assert fb.foldable_pairs(model) == {}
    assert fb.fold_batchnorm(model) is model
