"""pix2pix: generator, PatchGAN, losses, train step, variants, metrics, generation, export."""

import os
import types

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tfseaice import losses, metrics
from tfseaice.data import glacier
from tfseaice.models import pix2pix as p2p
from tfseaice.tasks import pix2pix as task
from tfseaice.tasks import pix2pix_batches as batches

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VARIANTS = ("orig", "gen5", "dis3", "l1_1_gan_100", "l1_50_gan_50")
INFO = {"extra_channels": [], "patch_size": 256}


def _bce(logits, label):
    z = np.asarray(logits, np.float64)
    return np.maximum(z, 0) - z * label + np.log1p(np.exp(-np.abs(z)))


def _tiny(gan_weight=1.0, l1_weight=100.0, dropout_rate=0.5, sync=False, channels=4, num_downs=8, sgd=None):
    gen = p2p.build_generator(channels, filters=4, dropout_rate=dropout_rate, sync_batchnorm=sync,
                              num_downs=num_downs)
    disc = p2p.build_discriminator(channels, filters=4, sync_batchnorm=sync)
    model = task.Pix2Pix(gen, disc, gan_weight=gan_weight, l1_weight=l1_weight)
    if sgd:
        model.compile(gen_optimizer=keras.optimizers.SGD(sgd), disc_optimizer=keras.optimizers.SGD(sgd))
    else:
        model.compile()
    return model


def _amplify(model, factor):
    """Scale conv kernels so that signals survive the tiny N(0, 0.02) networks."""
    for layer in model.layers:
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.Conv2DTranspose)):
            layer.kernel.assign(layer.kernel * factor)


def _batch(n=2, size=256, seed=0):
    rng = np.random.default_rng(seed)
    mask = rng.integers(0, 4, (n, size, size)).astype(np.int32)
    sar = rng.uniform(0, 1, (n, size, size, 1)).astype(np.float32)
    return {"mask": tf.constant(mask), "sar": tf.constant(sar)}


def _flagfile(name):
    flags = {}
    with open(os.path.join(ROOT, "configs", f"pix2pix_{name}.flags")) as f:
        for line in f:
            line = line.strip()
            if line.startswith("--"):
                key, _, value = line[2:].partition("=")
                flags[key] = value
    return flags


# ----------------------------------------------------------------- networks

def test_patchgan_gives_30x30_logits_for_256_input():
    disc = p2p.build_discriminator(4)  # the paper's discriminator
    out = disc([tf.zeros([1, 256, 256, 4]), tf.zeros([1, 256, 256, 1])])
    assert out.shape == (1, 30, 30, 1)
    convs = [l for l in disc.layers if isinstance(l, keras.layers.Conv2D)]
    assert len(convs) == 5 and all(c.kernel_size == (4, 4) for c in convs)
    assert [c.strides for c in convs] == [(2, 2)] * 3 + [(1, 1)] * 2
    assert disc.get_layer("logits").activation is keras.activations.linear  # logits, BCE from logits
    assert all(isinstance(l, keras.layers.LeakyReLU) and l.negative_slope == pytest.approx(0.2)
               for l in disc.layers if "lrelu" in l.name)


def test_paper_generator_architecture():
    gen = p2p.build_generator(4)  # 64 filters, 8 down / 8 up
    downs = [l for l in gen.layers if l.name.endswith("_conv") and l.name.startswith("down")]
    ups = [l for l in gen.layers if l.name.endswith("_convT")]
    assert len(downs) == 8 and len(ups) == 8
    assert [l.filters for l in downs] == [64, 128, 256, 512, 512, 512, 512, 512]
    assert [l.filters for l in ups] == [512, 512, 512, 512, 256, 128, 64, 1]
    assert all(l.kernel_size == (4, 4) and l.strides == (2, 2) for l in downs + ups)
    drops = [l for l in gen.layers if isinstance(l, keras.layers.Dropout)]
    assert [d.name for d in drops] == ["up1_dropout", "up2_dropout", "up3_dropout"]
    assert all(d.rate == 0.5 for d in drops)
    assert all(l.negative_slope == pytest.approx(0.2) for l in gen.layers if isinstance(l, keras.layers.LeakyReLU))
    assert "down1_bn" not in [l.name for l in gen.layers]  # first encoder layer: no BatchNorm
    assert sum(isinstance(l, keras.layers.Concatenate) for l in gen.layers) == 7  # skips
    init = downs[3].kernel_initializer
    assert isinstance(init, keras.initializers.RandomNormal) and init.stddev == 0.02 and init.mean == 0.0
    w = downs[3].kernel.numpy()
    assert abs(w.std() - 0.02) < 0.002 and abs(w.mean()) < 0.001


