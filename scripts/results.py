"""Rerun a results table over seeds and rewrite its blocks (`make results-sic`, `-glacier`, `-icechart`).

    python scripts/results.py --table=sic --seeds=1,2,3            # run, write results/sic_fp32.json and the docs
    python scripts/results.py --table=sic --check=quickstart_out   # one run's figures beside the documented range

A table is one entry of TABLES (results_tables.py): the quickstart script that
makes its figures (run with STEPS= and TRAIN_ARGS=--seed=N, so this file repeats
none of its commands), the steps that make the data (run once; the data are fixed) and the
steps that train and score (run once per seed), and how to read one seed's
figures from its output folder. Each seed writes WORK_DIR/seed_N; a seed whose
folder holds a `done.json` is collected, not rerun (--rerun to redo).
results/<table>_<precision>.json keeps every seed's figures, their mean, sample
std (n-1), min and max, the machine, the precision the models trained in, the
git commit and the date: one document per precision, so a table holds the
figures of an fp32 machine and of a bf16 (AMX) one side by side. The blocks
between `<!-- results:<table> -->` and `<!-- /results:<table> -->` are
regenerated from all of a table's documents: the full table in docs/results.md,
the at-a-glance table in README.md (scripts/results_docs.py, which also checks
them all); a quickstart's run is checked against the document of its own precision.
"""

import argparse
import datetime
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from results_range import check_run, cpu_kind, nearest_doc, prediction_half_width, report  # noqa: E402,F401
from results_tables import TABLES, doc_name, load_json  # noqa: E402
from results_tables import cell as _cell, label as _label  # noqa: E402
from tfseaice import io_utils  # noqa: E402
from tfseaice.errors import InputError  # noqa: E402

OVERRIDES = ("TRAIN_ARGS", "NUM_SCENES", "SIZE", "STRIDE")  # quickstart env vars that change the budget
VARIES = ("the training seed (`--seed` of `tfseaice.train`: weights, shuffling, augmentation, dropout) of every "
          "model the table trains; the sample data and the held-out set are the same for every seed")


# ------------------------------------------------------------------ aggregation

def summarize(values):
    """{n, mean, std, min, max} of a list of numbers; std is the sample std (n-1), None for one value."""
    values = [float(v) for v in values]
    if not values:
        raise ValueError("no values to summarize")
    return {"n": len(values), "mean": statistics.fmean(values),
            "std": statistics.stdev(values) if len(values) > 1 else None, "min": min(values), "max": max(values)}


def aggregate(spec, per_seed):
    """Summary {row: {column: summarize(...)}}, goals and comparisons of `per_seed` {seed: {row: {column: value}}}."""
    seeds = sorted(per_seed, key=int)
    summary = {row: {col: summarize([per_seed[s][row][col] for s in seeds]) for col, _ in spec["columns"]}
               for row, _ in spec["rows"]}
    comparisons = []
    for label, a, b, col in spec["comparisons"]:
        diff = {s: per_seed[s][a][col] - per_seed[s][b][col] for s in seeds}
        comparisons.append({"claim": label, "row": a, "versus": b, "column": col, "difference_per_seed": diff,
                            "holds_on": sum(d > 0 for d in diff.values()), "of": len(seeds),
                            "difference": summarize(list(diff.values()))})
    goals = [{"goal": label, "row": row, "column": col, "at_least": bound,
              "holds_on": sum(per_seed[s][row][col] >= bound for s in seeds), "of": len(seeds)}
             for label, row, col, bound in spec.get("goals", ())]
    return summary, goals, comparisons


