"""The loss axis of the ice-types results table: `make results-icechart LOSSES=xent,sse,pll_focal`.

    python scripts/results.py --table=icechart --losses=xent,sse,pll_focal --seeds=1,2,3

The `--composition_loss` options of `icechart_regional` side by side, on the same data and
seeds, beside the pixel baseline `icechart_pixel`. Per seed N (WORK_DIR/seed_N):

- the quickstart itself (scripts/quickstart_icechart.sh, steps 3 and 4, through
  `results.run_seed`): `icechart_regional` with the loss of configs/quickstart_icechart.flags and
  the pixel baseline, both evaluated; the baseline does not depend on the loss, so it is
  trained once per seed, not once per loss;
- every other loss: WORK_DIR/seed_N/loss_<LOSS>, `icechart_regional` trained and evaluated
  with the quickstart's own two commands plus `--composition_loss=<LOSS>` (`regional_commands`;
  tests/test_results_table.py checks they are the script's).

Seeds and models run one after another (JOBS is not used here: one training at a time).

Figures per model, from its whole-scene evaluation (`python -m tfseaice.evaluate --task=sic`)
on the 3 held-out scenes: SOD and FLOE weighted F1 against pixel truth, the F1 of each SOD
class against pixel truth (from the evaluation's `truth_confusion` counts: 2 TP / (truth +
predicted), for the classes the truth holds), SIC pixel R² against truth, and the AutoICE score
against each scene's own chart (the evaluation's `autoice.score`, in percent).

results/icechart_losses_<precision>.json keeps every seed's figures, mean ± sample std, min,
max, the paired comparisons and the winner: the loss with the highest mean SOD F1 against
truth over the seeds, the one the configs should set. Its blocks: README.md
`results:icechart` (`glance`, with the winner and the flag the configs set) and docs/results.md
`results:icechart` (`markdown`, with the comparisons), both before the quickstart's own
documents (scripts/results_docs.py `blocks`).
"""

import datetime
import json
import os
import re
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import results  # noqa: E402
from results_range import one_run_range  # noqa: E402
from results_tables import TABLES, cell, doc_name, load_json  # noqa: E402
from tfseaice import io_utils  # noqa: E402
from tfseaice.errors import InputError  # noqa: E402
from tfseaice.losses.options import COMPOSITION_LOSSES  # noqa: E402

TABLE = "icechart"
QUICKSTART_FLAGS = "configs/quickstart_icechart.flags"
CONFIGS = ("configs/quickstart_icechart.flags", "configs/icechart_regional.flags")  # set the default loss
SOD_NAMES = {"open_water": "open water", "new_ice": "new", "young_ice": "young", "thin_first_year_ice": "thin FYI",
             "thick_first_year_ice": "thick FYI", "old_ice": "old"}
MAIN = (("truth_sod_f1", "SOD weighted F1 (vs truth)"), ("truth_floe_f1", "FLOE weighted F1 (vs truth)"))
TAIL = (("truth_pixel_r2", "SIC pixel R² (vs truth)"), ("autoice_score", "AutoICE score (vs chart, %)"))
WINNER_COLUMN = "truth_sod_f1"


def sod_class_f1(confusion):
    """{class name: F1 against truth} from an evaluation's truth_confusion["SOD"] (rows truth, columns predicted);
    None for a class the truth does not hold (its F1 says nothing about this model)."""
    counts, names = confusion["counts"], confusion["classes"]
    out = {}
    for c, name in enumerate(names):
        truth, predicted = sum(counts[c]), sum(row[c] for row in counts)
        out[name] = 2.0 * counts[c][c] / (truth + predicted) if truth else None
    return out


def model_figures(metrics_path):
    """{column: value} of one model's evaluation JSON (metrics_icechart_*.json)."""
    m = load_json(metrics_path)
    try:
        out = {"truth_sod_f1": m["truth_sod_f1"], "truth_floe_f1": m["truth_floe_f1"],
               "truth_pixel_r2": m["truth_pixel_r2"], "autoice_score": m["autoice"]["score"],
               "polygon_r2": m["polygon_r2"]}
        classes = sod_class_f1(m["truth_confusion"]["SOD"])
    except (KeyError, TypeError) as exc:
        raise InputError(metrics_path, f"has no {exc} (not an ice-chart model's evaluation with class truth?)")
    out.update({f"sod_f1_{name}": v for name, v in classes.items()})
    return out


