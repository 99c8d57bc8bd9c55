"""`--composition_loss=pll_focal` (partial-label focal loss, Vahedi et al. 2024, arXiv 2406.03645).

Each pixel's candidate classes are its polygon's stages (forms), their partial
concentrations the confidences q; the pixel's loss is -sum_c q_c (1 - p_c)^gamma
log p_c. Checked against a literal per-image, per-polygon, per-pixel loop
(value and gradient), against the properties that tell it from xent, under a
two-replica MirroredStrategy (with the other kinds, in test_composition_loss.py), and
through the model, the task and the flags.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfseaice import losses
from tfseaice.losses import composition_loss
from tfseaice.losses.options import check_composition_options
from tfseaice.tasks import get_task
from tfseaice.tasks.icechart import IcechartRegionalModel

from test_composition_loss import COUNTS, _batch, _ragged, _value_and_grad
from test_icechart_model import _model, make_batch

B, K = 4, 6


def _loop(logits, ids, comp, gamma, reduction, weighting, counts=COUNTS):
    """The loss by literal loops: every pixel of every labelled polygon, then the reductions."""
    probs = tf.nn.softmax(logits)
    per_image = []
    for img in range(logits.shape[0]):
        terms = []
        for pid in np.unique(ids[img]):
            if pid < 0 or pid >= counts[img] or not np.all(np.isfinite(comp[img, pid])):
                continue
            q = tf.constant(comp[img, pid])
            pixel_losses = []
            for r, c in zip(*np.nonzero(ids[img] == pid)):
                p = probs[img, r, c]
                pixel_losses.append(-tf.reduce_sum(q * (1.0 - p) ** gamma * tf.math.log(p)))
            n = len(pixel_losses)
            terms.append((tf.add_n(pixel_losses) / n, float(n) if weighting == "area" else 1.0))
        per_image.append(terms)
    if reduction == "polygon":
        pairs = [t for terms in per_image for t in terms]
        return tf.add_n([w * e for e, w in pairs]) / sum(w for _, w in pairs)
    patch = [tf.add_n([w * e for e, w in t]) / sum(w for _, w in t) for t in per_image if t]
    return tf.add_n(patch) / len(patch)


@pytest.mark.parametrize("gamma,reduction,weighting", [
    (2.0, "polygon", "polygon"), (2.0, "polygon", "area"), (0.5, "patch", "polygon"), (0.0, "patch", "area")])
def test_pll_focal_and_gradient_equal_pixel_loop(gamma, reduction, weighting):
    logits, ids, comp = _batch(2)
    kwargs = dict(kind="pll_focal", gamma=gamma, reduction=reduction, weighting=weighting)
    want, want_grad = _value_and_grad(lambda x: _loop(x, ids, comp, gamma, reduction, weighting), logits)
    got, got_grad = _value_and_grad(lambda x: composition_loss(tf.nn.softmax(x), ids, _ragged(comp), **kwargs),
                                    logits)
    assert got == pytest.approx(want, rel=1e-5)
    np.testing.assert_allclose(got_grad, want_grad, rtol=1e-4, atol=1e-7)
    assert np.abs(want_grad).max() > 1e-4
    # the unlabelled polygon (NaN row), excluded pixels and the empty image get no gradient
    assert np.all(got_grad[3][ids[3] == 5] == 0) and np.all(got_grad[ids == -1] == 0)
    padded = losses.as_polygon_table(comp, COUNTS)
    assert float(composition_loss(tf.nn.softmax(logits), ids, padded, **kwargs)) == pytest.approx(got, rel=1e-6)


def test_pll_focal_is_not_xent_and_gamma_focuses():
    """gamma = 0 is the pixel-wise soft cross-entropy: above xent (Jensen: -log of a mean <= mean of -log)
    wherever a polygon's pixels disagree; a larger gamma weights confident pixels less, so the loss falls."""
    logits, ids, comp = _batch(3)
    probs, table = tf.nn.softmax(logits), _ragged(comp)
    xent = float(composition_loss(probs, ids, table, kind="xent"))
    focal = {g: float(composition_loss(probs, ids, table, kind="pll_focal", gamma=g)) for g in (0.0, 1.0, 2.0, 4.0)}
    assert focal[0.0] > xent + 0.05, (focal, xent)
    assert focal[0.0] > focal[1.0] > focal[2.0] > focal[4.0] > 0, focal
    # all pixels of every polygon equal: pixel mean = polygon mean, so gamma = 0 equals xent
    flat = np.broadcast_to(logits[:, :1, :1, :], logits.shape).copy()
    same = [float(composition_loss(tf.nn.softmax(flat), ids, table, kind=k, gamma=0.0)) for k in ("xent", "pll_focal")]
    assert same[0] == pytest.approx(same[1], rel=1e-5)


