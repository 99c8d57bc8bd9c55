"""The synthetic-data table with generators, 95 % t-intervals, steps to convergence and a plain answer."""

import json

import numpy as np
import pytest
from scipy import stats

from tfseaice.evaluation import synthetic_gain


def _run(runs, setting, cell, seed, miou, mde, steps=None):
    path = runs / setting / cell / f"seed{seed}"
    path.mkdir(parents=True)
    (path / "zones.json").write_text(json.dumps({"miou": miou, "mde_m": mde, "images_without_front": 0}))
    if steps is not None:
        (path / "train.json").write_text(json.dumps({"epochs_run": steps // 10, "best_epoch": 1, "steps": steps}))


def test_generators_share_the_real_only_reference_and_get_t_intervals(tmp_path):
    runs = tmp_path / "runs"
    base = [(0.60, 500.0), (0.70, 300.0), (0.65, 400.0)]
    paper = [(0.66, 400.0), (0.72, 200.0), (0.71, 300.0)]         # MDE -100 each: helps
    realism = [(0.61, 510.0), (0.69, 290.0), (0.66, 420.0)]       # MDE +10 -10 +20: no effect
    for seed, ((m0, d0), (mp, dp), (mr, dr)) in enumerate(zip(base, paper, realism)):
        _run(runs, "real10", "F0", seed, m0, d0, steps=100 + 10 * seed)
        _run(runs, "real10", "paper_F0.5", seed, mp, dp, steps=200)
        _run(runs, "real10", "realism_F0.5", seed, mr, dr)
    rows = synthetic_gain.write_report(str(runs), str(tmp_path / "out"))
    by = {(r["generator"], r["synthetic_fraction"]): r for r in rows}
    assert [(r["generator"], r["synthetic_fraction"]) for r in rows] == [(None, 0.0), ("paper", 0.5),
                                                                        ("realism", 0.5)]
    t = stats.t.ppf(0.975, 2)
    assert t == pytest.approx(4.303, abs=1e-3)
    assert by[(None, 0.0)]["miou_ci95"] == pytest.approx(t * 0.05 / np.sqrt(3))
    assert by[(None, 0.0)]["steps_mean"] == pytest.approx(110.0) and by[(None, 0.0)]["steps_range"] == [100, 120]
    assert by[("realism", 0.5)]["steps_mean"] is None
    paper_row = by[("paper", 0.5)]
    assert paper_row["mde_m_gain"] == pytest.approx(-100.0) and paper_row["mde_m_gain_ci95"] == pytest.approx(0.0)
    real_row = by[("realism", 0.5)]
    assert real_row["mde_m_gain"] == pytest.approx(20 / 3)
    assert real_row["mde_m_gain_ci95"] == pytest.approx(t * np.std([10, -10, 20], ddof=1) / np.sqrt(3))
    lines = synthetic_gain.answer(rows)
    assert len(lines) == 2
    assert "paper pairs" in lines[0] and "helps the front" in lines[0] and "-100 ± 0 m" in lines[0]
    assert "realism pairs" in lines[1] and "no measurable effect" in lines[1]
    assert "753 / 353 / 184 m" in lines[0]
    md = (tmp_path / "out" / "synthetic_gain.md").read_text()
    assert "| real10 | paper | 0.5 | 3 | 200 (200–200) |" in md
    assert "| real10 (realism) | 0.5 | 3 |" in md                           # the first table names it too
    assert "| real10 | real only | 0 | 3 | 110 (100–120) | 65.0 ± 12.4 |" in md
    assert (tmp_path / "out" / "synthetic_gain.png").read_bytes()[:4] == b"\x89PNG"


def test_one_seed_has_no_interval_and_an_undecided_answer(tmp_path):
    runs = tmp_path / "runs"
    _run(runs, "full", "F0", 1, 0.8, 300.0)
    _run(runs, "full", "paper_F0.5", 1, 0.82, 250.0)
    rows = synthetic_gain.summarize(synthetic_gain.collect(str(runs)))
    assert rows[1]["mde_m_gain"] == pytest.approx(-50.0) and rows[1]["mde_m_gain_ci95"] is None
    assert "undecided" in synthetic_gain.answer(rows)[0]
    assert synthetic_gain.ci95_half_width(None, 1) is None
