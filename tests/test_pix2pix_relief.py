"""Issue 27: the PatchGAN's multilooked view (--disc_multilook), per-class looks and no speckle on no-data."""

import numpy as np
import pytest
import tensorflow as tf
from absl import flags

from tfseaice.data.glacier_speckle import DB_MAX, DB_MIN
from tfseaice.errors import InputError
from tfseaice.models import pix2pix as p2p
from tfseaice.models import speckle
from tfseaice.tasks import pix2pix as task
from tfseaice.tasks import pix2pix_options
from tfseaice.tasks.pix2pix_options import Pix2PixOptions
from tfseaice.training import options
from tfseaice.training.config import TrainConfig

INFO = {"extra_channels": []}


def _cfg(**extra):
    base = {"gen_kernel": 4, "disc_kernel": 4, "generator_filters": 4, "discriminator_filters": 4}
    base.update(extra)
    return TrainConfig(task="pix2pix", data_dir="d", model_dir="m", seed=3, extra=base)


def _box_mean_by_hand(img, k):
    """Model-range [H,W] -> K x K mean of linear intensity over the window's pixels inside the image."""
    gray = (img + 1.0) * 127.5
    intensity = 10.0 ** (((gray - 1.0) * (DB_MAX - DB_MIN) / 254.0 + DB_MIN) / 10.0)
    h, w = img.shape
    lo = (k - 1) // 2                       # TF "SAME": the extra row/column goes after the pixel
    out = np.zeros_like(intensity)
    for i in range(h):
        for j in range(w):
            out[i, j] = intensity[max(i - lo, 0):i - lo + k, max(j - lo, 0):j - lo + k].mean()
    gray = np.clip((10.0 * np.log10(out) - DB_MIN) * 254.0 / (DB_MAX - DB_MIN) + 1.0, 0.0, 255.0)
    return gray / 127.5 - 1.0


@pytest.mark.parametrize("k", [2, 3, 4])
def test_multilook_is_the_box_mean_of_linear_intensity(k):
    img = np.random.default_rng(k).uniform(-1, 1, (9, 11)).astype(np.float32)
    got = speckle.multilook(tf.constant(img[None, ..., None]), k).numpy()[0, ..., 0]
    np.testing.assert_allclose(got, _box_mean_by_hand(img.astype(np.float64), k), atol=2e-5)
    assert not np.allclose(got, _box_mean_by_hand(img.astype(np.float64), k + 1), atol=1e-3)


def test_multilook_of_a_flat_image_is_that_image_and_averages_speckle():
    flat = tf.fill([1, 16, 16, 1], 0.2)
    np.testing.assert_allclose(speckle.multilook(flat, 4).numpy(), 0.2, atol=1e-5)
    intensity = tf.constant(np.random.default_rng(0).gamma(3.5, 1 / 3.5, (1, 64, 64, 1)), tf.float32) * 0.05
    noisy = speckle.db_to_model(10.0 * tf.math.log(intensity) / np.log(10.0))
    assert float(tf.math.reduce_std(speckle.multilook(noisy, 8))) < 0.3 * float(tf.math.reduce_std(noisy))


def test_discriminator_sees_the_multilooked_image_only_when_asked():
    paper = p2p.build_discriminator(4, filters=4)
    assert "multilook" not in [l.name for l in paper.layers]
    assert paper.get_layer("c1_conv").kernel.shape[2] == 5                       # mask + image, as before
    disc = p2p.build_discriminator(4, filters=4, multilook=4)
    assert disc.get_layer("c1_conv").kernel.shape[2] == 6                        # + the multilooked image
    cond = tf.one_hot(np.random.default_rng(1).integers(0, 4, (2, 32, 32)), 4)
    image = tf.random.stateless_uniform([2, 32, 32, 1], [1, 2], -1, 1)
    pair = tf.keras.Model(disc.inputs, disc.get_layer("pair").output)([cond, image]).numpy()
    np.testing.assert_allclose(pair[..., 5:], speckle.multilook(image, 4).numpy(), atol=1e-6)
    np.testing.assert_array_equal(pair[..., 4:5], image.numpy())
    assert disc([cond, image]).shape == paper([cond, image]).shape


def _head(mask, median=0.1, looks=3.0):
    """Generator head [1,H,W,2] with a flat median and looks channel, and the condition of ``mask``."""
    raw = np.stack([np.full(mask.shape, np.arctanh(median)), np.full(mask.shape, speckle.looks_bias(looks))], -1)
    return tf.constant(raw[None], tf.float32), tf.one_hot(mask[None], 4)


