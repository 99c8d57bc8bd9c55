"""The gamma-speckle head's looks start at the training images' estimate (issue 27), not at 1.7."""

import numpy as np
import pytest
import tensorflow as tf

from tfseaice.data import glacier_speckle
from tfseaice.data import glacier
from tfseaice.models import pix2pix as p2p
from tfseaice.models import speckle
from tfseaice.data.glacier_speckle import DB_MAX, DB_MIN
from tfseaice.tasks import glacier_zones
from tfseaice.tasks import pix2pix as task
from tfseaice.tasks import pix2pix_options
from tfseaice.training.config import TrainConfig

INFO = {"extra_channels": []}


def _speckled(looks_by_class, size=96, n=3, seed=0):
    """[0, 1] images on the 8-bit dB scale: flat class levels times Gamma(L_class) speckle, and the masks."""
    rng = np.random.default_rng(seed)
    mask = np.zeros((n, size, size), np.int32)
    mask[:, :, : size // 3] = 1
    mask[:, :, size // 3: 2 * size // 3] = 2
    mask[:, :, 2 * size // 3:] = 3
    level_db = {1: -6.0, 2: -10.0, 3: -16.0}
    intensity = np.zeros(mask.shape)
    for c, looks in looks_by_class.items():
        sel = mask == c
        intensity[sel] = 10 ** (level_db[c] / 10) * rng.gamma(looks, 1 / looks, sel.sum())
    gray = np.clip(np.rint((10 * np.log10(intensity) - DB_MIN) * 254 / (DB_MAX - DB_MIN) + 1), 0, 255)
    return gray / 255.0, mask


def _looks(generator, size=256):
    raw, _ = speckle.params_and_image_model(generator)(tf.zeros([1, size, size, 4]))
    return speckle.split_params(raw)[1].numpy()


def test_looks_bias_inverts_the_head():
    for looks in (1.5, 3.5, 12.0):
        raw = tf.constant([[[[0.0, speckle.looks_bias(looks)]]]])
        assert float(speckle.split_params(raw)[1][0, 0, 0, 0]) == pytest.approx(looks, rel=1e-5)


def test_generator_starts_at_the_given_looks_and_the_default_is_unchanged():
    gen = p2p.build_generator(4, filters=4, upsample="resize_conv", speckle="gamma", speckle_looks=4.2)
    looks = _looks(gen)
    assert np.allclose(looks, 4.2, rtol=0.05)                    # kernels N(0, 0.02): close to the bias
    old = p2p.build_generator(4, filters=4, upsample="resize_conv", speckle="gamma")
    assert np.allclose(_looks(old), 1.0 + np.log(2.0), rtol=0.05)  # 1 + softplus(0), as before


def test_matching_looks_recovers_the_looks_of_quantised_speckle():
    for looks in (2.0, 4.0, 8.0):
        img, _ = _speckled({1: looks, 2: looks, 3: looks}, size=120, seed=3)
        cv = np.median(glacier_speckle.local_cv(glacier_speckle.unit_to_intensity(img[0]), np.ones(img[0].shape, bool)))
        assert speckle.matching_looks(cv) == pytest.approx(looks, rel=0.15)
    assert speckle.matching_looks(0.3) > speckle.matching_looks(0.5)      # less variation, more looks
    assert speckle.matching_looks(5.0) == 1.0 and speckle.matching_looks(1e-4) == speckle.MAX_LOOKS


def test_looks_from_images_per_class_and_median():
    img, mask = _speckled({1: 2.0, 2: 4.0, 3: 9.0})
    est = speckle.looks_from_images(img, mask, glacier.CLASS_NAMES, skip=(glacier.NO_DATA,))
    got = {k: v["looks"] for k, v in est["classes"].items()}
    assert got["rock"] == pytest.approx(2.0, rel=0.15)
    assert got["glacier"] == pytest.approx(4.0, rel=0.15)
    assert got["ocean"] == pytest.approx(9.0, rel=0.2)
    assert est["looks"] == pytest.approx(got["glacier"])
    with pytest.raises(ValueError, match="window"):
        speckle.looks_from_images(img[:, :4, :4], np.zeros((3, 4, 4), np.int32), glacier.CLASS_NAMES, skip=(0,))


def _cfg(**extra):
    base = {"generator_filters": 4, "discriminator_filters": 4}
    base.update(extra)
    return TrainConfig(task="pix2pix", data_dir="d", model_dir="m", seed=3, extra=base)


def test_initial_looks_from_flag_from_data_or_none(monkeypatch):
    assert pix2pix_options.initial_looks(_cfg(), INFO) is None                         # paper: no speckle head
    assert pix2pix_options.initial_looks(_cfg(speckle="gamma"), INFO) is None          # old folder: default
    assert pix2pix_options.initial_looks(_cfg(speckle="gamma", speckle_looks=5.0), INFO) == 5.0
    img, mask = _speckled({1: 3.0, 2: 3.0, 3: 3.0}, seed=5)
    monkeypatch.setattr(pix2pix_options, "training_patches", lambda data_dir, info: (img, mask))
    cfg = _cfg(speckle="gamma", speckle_looks=0.0)
    looks = pix2pix_options.initial_looks(cfg, INFO)
    assert looks == pytest.approx(3.0, rel=0.15)
    assert cfg.extra["speckle_looks"] == looks                                       # recorded for task.json
    assert set(cfg.extra["speckle_looks_estimate"]["classes"]) == {"rock", "glacier", "ocean"}
    assert pix2pix_options.initial_looks(cfg, INFO) == looks                          # not estimated again
    gen = task.build_pix2pix(cfg, INFO).generator
    assert np.allclose(_looks(gen), looks, rtol=0.05)


def test_initial_looks_without_data_falls_back_to_the_default():
    cfg = _cfg(speckle="gamma", speckle_looks=0.0)          # data_dir "d" does not exist
    assert pix2pix_options.initial_looks(cfg, INFO) is None
    assert cfg.extra["speckle_looks"] == 0.0


def test_zone_task_stops_early_only_when_asked():
    zcfg = TrainConfig(task="glacier_zones", data_dir="d", model_dir="m", extra={"early_stopping": 3})
    cbs = glacier_zones.TASK.callbacks(zcfg, None, val_ds=object(), log_dir="l")
    assert len(cbs) == 1 and cbs[0].patience == 3 and cbs[0].monitor == "val_mean_iou"
    assert glacier_zones.TASK.callbacks(TrainConfig(task="glacier_zones", data_dir="d", model_dir="m"),
                                        None, object(), "l") == []
    assert glacier_zones.TASK.callbacks(zcfg, None, None, "l") == []       # no validation split: nothing to watch


def test_speckle_oracle_keeps_the_scene_and_draws_fresh_speckle():
    from tfseaice.evaluation import pix2pix_realism
    img, mask = _speckled({1: 4.0, 2: 4.0, 3: 4.0}, size=96, seed=1)
    real = img[..., None].astype(np.float32)
    mask[:, :4] = 0                                                          # a no-data strip
    a = pix2pix_realism.speckle_oracle(real, mask, 4.0, seed=0)
    assert a.shape == real.shape and np.all(a[:, :4] == 0)
    np.testing.assert_array_equal(a, pix2pix_realism.speckle_oracle(real, mask, 4.0, seed=0))
    assert not np.array_equal(a, pix2pix_realism.speckle_oracle(real, mask, 4.0, seed=1))
    stats = glacier_speckle.class_statistics(a, mask, glacier.CLASS_NAMES, skip=(0,))
    truth = glacier_speckle.class_statistics(real, mask, glacier.CLASS_NAMES, skip=(0,))
    for name in ("rock", "glacier", "ocean"):
        assert stats[name]["cv"] == pytest.approx(truth[name]["cv"], rel=0.15)   # same looks, same CV
        assert stats[name]["mean"] == pytest.approx(truth[name]["mean"], abs=0.02)  # same backscatter


def test_gamma_fixed_gives_no_gradient_to_the_looks_and_gamma_does():
    cond = tf.one_hot(np.random.default_rng(0).integers(0, 4, (1, 32, 32)), 4)
    grads = {}
    for mode in ("gamma", "gamma_fixed"):
        gen = p2p.build_generator(4, filters=4, num_downs=3, speckle=mode, speckle_looks=3.5)
        head = speckle.speckle_layer(gen).input._keras_history.operation
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(gen(cond, training=True))
        bias_grad = tape.gradient(loss, head.bias).numpy()
        grads[mode] = bias_grad
        assert bias_grad[0] != 0.0                        # the median channel learns either way
    assert grads["gamma"][1] != 0.0 and grads["gamma_fixed"][1] == 0.0
    layer = speckle.speckle_layer(p2p.build_generator(4, filters=4, num_downs=3, speckle="gamma_fixed"))
    assert speckle.GammaSpeckle.from_config(layer.get_config()).learn_looks is False


@pytest.mark.parametrize("upsample", ["transpose", "resize_conv"])
def test_set_looks_draws_one_l_everywhere_and_keeps_the_median(upsample):
    cond = tf.one_hot(np.random.default_rng(1).integers(0, 4, (1, 64, 64)), 4)
    gen = p2p.build_generator(4, filters=4, num_downs=3, upsample=upsample, speckle="gamma", speckle_looks=3.5)
    head = speckle.speckle_layer(gen).input._keras_history.operation
    head.kernel.assign(tf.random.stateless_normal(head.kernel.shape, [1, 2]))   # a trained looks map varies
    parts = speckle.params_and_image_model(gen)
    median_before, looks_before = speckle.split_params(parts(cond)[0])
    assert float(tf.math.reduce_std(looks_before)) > 0.1
    assert speckle.set_looks(gen, 7.5)
    median_after, looks_after = speckle.split_params(parts(cond)[0])
    np.testing.assert_allclose(looks_after.numpy(), 7.5, rtol=1e-4)
    np.testing.assert_allclose(median_after.numpy(), median_before.numpy(), atol=1e-6)


def test_set_looks_refuses_per_class_looks_and_bad_values_and_skips_plain_generators():
    per_class = p2p.build_generator(4, filters=4, num_downs=3, speckle="gamma_fixed",
                                    speckle_class_looks=(1.0, 2.5, 3.5, 3.7))
    with pytest.raises(ValueError, match="per-class looks"):
        speckle.set_looks(per_class, 5.0)
    with pytest.raises(ValueError, match="looks must be in"):
        speckle.set_looks(p2p.build_generator(4, filters=4, num_downs=3, speckle="gamma_fixed"), 0.5)
    assert speckle.set_looks(p2p.build_generator(4, filters=4, num_downs=3), 5.0) is False