def machine():
    """CPU model, core count and the CPU flags that decide `--precision=auto`."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    model = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
    except OSError:
        pass
    return {"cpu": model, "cores": os.cpu_count(), "avx2": "avx2" in flags, "avx512f": "avx512f" in flags,
            "avx512_bf16": "avx512_bf16" in flags, "amx_bf16": "amx_bf16" in flags}


def git_commit():
    try:
        sha = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
        return sha + ("+changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def precisions(spec, out):
    """The precision each model of one seed trained in (resolved `--precision`, from its task.json)."""
    return sorted({load_json(os.path.join(out, f))["config"]["precision"] for f in spec["task_files"]})


# ------------------------------------------------------------------ docs blocks

def machine_text(m):
    """'AMD EPYC, 2 cores, AVX2, no AVX512-BF16/AMX': what decides `--precision=auto` and the kernels."""
    isa = "AVX-512" if m.get("avx512f") else "AVX2" if m.get("avx2") else "no AVX2"
    bf16 = [name for key, name in (("avx512_bf16", "AVX512-BF16"), ("amx_bf16", "AMX")) if m.get(key)]
    return f"{m['cpu']}, {m['cores']} cores, {isa}, " + (", ".join(bf16) if bf16 else "no AVX512-BF16/AMX")


def _shared(doc):
    """': the machine was shared' where the load exceeded the cores (other jobs took CPU from the seeds)."""
    return ": the machine was shared" if doc["load_average"] > 1.25 * (doc["machine"].get("cores") or 1) else ""


def markdown(doc):
    """The docs/results.md part of one results document (results/<table>_<precision>.json)."""
    spec = TABLES[doc["table"]]
    seeds, n = ", ".join(str(s) for s in doc["seeds"]), len(doc["seeds"])
    m = doc["machine"]
    lines = [f"<!-- generated by `make results-{doc['table']}` (scripts/results.py) from results/{doc_name(doc)}:"
             " edit neither by hand -->",
             f"**{', '.join(doc['precision'])}** on {machine_text(m)}:", "",
             "| | " + " | ".join(label for _, label in spec["columns"]) + " |",
             "|---" + "|---:" * len(spec["columns"]) + "|"]
    for row, label in spec["rows"]:
        lines.append(f"| {label} | " + " | ".join(_cell(doc["summary"][row][col]) for col, _ in spec["columns"])
                     + " |")
    what = (f"Mean ± std (sample std, n − 1) over {n} seeds ({seeds})" if n > 1 else f"One run (seed {seeds})")
    changed = [o for o in doc.get("overrides", []) if o != "{}"]
    budget = ("at the quickstart budget" if not changed
              else f"NOT at the quickstart budget (environment: {'; '.join(changed)})")
    lines += ["", f"{what} {budget}; the seed is {doc['varies']}. "
              f"Machine: {machine_text(m)}; precision {', '.join(doc['precision'])}, "
              f"tfseaice {doc['git_commit']}, {doc['date']}, {doc['seconds_per_seed']:.0f} s per seed "
              f"(load average {doc['load_average']:.1f}{_shared(doc)})."]
    ranges = "; ".join(f"{_label(spec, r, c)} {doc['summary'][r][c]['min']:.3f}–{doc['summary'][r][c]['max']:.3f}"
                       for r, c in spec["headline"])
    lines += ["", f"Min–max over the seeds: {ranges}."]
    one_run = "; ".join(f"{_label(spec, r, c)} {lo:.3f}–{hi:.3f}" for r, c, _, _, lo, hi, _ in
                        check_run(doc, {r: {c: s["mean"] for c, s in cols.items()} for r, cols in doc["summary"].items()}))
    lines += ["", f"Range of one new run on this CPU kind ({cpu_kind(m)}) and precision (95 % prediction interval, "
                  f"mean ± t(0.975, n − 1)·s·√(1 + 1/n), at least min–max; what a quickstart is checked against): "
                  f"{one_run}."]
    for g in doc.get("goals", ()):
        lines += ["", f"Goal {_label(spec, g['row'], g['column'])} ≥ {g['at_least']}: met on {g['holds_on']} of "
                      f"{g['of']} seeds (mean {doc['summary'][g['row']][g['column']]['mean']:.3f})."]
    for c in doc["comparisons"]:
        d = c["difference"]
        lines.append("")
        lines.append(f"Over the seeds, {c['claim']} on {c['holds_on']} of {c['of']} "
                     f"(difference {_cell(d)}, min {d['min']:+.3f}).")
    return "\n".join(lines)


def replace_marked(text, name, block, source):
    """`text` with the lines between `<!-- name -->` and `<!-- /name -->` replaced by `block` (the rest untouched)."""
    start, end = f"<!-- {name} -->", f"<!-- /{name} -->"
    if text.count(start) != 1 or text.count(end) != 1:
        raise InputError(source, f"needs exactly one '{start}' and one '{end}' line "
                                 f"(found {text.count(start)} and {text.count(end)})")
    i, j = text.index(start) + len(start), text.index(end)
    if j < i:
        raise InputError(source, f"'{end}' comes before '{start}'")
    return text[:i] + "\n" + block.strip("\n") + "\n" + text[j:]


def replace_block(text, table, block, source="README.md"):
    """`replace_marked` for a results table's block (`<!-- results:TABLE -->`)."""
    return replace_marked(text, f"results:{table}", block, source)


# ------------------------------------------------------------------ running