def test_non_candidate_classes_carry_no_loss():
    """A polygon whose composition names one class (q one-hot) scores only that class: moving the other
    classes' logits while keeping the candidate's probability leaves the loss unchanged."""
    rng = np.random.default_rng(5)
    ids = np.zeros((1, 4, 4), np.int32)
    comp = np.zeros((1, 1, 5), np.float32)
    comp[0, 0, 2] = 1.0
    p = rng.dirichlet(np.ones(5), (1, 4, 4)).astype(np.float32)
    q = p.copy()
    q[..., [0, 1, 3, 4]] = q[..., [4, 3, 1, 0]]  # the other classes' shares shuffled, p_2 unchanged
    a, b = (float(composition_loss(x, ids, comp, kind="pll_focal")) for x in (p, q))
    assert a == pytest.approx(b, rel=1e-6)
    c = p.copy()
    c[..., 2] *= 0.5
    c[..., 0] += p[..., 2] * 0.5
    assert float(composition_loss(c, ids, comp, kind="pll_focal")) > a + 1e-3


def test_one_validator_for_kind_and_gamma():
    assert check_composition_options("pll_focal", 0) == ("pll_focal", 0.0)
    assert check_composition_options("xent", "1.5") == ("xent", 1.5)
    for kind, gamma, match in (("kl", 2.0, "composition_loss"), ("pll_focal", -0.1, "pll_focal_gamma"),
                               ("pll_focal", float("nan"), "pll_focal_gamma"),
                               ("pll_focal", float("inf"), "pll_focal_gamma"), ("sse", "x", "pll_focal_gamma")):
        with pytest.raises(ValueError, match=match):
            check_composition_options(kind, gamma)
    logits, ids, comp = _batch()
    with pytest.raises(ValueError, match="pll_focal_gamma"):
        composition_loss(tf.nn.softmax(logits), ids, _ragged(comp), kind="pll_focal", gamma=-1)
    with pytest.raises(ValueError, match="pll_focal_gamma"):
        _model(IcechartRegionalModel, composition_loss="pll_focal", pll_focal_gamma=-2)


def test_model_step_uses_pll_focal_and_learns():
    """The first step's SOD/FLOE terms are the pll_focal losses of what the step saw; a few steps lower them."""
    batch = make_batch()
    model = _model(IcechartRegionalModel, composition_loss="pll_focal", pll_focal_gamma=1.0, weighting="area")
    model.compile(optimizer=keras.optimizers.Adam(3e-2))
    out = {k: v.numpy() for k, v in model(batch["sar"], training=True).items()}
    logs = model.train_on_batch(batch, return_dict=True)
    for c in ("sod", "floe"):
        want = float(composition_loss(out[c], batch["polygon_ids"], batch[f"polygon_{c}"], kind="pll_focal",
                                      gamma=1.0, weighting="area"))
        assert logs[f"{c}_loss"] == pytest.approx(want, rel=1e-5)
        xent = float(composition_loss(out[c], batch["polygon_ids"], batch[f"polygon_{c}"], kind="xent",
                                      weighting="area"))
        assert abs(logs[f"{c}_loss"] - xent) > 1e-3  # not the default loss under another name
    for _ in range(6):
        last = model.train_on_batch(batch, return_dict=True)
    # (its floor is not 0: a pixel's best answer from its polygon alone is q itself)
    assert last["sod_loss"] < logs["sod_loss"] - 0.1 and last["floe_loss"] < logs["floe_loss"] - 0.1, (logs, last)
    copy = IcechartRegionalModel.from_config(model.get_config())
    assert (copy.composition_loss, copy.pll_focal_gamma, copy.weighting) == ("pll_focal", 1.0, "area")


FLAG_SCRIPT = """
import json, sys
from absl import flags
from tfseaice import train
train.define_flags()
out = {}
flags.FLAGS(["train", "--task=icechart_regional", "--data_dir=d", "--model_dir=m", "--composition_loss=pll_focal",
             "--pll_focal_gamma=1.5"])
out["extra"] = {k: train.config_from_flags().extra[k] for k in ("composition_loss", "pll_focal_gamma")}
try:
    flags.FLAGS["pll_focal_gamma"].value = -1.0
    flags.FLAGS.validate_all_flags()
    out["negative"] = "accepted"
except flags.IllegalFlagValueError as e:
    out["negative"] = str(e)
print(json.dumps(out))
"""


def test_task_and_flags_carry_the_loss_and_gamma():
    import json
    import os
    import subprocess
    import sys

    from tfseaice.training.config import TrainConfig

    info = {"channels": ["HH", "HV"], "normalization": {"mean": [-15, -23], "std": [4, 4]},
            "splits": {"train": {"num_examples": 4}}}
    cfg = TrainConfig(task="icechart_regional", data_dir="", model_dir="",
                      extra={"filters": [4, 8], "composition_loss": "pll_focal", "pll_focal_gamma": 0.5})
    model = get_task("icechart_regional").build_model(cfg, info)
    assert (model.composition_loss, model.pll_focal_gamma) == ("pll_focal", 0.5)
    old = TrainConfig(task="icechart_regional", data_dir="", model_dir="", extra={"filters": [4, 8]})
    assert get_task("icechart_regional").build_model(old, info).composition_loss == "xent"  # task.json without it

    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    run = subprocess.run([sys.executable, "-c", FLAG_SCRIPT], cwd=repo, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["extra"] == {"composition_loss": "pll_focal", "pll_focal_gamma": 1.5}
    assert "pll_focal_gamma" in out["negative"], out
