"""Glacier data options: synthetic mixing, --real_fraction, --zone_classes=2, and the gain table."""

import json
import os
import re
import subprocess
import sys
import types

import numpy as np
import pytest
import tensorflow as tf

from tfseaice.data import augment, dataset_info, glacier_mix, pipeline, records
from tfseaice.errors import InputError
from tfseaice.evaluation import synthetic_gain
from tfseaice.serving import glacier_images
from tfseaice.tasks import glacier_zones, pix2pix
from tfseaice.tasks.glacier_zones import ZonesOptions

P = 16
ROCK, GLACIER = 1, 2


def _write(out_dir, images, patch=P, per_image=2):
    """Records whose patch SAR is the constant `value` of its image: {name: value}."""
    os.makedirs(out_dir, exist_ok=True)
    classes = np.full((patch, patch), GLACIER, np.uint8)
    classes[:, : patch // 4] = ROCK
    classes[:, -patch // 4:] = 3
    shards = {}
    for split in ("train", "val"):
        shards[split] = f"{split}-00000-of-00001.tfrecord"
        with tf.io.TFRecordWriter(os.path.join(out_dir, shards[split])) as w:
            for name, value in images.items():
                for k in range(per_image if split == "train" else 1):
                    w.write(records.encode_glacier(np.full((patch, patch), value, np.uint8), classes, name, (0, k)))
    n = {"train": per_image * len(images), "val": len(images)}
    info = {"schema_version": records.SCHEMA_VERSION, "kind": "glacier", "patch_size": patch, "extra_channels": [],
            "splits": {s: {"num_examples": n[s], "num_images": len(images), "shards": [shards[s]]} for s in n}}
    with open(os.path.join(out_dir, "dataset_info.json"), "w") as f:
        json.dump(info, f)
    return info


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("mix")
    real = {f"Real_2010-01-{i + 1:02d}_TSX_7_1_1": 10 + i for i in range(8)}
    syn = {f"Synthetic_2000-01-0{i + 1}_GAN_20_0_0": 200 for i in range(4)}
    return types.SimpleNamespace(real=str(root / "real"), syn=str(root / "syn"), real_images=real,
                                 real_info=_write(str(root / "real"), real), syn_info=_write(str(root / "syn"), syn),
                                 small=str(root / "small"), small_info=_write(str(root / "small"), syn, patch=8))


def _cfg(data, **extra):
    return types.SimpleNamespace(data_dir=data.real, batch_size=8, seed=3, skip_corrupt=False, extra=extra)


def _values(ds, batches):
    """[batches, B] constant SAR value (0..255) of each patch."""
    return np.stack([np.rint(b["sar"].numpy()[:, 0, 0, 0] * 255) for b in ds.take(batches)])


def test_mixed_batches_hold_the_synthetic_fraction_and_repeat_with_the_seed(data):
    def mixed(seed):
        return glacier_mix.mixed_dataset(data.real, data.syn, 0.25, 8, seed, data.real_info, data.syn_info,
                                         augment=False)

    v = _values(mixed(3), 100)
    share = float(np.mean(v == 200))
    assert abs(share - 0.25) < 3 * np.sqrt(0.25 * 0.75 / v.size)      # 800 draws: within 3 sigma
    assert set(np.unique(v[v != 200])) <= set(data.real_images.values())
    np.testing.assert_array_equal(v, _values(mixed(3), 100))
    assert not np.array_equal(v, _values(mixed(4), 100))


def test_fraction_zero_is_the_real_only_pipeline_element_by_element(data):
    cfg = _cfg(data, synthetic_fraction=0.0, synthetic_data_dir=data.syn)
    got = glacier_mix.training_dataset(cfg, ZonesOptions.from_extra(cfg.extra), data.real_info)
    # The pipeline as it was before the mixing options, built from its parts.
    old = pipeline.read_records(dataset_info.shard_paths(data.real, data.real_info, "train"), True, 3).map(
        records.decode_glacier)
    old = old.map(lambda ex: {k: ex[k] for k in ("sar", "mask")}).shuffle(256, seed=3).repeat()
    old = pipeline._with_seeds(old, 3).map(augment.augment_glacier).batch(8, drop_remainder=True)
    for a, b in zip(got.take(6), old.take(6)):
        for key in ("sar", "mask"):
            np.testing.assert_array_equal(a[key].numpy(), b[key].numpy())


def test_real_fraction_picks_the_same_images_for_a_seed_and_only_trains_on_them(data):
    names = glacier_mix.image_names(data.real, data.real_info)
    assert names == sorted(data.real_images)
    pick = glacier_mix.choose_images(names, 0.25, seed=5)
    assert len(pick) == 2 and set(pick) <= set(names)
    assert glacier_mix.choose_images(names[::-1], 0.25, seed=5) == pick
    assert len({tuple(glacier_mix.choose_images(names, 0.25, s)) for s in range(6)}) > 1
    assert len(glacier_mix.choose_images(names, 0.01, seed=5)) == 1
    cfg = _cfg(data, real_fraction=0.25, real_fraction_seed=5)
    ds = glacier_mix.training_dataset(cfg, ZonesOptions.from_extra(cfg.extra), data.real_info)
    assert set(np.unique(_values(ds, 10))) == {data.real_images[n] for n in pick}


@pytest.mark.parametrize("task", [glacier_zones.TASK, pix2pix.TASK])
def test_two_zone_classes_leave_no_rock_in_the_masks(data, task):
    for zone_classes, rock_expected in ((3, True), (4, True), (2, False)):  # 4: the old spelling of 3
        cfg = types.SimpleNamespace(**vars(_cfg(data, zone_classes=zone_classes)), learning_rate=1e-3)
        train, val = task.make_datasets(cfg, data.real_info)
        for ds in (train.take(2), val):
            batch = next(iter(ds))
            mask = (batch[1] if isinstance(batch, tuple) else batch["mask"]).numpy()
            assert (mask == ROCK).any() == rock_expected
            assert (mask == GLACIER).mean() == pytest.approx(0.75 if zone_classes == 2 else 0.5)


def test_bad_options_are_one_line_input_errors(data):
    cases = [({"synthetic_fraction": 1.0, "synthetic_data_dir": data.syn}, "--synthetic_fraction", r"\[0, 1\)"),
             ({"synthetic_fraction": -0.1, "synthetic_data_dir": data.syn}, "--synthetic_fraction", r"\[0, 1\)"),
             ({"synthetic_fraction": 0.5}, "--synthetic_data_dir", "needed"),
             ({"real_fraction": 0.0}, "--real_fraction", r"\(0, 1\]"),
             ({"zone_classes": 5}, "--zone_classes", "2 or 3"),
             ({"synthetic_fraction": 0.5, "synthetic_data_dir": data.small}, "dataset_info.json",
              "patch_size 8 differs from --data_dir's 16")]
    for extra, path, what in cases:
        with pytest.raises(InputError, match=what) as err:
            glacier_mix.check_options(ZonesOptions.from_extra(extra), data.real, data.real_info)
        assert path in err.value.path and "\n" not in str(err.value)
    opts = ZonesOptions.from_extra({"synthetic_fraction": 0.5, "synthetic_data_dir": data.syn})
    assert glacier_mix.check_options(opts, data.real, data.real_info)["patch_size"] == P


def test_train_cli_refuses_a_bad_fraction_before_making_the_model_folder(data, tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run([sys.executable, "-m", "tfseaice.train", "--task=glacier_zones", f"--data_dir={data.real}",
                           f"--model_dir={tmp_path / 'm'}", "--synthetic_fraction=1.5"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.startswith("ERROR")]
    assert errors == ["ERROR: --synthetic_fraction: must be in [0, 1), got 1.5"]
    assert not (tmp_path / "m").exists()


def test_random_pairs_have_caffe_names():
    name = glacier_images.synthetic_name(40, seed=7)
    assert name == "Synthetic_2000-02-10_GAN_20_0_7"
    assert re.fullmatch(r"[A-Za-z]+_\d{4}-\d{2}-\d{2}_[A-Z0-9]+_\d+_\d+_\d+", name)


def _zones(root, setting, fraction, seed, miou, mde):
    path = root / setting / f"F{fraction}" / f"seed{seed}" / "zones.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"miou": miou, "mde_m": mde, "images_without_front": 0, "iou": {}}))


def test_gain_table_means_stds_and_paired_gains(tmp_path):
    runs = tmp_path / "runs"
    for seed, (m0, m5, d0, d5) in enumerate([(0.60, 0.66, 500.0, 400.0), (0.70, 0.72, 300.0, 320.0),
                                             (0.65, 0.71, 400.0, 330.0)]):
        _zones(runs, "real25", 0, seed, m0, d0)
        _zones(runs, "real25", 0.5, seed, m5, d5)
    _zones(runs, "full", 0, 1, 0.8, None)
    rows = synthetic_gain.write_report(str(runs), str(tmp_path / "out"))
    by = {(r["setting"], r["synthetic_fraction"]): r for r in rows}
    base, mix = by[("real25", 0.0)], by[("real25", 0.5)]
    assert base["runs"] == 3 and base["miou"] == pytest.approx(0.65)
    assert base["miou_std"] == pytest.approx(0.05)                  # sample std of .60 .70 .65
    assert mix["miou"] == pytest.approx(0.696666, abs=1e-5)
    assert mix["miou_gain"] == pytest.approx(0.046666, abs=1e-5)    # paired diffs .06 .02 .06
    assert mix["miou_gain_std"] == pytest.approx(np.std([0.06, 0.02, 0.06], ddof=1))
    assert mix["mde_m_gain"] == pytest.approx(-50.0)                # diffs -100 +20 -70
    assert base["mde_m"] == pytest.approx(400.0) and base["mde_m_std"] == pytest.approx(100.0)
    full = by[("full", 0.0)]
    assert full["mde_m"] is None and full["miou_std"] is None and full["miou_gain"] == 0.0
    md = (tmp_path / "out" / "synthetic_gain.md").read_text()
    assert "| real25 | 0.5 | 3 | 69.7 ± 3.2 | 350 ± 44 | +4.7 ± 2.3 | -50 ± 62 |" in md
    assert "| full | 0 | 1 | 80.0 | n/a | +0.0 | n/a |" in md
    assert json.loads((tmp_path / "out" / "synthetic_gain.json").read_text())["rows"] == json.loads(json.dumps(rows))
    png = (tmp_path / "out" / "synthetic_gain.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    with pytest.raises(InputError, match="overwrite"):
        synthetic_gain.write_report(str(runs), str(tmp_path / "out"))
    (runs / "full" / "F0" / "seed1" / "zones.json").write_text("{}")
    with pytest.raises(InputError, match="no 'miou'"):
        synthetic_gain.write_report(str(runs), str(tmp_path / "out2"))


def test_a_two_class_generator_draws_rock_as_glacier():
    from tfseaice.serving.generator import GeneratorFn

    gen = GeneratorFn(lambda c: 0.2 + 0.3 * c[..., 1:2] + 0.5 * c[..., 2:3], 4)   # rock 0.5, glacier 0.7
    classes = np.full((40, 40), GLACIER, np.uint8)
    classes[:, :10] = ROCK
    four = glacier_images.generate_image(gen, classes, mode="full", tile=32)
    gen.zone_classes = 2
    two = glacier_images.generate_image(gen, classes, mode="full", tile=32)
    assert four[0, 0] == round(0.5 * 255) and four[0, 20] == round(0.7 * 255)
    assert (two == round(0.7 * 255)).all()
