"""scripts/results.py: seeds' figures -> mean/std/min/max, the README block between markers, the range check.

Hand-made per-seed JSON only: nothing is trained here.
"""

import importlib.util
import json
import pathlib
import statistics

import numpy as np
import pytest

from tfseaice.errors import InputError

ROOT = pathlib.Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("results_script", ROOT / "scripts" / "results.py")
results = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(results)

SIC_KEYS = ("polygon_rmse", "polygon_r2", "pixel_rmse", "pixel_r2", "truth_pixel_rmse", "truth_pixel_r2",
            "truth_ice_water_f1")


T2 = 4.302652729911275   # t(0.975, 2): two degrees of freedom (3 seeds)


def _sic_figures(regional_r2, pixel_r2):
    """{row: {column: value}} with polygon R² and truth R² set, the other columns derived from them."""
    out = {}
    for row, r2 in (("regional", regional_r2), ("pixel", pixel_r2)):
        out[row] = {k: r2 - 0.01 * i for i, k in enumerate(SIC_KEYS)}
        out[row]["polygon_r2"], out[row]["truth_pixel_r2"] = r2, r2 - 0.05
    return out


def _record(seed, figures, precision="fp32", seconds=1.0):
    """One seed's record as run_seed leaves it."""
    return {"seed": seed, "figures": figures, "precision": [precision], "seconds": seconds, "load_average": 4.0,
            "git_commit": "abc1234"}


def _records(pairs, precision="fp32"):
    return [_record(s, _sic_figures(a, b), precision, 100.0 * s) for s, (a, b) in enumerate(pairs, start=1)]


def _write_run(run_dir, figures, precision="fp32"):
    """A quickstart output folder as the SIC quickstart leaves it (metrics + task.json)."""
    for row in ("regional", "pixel"):
        (run_dir / f"metrics_sic_{row}.json").write_text(json.dumps(figures[row]))
        model = run_dir / "models" / f"sic_{row}"
        model.mkdir(parents=True)
        (model / "task.json").write_text(json.dumps({"config": {"precision": precision}}))


def test_aggregate_mean_std_min_max_and_comparisons():
    doc = results.document("sic", _records([(0.96, 0.86), (0.98, 0.90), (0.94, 0.95)]))
    s = doc["summary"]["regional"]["polygon_r2"]
    assert s["n"] == 3
    assert s["mean"] == pytest.approx(0.96)
    assert s["std"] == pytest.approx(0.02)  # sample std (n - 1) of 0.94, 0.96, 0.98
    assert (s["min"], s["max"]) == (pytest.approx(0.94), pytest.approx(0.98))
    t = doc["summary"]["pixel"]["truth_pixel_r2"]
    assert t["mean"] == pytest.approx(statistics.fmean([0.81, 0.85, 0.90]))
    assert t["std"] == pytest.approx(statistics.stdev([0.81, 0.85, 0.90]))
    assert doc["seeds"] == [1, 2, 3] and doc["per_seed"]["2"]["regional"]["polygon_r2"] == 0.98
    assert doc["precision"] == ["fp32"] and doc["seconds_per_seed"] == pytest.approx(200.0)
    polygon = doc["comparisons"][0]
    assert polygon["column"] == "polygon_r2"
    assert polygon["holds_on"] == 2 and polygon["of"] == 3  # seed 3: 0.94 < 0.95
    assert polygon["difference_per_seed"]["3"] == pytest.approx(-0.01)
    assert polygon["difference"]["min"] == pytest.approx(-0.01)
    goal = doc["goals"][0]  # regional polygon R² >= 0.95
    assert (goal["column"], goal["holds_on"], goal["of"]) == ("polygon_r2", 2, 3)


def test_one_seed_is_labelled_one_run():
    s = results.summarize([0.5])
    assert s["std"] is None and s["mean"] == s["min"] == s["max"] == 0.5
    text = results.markdown(results.document("sic", _records([(0.96, 0.86)])))
    table = text.split("\n\n")[1]
    assert table.startswith("| |") and "±" not in table and "One run (seed 1)" in text
    with pytest.raises(ValueError):
        results.summarize([])