def test_generator_output_is_in_minus_one_to_one():
    gen = p2p.build_generator(4, filters=4)
    _amplify(gen, 200.0)  # so that tanh saturates
    x = tf.one_hot(_batch(2)["mask"], 4)
    out = gen(x, training=False).numpy()
    assert out.shape == (2, 256, 256, 1)
    assert out.min() >= -1.0 and out.max() <= 1.0
    assert out.min() < -0.99 and out.max() > 0.99  # saturated on both sides: it is a tanh
    assert gen.get_layer("sar").activation is keras.activations.tanh


def test_generator_is_fully_convolutional_for_multiples_of_256():
    gen = p2p.build_generator(4, filters=4)
    assert gen(tf.zeros([1, 512, 768, 4])).shape == (1, 512, 768, 1)


def test_dropout_at_inference_is_an_explicit_choice():
    gen = p2p.build_generator(4, filters=4)
    _amplify(gen, 25.0)
    x = tf.one_hot(_batch(1)["mask"], 4)
    np.testing.assert_array_equal(gen(x, training=False), gen(x, training=False))
    assert p2p.set_dropout_at_inference(gen, True) == 3
    assert np.abs(gen(x, training=False) - gen(x, training=False)).mean() > 1e-3
    p2p.set_dropout_at_inference(gen, False)
    np.testing.assert_array_equal(gen(x, training=False), gen(x, training=False))


# ------------------------------------------------------------------- losses

def test_gan_losses_against_known_values():
    zeros = tf.zeros([2, 30, 30, 1])
    assert losses.gan_generator_loss(zeros).numpy() == pytest.approx(np.log(2), rel=1e-6)
    assert losses.gan_discriminator_loss(zeros, zeros).numpy() == pytest.approx(np.log(2), rel=1e-6)
    big = tf.fill([1, 30, 30, 1], 20.0)
    assert losses.gan_discriminator_loss(big, -big).numpy() < 1e-6
    assert losses.gan_generator_loss(-big).numpy() == pytest.approx(20.0, rel=1e-6)
    per = losses.l1_loss(tf.constant([[0.0, 1.0], [1.0, 1.0]]), tf.constant([[1.0, 1.0], [1.0, 0.5]]),
                         reduce=False)
    np.testing.assert_allclose(per, [0.5, 0.25])


# -------------------------------------------------------------- train step

def test_one_train_step_changes_both_networks_and_matches_hand_computation():
    keras.utils.set_random_seed(3)
    model = _tiny(gan_weight=2.0, l1_weight=7.0, dropout_rate=0.0)  # no dropout: deterministic forward
    batch = _batch(2)
    cond, target = batches.split_batch(batch)
    fake = model.generator(cond, training=True)
    d_real = model.discriminator([cond, target], training=True).numpy()
    d_fake = model.discriminator([cond, fake], training=True).numpy()
    gen_gan = _bce(d_fake, 1.0).mean()
    gen_l1 = np.abs(target.numpy() - fake.numpy()).mean()
    disc = 0.5 * (_bce(d_real, 1.0).mean() + _bce(d_fake, 0.0).mean())
    g_before = [w.numpy().copy() for w in model.generator.trainable_weights]
    d_before = [w.numpy().copy() for w in model.discriminator.trainable_weights]

    logs = model.train_step(batch)

    assert float(logs["gen_gan"]) == pytest.approx(gen_gan, rel=1e-4)
    assert float(logs["gen_l1"]) == pytest.approx(gen_l1, rel=1e-4)
    assert float(logs["gen_total"]) == pytest.approx(2.0 * gen_gan + 7.0 * gen_l1, rel=1e-4)
    assert float(logs["disc_loss"]) == pytest.approx(disc, rel=1e-4)
    g_changed = [not np.allclose(a, w.numpy()) for a, w in zip(g_before, model.generator.trainable_weights)]
    d_changed = [not np.allclose(a, w.numpy()) for a, w in zip(d_before, model.discriminator.trainable_weights)]
    assert all(g_changed) and all(d_changed)
    # Adam's first step moves each weight by about the learning rate (2e-4)
    step = np.abs(model.generator.get_layer("down1_conv").kernel.numpy() - g_before[0])
    assert np.median(step) == pytest.approx(2e-4, rel=0.2)
    assert int(model.gen_optimizer.iterations) == 1 and int(model.disc_optimizer.iterations) == 1
    assert model.gen_optimizer.beta_1 == 0.5 and float(model.gen_optimizer.learning_rate) == pytest.approx(2e-4)


