"""Tasks own their options: one declaration per task serves the train flags, task.json and the task;
a new task is one new file plus one registry line (the toy task of docs/architecture.md, trained,
evaluated and exported through the entry points on a copy of the package with that diff applied)."""

import dataclasses
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest
from absl import flags

from tfseaice import tasks
from tfseaice.tasks.pix2pix_options import Pix2PixOptions
from tfseaice.tasks.sic import SicOptions
from tfseaice.training.options import TaskOptions, define_flags, option

from sic_fixtures import convert_tiny

ROOT = pathlib.Path(__file__).resolve().parents[1]
TOY = pathlib.Path(__file__).resolve().parent / "toy" / "toy.py"
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


def test_every_task_option_is_one_train_flag_declared_once():
    fv = flags.FlagValues()
    names = define_flags(tasks.option_classes(), fv)
    every = {f.name for cls in tasks.option_classes() for f in dataclasses.fields(cls)}
    assert names == sorted(every) and {"filters", "composition_loss", "speckle", "synthetic_fraction"} <= every
    fv(["train", "--filters=4,8", "--zone_classes=4", "--chart_weights=1,1,0"])
    assert SicOptions.from_flags(fv).filters == (4, 8)
    assert tasks.get_task("icechart_regional").options.from_flags(fv).chart_weights == (1.0, 1.0, 0.0)
    assert tasks.get_task("pix2pix").options.from_flags(fv).zone_classes == 3     # 4: the old spelling of 3
    with pytest.raises(flags.IllegalFlagValueError, match="chart_weights"):
        fv["chart_weights"].parse("1,-1,0")
        fv.validate_all_flags()


def test_two_declarations_of_one_name_must_agree():
    @dataclasses.dataclass(frozen=True)
    class Other(TaskOptions):
        augment: bool = option(False, "another default")

    with pytest.raises(ValueError, match="--augment is declared twice"):
        define_flags([SicOptions, Other], flags.FlagValues())


def test_task_json_round_trip_and_old_folders():
    opts = SicOptions.from_extra({"filters": [4, 8], "unknown_key": 1})
    assert opts.filters == (4, 8) and opts.loss_reduction == "polygon"     # missing keys: the defaults
    assert json.loads(json.dumps(opts.to_extra()))["filters"] == [4, 8]
    assert SicOptions.from_extra(opts.to_extra()) == opts
    assert Pix2PixOptions.from_extra({}).speckle_looks is None          # a folder from before the option
    assert Pix2PixOptions.from_extra({"speckle_looks": 0}).speckle_looks == 0.0
    with pytest.raises(ValueError, match="integers"):
        SicOptions.from_extra({"filters": ["a"]})


def registry_diff():
    """(old line, new line) pairs of the registry diff shown in docs/architecture.md."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    block = [line.strip() for line in re.search(r"```diff\n(.*?)```", text, re.S).group(1).splitlines()]
    old = [line[1:] for line in block if line.startswith("-") and not line.startswith("---")]
    new = [line[1:] for line in block if line.startswith("+") and not line.startswith("+++")]
    assert len(old) == len(new) >= 1
    return list(zip(old, new))


def cli(cwd, *args):
    env = dict(ENV, PYTHONPATH=str(cwd))
    res = subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    return res.stdout


def test_a_new_task_is_one_file_plus_one_registry_line(tmp_path):
    pkg = tmp_path / "pkg"
    shutil.copytree(ROOT / "tfseaice", pkg / "tfseaice", ignore=shutil.ignore_patterns("__pycache__"))
    registry = pkg / "tfseaice" / "tasks" / "__init__.py"
    text = registry.read_text()
    for old, new in registry_diff():
        assert text.count(old + "\n") == 1, old   # the documented diff applies to today's registry
        text = text.replace(old + "\n", new + "\n")
    registry.write_text(text)
    shutil.copy(TOY, pkg / "tfseaice" / "tasks" / "toy.py")
    assert "tasks/toy.py" in (ROOT / "docs" / "architecture.md").read_text()

    records, _ = convert_tiny(tmp_path)
    model_dir = tmp_path / "toy_model"
    cli(pkg, "tfseaice.train", "--task=toy", "--toy_kernel=1", f"--data_dir={records}", f"--model_dir={model_dir}",
        "--epochs=1", "--steps_per_epoch=2", "--batch_size=4", "--precision=fp32")
    meta = json.loads((model_dir / "task.json").read_text())
    assert meta["task"] == "toy" and meta["config"]["extra"] == {"toy_kernel": 1}
    assert (model_dir / "history.csv").read_text().splitlines()[0].startswith("epoch")
    scene = sorted((tmp_path / "scenes").glob("*.nc"))[0]
    cli(pkg, "tfseaice.evaluate", "--task=sic", f"--model_dir={model_dir}", f"--scenes_glob={scene}",
        "--downsample=2", "--tile=64", "--overlap=16", "--precision=fp32", f"--output={tmp_path}/eval.json")
    assert json.loads((tmp_path / "eval.json").read_text())["truth_pixel_rmse"] >= 0
    cli(pkg, "tfseaice.export", f"--model_dir={model_dir}", f"--export_dir={tmp_path}/export")
    assert (tmp_path / "export" / "saved_model.pb").exists()
    with pytest.raises(AssertionError):   # and the real package does not know the toy
        cli(ROOT, "tfseaice.train", "--task=toy", f"--data_dir={records}", f"--model_dir={tmp_path}/x")