def test_markdown_states_seeds_machine_and_conclusions():
    text = results.markdown(results.document("sic", _records([(0.96, 0.86), (0.98, 0.90), (0.94, 0.95)])))
    assert "| **regional loss** (`sic_regional`) | " in text
    assert "0.960 ± 0.020" in text  # regional polygon R²
    assert "over 3 seeds (1, 2, 3) at the quickstart budget" in text
    records = _records([(0.96, 0.86), (0.98, 0.90)])
    records[1]["overrides"] = {"TRAIN_ARGS": "--epochs=1"}
    assert 'NOT at the quickstart budget (environment: {"TRAIN_ARGS": "--epochs=1"})' in results.markdown(
        results.document("sic", records))
    assert "over 3 seeds (1, 2, 3)" in text and "precision fp32" in text and "abc1234" in text
    doc = results.document("sic", _records([(0.96, 0.86), (0.98, 0.90)]))  # load average 4.0
    doc["machine"]["cores"] = 2
    assert "(load average 4.0: the machine was shared)." in results.markdown(doc)
    doc["machine"]["cores"] = 4
    assert "(load average 4.0)." in results.markdown(doc)
    assert "polygon R² on 2 of 3" in text
    assert "Goal regional loss (sic_regional) polygon R² ≥ 0.95: met on 2 of 3 seeds (mean 0.960)" in text
    assert "regional loss (sic_regional) polygon R² 0.940–0.980" in text


README = """# Title

Intro text.

<!-- results:sic -->
old table
<!-- /results:sic -->

Text between.

<!-- results:glacier -->
glacier table
<!-- /results:glacier -->
Tail.
"""


def test_replace_block_between_markers_only_and_idempotent():
    once = results.replace_block(README, "sic", "| new | table |\n")
    assert "old table" not in once and "| new | table |" in once
    assert once.replace("| new | table |", "old table") == README  # everything else untouched
    assert results.replace_block(once, "sic", "| new | table |\n") == once
    other = results.replace_block(once, "glacier", "g2")
    assert "g2" in other and "glacier table" not in other and "| new | table |" in other


@pytest.mark.parametrize("text, what", [
    ("# no markers\n", "found 0 and 0"),
    (README + "<!-- results:sic -->\n", "found 2 and 1"),
    ("<!-- /results:sic -->\nx\n<!-- results:sic -->\n", "comes before"),
])
def test_replace_block_refuses_missing_or_broken_markers(text, what):
    with pytest.raises(InputError, match=what) as exc:
        results.replace_block(text, "sic", "block", "README.md")
    assert str(exc.value).startswith("README.md: ")


