"""pix2pix realism: resize-conv decoder, Gamma speckle head, BatchNorm at inference, SAR statistics."""

import numpy as np
import pytest
import tensorflow as tf
from keras import layers
from scipy import ndimage

from tfseaice.data import glacier_speckle
from tfseaice.evaluation import sar_spectrum
from tfseaice.data import glacier
from tfseaice.evaluation import pix2pix_realism
from tfseaice.models import pix2pix as p2p
from tfseaice.models import speckle
from tfseaice.models.batchnorm import FusedBatchNormalization, set_stats_at_inference
from tfseaice.data.glacier_speckle import DB_MAX, DB_MIN
from tfseaice.tasks import pix2pix as task
from tfseaice.training.config import TrainConfig

INFO = {"extra_channels": []}


def _cond(n=2, size=32, seed=0):
    mask = np.random.default_rng(seed).integers(0, 4, (n, size, size))
    return tf.one_hot(mask, 4)


def _cfg(**extra):
    base = {"gen_kernel": 4, "disc_kernel": 4, "generator_filters": 4, "discriminator_filters": 4}
    base.update(extra)
    return TrainConfig(task="pix2pix", data_dir="d", model_dir="m", seed=3, extra=base)


# ------------------------------------------------------------------ decoder

def test_resize_conv_generator_has_no_transposed_conv_and_keeps_shapes():
    gen = p2p.build_generator(4, filters=4, num_downs=3, upsample="resize_conv")
    assert not [l for l in gen.layers if isinstance(l, layers.Conv2DTranspose)]
    assert len([l for l in gen.layers if isinstance(l, layers.UpSampling2D)]) == 3
    out = gen(_cond(2, 32))
    assert out.shape == (2, 32, 32, 1)
    paper = p2p.build_generator(4, filters=4, num_downs=3)
    assert len([l for l in paper.layers if isinstance(l, layers.Conv2DTranspose)]) == 3


def test_old_model_config_without_new_keys_builds_and_loads_the_paper_generator(tmp_path):
    old = p2p.build_generator(4, filters=4)            # as saved before the options existed
    path = str(tmp_path / "g.weights.h5")
    old.save_weights(path)
    gen = task.build_generator_from(_cfg(), INFO)      # config without gen_upsample / speckle
    assert [l.name for l in gen.layers] == [l.name for l in old.layers]
    gen.load_weights(path)
    x = _cond(1, 256)
    np.testing.assert_allclose(gen(x).numpy(), old(x).numpy(), atol=1e-6)
    bn = [l for l in gen.layers if isinstance(l, FusedBatchNormalization)][0]
    assert FusedBatchNormalization.from_config(bn.get_config()).stats_at_inference == "moving"


# ------------------------------------------------------------------ speckle

def test_gamma_speckle_has_mean_backscatter_and_cv_one_over_sqrt_looks():
    b = tf.fill([400, 500], 2.5)
    for looks in (1.0, 4.0):
        x = speckle.speckle_intensity(b, looks, tf.constant([7, 1])).numpy()
        assert abs(x.mean() / 2.5 - 1.0) < 0.01
        assert abs(x.std() / x.mean() - 1.0 / np.sqrt(looks)) < 0.01
    same = speckle.speckle_intensity(b, 4.0, tf.constant([7, 1])).numpy()
    np.testing.assert_array_equal(same, speckle.speckle_intensity(b, 4.0, tf.constant([7, 1])).numpy())
    assert np.abs(same - speckle.speckle_intensity(b, 4.0, tf.constant([8, 1])).numpy()).max() > 0


def test_gamma_draw_has_gradients_wrt_looks_and_backscatter():
    looks = tf.Variable(tf.fill([200, 200], 3.0))
    b = tf.Variable(tf.fill([200, 200], 1.0))
    with tf.GradientTape() as tape:
        x = speckle.speckle_intensity(b, looks, tf.constant([1, 2]))
        loss = tf.reduce_mean(tf.math.log(x))        # E[log g] = digamma(L) - log(L) rises with L
    g_looks, g_b = tape.gradient(loss, [looks, b])
    assert g_looks is not None and float(tf.reduce_sum(g_looks)) > 0
    assert abs(float(tf.reduce_sum(g_b)) - 1.0) < 1e-3   # d mean(log(b g)) / d b = 1 / b


