"""Which documented range one new run is held to: the 95 % prediction interval of one new run, and the
measured CPU kind nearest to the run's (scripts/results.py's range check, on the quickstarts' last lines),
and the lines that put a run beside it (`check_run`, `report`)."""

import math

from results_tables import AT_MOST_ONE, TABLES, cell, doc_name, label


def prediction_half_width(s):
    """Half-width of the 95 % prediction interval for ONE new run, t(0.975, n-1) * s * sqrt(1 + 1/n).

    Why not mean ± 2 s: with 3 seeds that covers a new run far less often than 95 % (t(0.975, 2) =
    4.30, and the new run's own spread adds sqrt(1 + 1/3)); a newcomer's baseline fell outside it.
    0 for a single seed (no spread known: the range is that value).
    """
    from scipy.stats import t

    if s["std"] is None or s["n"] < 2:
        return 0.0
    return float(t.ppf(0.975, s["n"] - 1)) * s["std"] * math.sqrt(1.0 + 1.0 / s["n"])


CPU_KINDS = ("avx2", "avx512", "avx512_bf16", "amx")   # the CPU kinds the project meets, in ISA order


def cpu_kind(m):
    """A `machine()` dict's CPU kind (CPU_KINDS; "baseline" without AVX2)."""
    if m.get("amx_bf16"):
        return "amx"
    if m.get("avx512_bf16"):
        return "avx512_bf16"
    if m.get("avx512f"):
        return "avx512"
    return "avx2" if m.get("avx2") else "baseline"


def nearest_doc(docs, run_precision, here):
    """(document, note) to compare a run with: the run's precision first, then the CPU kind nearest to
    `here` (a `machine()` dict) in ISA order; `note` says what differs from the run, "" when nothing."""
    kind = cpu_kind(here)
    order = {k: i for i, k in enumerate(("baseline",) + CPU_KINDS)}
    same = [d for d in docs if d["precision"] == run_precision] or docs
    doc = min(same, key=lambda d: abs(order[cpu_kind(d["machine"])] - order[kind]))
    notes = []
    if cpu_kind(doc["machine"]) != kind:
        measured = sorted({f"{cpu_kind(d['machine'])} ({'+'.join(d['precision'])})" for d in docs})
        notes.append(f"This run's CPU is {kind}; the ranges were measured on {', '.join(measured)}: compared with "
                     f"the nearest, {cpu_kind(doc['machine'])} ({doc['machine']['cpu']}).")
    return doc, " ".join(notes)


def check_run(doc, figures):
    """[(row, column, value, summary, lo, hi, inside)] of one run's headline figures against `doc`.

    The documented range is the 95 % prediction interval of one new run (`prediction_half_width`),
    widened to the seeds' min–max, and capped at 1 for a metric that cannot exceed it (AT_MOST_ONE).
    """
    spec = TABLES[doc["table"]]
    out = []
    for row, col in spec["headline"]:
        s, value = doc["summary"][row][col], figures[row][col]
        lo, hi = one_run_range(s, col)
        out.append((row, col, value, s, lo, hi, bool(lo <= value <= hi)))
    return out


def one_run_range(s, col=None):
    """(lo, hi) of one new run: the prediction interval, at least min–max, at most 1 where `col` cannot exceed it."""
    spread = prediction_half_width(s)
    lo, hi = min(s["min"], s["mean"] - spread), max(s["max"], s["mean"] + spread)
    return lo, (min(hi, 1.0) if col in AT_MOST_ONE else hi)


def report(doc, rows, run_precision=None, note=""):
    """The lines the quickstarts print: each figure beside the documented range, and a plain verdict."""
    spec = TABLES[doc["table"]]
    lines = [f"This run beside the documented range (results/{doc_name(doc)}: {len(doc['seeds'])} seeds, "
             f"{', '.join(doc['precision'])} on {doc['machine']['cpu']}, CPU kind {cpu_kind(doc['machine'])}; "
             "range = 95 % prediction interval of one new run, mean ± t·s·√(1 + 1/n), at least min–max, at most 1):"]
    outside = []
    for row, col, value, s, lo, hi, inside in rows:
        name = label(spec, row, col)
        lines.append(f"  {name:<60} this run {value:.3f}   documented {cell(s)} (range {lo:.3f}–{hi:.3f})   "
                     f"{'inside' if inside else 'OUTSIDE'}")
        if not inside:
            outside.append(name)
    if note:
        lines.append(note)
    if outside:
        lines.append(f"This run is OUTSIDE the documented range on {len(outside)} of {len(rows)} figures: "
                     + "; ".join(outside) + ".")
    else:
        lines.append(f"This run is inside the documented range on all {len(rows)} figures.")
    if run_precision and run_precision != doc["precision"]:
        lines.append(f"This run trained in {', '.join(run_precision)}, the range in {', '.join(doc['precision'])}: "
                     "rerun with --precision=fp32 (TRAIN_ARGS=--precision=fp32) to compare across CPUs.")
    return lines
