"""Benchmark output: plain-text tables, the results JSON and the closing `key=value` line.

Every bench script prints a table, writes ``bench/results/NAME.json`` (or
``--results_dir``) holding ``machine_info()`` next to its numbers, and ends
with one line ``key=value key=value ...``.
"""

import json
import os
import sys
import time

from bench.lib.machine import BENCH_DIR, machine_info

RESULTS_DIR = os.path.join(BENCH_DIR, "results")


def format_table(rows, columns, floatfmt="{:.3g}"):
    """Plain-text table of `rows` (dicts) over `columns` (keys or (key, header))."""
    cols = [(c, c) if isinstance(c, str) else c for c in columns]

    def fmt(v):
        if isinstance(v, float):
            return floatfmt.format(v)
        return "" if v is None else str(v)

    cells = [[h for _, h in cols]] + [[fmt(r.get(k)) for k, _ in cols] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cols))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def print_table(rows, columns, title=None, floatfmt="{:.3g}"):
    if title:
        print(title)
    print(format_table(rows, columns, floatfmt), flush=True)


def write_result(name, payload, results_dir=None):
    """Write `payload` + machine info to RESULTS_DIR/NAME.json (atomically); returns the path."""
    results_dir = results_dir or RESULTS_DIR
    os.makedirs(results_dir, exist_ok=True)
    path = os.path.join(results_dir, f"{name}.json")
    doc = {"benchmark": name, "machine": machine_info(), "command": " ".join([os.path.basename(sys.argv[0])] + sys.argv[1:])}
    doc.update(payload)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=2, default=_json_default)
        f.write("\n")
    os.replace(tmp, path)
    return path


def merge_result(name, key, value, results_dir=None):
    """Set `key` of RESULTS_DIR/NAME.json to `value`, keeping its other keys (atomically); returns the path.

    A missing file is started with the benchmark's name and the machine.
    """
    path = os.path.join(results_dir or RESULTS_DIR, f"{name}.json")
    doc = {}
    if os.path.exists(path):
        with open(path) as f:
            doc = json.load(f)
    doc.setdefault("benchmark", name)
    doc.setdefault("machine", machine_info())
    doc[key] = value
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "w") as f:
        json.dump(doc, f, indent=2, default=_json_default)
        f.write("\n")
    os.replace(path + ".tmp", path)
    return path


def _json_default(o):
    try:
        import numpy as np

        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
    except ImportError:
        pass
    return str(o)


def summary_line(values):
    """The closing `key=value ...` line (floats with 4 significant digits)."""
    parts = []
    for k, v in values.items():
        if isinstance(v, float):
            v = f"{v:.4g}"
        elif isinstance(v, bool):
            v = str(v).lower()
        parts.append(f"{k}={v}")
    line = " ".join(parts)
    print(line, flush=True)
    return line


def parse_summary(text):
    """dict of the last `key=value ...` line of `text` (for run_all and tests)."""
    for line in reversed(text.strip().splitlines()):
        if "=" in line and all("=" in p for p in line.split()):
            return dict(p.split("=", 1) for p in line.split())
    return {}


def progress(msg):
    print(f"[{time.strftime('%H:%M:%S')} load {os.getloadavg()[0]:.2f}] {msg}", flush=True)
