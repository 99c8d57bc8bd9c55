"""`evaluate --task=glacier_zones`: CaFFe scores of a zone model or of prediction PNGs on whole images."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from tfseaice.data import glacier
from tfseaice.errors import InputError
from tfseaice.evaluation import zones as ev
from tfseaice.simulate import glaciers


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("zones") / "raw"
    glaciers.make_sample_dataset(str(root), 3, seed=1, test_fraction=0.67, min_size=300, max_size=330)
    return root


def truth_as_predictions(data, out):
    os.makedirs(out, exist_ok=True)
    for name, _, zones_path in glacier.list_pairs(str(data), "test"):
        shutil.copy(zones_path, out / f"{name}_zones.png")
    return out


def test_ground_truth_as_predictions_scores_miou_1_and_mde_0(data, tmp_path):
    nofronts = tmp_path / "nofronts"
    shutil.copytree(data, nofronts, ignore=shutil.ignore_patterns("fronts"))
    preds = truth_as_predictions(data, tmp_path / "p")
    res = ev.evaluate(str(nofronts), "test", str(tmp_path / "zones.json"), predictions_dir=str(preds))
    assert res["miou"] == 1.0 and res["mde_m"] == 0.0 and res["images_without_front"] == 0
    assert res["num_images"] == 2 and sum(g["n"] for g in res["glaciers"].values()) == 2
    assert res["settings"]["true_fronts"] == "extracted from the true zones"
    assert json.loads((tmp_path / "zones.json").read_text())["iou"] == {"rock": 1.0, "glacier": 1.0, "ocean": 1.0}
    assert (tmp_path / "zones_panel.png").stat().st_size > 10_000
    # With the data's own front files (glacier-side lines, 2 px thick) the truth is within ~1 pixel.
    res = ev.evaluate(str(data), "test", str(tmp_path / "f.json"), predictions_dir=str(preds))
    assert res["settings"]["true_fronts"] == "fronts/ files"
    for name, row in res["images"].items():
        assert 0.3 * row["resolution_m"] < row["mde_m"] < 1.5 * row["resolution_m"], name


def test_missing_or_bad_predictions_and_existing_outputs_are_refused(data, tmp_path):
    preds = truth_as_predictions(data, tmp_path / "p")
    first = sorted(preds.iterdir())[0]
    first.unlink()
    with pytest.raises(InputError, match="prediction missing for image") as e:
        ev.evaluate(str(data), "test", str(tmp_path / "z.json"), predictions_dir=str(preds))
    assert e.value.path == str(first)
    assert not (tmp_path / "z.json").exists()
    glacier.write_png(str(first), np.full((5, 5), 100, np.uint8))     # not a zone value
    with pytest.raises(InputError, match="zone values outside"):
        ev.evaluate(str(data), "test", str(tmp_path / "z.json"), predictions_dir=str(preds))
    truth_as_predictions(data, preds)
    ev.evaluate(str(data), "test", str(tmp_path / "z.json"), predictions_dir=str(preds))
    with pytest.raises(InputError, match="--overwrite"):
        ev.evaluate(str(data), "test", str(tmp_path / "z.json"), predictions_dir=str(preds))
    ev.evaluate(str(data), "test", str(tmp_path / "z.json"), predictions_dir=str(preds), overwrite=True)


def test_zone_classes_are_read_defensively_from_task_json():
    assert ev.zone_classes_of({"config": {}}) == 3
    assert ev.zone_classes_of({}) == 3
    assert ev.zone_classes_of({"config": {"zone_classes": 2}}) == 2
    assert ev.zone_classes_of({"config": {"extra": {"zone_classes": 2}}}) == 2
    assert ev.zone_classes_of({"config": {"extra": {"zone_classes": 4}}}) == 3
    with pytest.raises(InputError, match="must be 2 or 3") as e:
        ev.zone_classes_of({"config": {"zone_classes": "x"}}, "m/task.json")
    assert e.value.path == "m/task.json"


def make_untrained_model(model_dir, zone_classes):
    """A glacier_zones model folder with initial weights (no training: seconds, not minutes)."""
    import keras

    from tfseaice.tasks.glacier_zones import build_zones_model
    from tfseaice.training.config import TrainConfig
    from tfseaice.training.model_dir import save_weights_atomic, write_task_file

    keras.utils.set_random_seed(3)
    cfg = TrainConfig(task="glacier_zones", data_dir="unused", model_dir=str(model_dir),
                      extra={"filters": [2, 4], "zone_classes": zone_classes})
    model = build_zones_model(cfg, None)
    save_weights_atomic(model, os.path.join(model_dir, "checkpoints", "best.weights.h5"))
    write_task_file(cfg, {"kind": "glacier", "patch_size": 64}, "complete")


def test_cli_runs_a_model_on_whole_images_and_its_pngs_score_the_same(data, tmp_path):
    make_untrained_model(tmp_path / "m", zone_classes=2)
    out = tmp_path / "ev" / "zones.json"
    env = dict(os.environ, PYTHONPATH=os.getcwd(), TF_CPP_MIN_LOG_LEVEL="2")
    cmd = [sys.executable, "-m", "tfseaice.evaluate", "--task=glacier_zones", f"--model_dir={tmp_path / 'm'}",
           f"--data_root={data}", "--split=test", f"--output={out}", "--batch_size=4"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads(out.read_text())
    assert res["zone_classes"] == 2 and set(res["iou"]) == {"glacier", "ocean"}   # from task.json
    assert res["num_images"] == 2 and res["settings"]["tile"] == 64
    assert 0.0 <= res["miou"] <= 1.0 and "mIoU" in proc.stdout
    preds = tmp_path / "ev" / "zones_predictions"
    for name, _, zones_path in glacier.list_pairs(str(data), "test"):
        png = preds / f"{name}_zones.png"
        values = np.asarray(__import__("PIL.Image", fromlist=["Image"]).open(png))
        assert values.shape == glacier.read_zones_png(zones_path).shape    # whole image, any size
        assert set(np.unique(values)) <= {0, 64, 127, 254}
    assert (tmp_path / "ev" / "zones_panel.png").exists()
    again = ev.evaluate(str(data), "test", str(tmp_path / "again.json"), predictions_dir=str(preds), zone_classes=2)
    assert again["miou"] == res["miou"] and again["mde_m"] == res["mde_m"]
    assert again["images_without_front"] == res["images_without_front"]


def test_a_model_without_one_logit_per_class_index_is_refused():
    from tfseaice.models.zones import build_zones_unet

    with pytest.raises(InputError, match="gives 3 class logits") as e:
        ev.zone_predictor(build_zones_unet(1, 3, filters=(2, 4)), source="m3")
    assert e.value.path == "m3"
    predict = ev.zone_predictor(build_zones_unet(1, 4, filters=(2, 4)), tile=32, batch_size=16)
    assert predict(np.full((45, 70), 90, np.uint8)).shape == (45, 70)