def regional_commands(py, data_dir, out, seed, loss, train_args=""):
    """The quickstart's step 3 (train, icechart_regional only) and step 4 (evaluate) for one loss."""
    model = os.path.join(out, "models", "icechart_regional")
    train = [py, "-m", "tfseaice.train", f"--flagfile={QUICKSTART_FLAGS}", "--task=icechart_regional",
             f"--data_dir={os.path.join(data_dir, 'records')}", f"--model_dir={model}", "--overwrite",
             *train_args.split(), f"--seed={seed}", f"--composition_loss={loss}"]
    evaluate = [py, "-m", "tfseaice.evaluate", "--task=sic", f"--model_dir={model}",
                f"--scenes_glob={os.path.join(data_dir, 'test_scenes', '*.nc')}", "--downsample=2",
                f"--output={os.path.join(out, 'metrics_icechart_regional.json')}", "--overwrite"]
    return train, evaluate


def trained_loss(seed_dir):
    """The --composition_loss the quickstart's icechart_regional of `seed_dir` trained with (task.json)."""
    path = os.path.join(seed_dir, "models", "icechart_regional", "task.json")
    return load_json(path)["config"]["extra"]["composition_loss"]


def run_loss(work_dir, seed, loss, py, rerun=False):
    """icechart_regional with `loss` for one seed in WORK_DIR/seed_N/loss_<loss>; its done.json record."""
    out = os.path.join(work_dir, f"seed_{seed}", f"loss_{loss}")
    done = os.path.join(out, "done.json")
    if os.path.exists(done) and not rerun:
        return results._same_budget(done)
    os.makedirs(out, exist_ok=True)
    commit, start = results.git_commit(), time.time()
    log = os.path.join(out, "log.txt")
    with open(log, "w") as f:
        for cmd in regional_commands(py, os.path.join(work_dir, "data"), out, seed, loss,
                                     os.environ.get("TRAIN_ARGS", "")):
            f.write("$ " + " ".join(cmd) + "\n")
            f.flush()
            if subprocess.run(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT).returncode:
                raise RuntimeError(f"{loss} seed {seed} failed; see {log}")
    record = {"seconds": time.time() - start, "load_average": os.getloadavg()[0],
              "git_commit": commit, "overrides": results.overrides(), "seed": seed, "loss": loss,
              "precision": [load_json(os.path.join(out, "models", "icechart_regional", "task.json"))
                            ["config"]["precision"]]}
    io_utils.write_json(done, record)
    return record


def run_seed(work_dir, seed, losses, py, rerun=False):
    """One seed's quickstart run and the other losses' models: {seed, figures {row: {column}}, seconds, ...}."""
    quick = results.run_seed(TABLES[TABLE], work_dir, seed, py, rerun)
    seed_dir = os.path.join(work_dir, f"seed_{seed}")
    default = trained_loss(seed_dir)
    figures = {"pixel": model_figures(os.path.join(seed_dir, "metrics_icechart_pixel.json"))}
    records = [quick]
    for loss in losses:
        if loss == default:
            figures[loss] = model_figures(os.path.join(seed_dir, "metrics_icechart_regional.json"))
            continue
        records.append(run_loss(work_dir, seed, loss, py, rerun))
        figures[loss] = model_figures(os.path.join(seed_dir, f"loss_{loss}", "metrics_icechart_regional.json"))
    return {"seed": seed, "figures": figures, "quickstart_loss": default,
            "seconds": sum(r["seconds"] for r in records),
            "load_average": statistics.fmean(r["load_average"] for r in records),
            "git_commit": ", ".join(sorted({r["git_commit"] for r in records})),
            "overrides": quick.get("overrides", {}),
            "precision": sorted({p for r in records for p in r["precision"]})}


def spec_of(losses, per_seed):
    """The table spec of a loss grid: a row per loss and the baseline; SOD class columns the truth holds."""
    first = next(iter(per_seed.values()))["pixel"]
    classes = [k for k in first if k.startswith("sod_f1_")
               and all(f[row][k] is not None for f in per_seed.values() for row in f)]
    columns = (*MAIN, *[(k, f"SOD F1 {SOD_NAMES.get(k[7:], k[7:])}") for k in classes], *TAIL)
    rows = [(loss, f"`icechart_regional --composition_loss={loss}`") for loss in losses]
    comparisons = [(f"`{loss}` beats the pixel baseline in SOD F1 vs truth", loss, "pixel", WINNER_COLUMN)
                   for loss in losses]
    return {"rows": (*rows, ("pixel", "pixel baseline, dominant classes (`icechart_pixel`)")),
            "columns": columns, "comparisons": comparisons, "goals": ()}