def test_speckle_layer_median_is_the_predicted_median_and_seeded():
    raw = np.zeros([1, 200, 200, 2], np.float32)
    raw[..., 0] = 0.2                                  # median tanh(0.2) in model range
    raw[..., 1] = 2.0                                  # looks 1 + softplus(2)
    layer = speckle.GammaSpeckle(seed=5)
    out = layer(tf.constant(raw)).numpy()
    assert abs(np.median(out) - np.tanh(0.2)) < 2.0 / 255.0   # within a gray level or two
    layer2 = speckle.GammaSpeckle(seed=5)
    np.testing.assert_array_equal(out, layer2(tf.constant(raw)).numpy())
    # in intensity: CV of the drawn image is 1 / sqrt(L)
    looks = 1.0 + np.log1p(np.exp(2.0))
    gray = (out + 1.0) * 127.5
    inten = 10 ** (((gray - 1.0) * (DB_MAX - DB_MIN) / 254.0 + DB_MIN) / 10.0)
    assert abs(inten.std() / inten.mean() * np.sqrt(looks) - 1.0) < 0.05


def test_speckle_generator_is_seeded_and_l1_sees_the_median():
    gen = task.build_generator_from(_cfg(speckle="gamma", gen_upsample="resize_conv"), INFO)
    assert speckle.speckle_layer(gen) is not None
    x = _cond(2, 256)
    speckle.reset_speckle_seed(gen, 11)
    a = gen(x).numpy()
    speckle.reset_speckle_seed(gen, 11)
    np.testing.assert_array_equal(a, gen(x).numpy())
    assert np.abs(a - gen(x).numpy()).max() > 0        # the next draw differs
    disc = p2p.build_discriminator(4, filters=4)
    model = task.Pix2Pix(gen, disc)
    target = tf.random.uniform([2, 256, 256, 1], -1, 1, seed=1)
    out = model.compute_losses(x, target, training=False)
    raw = speckle.params_and_image_model(gen)(x)[0]
    median = speckle.split_params(raw)[0]
    expected = np.abs(target.numpy() - median.numpy()).mean(axis=(1, 2, 3))
    np.testing.assert_allclose(out["gen_l1"].numpy(), expected, rtol=1e-5)
    assert np.abs(out["fake"].numpy() - median.numpy()).mean() > 0.01   # the image is speckled


# ------------------------------------------------------- BatchNorm at inference

def test_batch_stats_at_inference_are_instance_norm_at_batch_one():
    bn = FusedBatchNormalization(epsilon=1e-5)
    x = tf.random.normal([1, 8, 8, 3], mean=2.0, stddev=3.0, seed=1)
    bn.build(x.shape)
    bn.gamma.assign([1.5, 0.5, 2.0])
    bn.beta.assign([0.1, -0.2, 0.3])
    bn.moving_mean.assign([-1.0, 0.0, 1.0])
    bn.moving_variance.assign([0.5, 2.0, 4.0])
    moving = bn(x, training=False).numpy()
    bn.stats_at_inference = "instance"
    got = bn(x, training=False).numpy()
    xn = x.numpy()
    mu, var = xn.mean(axis=(1, 2), keepdims=True), xn.var(axis=(1, 2), keepdims=True)
    manual = (xn - mu) / np.sqrt(var + 1e-5) * bn.gamma.numpy() + bn.beta.numpy()
    np.testing.assert_allclose(got, manual, atol=1e-4)
    assert np.abs(got - moving).max() > 0.1
    np.testing.assert_allclose(bn.moving_mean.numpy(), [-1.0, 0.0, 1.0])    # not updated
    two = tf.concat([x, 3.0 * x + 1.0], 0)
    np.testing.assert_allclose(bn(two, training=False).numpy()[:1], got, atol=1e-4)  # per example