def test_no_data_pixels_get_no_speckle_and_the_others_do():
    mask = np.ones((64, 64), np.int64)
    mask[:, :20] = 0
    raw, cond = _head(mask)
    image = speckle.GammaSpeckle(seed=1, learn_looks=False, nodata_channel=0)([raw, cond]).numpy()[0, ..., 0]
    median = np.tanh(raw.numpy()[0, ..., 0])
    np.testing.assert_array_equal(image[mask == 0], median[mask == 0])           # speckle factor exactly 1
    assert np.mean(np.abs(image[mask == 1] - median[mask == 1]) > 1e-3) > 0.9
    before = speckle.GammaSpeckle(seed=1, learn_looks=False)(raw).numpy()[0, ..., 0]   # today's default
    assert np.mean(np.abs(before[mask == 0] - median[mask == 0]) > 1e-3) > 0.9


def test_class_looks_give_each_class_its_speckle_cv():
    mask = np.zeros((256, 256), np.int64)
    mask[:, 64:128], mask[:, 128:192], mask[:, 192:] = 1, 2, 3
    raw, cond = _head(mask, median=-0.2, looks=50.0)                              # head's L ignored
    table = (2.0, 1.5, 4.0, 12.0)
    layer = speckle.GammaSpeckle(seed=2, learn_looks=False, class_looks=table)
    image = layer([raw, cond]).numpy()[0, ..., 0]
    intensity = 10.0 ** (speckle.model_to_db(image).numpy() / 10.0)
    for c, looks in enumerate(table):
        values = intensity[mask == c]
        assert values.std() / values.mean() == pytest.approx(1 / np.sqrt(looks), rel=0.12)
    clone = speckle.GammaSpeckle.from_config(layer.get_config())
    assert clone.class_looks == table and clone.nodata_channel is None


def test_class_looks_come_from_the_recorded_estimate():
    estimate = {"looks": 3.5, "classes": {"rock": {"looks": 2.46}, "glacier": {"looks": 3.54}}}
    cfg = _cfg(speckle="gamma_fixed", speckle_looks_per_class=True, speckle_looks_estimate=estimate)
    assert pix2pix_options.class_looks(cfg, 4) == (3.5, 2.46, 3.54, 3.5)           # no-data, ocean: overall L
    assert pix2pix_options.class_looks(_cfg(speckle="gamma_fixed"), 4) is None
    with pytest.raises(InputError, match="no per-class looks estimate"):
        pix2pix_options.class_looks(_cfg(speckle="gamma_fixed", speckle_looks_per_class=True), 4)
    gen = task.build_generator_from(cfg, INFO)
    assert speckle.speckle_layer(gen).class_looks == (3.5, 2.46, 3.54, 3.5)


def test_old_configs_keep_todays_models():
    opts = Pix2PixOptions.from_extra({"speckle": "gamma_fixed"})
    assert (opts.disc_multilook, opts.speckle_nodata, opts.speckle_looks_per_class) == (0, False, False)
    layer = speckle.speckle_layer(task.build_generator_from(_cfg(speckle="gamma_fixed"), INFO))
    assert not layer.sees_mask and layer.class_looks is None and layer.nodata_channel is None


@pytest.mark.parametrize("value", ["1", "-3", "x", "2.5"])
def test_bad_disc_multilook_is_one_line_flag_error(value):
    fv = flags.FlagValues()
    options.define_flags([Pix2PixOptions], flag_values=fv)
    with pytest.raises(flags.Error) as err:
        fv(["prog", f"--disc_multilook={value}"])
    assert "\n" not in str(err.value) and "disc_multilook" in str(err.value)
    fv2 = flags.FlagValues()
    options.define_flags([Pix2PixOptions], flag_values=fv2)
    fv2(["prog", "--disc_multilook=8"])
    assert Pix2PixOptions.from_flags(fv2).disc_multilook == 8


def test_mask_options_refuse_a_model_without_fixed_gamma_speckle():
    with pytest.raises(InputError, match="gamma_fixed"):
        Pix2PixOptions(speckle="gamma", speckle_looks_per_class=True)
    cfg = _cfg(speckle="gamma_fixed", speckle_looks=4.0, speckle_looks_per_class=True)   # L by hand: no estimate
    with pytest.raises(InputError, match="speckle_looks=0"):
        task.build_pix2pix(cfg, INFO)
    with pytest.raises(InputError, match="speckle_nodata"):
        Pix2PixOptions(speckle_nodata=True)