def test_train_step_under_mirrored_strategy_equals_one_device():
    """Same global batch on 2 replicas (synchronized BatchNorm) -> same losses and updates.

    Plain SGD, so that a wrongly scaled loss (e.g. summed instead of averaged
    over replicas) shows in the update size (Adam's first step would hide it).
    """
    assert len(tf.config.list_logical_devices("CPU")) >= 2
    keras.utils.set_random_seed(5)
    one = _tiny(dropout_rate=0.0, sync=True, num_downs=4, sgd=0.5)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"],
                                              cross_device_ops=tf.distribute.ReductionToOneDevice())
    with strategy.scope():
        two = _tiny(dropout_rate=0.0, sync=True, num_downs=4, sgd=0.5)
    two.generator.set_weights(one.generator.get_weights())
    two.discriminator.set_weights(one.discriminator.get_weights())
    before = one.generator.get_weights() + one.discriminator.get_weights()
    ds = tf.data.Dataset.from_tensors(_batch(4, size=64, seed=9))
    h1 = one.fit(ds, epochs=1, verbose=0).history
    h2 = two.fit(ds, epochs=1, verbose=0).history
    for key in ("gen_total", "gen_gan", "gen_l1", "disc_loss"):
        assert h2[key][0] == pytest.approx(h1[key][0], rel=1e-4), key
    after1 = one.generator.get_weights() + one.discriminator.get_weights()
    after2 = two.generator.get_weights() + two.discriminator.get_weights()
    for w0, a, b in zip(before, after1, after2):
        d1, d2 = a - w0, b - w0
        np.testing.assert_allclose(d2, d1, rtol=1e-3, atol=1e-3 * np.abs(d1).max() + 1e-9)
    assert max(np.abs(a - w0).max() for w0, a in zip(before, after1)) > 1e-4


def test_extra_channels_condition_the_generator():
    info = {"extra_channels": ["elevation"], "patch_size": 256}
    cfg = types.SimpleNamespace(extra={"generator_filters": 2, "discriminator_filters": 2}, learning_rate=2e-4)
    model = task.build_pix2pix(cfg, info)
    assert model.generator.input_shape[-1] == 5 and model.discriminator.input_shape[0][-1] == 5
    batch = dict(_batch(2), extra=tf.random.uniform([2, 256, 256, 1]))
    cond, _ = batches.split_batch(batch)
    np.testing.assert_array_equal(cond[..., 4], batch["extra"][..., 0])
    np.testing.assert_array_equal(batches.classes_from_condition(cond), batch["mask"])
    logs = model.train_step(batch)
    assert np.isfinite(float(logs["gen_total"]))


def test_test_step_reports_l1_dice_ssim():
    model = _tiny()
    batch = _batch(2)
    logs = model.test_step(batch)
    fake01 = batches.to_unit_range(model.generator(batches.split_batch(batch)[0], training=False)).numpy()
    real = batch["sar"].numpy()
    assert float(logs["dice"]) == pytest.approx(np.mean([metrics.dice_non_binary(f, r) for f, r in zip(fake01, real)]),
                                                rel=1e-4)
    assert float(logs["ssim"]) == pytest.approx(float(np.mean(metrics.ssim(fake01, real))), rel=1e-4)
    assert float(logs["l1"]) == pytest.approx(np.abs(fake01 * 2 - 1 - (real * 2 - 1)).mean(), rel=1e-3)


# ------------------------------------------------------------------ variants

def test_each_variant_config_changes_exactly_what_it_should():
    base = _flagfile("orig")
    expected = {"orig": {}, "gen5": {"gen_kernel": "5"}, "dis3": {"disc_kernel": "3"},
                "l1_1_gan_100": {"gan_weight": "100", "l1_weight": "1"},
                "l1_50_gan_50": {"gan_weight": "50", "l1_weight": "50"}}
    for name in VARIANTS:
        flags = _flagfile(name)
        diff = {k: v for k, v in flags.items() if base.get(k) != v and k != "model_dir"}
        assert diff == expected[name], name
        assert set(flags) == set(base), name
    assert base["epochs"] == "300" and base["checkpoint_every"] == "15"
    assert float(base["learning_rate"]) == 2e-4 and float(base["beta_1"]) == 0.5
    assert (base["gen_kernel"], base["disc_kernel"], base["gan_weight"], base["l1_weight"]) == ("4", "4", "1", "100")