def winner(losses, per_seed, summary):
    """The loss with the highest mean SOD F1 vs truth, the seeds it is best on, and its paired lead."""
    best = max(losses, key=lambda loss: summary[loss][WINNER_COLUMN]["mean"])
    seeds = sorted(per_seed, key=int)
    best_on = [s for s in seeds if max(losses, key=lambda loss: per_seed[s][loss][WINNER_COLUMN]) == best]
    leads = {}
    for other in losses:
        if other != best:
            diff = [per_seed[s][best][WINNER_COLUMN] - per_seed[s][other][WINNER_COLUMN] for s in seeds]
            leads[other] = dict(results.summarize(diff), ahead_on=sum(d > 0 for d in diff))
    return {"loss": best, "column": WINNER_COLUMN, "best_on": len(best_on), "of": len(seeds), "lead_over": leads}


def document(losses, records):
    """results/icechart_losses_<precision>.json of the seeds' run_seed records."""
    per_seed = {str(r["seed"]): r["figures"] for r in records}
    spec = spec_of(losses, per_seed)
    summary, _, comparisons = results.aggregate(spec, per_seed)
    seeds = [r["seed"] for r in records]
    return {"table": TABLE, "losses": list(losses), "title": "Ice types: the `--composition_loss` options of "
            "`icechart_regional` side by side at the quickstart budget, whole-scene evaluation of 3 held-out "
            "sample scenes", "seeds": seeds, "varies": results.VARIES,
            "command": f"make results-icechart LOSSES={','.join(losses)} SEEDS={','.join(map(str, seeds))}",
            "quickstart_loss": sorted({r["quickstart_loss"] for r in records}), "machine": results.machine(),
            "precision": sorted({p for r in records for p in r["precision"]}),
            "git_commit": ", ".join(sorted({c for r in records for c in r["git_commit"].split(", ")})),
            "date": datetime.date.today().isoformat(),
            "seconds_per_seed": statistics.fmean(r["seconds"] for r in records),
            "load_average": statistics.fmean(r["load_average"] for r in records),
            "overrides": sorted({json.dumps(r.get("overrides", {}), sort_keys=True) for r in records}),
            "rows": [list(r) for r in spec["rows"]], "columns": [list(c) for c in spec["columns"]],
            "per_seed": per_seed, "summary": summary, "comparisons": comparisons,
            "winner": winner(losses, per_seed, summary)}


def run_grid(losses, seeds, work_dir, py, rerun=False):
    """Data once (the quickstart's steps 1 2), then every seed's models, one after another."""
    bad = [loss for loss in losses if loss not in COMPOSITION_LOSSES]
    if bad or not losses:
        raise InputError("--losses", f"{','.join(bad) or 'nothing'}: give some of {', '.join(COMPOSITION_LOSSES)}")
    results.run_data(TABLES[TABLE], work_dir, py, rerun)
    print(f"[results] {TABLE}: losses {losses}, seeds {seeds}, logs in {work_dir}/seed_N/[loss_L/]log.txt", flush=True)
    return document(losses, [run_seed(work_dir, s, losses, py, rerun) for s in seeds])


# ------------------------------------------------------------------ docs blocks

def configs_loss():
    """{config: the --composition_loss it sets} of CONFIGS (this checkout's)."""
    out = {}
    for rel in CONFIGS:
        with open(os.path.join(ROOT, rel)) as f:
            found = re.findall(r"^--composition_loss=(\S+)", f.read(), re.M)
        out[rel] = found[-1] if found else None
    return out


def _fmt(s, col):
    return cell(s, 1) if col == "autoice_score" else cell(s, 2 if col.startswith("sod_f1_") else 3)


def _table(doc):
    cols = doc["columns"]
    lines = ["| | " + " | ".join(label for _, label in cols) + " |", "|---" + "|---:" * len(cols) + "|"]
    for row, label in doc["rows"]:
        bold = row == doc["winner"]["loss"]
        lines.append(f"| {'**' + label + '**' if bold else label} | "
                     + " | ".join(_fmt(doc["summary"][row][c], c) for c, _ in cols) + " |")
    return lines