def test_train_step_with_every_new_option(monkeypatch):
    rng = np.random.default_rng(0)
    mask = np.repeat(np.arange(4, dtype=np.int32), 64)[None, None, :].repeat(256, 1).repeat(2, 0)  # class stripes
    sar = rng.uniform(0.2, 0.8, (2, 256, 256)).astype(np.float32)
    monkeypatch.setattr(pix2pix_options, "training_patches", lambda data_dir, info: (sar, mask))
    cfg = _cfg(gen_upsample="resize_conv", speckle="gamma_fixed", speckle_looks=0.0, speckle_looks_per_class=True,
               speckle_nodata=True, disc_multilook=4)
    model = task.build_pix2pix(cfg, INFO)
    assert speckle.speckle_layer(model.generator).sees_mask
    logs = model.train_step({"mask": tf.constant(mask), "sar": tf.constant(sar[..., None])})
    assert all(np.isfinite(float(v)) for v in logs.values())


def test_relief_map_sees_relief_not_speckle():
    rng = np.random.default_rng(4)
    flat_db = np.full((1, 96, 96, 1), -8.0)
    relief_db = flat_db + np.where(rng.random((1, 12, 12, 1)) > 0.5, 5.0, -5.0).repeat(8, 1).repeat(8, 2)

    def speckled(db):
        intensity = 10 ** (db / 10) * rng.gamma(3.5, 1 / 3.5, db.shape)
        return speckle.db_to_model(tf.constant(10 * np.log10(intensity), tf.float32))

    flat, rough = speckled(flat_db), speckled(relief_db)
    assert float(tf.reduce_mean(speckle.relief_map(rough, 3, 15))) > 3 * float(tf.reduce_mean(speckle.relief_map(flat, 3, 15)))
    np.testing.assert_allclose(speckle.relief_map(tf.fill([1, 32, 32, 1], 0.3), 3, 15).numpy(), 0.0, atol=2e-3)


def test_relief_weight_adds_the_relief_gap_to_the_generator_loss():
    gen = p2p.build_generator(4, filters=4, num_downs=3)
    disc = p2p.build_discriminator(4, filters=4)
    cond = tf.one_hot(np.random.default_rng(2).integers(0, 4, (2, 32, 32)), 4)
    target = tf.random.stateless_uniform([2, 32, 32, 1], [3, 4], -1, 1)
    base = task.Pix2Pix(gen, disc).compute_losses(cond, target, training=False)
    with_relief = task.Pix2Pix(gen, disc, relief_weight=2.0).compute_losses(cond, target, training=False)
    gap = tf.reduce_mean(tf.abs(speckle.relief_map(base["fake"], 3, 15) - speckle.relief_map(target, 3, 15)), [1, 2, 3])
    np.testing.assert_allclose(with_relief["gen_total"].numpy(), (base["gen_total"] + 2.0 * gap).numpy(), rtol=1e-5)
    assert task.Pix2Pix.from_config(task.Pix2Pix(gen, disc, relief_weight=2.0).get_config()).relief_weight == 2.0


def test_noise_input_is_seeded_drawn_at_inference_and_off_by_default():
    cond = tf.one_hot(np.random.default_rng(3).integers(0, 4, (1, 32, 32)), 4)
    assert "noise" not in [l.name for l in p2p.build_generator(4, filters=4, num_downs=3).layers]
    gen = p2p.build_generator(4, filters=4, num_downs=3, noise_channels=2, speckle_seed=5)
    assert gen.get_layer("down1_conv").kernel.shape[2] == 6
    noise = tf.keras.Model(gen.inputs, gen.get_layer("noise").output)
    a, b = noise(cond).numpy(), noise(cond).numpy()
    np.testing.assert_array_equal(a[..., :4], cond.numpy())
    assert abs(a[..., 4:].std() - 1.0) < 0.1 and not np.array_equal(a[..., 4:], b[..., 4:])  # fresh draws
    speckle.reset_speckle_seed(gen, 9)
    first = gen(cond, training=False).numpy()
    speckle.reset_speckle_seed(gen, 9)
    np.testing.assert_array_equal(gen(cond, training=False).numpy(), first)                 # seeded
    with pytest.raises(InputError, match="gen_noise"):
        Pix2PixOptions(gen_noise=-1)
