"""Which documented range one new run is held to: the 95 % prediction interval of one new run, and the
measured CPU kind nearest to the run's (scripts/results.py's range check, on the quickstarts' last lines)."""

import math


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