def _cfg(flags):
    extra = {k: flags[k] for k in ("gen_kernel", "disc_kernel") if k in flags}
    extra.update({k: float(flags[k]) for k in ("gan_weight", "l1_weight", "beta_1") if k in flags})
    extra.update(generator_filters=2, discriminator_filters=2)  # tiny: shapes are what we compare
    return types.SimpleNamespace(extra=extra, learning_rate=float(flags["learning_rate"]))


def _shapes(model):
    return [tuple(w.shape) for w in model.weights]


def test_each_variant_builds_the_model_it_names():
    models = {name: task.build_pix2pix(_cfg(_flagfile(name)), INFO) for name in VARIANTS}
    orig = models["orig"]
    x = tf.zeros([1, 256, 256, 4])
    for name, m in models.items():
        same_gen = _shapes(m.generator) == _shapes(orig.generator)
        same_disc = _shapes(m.discriminator) == _shapes(orig.discriminator)
        same_loss = (m.gan_weight, m.l1_weight) == (orig.gan_weight, orig.l1_weight)
        assert (same_gen, same_disc, same_loss) == {
            "orig": (True, True, True), "gen5": (False, True, True), "dis3": (True, False, True),
            "l1_1_gan_100": (True, True, False), "l1_50_gan_50": (True, True, False)}[name], name
    assert all(l.kernel_size == (5, 5) for l in models["gen5"].generator.layers if "conv" in l.name)
    assert all(l.kernel_size == (3, 3) for l in models["dis3"].discriminator.layers if l.name.endswith("conv")
               or l.name == "logits")
    assert models["dis3"].discriminator([x, x[..., :1]]).shape == (1, 32, 32, 1)
    assert (models["l1_1_gan_100"].gan_weight, models["l1_1_gan_100"].l1_weight) == (100.0, 1.0)
    assert (models["l1_50_gan_50"].gan_weight, models["l1_50_gan_50"].l1_weight) == (50.0, 50.0)
    assert (orig.gan_weight, orig.l1_weight) == (1.0, 100.0)


def test_gan_and_l1_weights_enter_the_generator_loss():
    batch = _batch(1)
    keras.utils.set_random_seed(1)
    a = _tiny(gan_weight=1.0, l1_weight=100.0, dropout_rate=0.0)
    b = _tiny(gan_weight=100.0, l1_weight=1.0, dropout_rate=0.0)
    b.set_weights(a.get_weights())
    cond, target = batches.split_batch(batch)
    la, lb = a.compute_losses(cond, target), b.compute_losses(cond, target)
    np.testing.assert_allclose(la["gen_gan"], lb["gen_gan"], rtol=1e-6)
    np.testing.assert_allclose(la["gen_total"], la["gen_gan"] + 100 * la["gen_l1"], rtol=1e-5)
    np.testing.assert_allclose(lb["gen_total"], 100 * lb["gen_gan"] + lb["gen_l1"], rtol=1e-5)


# ------------------------------------------------------------------- metrics

def test_dice_non_binary_known_values():
    assert metrics.dice_non_binary([1.0, 0.5], [0.5, 0.5]) == pytest.approx(0.6)  # 2*0.75/2.5
    x = np.random.default_rng(0).uniform(size=(32, 32))
    # Eq. 6 is not 1 for identical grey images: 2 sum(x^2) / (2 sum(x)) = sum(x^2) / sum(x)
    assert metrics.dice_non_binary(x, x) == pytest.approx((x * x).sum() / x.sum())
    binary = (x > 0.5).astype(float)
    assert metrics.dice_non_binary(binary, binary) == pytest.approx(1.0)
    assert metrics.dice_non_binary(x, np.zeros_like(x)) == 0.0
    assert metrics.dice_non_binary(np.zeros(4), np.zeros(4)) == 1.0
    np.testing.assert_allclose(metrics.batch_dice_non_binary(tf.constant([[1.0, 0.5], [1.0, 1.0]]),
                                                             tf.constant([[0.5, 0.5], [0.0, 0.0]])), [0.6, 0.0])


