"""--precision=auto as a decision (tfseaice.precision.choose): mixed_float16 on a GPU with Tensor
Cores, bf16 on CPUs with native bf16, fp32 elsewhere; and fp16 runs end to end on this CPU.

No GPU is here, so the GPU branch is tested through the decision function, and the fp16 path
(mixed_float16 + loss scaling in the custom train steps) is run on the CPU, where TensorFlow
executes float16 too: what a GPU user's `auto` will train with.
"""

import json
import os

import keras
import numpy as np
import pytest

from tfseaice import precision
from tfseaice.serving.loading import load_trained, resolve_precision
from tfseaice.errors import InputError
from tfseaice.train_lib import run_training

from sic_fixtures import convert_tiny
from test_training import read_history, tiny_config

AMX = {"avx2", "avx512f", "amx_bf16", "amx_tile"}


@pytest.mark.parametrize("gpus, flags, expected", [
    ([(8, 0)], set(), "fp16"),              # A100
    ([(7, 0), (7, 5)], AMX, "fp16"),        # V100 + T4: the GPU decides, not the host CPU
    ([None], set(), "fp16"),                # capability unknown: assumed new enough
    ([(6, 1)], AMX, "fp32"),                # Pascal: no Tensor Cores, and the GPU runs the model
    ([(8, 6), (6, 0)], set(), "fp32"),      # one old GPU in a mirrored set holds the others back
    ([], AMX, "bf16"),                      # CPUs as before
    ([], {"avx2", "avx512_bf16"}, "bf16"),
    ([], {"avx2", "avx512f"}, "fp32"),
    ([], set(), "fp32"),
])
def test_auto_decision(gpus, flags, expected):
    assert precision.choose(gpus, flags) == expected
    assert precision.resolve("auto", flags=flags, gpus=gpus) == expected


def test_explicit_fp16_and_its_policy():
    assert precision.resolve("fp16", flags=set(), gpus=[]) == "fp16"
    assert precision.POLICY["fp16"] == "mixed_float16"
    with precision.policy("fp16"):
        assert keras.mixed_precision.global_policy().name == "mixed_float16"
    assert keras.mixed_precision.global_policy().name == "float32"


def test_a_saved_model_refuses_fp16():
    with pytest.raises(InputError, match="fp16 needs --model_dir"):
        resolve_precision("fp16", saved_model=True)


def test_fp16_training_scales_the_loss_and_keeps_float32_weights(tmp_path):
    data_dir, _ = convert_tiny(tmp_path)
    cfg = tiny_config(data_dir, tmp_path / "fp16", precision="fp16")
    run_training(cfg)
    assert keras.mixed_precision.global_policy().name == "float32"  # restored after training
    with open(os.path.join(cfg.model_dir, "task.json")) as f:
        assert json.load(f)["config"]["precision"] == "fp16"
    losses = [float(r["loss"]) for r in read_history(cfg.model_dir)]
    assert np.all(np.isfinite(losses))
    model, _ = load_trained(cfg.model_dir, expect_task="sic_regional", precision="fp16")
    assert precision.model_precision(model) == "fp16"
    assert {w.dtype for w in model.weights} == {"float32"}


def test_pix2pix_under_fp16_scales_both_losses_and_trains():
    """The GAN's own train step (two optimizers, no compile-time loss) gets loss scaling too."""
    from test_pix2pix import _batch, _tiny

    with precision.policy("fp16"):
        model = _tiny(num_downs=4)
        assert isinstance(model.gen_optimizer, keras.optimizers.LossScaleOptimizer)
        assert isinstance(model.disc_optimizer, keras.optimizers.LossScaleOptimizer)
        before = [w.numpy().copy() for w in model.generator.trainable_weights]
        # Dynamic loss scaling starts high and skips the steps whose scaled gradients overflow
        # (halving the scale each time): within a few steps the generator must move.
        for step in range(12):
            logs = model.train_step(_batch(n=2, size=64, seed=step))
            after = [w.numpy() for w in model.generator.trainable_weights]
            if any(not np.array_equal(a, b) for a, b in zip(before, after)):
                break
    assert all(np.isfinite(float(v)) for v in logs.values())
    assert any(not np.array_equal(a, b) for a, b in zip(before, after)), "the generator did not move in 12 steps"
    assert {w.dtype for w in model.generator.weights} == {"float32"}
