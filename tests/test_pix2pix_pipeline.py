"""pix2pix end to end on tiny sample data: convert -> train (task object) -> evaluate -> generate -> export."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tfseaice.data import glacier
from tfseaice.errors import InputError
from tfseaice.simulate import glaciers

TINY = {"generator_filters": 2, "discriminator_filters": 2, "checkpoint_every": 1, "gen_kernel": 4,
        "disc_kernel": 4, "gan_weight": 1.0, "l1_weight": 100.0, "beta_1": 0.5, "augment": True,
        "sync_batchnorm": False}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from data_prep import glacier_to_tfrecord as g2t
    from tfseaice.training.config import TrainConfig
    from tfseaice.train_lib import run_training

    root = tmp_path_factory.mktemp("p2p")
    glaciers.make_sample_dataset(str(root / "raw"), 3, seed=1, test_fraction=0.34,
                                        min_size=300, max_size=330)
    g2t.convert(str(root / "raw"), str(root / "records"), patch_size=256, val_fraction=0.3, seed=1)
    common = dict(data_dir=str(root / "records"), epochs=2, steps_per_epoch=2, batch_size=2,
                  learning_rate=2e-4, image_every=1, seed=1)
    cfg = TrainConfig(task="pix2pix", model_dir=str(root / "p2p"), extra=dict(TINY), **common)
    run_training(cfg)
    zcfg = TrainConfig(task="glacier_zones", model_dir=str(root / "zones"),
                                extra={"filters": [2, 4, 4], "augment": False},
                                **dict(common, learning_rate=1e-3))
    run_training(zcfg)
    return root


def test_task_object_follows_the_contract():
    from tfseaice.serving.export_module_factory import EXPORTERS
    from tfseaice.tasks import get_task

    for name, monitor in (("pix2pix", ("val_ssim", "max")), ("glacier_zones", ("val_mean_iou", "max"))):
        task = get_task(name)
        assert task.name == name and task.monitor == monitor and task.data_kind == "glacier"
        for attr in ("make_datasets", "build_model", "callbacks"):
            assert callable(getattr(task, attr))
        # Export is the serving layer's: one export module per task family, chosen by its serving kind.
        assert not hasattr(task, "export") and callable(EXPORTERS[task.serving_kind])


def test_training_writes_scored_generator_checkpoints(trained):
    ckpt = trained / "p2p" / "checkpoints"
    assert (ckpt / "epoch_0001.weights.h5").exists() and (ckpt / "epoch_0002.weights.h5").exists()
    scores = json.loads((trained / "p2p" / "checkpoint_scores.json").read_text())
    assert [c["epoch"] for c in scores["checkpoints"]] == [1, 2]
    for c in scores["checkpoints"]:
        assert 0 < c["dice"] < 1 and -1 <= c["ssim"] <= 1 and c["num_images"] > 0
    logs = [os.path.join(d, f) for d, _, fs in os.walk(trained / "p2p" / "logs" / "images") for f in fs]
    assert logs, "no TensorBoard image panel written"


def _split(data_dir, info, split):
    """sar [N,P,P,1] in [0, 1] and mask [N,P,P] of a whole split, in file order."""
    from tfseaice.data import pipeline

    batches = list(pipeline.glacier_dataset(str(data_dir), split, 64, training=False, info=info))
    return (np.concatenate([b["sar"].numpy() for b in batches]), np.concatenate([b["mask"].numpy() for b in batches]))


def _pixel_scores(pred, mask):
    """Pixel accuracy and {zone: IoU} over the pixels that have data (true class != no data)."""
    valid = mask != glacier.NO_DATA
    accuracy = float(np.mean(pred[valid] == mask[valid]))
    iou = {}
    for c, name in enumerate(glacier.CLASS_NAMES):
        if c != glacier.NO_DATA:
            union = np.sum(((pred == c) | (mask == c)) & valid)
            iou[name] = float(np.sum((pred == c) & (mask == c) & valid) / union) if union else float("nan")
    return accuracy, iou


def test_evaluate_writes_curves_table_and_fcn_score(trained, tmp_path):
    from tfseaice.evaluation import pix2pix as ev

    out = tmp_path / "eval"
    res = ev.evaluate(str(trained / "p2p"), zones_model_dir=str(trained / "zones"), output=str(out))
    for f in ("curves.json", "curves.png", "evaluation.json", "table.md"):
        assert (out / f).exists(), f
    assert [c["epoch"] for c in res["curves"]] == [1, 2] and res["epoch"] == 2
    s = res["image_scores"]
    assert set(s) == {"generated", "baseline", "real"}
    real = s["real"]
    assert real["ssim"] == pytest.approx(1.0, abs=1e-4)
    fcn = res["fcn_score"]
    assert set(fcn["real"]) >= {"pixel_accuracy", "mean_iou", "per_class_iou"}
    assert set(fcn["real"]["per_class_iou"]) == {"rock", "glacier", "ocean"}
    assert set(res["checks"]) == {"ssim_beats_baseline"}  # the FCN-score difference is a measurement
    # The values, recomputed here: the zone model's classes on the real and on the baseline images,
    # scored against the masks by counting pixels. Also on the training split: its patch has no-data
    # pixels (the validation patch has none), which must be left out.
    from tfseaice.serving.loading import load_trained

    info = json.loads((trained / "records" / "dataset_info.json").read_text())
    zones, _ = load_trained(str(trained / "zones"), "best")
    on_train = ev.evaluate(str(trained / "p2p"), zones_model_dir=str(trained / "zones"), output=str(tmp_path / "tr"),
                           split="train")
    for split, result in (("val", res), ("train", on_train)):
        sar, mask = _split(trained / "records", info, split)
        assert (mask == glacier.NO_DATA).any() == (split == "train")
        scores = result["fcn_score"]
        baseline = ev.baseline_images(mask, ev.class_statistics(info), seed=0)
        for key, images in (("real", sar), ("baseline", baseline)):
            pred = np.argmax(zones(tf.constant(images), training=False).numpy(), axis=-1)
            accuracy, iou = _pixel_scores(pred, mask)
            assert scores[key]["pixel_accuracy"] == pytest.approx(accuracy, abs=1e-12), (split, key)
            assert scores[key]["per_class_iou"] == pytest.approx(iou, abs=1e-12, nan_ok=True), (split, key)
            assert scores[key]["mean_iou"] == pytest.approx(np.nanmean(list(iou.values())), abs=1e-12), (split, key)
        for key in ("generated", "baseline"):
            assert scores[f"{key}_to_real_miou"] == pytest.approx(scores[key]["mean_iou"] / scores["real"]["mean_iou"])
        assert scores["generated_minus_baseline_miou"] == pytest.approx(scores["generated"]["mean_iou"]
                                                                       - scores["baseline"]["mean_iou"], abs=1e-12)
    table = (out / "table.md").read_text()
    assert "trivial baseline" in table
    assert f"generator minus trivial baseline: {res['fcn_score']['generated_minus_baseline_miou']:+.4f}" in table
    assert "fcn_miou_beats_baseline" not in table
    # realism keys (tfseaice.evaluation.pix2pix_realism) and their figure
    assert (out / "realism.png").exists() and res["bn_at_inference"] == "moving"
    assert set(res["realism"]) == {"rock", "glacier", "ocean"}
    for r in res["realism"].values():
        assert set(r) >= {"mean_gen", "mean_real", "cv_gen", "cv_real", "cv_ratio"}
        assert r["cv_real"] > 0.05 and r["cv_ratio"] == pytest.approx(r["cv_gen"] / r["cv_real"])
    assert res["lattice_peak_real"] < 2.0 and np.isfinite(res["lattice_peak_gen"])
    with pytest.raises(Exception, match="epoch 7"):
        ev.evaluate(str(trained / "p2p"), output=str(out), epoch=7)


def test_generate_from_model_dir_and_export(trained, tmp_path):
    from tfseaice.serving import generator, glacier_images
    from tfseaice.serving.export_module_factory import export_trained
    from tfseaice.serving.loading import load_trained

    masks = sorted((trained / "raw" / "zones" / "test").glob("*_zones.png"))
    for ckpt in ("best", "1"):
        gen = generator.load_from_model_dir(str(trained / "p2p"), ckpt)
        done = glacier_images.generate_from_masks(gen, [str(m) for m in masks], str(tmp_path / f"out_{ckpt}"))
        for mask_path, out_path in done:
            assert os.path.basename(out_path) == os.path.basename(mask_path).replace("_zones.png", ".png")
            assert np.asarray(Image.open(out_path)).shape == glacier.read_zones_png(mask_path).shape
    model, meta = load_trained(str(trained / "p2p"), "best")
    export_trained("pix2pix", model, str(tmp_path / "sm"), meta["dataset_info"])
    fn = generator.load_saved_model(str(tmp_path / "sm"))
    x = tf.one_hot(tf.zeros([1, 256, 256], tf.int32) + 2, 4)
    expected = generator.from_keras(model.generator)(x)
    np.testing.assert_allclose(fn(x), expected, atol=1e-5)


def test_speckle_looks_override_in_evaluate_and_generate(trained, tmp_path):
    """A fixed-looks speckle generator scored and generated with more looks: weaker speckle everywhere,
    the same median image, the oracle at the same L; the trained L when not asked."""
    from tfseaice.evaluation import pix2pix as ev
    from tfseaice.serving import generator
    from tfseaice.training.config import TrainConfig
    from tfseaice.train_lib import run_training

    model_dir = str(tmp_path / "speckled")
    run_training(TrainConfig(task="pix2pix", model_dir=model_dir, data_dir=str(trained / "records"), epochs=1,
                             steps_per_epoch=1, batch_size=2, learning_rate=2e-4, image_every=0, seed=1,
                             extra=dict(TINY, speckle="gamma_fixed", speckle_looks=3.5,
                                        gen_upsample="resize_conv")))
    trained_l = ev.evaluate(model_dir, output=str(tmp_path / "e0"), split="train")
    more = ev.evaluate(model_dir, output=str(tmp_path / "e1"), split="train", speckle_looks=60.0)
    assert trained_l["speckle_looks_override"] is None and more["speckle_looks_override"] == 60.0
    assert trained_l["image_scores"]["speckle_oracle"]["looks"] == pytest.approx(3.5)
    assert more["image_scores"]["speckle_oracle"]["looks"] == 60.0
    assert more["image_scores"]["generated_median"] == pytest.approx(trained_l["image_scores"]["generated_median"])
    for name, r in more["realism"].items():
        assert r["cv_gen"] < 0.7 * trained_l["realism"][name]["cv_gen"], name
    x = tf.one_hot(tf.zeros([1, 256, 256], tf.int32) + 2, 4)   # all glacier: the spread is the speckle's
    local = [np.std(generator.load_from_model_dir(model_dir, speckle_looks=looks, seed=0)(x))
             for looks in (0, 60.0)]
    assert local[1] < 0.5 * local[0]
    with pytest.raises(InputError, match="--speckle_looks=5: the generator has no speckle head"):
        generator.load_from_model_dir(str(trained / "p2p"), speckle_looks=5.0)   # trained with --speckle=none