def test_bn_at_inference_batch_changes_generator_output():
    gen = p2p.build_generator(4, filters=4, num_downs=3)
    x = _cond(1, 32)
    for layer in gen.layers:
        if isinstance(layer, FusedBatchNormalization):
            layer.moving_mean.assign(tf.fill(layer.moving_mean.shape, 0.3))
            layer.moving_variance.assign(tf.fill(layer.moving_variance.shape, 5.0))
    moving = gen(x, training=False).numpy()
    assert p2p.set_bn_at_inference(gen, "batch") == 3   # down2, up1, up2
    batch = gen(x, training=False).numpy()
    assert np.abs(batch - moving).max() > 1e-3
    p2p.set_bn_at_inference(gen, "moving")
    np.testing.assert_array_equal(gen(x, training=False).numpy(), moving)
    with pytest.raises(ValueError):
        set_stats_at_inference(gen, "batch")


# -------------------------------------------------------------- statistics

def _gray01_from_intensity(intensity):
    db = 10 * np.log10(intensity)
    return np.clip(np.rint((db - DB_MIN) / (DB_MAX - DB_MIN) * 254 + 1), 1, 255) / 255.0


def test_local_cv_of_gamma_speckle_is_one_over_sqrt_looks():
    rng = np.random.default_rng(0)
    for looks in (2.0, 4.5):
        inten = 0.1 * rng.gamma(looks, 1.0 / looks, size=(2, 128, 128))
        classes = np.zeros((2, 128, 128), int)
        classes[:, :, 64:] = 1
        stats = glacier_speckle.class_statistics(_gray01_from_intensity(inten), classes, ("a", "b"), skip=())
        for name in ("a", "b"):
            assert abs(stats[name]["cv"] * np.sqrt(looks) - 1.0) < 0.1, (looks, stats)
            assert stats[name]["windows"] == 2 * (128 - 6) * (64 - 6)   # only windows inside a class


def test_planted_32px_lattice_gives_a_peak_and_noise_does_not():
    rng = np.random.default_rng(1)
    noise = rng.normal(0.5, 0.1, (16, 256, 256))
    assert sar_spectrum.lattice_peak(noise) < 1.3
    smooth = np.stack([ndimage.gaussian_filter(rng.normal(size=(256, 256)), 6, mode="wrap") for _ in range(8)])
    assert sar_spectrum.lattice_peak(smooth) < 1.5
    lattice = noise.copy()
    lattice[:, 8::32, 8::32] += 0.5                   # 2 dots per 32 x 32 cell
    lattice[:, 9::32, 8::32] += 0.5
    assert sar_spectrum.lattice_peak(lattice) > 3.0
    assert sar_spectrum.lattice_peak(lattice, period=64) < 1.3   # not a 64-px pattern


def test_realism_result_of_real_against_itself():
    rng = np.random.default_rng(2)
    mask = np.repeat(np.arange(1, 4), 86)[None, :256, None] * np.ones((3, 256, 256), int)
    mask = np.transpose(mask, (0, 2, 1)).copy()
    real = _gray01_from_intensity(rng.gamma(4.0, 0.25, size=(3, 256, 256)))[..., None]
    res, spectra = pix2pix_realism.realism_result(real, real, mask)
    assert set(res["realism"]) == {"rock", "glacier", "ocean"}
    for r in res["realism"].values():
        assert r["cv_ratio"] == pytest.approx(1.0) and r["mean_gen"] == r["mean_real"]
    assert res["lattice_peak_gen"] == res["lattice_peak_real"] < 1.3
    assert res["realism_checks"]["no_lattice_peak"] and res["realism_checks"]["cv_within_25pct_of_real"]
    smooth = np.full_like(real, 0.5)
    res2, _ = pix2pix_realism.realism_result(smooth, real, mask)
    assert all(r["cv_ratio"] < 0.1 for r in res2["realism"].values())
    assert not res2["realism_checks"]["cv_within_25pct_of_real"]
    assert glacier.CLASS_NAMES[0] not in res2["realism"]