def test_ssim_known_values():
    x = np.random.default_rng(1).uniform(size=(64, 64))
    assert metrics.ssim(x, x) == pytest.approx(1.0, abs=1e-5)
    # constant images: only the luminance term, (2ab + C1) / (a^2 + b^2 + C1)
    c1 = (0.01 * 1.0) ** 2
    a, b = 0.3, 0.6
    assert metrics.ssim(np.full((32, 32), a), np.full((32, 32), b)) == pytest.approx(
        (2 * a * b + c1) / (a * a + b * b + c1), abs=2e-4)
    # a noisy copy, against scikit-image with the same window and constants
    from skimage.metrics import structural_similarity

    y = np.clip(x + 0.1 * np.random.default_rng(2).standard_normal(x.shape), 0, 1)
    ref = structural_similarity(x, y, data_range=1.0, gaussian_weights=True, sigma=1.5,
                                use_sample_covariance=False)
    assert metrics.ssim(x, y) == pytest.approx(ref, abs=1e-4)
    assert metrics.ssim(x, 1 - x) < 0


def test_segmentation_scores_known_values():
    pred = np.array([1, 1, 2, 3, 0, 2])
    true = np.array([1, 2, 2, 3, 0, 0])  # the last two pixels are no data: ignored
    s = metrics.segmentation_scores(pred, true, 4, ignore=0)
    assert s["pixel_accuracy"] == pytest.approx(0.75)
    assert s["per_class_iou"] == pytest.approx({1: 0.5, 2: 0.5, 3: 1.0})
    assert s["mean_iou"] == pytest.approx(2 / 3)


# --------------------------------------------------------- generation/export

def test_generating_from_a_300x700_mask_returns_300x700(tmp_path):
    from tfseaice.serving import generator, glacier_images
    from tfseaice.data import glacier_masks

    gen = generator.from_keras(p2p.build_generator(4, filters=4))
    classes = glacier_masks.random_fjord_mask(300, 700, 3, nodata_probability=1.0)
    masks = tmp_path / "masks"
    masks.mkdir()
    glacier.write_png(str(masks / "SI_2011 04$12_zones.png"), glacier.classes_to_zones(classes))
    done = glacier_images.generate_from_masks(gen, [str(masks / "SI_2011 04$12_zones.png")], str(tmp_path / "out"))
    assert [os.path.basename(p) for _, p in done] == ["SI_2011_04_12.png"]
    img = np.asarray(Image.open(done[0][1]))
    assert img.shape == (300, 700) and img.dtype == np.uint8
    assert (img[classes == 0] == 0).all() and (img[classes != 0] >= 1).all()
    for mode in ("tile", "full"):
        assert glacier_images.generate_image(gen, classes[:257, :300], mode=mode).shape == (257, 300)
    with pytest.raises(Exception, match="overwrite"):
        glacier_images.generate_from_masks(gen, [str(masks / "SI_2011 04$12_zones.png")], str(tmp_path / "out"))


def test_output_names_cannot_escape_out_dir():
    from tfseaice.serving import glacier_images

    assert glacier_images.output_name("../../etc/passwd_zones.png") == "passwd.png"
    assert glacier_images.output_name("/x/..._zones.png") == "mask.png"
    assert glacier_images.output_name("a/b c;rm -rf_zones.png") == "b_c_rm_-rf.png"


def test_random_masks_write_training_pairs(tmp_path):
    from tfseaice.serving import generator, glacier_images

    gen = generator.from_keras(p2p.build_generator(4, filters=4))
    names = glacier_images.generate_random(gen, 2, str(tmp_path / "syn"), seed=3, min_size=300, max_size=310)
    assert len(names) == 2
    pairs = glacier.list_pairs(str(tmp_path / "syn"), "train")
    assert [p[0] for p in pairs] == sorted(names)
    img = glacier.read_image(str(tmp_path / "syn"), "train", names[0])
    assert 300 <= img.sar.shape[0] <= 310 and img.sar.shape == img.classes.shape


def test_export_round_trip(tmp_path):
    from tfseaice.serving import generator, pix2pix_export

    g = p2p.build_generator(4, filters=4)
    pix2pix_export.export_generator(task.Pix2Pix(g, p2p.build_discriminator(4, filters=4)), str(tmp_path / "sm"))
    loaded = tf.saved_model.load(str(tmp_path / "sm"))
    sig = loaded.signatures["serving_default"]
    assert list(sig.structured_input_signature[1]) == ["mask"]
    assert list(sig.structured_outputs) == ["sar"]
    x = tf.one_hot(_batch(2, 256)["mask"][:, :, :], 4)
    x = tf.concat([x, x], axis=2)  # 256 x 512
    served = sig(mask=x)["sar"].numpy()
    expected = ((g(x, training=False).numpy() + 1) / 2).clip(0, 1)
    np.testing.assert_allclose(served, expected, atol=1e-5)
    fn = generator.load_saved_model(str(tmp_path / "sm"))
    np.testing.assert_allclose(fn(x), expected, atol=1e-5)
