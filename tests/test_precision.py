"""--precision: without a GPU, auto picks bf16 only on CPUs with native bf16; bf16 training keeps float32 weights."""

import json
import os

import keras
import numpy as np
import pytest

from tfseaice import precision
from tfseaice.serving.loading import load_trained
from tfseaice.train_lib import run_training
from tfseaice.errors import InputError

from sic_fixtures import convert_tiny
from test_training import read_history, tiny_config


@pytest.mark.parametrize("flags, expected", [
    ({"avx2", "avx512f", "amx_bf16", "amx_tile"}, "bf16"),
    ({"avx2", "avx512f", "avx512_bf16"}, "bf16"),
    ({"sse4_2", "avx2", "avx512f"}, "fp32"),
    (set(), "fp32"),
])
def test_auto_follows_the_cpu_flags(flags, expected):
    assert precision.resolve("auto", flags=flags, gpus=[]) == expected


def test_explicit_choice_wins_and_unknown_is_refused():
    assert precision.resolve("fp32", flags={"amx_bf16"}) == "fp32"
    assert precision.resolve("bf16", flags=set()) == "bf16"
    with pytest.raises(ValueError, match="precision must be one of"):
        precision.resolve("fp8")


def test_cpu_flags_reads_the_first_flags_line(tmp_path):
    path = tmp_path / "cpuinfo"
    path.write_text("processor\t: 0\nflags\t\t: fpu avx2 amx_bf16\n\nprocessor\t: 1\nflags\t\t: fpu\n")
    assert precision.cpu_flags(str(path)) == {"fpu", "avx2", "amx_bf16"}
    assert precision.cpu_flags(str(tmp_path / "missing")) == set()


def test_bf16_training_records_the_choice_and_keeps_float32_weights(tmp_path):
    data_dir, _ = convert_tiny(tmp_path)
    fp32 = tiny_config(data_dir, tmp_path / "fp32", precision="fp32")
    bf16 = tiny_config(data_dir, tmp_path / "bf16", precision="bf16")
    run_training(fp32)
    run_training(bf16)
    assert keras.mixed_precision.global_policy().name == "float32"  # restored after training
    for cfg, name in ((fp32, "fp32"), (bf16, "bf16")):
        with open(os.path.join(cfg.model_dir, "task.json")) as f:
            assert json.load(f)["config"]["precision"] == name
    loss32 = [float(r["loss"]) for r in read_history(fp32.model_dir)]
    loss16 = [float(r["loss"]) for r in read_history(bf16.model_dir)]
    assert loss16 != loss32, "bf16 computed exactly what fp32 did: the policy was not applied"
    assert np.all(np.isfinite(loss16))
    np.testing.assert_allclose(loss16[0], loss32[0], rtol=0.2)
    model, _ = load_trained(bf16.model_dir, expect_task="sic_regional")
    assert {w.dtype for w in model.weights} == {"float32"}


def test_unknown_precision_is_an_input_error(tmp_path):
    data_dir, _ = convert_tiny(tmp_path)
    with pytest.raises(InputError, match="precision"):
        run_training(tiny_config(data_dir, tmp_path / "m", precision="fp8"))
