"""Test-time flip averaging (tfseaice.models.flip_average): the wrapper computes the mean of the
network's answers to the four flips of its input, each flipped back, under the same names and
precision."""

import keras
import numpy as np
import pytest

from tfseaice import precision
from tfseaice.models.flip_average import FLIPS, flip_averaged
from tfseaice.models.unet import build_icechart_unet

NORM = dict(norm_mean=[-14.5, -24.7], norm_std=[5.7, 4.8])


def _flip(x, axes):
    return np.flip(x, axes) if axes else x


def _sar(seed=0, shape=(2, 32, 48, 2)):
    rng = np.random.default_rng(seed)
    return rng.normal([-14.5, -24.7], [5.7, 4.8], size=shape).astype(np.float32)


def test_the_mean_of_the_four_flipped_answers_flipped_back():
    keras.utils.set_random_seed(3)
    net = build_icechart_unet(2, filters=(4, 8, 8, 8), **NORM)
    x = _sar()
    answers = [{k: _flip(np.asarray(v), axes) for k, v in net(_flip(x, axes)).items()} for axes in FLIPS]
    expected = {k: np.mean([a[k] for a in answers], axis=0) for k in answers[0]}
    got = {k: np.asarray(v) for k, v in flip_averaged(net)(x).items()}
    assert sorted(got) == sorted(expected) == ["floe", "sic", "sod"]
    plain = {k: np.asarray(v) for k, v in net(x).items()}
    for k in expected:
        assert got[k].shape == plain[k].shape and got[k].dtype == np.float32
        np.testing.assert_allclose(got[k], expected[k], atol=1e-5)
        assert np.abs(got[k] - plain[k]).max() > 1e-4   # the flips change the answer: the mean is not vacuous
    np.testing.assert_allclose(got["sod"].sum(-1), 1.0, atol=1e-5)   # still class probabilities


def test_a_pointwise_network_is_unchanged_and_the_names_and_precision_are_kept():
    """A 1x1 network answers each pixel alone: every flip, flipped back, is its own answer."""
    with precision.policy("bf16"):
        keras.utils.set_random_seed(5)
        x_in = keras.Input(shape=(None, None, 2), name="sar")
        net = keras.Model(x_in, {"sic": keras.layers.Conv2D(1, 1, dtype="float32", name="sic")(x_in)})
    wrapped = flip_averaged(net)
    assert wrapped.inputs[0].name == "sar" and precision.model_precision(wrapped) == "bf16"
    x = _sar(seed=1, shape=(1, 24, 40, 2))
    np.testing.assert_allclose(np.asarray(wrapped(x)["sic"]), np.asarray(net(x)["sic"]), atol=1e-6)


def test_a_network_with_two_inputs_is_refused():
    a, b = keras.Input(shape=(8, 8, 1)), keras.Input(shape=(8, 8, 1))
    net = keras.Model([a, b], keras.layers.Add()([a, b]))
    with pytest.raises(ValueError, match="single-input"):
        flip_averaged(net)


def test_an_export_with_flip_tta_serves_the_flip_average_and_says_so(tmp_path):
    import json
    import os

    import tensorflow as tf

    from tfseaice.errors import InputError
    from tfseaice.serving.export_module_factory import export_trained
    from tfseaice.serving.loading import inference_network, load_sic_model
    from tfseaice.serving.sic_export import export_sic

    keras.utils.set_random_seed(4)
    net = build_icechart_unet(2, filters=(4, 8, 8, 8), **NORM)
    info = {"channels": ["hh", "hv"], "downsample": 2}
    paths = {flips: str(tmp_path / f"sm{flips}") for flips in (1, 4)}
    for flips, path in paths.items():
        export_sic(net, path, info, flip_tta=flips == 4)
        assert json.load(open(os.path.join(path, "assets.extra", "tfseaice.json")))["inference_flips"] == flips
        assert load_sic_model(saved_model=path)[1]["flip_tta"] == (flips == 4)
    x = _sar(seed=2)
    served = {flips: tf.saved_model.load(path).signatures["serving_default"](sar=tf.constant(x))
              for flips, path in paths.items()}
    averaged = inference_network(net, flip_tta=True)(x)
    for head in ("sod_probability", "floe_probability"):
        np.testing.assert_allclose(served[4][head].numpy(), np.asarray(averaged[head.split("_")[0]]), atol=1e-5)
        assert np.abs(served[4][head].numpy() - served[1][head].numpy()).max() > 1e-4
    with pytest.raises(InputError, match="^--flip_tta: applies to SIC and ice-chart models; pix2pix"):
        export_trained("pix2pix", net, str(tmp_path / "gen"), info, flip_tta=True)
    assert not os.path.exists(tmp_path / "gen")