def test_write_outputs_rewrites_readme_and_json(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(README)
    doc = results.document("sic", _records([(0.96, 0.86), (0.98, 0.90), (0.94, 0.95)]))
    results.write_outputs(doc, str(tmp_path / "results"), str(readme))
    saved = json.loads((tmp_path / "results" / "sic_fp32.json").read_text())
    assert saved["summary"]["regional"]["polygon_r2"]["mean"] == pytest.approx(0.96)
    text = readme.read_text()
    assert "0.960 ± 0.020" in text and "glacier table" in text and text.endswith("Tail.\n")
    results.write_outputs(doc, str(tmp_path / "results"), str(readme))
    assert readme.read_text() == text


def test_one_table_holds_each_precision_fp32_first(tmp_path):
    """A bf16 machine's seeds join the fp32 ones in the README block; neither replaces the other."""
    readme = tmp_path / "README.md"
    readme.write_text(README)
    out = str(tmp_path / "results")
    results.write_outputs(results.document("sic", _records([(0.70, 0.60), (0.72, 0.62)], "bf16")), out, str(readme))
    results.write_outputs(results.document("sic", _records([(0.96, 0.86), (0.98, 0.90)])), out, str(readme))
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == ["sic_bf16.json", "sic_fp32.json"]
    block = readme.read_text().split("<!-- results:sic -->")[1].split("<!-- /results:sic -->")[0]
    assert block.index("from results/sic_fp32.json") < block.index("from results/sic_bf16.json")
    assert block.count("| **regional loss** (`sic_regional`) | ") == 2
    assert "0.970 ± 0.014" in block and "0.710 ± 0.014" in block and "**bf16** on " in block
    (tmp_path / "results" / "sic_fp16.json").write_text(json.dumps({"table": "glacier", "precision": ["fp16"]}))
    with pytest.raises(InputError, match="sic_fp16.json: is not the sic table's document"):
        results.table_docs("sic", out)


def test_range_check_inside_and_outside():
    doc = results.document("sic", _records([(0.96, 0.86), (0.98, 0.90), (0.94, 0.95)]))
    # regional polygon R²: mean 0.96, std 0.02, n 3 -> 0.96 ± t(0.975, 2) 0.02 sqrt(4/3) = 0.861-1.00
    inside = _sic_figures(0.93, 0.90)
    rows = results.check_run(doc, inside)
    first = rows[0]
    assert first[:2] == ("regional", "polygon_r2")
    assert first[4:] == (pytest.approx(0.96 - T2 * 0.02 * (4 / 3) ** 0.5), pytest.approx(1.0), True)
    assert all(r[-1] for r in rows)
    lines = results.report(doc, rows, ["fp32"])
    assert lines[-1] == "This run is inside the documented range on all 4 figures."
    outside = _sic_figures(0.85, 0.90)  # regional: polygon R² 0.85 < 0.861, truth R² 0.80 < 0.811
    rows = results.check_run(doc, outside)
    assert [r[-1] for r in rows] == [False, False, True, True]
    lines = results.report(doc, rows, ["bf16"])
    assert "OUTSIDE" in lines[1] and "0.850" in lines[1]
    assert lines[-2].startswith("This run is OUTSIDE the documented range on 2 of 4 figures: regional loss")
    assert "--precision=fp32" in lines[-1]


def test_range_stops_at_1_for_a_metric_that_does():
    """R² 0.97 ± 0.03: the interval's top is above 1, a value no run can reach; the ratio to a ceiling can exceed 1."""
    doc = results.document("sic", _records([(0.94, 0.86), (0.97, 0.90), (1.0, 0.95)]))
    rows = {(r[0], r[1]): r for r in results.check_run(doc, _sic_figures(0.96, 0.90))}
    assert rows["regional", "polygon_r2"][5] == 1.0
    assert rows["regional", "polygon_r2"][4] == pytest.approx(0.97 - T2 * 0.03 * (4 / 3) ** 0.5)
    spec, start = results.TABLES["glacier"], {"ssim": 0.9, "fcn_miou_to_real": 1.0}
    recs = [_record(s, {row: {col: start.get(col, 0.5) + 0.04 * s for col, _ in spec["columns"]}
                        for row, _ in spec["rows"]}) for s in (1, 2, 3)]
    rows = {(r[0], r[1]): r for r in results.check_run(results.document("glacier", recs), recs[0]["figures"])}
    assert rows["pix2pix", "ssim"][5] == 1.0                       # 0.98 + 0.2 capped
    assert rows["pix2pix", "fcn_miou_to_real"][5] == pytest.approx(1.08 + T2 * 0.04 * (4 / 3) ** 0.5)  # not capped


def test_the_range_holds_one_new_run_95_percent_of_the_time():
    """Simulated seeds: 3 runs make the range, a 4th falls inside it about 95 % of the time; the old
    mean ± 2 s caught it far less often (what the newcomer's baseline showed)."""
    rng = np.random.default_rng(0)
    trials = 20000
    runs = rng.normal(0.9, 0.03, (trials, 4))
    inside_pi = inside_2s = 0
    for r in runs:
        s = results.summarize(r[:3])
        half = results.prediction_half_width(s)
        inside_pi += abs(r[3] - s["mean"]) <= half
        inside_2s += abs(r[3] - s["mean"]) <= 2 * s["std"]
    assert 0.94 <= inside_pi / trials <= 0.96
    assert inside_2s / trials < 0.88
    assert results.prediction_half_width(results.summarize([0.9])) == 0.0


def _machine(**isa):
    return {"cpu": "a CPU", "cores": 2, "avx2": True, **isa}


def test_a_run_is_held_to_its_precision_and_the_nearest_cpu_kind():
    fp32_avx2 = dict(results.document("sic", _records([(0.96, 0.86), (0.98, 0.90)])), machine=_machine())
    bf16_amx = dict(results.document("sic", _records([(0.96, 0.86), (0.98, 0.90)], "bf16")),
                    machine=_machine(avx512f=True, avx512_bf16=True, amx_bf16=True))
    docs = [fp32_avx2, bf16_amx]
    assert results.nearest_doc(docs, ["fp32"], _machine()) == (fp32_avx2, "")
    doc, note = results.nearest_doc(docs, ["bf16"], _machine(avx512f=True, avx512_bf16=True))
    assert doc is bf16_amx and note.startswith("This run's CPU is avx512_bf16; the ranges were measured on amx (bf16), "
                                               "avx2 (fp32): compared with the nearest, amx")
    doc, note = results.nearest_doc([bf16_amx], ["fp32"], _machine())   # no fp32 range: the nearest there is
    assert doc is bf16_amx and "This run's CPU is avx2" in note
    assert note in results.report(doc, results.check_run(doc, _sic_figures(0.96, 0.9)), ["fp32"], note)


def test_check_command_prints_range_and_never_fails(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    _write_run(run, _sic_figures(0.99, 0.90))
    out_dir = tmp_path / "results"
    assert results.main(["--table=sic", f"--check={run}", f"--out={out_dir}"]) == 0
    assert "No documented range yet" in capsys.readouterr().out
    out_dir.mkdir()
    doc = results.document("sic", _records([(0.96, 0.86), (0.98, 0.90), (0.94, 0.95)]))
    (out_dir / "sic_fp32.json").write_text(json.dumps(doc))
    assert results.main(["--table=sic", f"--check={run}", f"--out={out_dir}"]) == 0
    printed = capsys.readouterr().out
    assert "this run 0.990" in printed and "inside the documented range on all 4 figures" in printed
    assert "results/sic_fp32.json" in printed and "--precision=fp32" not in printed
    # a bf16 run is held against the bf16 seeds where a table has them, else against fp32 with a warning
    bf16_run = tmp_path / "bf16_run"
    bf16_run.mkdir()
    _write_run(bf16_run, _sic_figures(0.99, 0.90), precision="bf16")
    assert results.main(["--table=sic", f"--check={bf16_run}", f"--out={out_dir}"]) == 0
    printed = capsys.readouterr().out
    assert "results/sic_fp32.json" in printed and "--precision=fp32" in printed
    bf16 = results.document("sic", _records([(0.70, 0.60), (0.72, 0.62), (0.71, 0.61)], "bf16"))
    (out_dir / "sic_bf16.json").write_text(json.dumps(bf16))
    assert results.main(["--table=sic", f"--check={bf16_run}", f"--out={out_dir}"]) == 0
    printed = capsys.readouterr().out
    assert "results/sic_bf16.json" in printed and "--precision=fp32" not in printed
    assert "OUTSIDE the documented range" in printed
    (run / "metrics_sic_pixel.json").write_text("{")
    assert results.main(["--table=sic", f"--check={run}", f"--out={out_dir}"]) == 0
    assert "Cannot compare" in capsys.readouterr().out


def test_a_finished_seed_of_another_budget_is_refused_not_mixed_in(tmp_path, monkeypatch):
    seed = tmp_path / "seed_1"
    seed.mkdir()
    (seed / "done.json").write_text(json.dumps({**_records([(0.96, 0.86)])[0], "overrides": {}}))
    spec = results.TABLES["sic"]
    for name in results.OVERRIDES:
        monkeypatch.delenv(name, raising=False)
    assert results.run_seed(spec, str(tmp_path), 1, "python")["figures"]["regional"]["polygon_r2"] == 0.96
    monkeypatch.setenv("TRAIN_ARGS", "--precision=fp32")
    with pytest.raises(InputError, match=r"seed_1/done.json: was run with \{\}, this call has "
                                         r"\{\"TRAIN_ARGS\": \"--precision=fp32\"\}"):
        results.run_seed(spec, str(tmp_path), 1, "python")


def test_glacier_figures_read_from_evaluation_json(tmp_path):
    scores = {k: {"dice": d, "ssim": s} for k, d, s in (("generated", 0.56, 0.17), ("baseline", 0.55, 0.09),
                                                       ("real", 0.60, 1.0))}
    fcn = {k: {"pixel_accuracy": a, "mean_iou": m} for k, a, m in (("generated", 0.83, 0.69),
                                                                   ("baseline", 0.71, 0.51), ("real", 0.96, 0.92))}
    fcn.update(generated_to_real_miou=0.69 / 0.92, baseline_to_real_miou=0.51 / 0.92)
    (tmp_path / "pix2pix" / "eval").mkdir(parents=True)
    (tmp_path / "pix2pix" / "eval" / "evaluation.json").write_text(json.dumps({"image_scores": scores,
                                                                               "fcn_score": fcn}))
    figures = results.TABLES["glacier"]["figures"](str(tmp_path))
    assert figures["pix2pix"] == {"dice": 0.56, "ssim": 0.17, "fcn_pixel_accuracy": 0.83, "fcn_miou": 0.69,
                                  "fcn_miou_to_real": pytest.approx(0.75, abs=0.001)}
    assert figures["baseline"]["fcn_miou"] == 0.51 and figures["real"]["fcn_miou_to_real"] == 1.0
    doc = results.document("glacier", [_record(s, figures) for s in (1, 2)])
    assert [c["holds_on"] for c in doc["comparisons"]] == [2, 2] and doc["goals"] == []


# ------------------------------------------------------------------ the loss axis (scripts/results_losses.py)

_lspec = importlib.util.spec_from_file_location("results_losses_script", ROOT / "scripts" / "results_losses.py")
losses_mod = importlib.util.module_from_spec(_lspec)
_lspec.loader.exec_module(losses_mod)

SOD = ("open_water", "new_ice", "young_ice", "thin_first_year_ice", "thick_first_year_ice", "old_ice")


def test_sod_class_f1_from_confusion_counts():
    # rows truth, columns predicted; class 5 (old ice) absent from the truth, predicted 3 times
    counts = [[50, 0, 0, 0, 0, 0], [4, 6, 0, 0, 0, 0], [0, 0, 0, 0, 10, 0],
              [0, 0, 0, 0, 0, 0], [2, 0, 0, 0, 30, 3], [0, 0, 0, 0, 0, 0]]
    f1 = losses_mod.sod_class_f1({"classes": list(SOD), "counts": counts})
    assert f1["open_water"] == pytest.approx(2 * 50 / (50 + 56))
    assert f1["new_ice"] == pytest.approx(2 * 6 / (10 + 6))
    assert f1["young_ice"] == 0.0                                     # in the truth, never predicted
    assert f1["thick_first_year_ice"] == pytest.approx(2 * 30 / (35 + 40))
    assert f1["thin_first_year_ice"] is None and f1["old_ice"] is None  # not in the truth
    from sklearn.metrics import f1_score
    true, pred = np.nonzero(np.array(counts))
    w = np.array(counts)[true, pred]
    ref = f1_score(true, pred, labels=[0, 1, 2, 4], average=None, sample_weight=w)
    assert [f1[SOD[c]] for c in (0, 1, 2, 4)] == pytest.approx(list(ref))


def _metrics(sod_f1, diag=40):
    """An ice-chart evaluation JSON with the keys results_losses reads."""
    counts = [[diag if i == j else 2 for j in range(6)] for i in range(6)]
    counts[5] = [0] * 6                                               # old ice absent from the truth
    return {"truth_sod_f1": sod_f1, "truth_floe_f1": sod_f1 + 0.1, "truth_pixel_r2": 0.9, "polygon_r2": 0.95,
            "autoice": {"score": 80.0 + 10 * sod_f1}, "truth_confusion": {"SOD": {"classes": list(SOD),
                                                                               "counts": counts}}}


def test_model_figures_read_an_evaluation_and_refuse_a_sic_only_one(tmp_path):
    path = tmp_path / "metrics_icechart_regional.json"
    path.write_text(json.dumps(_metrics(0.7)))
    f = losses_mod.model_figures(str(path))
    assert f["truth_sod_f1"] == 0.7 and f["autoice_score"] == pytest.approx(87.0)
    assert f["sod_f1_open_water"] == pytest.approx(2 * 40 / (50 + 48))  # truth row 50, predicted column 48
    assert f["sod_f1_old_ice"] is None
    path.write_text(json.dumps({k: v for k, v in _metrics(0.7).items() if k != "truth_confusion"}))
    with pytest.raises(InputError, match="truth_confusion"):
        losses_mod.model_figures(str(path))


def _loss_records(sod):
    """run_seed records of a loss grid: sod = {row: [SOD F1 per seed]}."""
    recs = []
    for i, seed in enumerate((1, 2, 3)):
        figures = {}
        for row, values in sod.items():
            confusion = _metrics(values[i], diag=30 + 5 * i)["truth_confusion"]["SOD"]
            figures[row] = {"truth_sod_f1": values[i], "truth_floe_f1": values[i] + 0.1, "truth_pixel_r2": 0.9,
                            "autoice_score": 80.0, "polygon_r2": 0.95,
                            **{f"sod_f1_{k}": v for k, v in losses_mod.sod_class_f1(confusion).items()}}
        recs.append({"seed": seed, "figures": figures, "quickstart_loss": "xent", "seconds": 600.0,
                     "load_average": 1.0, "git_commit": "abc1234", "overrides": {}, "precision": ["bf16"]})
    return recs


SOD_BY_LOSS = {"xent": [0.70, 0.74, 0.72], "sse": [0.73, 0.71, 0.77], "pll_focal": [0.60, 0.62, 0.61],
               "pixel": [0.62, 0.63, 0.61]}


def test_loss_grid_document_winner_and_columns():
    doc = losses_mod.document(["xent", "sse", "pll_focal"], _loss_records(SOD_BY_LOSS))
    assert doc["summary"]["sse"]["truth_sod_f1"]["mean"] == pytest.approx(statistics.fmean([0.73, 0.71, 0.77]))
    w = doc["winner"]
    assert (w["loss"], w["best_on"], w["of"]) == ("sse", 2, 3)        # seed 2: xent 0.74 > sse 0.71
    assert w["lead_over"]["xent"]["ahead_on"] == 2 and w["lead_over"]["pll_focal"]["ahead_on"] == 3
    assert w["lead_over"]["xent"]["mean"] == pytest.approx(statistics.fmean([0.03, -0.03, 0.05]))
    cols = [c for c, _ in doc["columns"]]
    assert "sod_f1_old_ice" not in cols and "sod_f1_open_water" in cols and cols[-1] == "autoice_score"
    assert [r for r, _ in doc["rows"]] == ["xent", "sse", "pll_focal", "pixel"]
    assert [c["holds_on"] for c in doc["comparisons"]] == [3, 3, 0]   # each loss against the pixel baseline
    assert losses_mod.results.doc_name(doc) == "icechart_losses_bf16.json"
    flipped = dict(SOD_BY_LOSS, xent=[0.80, 0.80, 0.80])
    assert losses_mod.document(["xent", "sse"], _loss_records(flipped))["winner"]["loss"] == "xent"


def test_loss_grid_text_names_the_winner_and_configs_that_differ(monkeypatch):
    doc = losses_mod.document(["xent", "sse", "pll_focal"], _loss_records(SOD_BY_LOSS))
    monkeypatch.setattr(losses_mod, "configs_loss", lambda: {"a.flags": "sse", "b.flags": "sse"})
    text = losses_mod.glance([doc])
    assert "| **`icechart_regional --composition_loss=sse`** | 0.737 ± 0.031 |" in text
    assert "over n = 3 seeds (1, 2, 3) at the quickstart budget" in text
    assert "Default `--composition_loss`: **`sse`**" in text
    assert "a.flags and b.flags set `--composition_loss=sse`" in text
    assert "| 80.0 ± 0.0 |" in text and "DIFFER" not in text
    assert "paired difference 0.017 ± 0.042, within the seeds’ spread; ahead of `pll_focal`" in text
    assert "paired difference 0.127 ± 0.035." in text and "does not settle the ranking" in text
    clear = losses_mod.document(["xent", "sse"], _loss_records(dict(SOD_BY_LOSS, sse=[0.75, 0.78, 0.76])))
    assert "within the seeds’ spread" not in losses_mod.glance([clear]) and "settle" not in losses_mod.glance([clear])
    monkeypatch.setattr(losses_mod, "configs_loss", lambda: {"a.flags": "xent", "b.flags": "sse"})
    assert "The configs DIFFER: a.flags sets `xent`" in losses_mod.glance([doc])


def test_loss_grid_documents_stay_apart_from_the_quickstart_ones(tmp_path):
    out = tmp_path / "results"
    readme, detail = tmp_path / "README.md", tmp_path / "results.md"
    for path in (readme, detail):
        path.write_text("x\n<!-- results:icechart -->\nold\n<!-- /results:icechart -->\ny\n")
    grid = losses_mod.document(["xent", "sse"], _loss_records(SOD_BY_LOSS))
    losses_mod.results.write_outputs(grid, str(out), str(detail), str(readme))
    assert [p.name for p in out.iterdir()] == ["icechart_losses_bf16.json"]
    assert losses_mod.results.table_docs("icechart", str(out)) == []
    assert len(losses_mod.results.table_docs("icechart", str(out), losses=True)) == 1
    text = readme.read_text()
    assert "from results/icechart_losses_bf16.json" in text and "no run recorded yet" in text
    assert text.index("composition_loss=xent") < text.index("no run recorded yet") and text.endswith("y\n")
    assert "on 3 of 3 (difference" in detail.read_text()


def test_regional_commands_are_the_quickstarts_own():
    """The loss grid trains and scores the extra losses outside scripts/quickstart_icechart.sh: with its flags."""
    script = (ROOT / "scripts" / "quickstart_icechart.sh").read_text()
    train, evaluate = losses_mod.regional_commands("PY", "D", "O", 2, "sse", "--epochs=3")
    assert train[1:3] == ["-m", "tfseaice.train"] and evaluate[1:3] == ["-m", "tfseaice.evaluate"]
    assert train[-3:] == ["--epochs=3", "--seed=2", "--composition_loss=sse"]
    for arg in train[3:4] + evaluate[3:4] + evaluate[6:7] + ["--overwrite"]:
        assert arg in script, arg
    assert "--task=icechart_regional" in train and "for task in icechart_regional icechart_pixel" in script
    assert '--data_dir="$OUT/records"' in script and train[5] == "--data_dir=D/records"
    assert '--scenes_glob="$OUT/test_scenes/*.nc"' in script and evaluate[5] == "--scenes_glob=D/test_scenes/*.nc"
    with pytest.raises(InputError, match="focal: give some of"):
        losses_mod.run_grid(["focal"], [1], "unused", "python")


def test_the_configs_set_the_measured_winner():
    """The default composition loss is the one that led on SOD F1 vs truth in the committed loss grid."""
    grids = losses_mod.results.table_docs("icechart", str(ROOT / "results"), losses=True)
    if not grids:
        pytest.skip("no loss grid recorded")
    assert set(losses_mod.configs_loss().values()) == {grids[0]["winner"]["loss"]}