def _run_script(spec, out, steps, seed, py, log):
    env = dict(os.environ, OUT=out, STEPS=steps, PY=py)
    env["TRAIN_ARGS"] = (env.get("TRAIN_ARGS", "") + f" --seed={seed}").strip() if seed is not None else \
        env.get("TRAIN_ARGS", "")
    cmd = ["bash", os.path.join(ROOT, spec["script"])]
    with open(log, "w") as f:
        f.write(f"$ OUT={out} STEPS='{steps}' TRAIN_ARGS={shlex.quote(env['TRAIN_ARGS'])} {' '.join(cmd)}\n")
        f.flush()
        code = subprocess.run(cmd, cwd=ROOT, env=env, stdout=f, stderr=subprocess.STDOUT).returncode
    if code:
        raise RuntimeError(f"{spec['script']} failed (exit {code}); see {log}")


def overrides():
    """The quickstart settings changed through the environment (none: the quickstart budget)."""
    return {k: os.environ[k] for k in OVERRIDES if os.environ.get(k)}


def _same_budget(path):
    """A finished seed's record, refused if it ran with other quickstart settings than this call."""
    record = load_json(path)
    if record.get("overrides", {}) != overrides():
        raise InputError(path, f"was run with {json.dumps(record.get('overrides', {}))}, this call has "
                               f"{json.dumps(overrides())}: use another --work_dir, or --rerun to redo it")
    return record


def run_seed(spec, work_dir, seed, py, rerun=False):
    """Train and score one seed in WORK_DIR/seed_N (data linked from WORK_DIR/data); its done.json."""
    out = os.path.join(work_dir, f"seed_{seed}")
    done = os.path.join(out, "done.json")
    if os.path.exists(done) and not rerun:
        return _same_budget(done)
    os.makedirs(out, exist_ok=True)
    for name in spec["shared"]:
        link = os.path.join(out, name)
        if not os.path.lexists(link):
            os.symlink(os.path.join("..", "data", name), link)
    trained = os.path.join(out, "trained.json")  # the script's run, kept if reading its figures fails
    if not os.path.exists(trained) or rerun:
        commit, start = git_commit(), time.time()
        _run_script(spec, out, spec["seed_steps"], seed, py, os.path.join(out, "log.txt"))
        io_utils.write_json(trained, {"seconds": time.time() - start, "load_average": os.getloadavg()[0],
                                      "git_commit": commit, "overrides": overrides()})
    record = dict(_same_budget(trained), seed=seed, figures=spec["figures"](out), precision=precisions(spec, out))
    io_utils.write_json(done, record)
    return record


def run_data(spec, work_dir, py, rerun=False):
    """The table's data steps, once, into WORK_DIR/data (skipped when its done.json is there)."""
    data = os.path.join(work_dir, "data")
    if not os.path.exists(os.path.join(data, "done.json")) or rerun:
        os.makedirs(data, exist_ok=True)
        print(f"[results] data (steps {spec['data_steps']} of {spec['script']}) -> {data}", flush=True)
        _run_script(spec, data, spec["data_steps"], None, py, os.path.join(data, "log.txt"))
        io_utils.write_json(os.path.join(data, "done.json"), {"steps": spec["data_steps"]})


def run_table(table, seeds, work_dir, py, jobs=1, rerun=False):
    """Data once, then every seed (`jobs` at a time); the results document."""
    spec = TABLES[table]
    run_data(spec, work_dir, py, rerun)
    print(f"[results] {table}: seeds {seeds} ({jobs} at a time), logs in {work_dir}/seed_N/log.txt", flush=True)
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        records = list(pool.map(lambda s: run_seed(spec, work_dir, s, py, rerun), seeds))
    return document(table, records)


def document(table, records):
    """The results document (results/<table>_<precision>.json) of the seeds' done.json records."""
    spec = TABLES[table]
    per_seed = {str(r["seed"]): r["figures"] for r in records}
    summary, goals, comparisons = aggregate(spec, per_seed)
    commits = sorted({r["git_commit"] for r in records})
    return {"table": table, "title": spec["title"], "seeds": [r["seed"] for r in records], "varies": VARIES,
            "command": f"make results-{table}", "machine": machine(),
            "precision": sorted({p for r in records for p in r["precision"]}),
            "git_commit": ", ".join(commits), "date": datetime.date.today().isoformat(),
            "seconds_per_seed": statistics.fmean(r["seconds"] for r in records),
            "load_average": statistics.fmean(r["load_average"] for r in records),
            "overrides": sorted({json.dumps(r.get("overrides", {}), sort_keys=True) for r in records}),
            "per_seed": per_seed, "summary": summary, "goals": goals, "comparisons": comparisons}