def _about(doc):
    n, seeds = len(doc["seeds"]), ", ".join(map(str, doc["seeds"]))
    changed = [o for o in doc.get("overrides", []) if o != "{}"]
    budget = ("at the quickstart budget" if not changed
              else f"NOT at the quickstart budget (environment: {'; '.join(changed)})")
    return (f"Mean ± std (sample std, n − 1) over n = {n} seeds ({seeds}) {budget}, the same data and seeds for "
            f"every row; {', '.join(doc['precision'])} on {results.machine_text(doc['machine'])}, tfseaice "
            f"{doc['git_commit']}, {doc['date']}, {doc['seconds_per_seed']:.0f} s per seed for all "
            f"{len(doc['rows'])} models (load average {doc['load_average']:.1f}{results._shared(doc)}). "
            "F1 and R² against the sample scenes' pixel truth; per-class SOD F1 = 2 TP / (truth + predicted "
            "pixels of the class) from the evaluation's `truth_confusion`; AutoICE score = (2 SIC R² + 2 SOD F1 "
            "+ FLOE F1) / 5 in percent against each test scene's own chart.")


def settled(d):
    """Is a paired difference's mean above 0 at 95 % (one-sided paired t-test over the seeds)?"""
    from scipy.stats import t

    if d["std"] is None or d["n"] < 2:
        return False
    if d["std"] == 0:
        return d["mean"] > 0
    return d["mean"] / (d["std"] / d["n"] ** 0.5) > float(t.ppf(0.95, d["n"] - 1))


def _winner_text(doc):
    w, s = doc["winner"], doc["summary"]
    best = w["loss"]
    leads = "; ".join(f"ahead of `{o}` ({cell(s[o][WINNER_COLUMN])}) on {d['ahead_on']} of {d['n']} seeds, "
                      f"paired difference {cell(d)}{'' if settled(d) else ', within the seeds’ spread'}"
                      for o, d in w["lead_over"].items())
    lo, hi = one_run_range(s[best][WINNER_COLUMN], "truth_sod_f1")
    text = (f"Default `--composition_loss`: **`{best}`**, the highest mean SOD weighted F1 against truth over the "
            f"seeds ({cell(s[best][WINNER_COLUMN])}; the best of the losses on {w['best_on']} of {w['of']} seeds); "
            f"{leads}.")
    ranges = "; ".join(f"`{row}` {'–'.join(f'{v:.3f}' for v in one_run_range(s[row][WINNER_COLUMN], 'truth_sod_f1'))}"
                       for row, _ in doc["rows"])
    text += (f" Range of one new run's SOD F1 (95 % prediction interval, mean ± t(0.975, n − 1)·s·√(1 + 1/n), "
             f"at least min–max): {ranges}.")
    if not all(settled(d) for d in w["lead_over"].values()):
        text += (f" A lead within the spread (not above 0 at 95 %, one-sided paired t over the seeds) does not "
                 f"settle the ranking: `{best}` is the default because it leads, not because it is proven better.")
    configs = configs_loss()
    if all(v == best for v in configs.values()):
        text += f" {' and '.join(configs)} set `--composition_loss={best}`."
    else:
        text += " The configs DIFFER: " + "; ".join(f"{k} sets `{v}`" for k, v in configs.items()) + "."
    return text


def glance(docs):
    """README.md's part of the `results:icechart` block: each loss grid's table and its winner."""
    out = []
    for doc in docs:
        out += [f"<!-- generated by `{doc['command']}` (scripts/results_losses.py) from results/{doc_name(doc)}: "
                "edit neither by hand -->", "", "The `--composition_loss` options side by side "
                "([docs/ice_type_losses.md](docs/ice_type_losses.md)):", "", *_table(doc), "",
                _about(doc), "", _winner_text(doc), ""]
    return "\n".join(out)


def markdown(doc):
    """docs/results.md's part of the `results:icechart` block: the table, the seeds, every comparison."""
    lines = [f"<!-- generated by `{doc['command']}` (scripts/results_losses.py) from results/{doc_name(doc)}: "
             "edit neither by hand -->", f"**The `--composition_loss` options, {', '.join(doc['precision'])}** on "
             f"{results.machine_text(doc['machine'])}:", "", *_table(doc), "", _about(doc), "",
             _winner_text(doc)]
    for c in doc["comparisons"]:
        d = c["difference"]
        lines += ["", f"Over the seeds, {c['claim']} on {c['holds_on']} of {c['of']} "
                      f"(difference {cell(d)}, min {d['min']:+.3f})."]
    return "\n".join(lines)