def table_docs(table, out_dir, losses=False):
    """Every results document of `table` in `out_dir`, fp32 first, then by precision; `losses`: its loss
    grids' documents (<table>_losses_<precision>.json, scripts/results_losses.py) instead of its own."""
    docs = []
    if os.path.isdir(out_dir):
        for name in sorted(os.listdir(out_dir)):
            if name.startswith(f"{table}_") and name.endswith(".json") and \
                    name.startswith(f"{table}_losses_") == losses:
                doc = load_json(os.path.join(out_dir, name))
                if doc.get("table") != table or name != doc_name(doc):
                    raise InputError(os.path.join(out_dir, name), f"is not the {table} table's document "
                                                                  f"its name says (expected {doc_name(doc)})")
                docs.append(doc)
    return sorted(docs, key=lambda d: (d["precision"] != ["fp32"], d["precision"]))


def _rewrite(path, table, block):
    with open(path) as f:
        text = f.read()
    new = replace_block(text, table, block, path)
    with io_utils.atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            f.write(new)


def write_outputs(doc, out_dir, full_doc, glance_doc=None):
    """Write `doc`, then the table's blocks from all of its documents (one per precision, and its loss
    grids'): the full table into `full_doc` (docs/results.md), the at-a-glance one into `glance_doc` (README.md)."""
    io_utils.write_json(os.path.join(out_dir, doc_name(doc)), doc)
    from results_docs import blocks  # results_docs imports this module: import it when used

    full_block, glance_block = blocks(doc["table"], out_dir)
    _rewrite(full_doc, doc["table"], full_block)
    if glance_doc:
        _rewrite(glance_doc, doc["table"], glance_block)


def check(table, run_dir, results_dir):
    """Print one run's figures beside the documented range of its precision; never fails the run."""
    docs, spec = table_docs(table, results_dir), TABLES[table]
    if not docs:
        print(f"No documented range yet (no {table}_<precision>.json in {results_dir}): "
              f"`make results-{table}` writes it.")
        return
    figures = spec["figures"](run_dir)
    try:
        run_precision = precisions(spec, run_dir)
    except InputError:
        run_precision = None
    doc, note = nearest_doc(docs, run_precision, machine())
    print("\n".join(report(doc, check_run(doc, figures), run_precision, note)))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--table", required=True, choices=sorted(TABLES))
    p.add_argument("--seeds", default="1,2,3", help="comma-separated training seeds")
    p.add_argument("--work_dir", default=None, help="runs' folder (default results_out/<table>)")
    p.add_argument("--out", default=os.path.join(ROOT, "results"), help="folder of <table>_<precision>.json")
    p.add_argument("--readme", default=os.path.join(ROOT, "README.md"), help="gets the table at a glance")
    p.add_argument("--results_doc", default=os.path.join(ROOT, "docs", "results.md"), help="gets the full table")
    p.add_argument("--py", default=sys.executable, help="python of the quickstart steps")
    p.add_argument("--jobs", type=int, default=1, help="seeds trained at the same time")
    p.add_argument("--losses", default="", help="icechart: a loss grid of these --composition_loss options "
                   "(scripts/results_losses.py), e.g. xent,sse,pll_focal")
    p.add_argument("--rerun", action="store_true", help="redo seeds (and data) that have a done.json")
    p.add_argument("--check", default=None, metavar="RUN_DIR", help="only print RUN_DIR's figures beside the range")
    a = p.parse_args(argv)
    try:
        if a.check:
            try:
                check(a.table, a.check, a.out)
            except (InputError, KeyError) as exc:  # a report: the quickstart's run stands without it
                print(f"Cannot compare this run with the documented range: {exc}")
            return 0
        seeds = [int(s) for s in a.seeds.split(",") if s.strip()]
        work_dir = os.path.abspath(a.work_dir or os.path.join(ROOT, "results_out", a.table))
        if a.losses:
            import results_losses

            if a.table != results_losses.TABLE:
                raise InputError("--losses", f"is a loss axis of --table={results_losses.TABLE} only")
            doc = results_losses.run_grid([x for x in a.losses.split(",") if x.strip()], seeds, work_dir, a.py,
                                          a.rerun)
            write_outputs(doc, a.out, a.results_doc, a.readme)
            print(results_losses.markdown(doc))
            return 0
        doc = run_table(a.table, seeds, work_dir, a.py, max(1, a.jobs), a.rerun)
        write_outputs(doc, a.out, a.results_doc, a.readme)
    except (InputError, RuntimeError, KeyError) as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 1
    print(markdown(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
