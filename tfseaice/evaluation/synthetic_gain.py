"""The synthetic-data experiment's table: zones.json of many runs -> mean ± std per setting, gain over F = 0.

Run layout (written by scripts/synthetic_gain.sh):

    RUNS_DIR/<setting>/F<fraction>/seed<seed>/zones.json

where <setting> names the real-data setting (e.g. `full`, `real25`), F the
--synthetic_fraction and zones.json is `python -m tfseaice.evaluate
--task=glacier_zones` output (keys `miou`, `mde_m`, `images_without_front`).

Per (setting, F): number of runs, mean and sample std (ddof 1; None for one
run) of mIoU and MDE over the seeds, and the gain over F = 0 of the same
setting: the mean and std of the per-seed paired differences (seeds present
at both F). MDE is averaged over the runs that have one (a run whose model
finds no front has none).
"""

import glob
import math
import os
import re

import numpy as np

from tfseaice import glacier_viz, io_utils
from tfseaice.errors import InputError

RUN_RE = re.compile(r"(?P<setting>[^/]+)/F(?P<fraction>\d+(?:\.\d*)?)/seed(?P<seed>\d+)/zones\.json$")
OUTPUTS = ("synthetic_gain.json", "synthetic_gain.md", "synthetic_gain.png")


def _number(value):
    """float, or None for a missing / NaN value."""
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


def collect(runs_dir):
    """[{setting, synthetic_fraction, seed, miou, mde_m, images_without_front, path}] of every run found."""
    runs = []
    for path in sorted(glob.glob(os.path.join(runs_dir, "*", "F*", "seed*", "zones.json"))):
        rel = os.path.relpath(path, runs_dir).replace(os.sep, "/")
        m = RUN_RE.match(rel)
        if not m:
            raise InputError(path, "is not RUNS_DIR/<setting>/F<fraction>/seed<seed>/zones.json")
        result = io_utils.read_json(path)
        if not isinstance(result, dict) or "miou" not in result:
            raise InputError(path, "has no 'miou' (not a zones evaluator output)")
        runs.append({"setting": m["setting"], "synthetic_fraction": float(m["fraction"]), "seed": int(m["seed"]),
                     "miou": _number(result["miou"]), "mde_m": _number(result.get("mde_m")),
                     "images_without_front": result.get("images_without_front"), "path": path})
    if not runs:
        raise InputError(runs_dir, "holds no <setting>/F<fraction>/seed<seed>/zones.json")
    return runs


def _stats(values):
    """(mean, sample std or None, count) of the non-None values; (None, None, 0) when there are none."""
    values = [v for v in values if v is not None]
    if not values:
        return None, None, 0
    std = float(np.std(values, ddof=1)) if len(values) > 1 else None
    return float(np.mean(values)), std, len(values)


def summarize(runs):
    """One row per (setting, F), settings in first-seen order, F ascending (see the module docstring)."""
    rows = []
    for setting in dict.fromkeys(r["setting"] for r in runs):
        mine = [r for r in runs if r["setting"] == setting]
        base = {r["seed"]: r for r in mine if r["synthetic_fraction"] == 0.0}
        for fraction in sorted({r["synthetic_fraction"] for r in mine}):
            group = sorted((r for r in mine if r["synthetic_fraction"] == fraction), key=lambda r: r["seed"])
            row = {"setting": setting, "synthetic_fraction": fraction, "runs": len(group),
                   "seeds": [r["seed"] for r in group]}
            for key in ("miou", "mde_m"):
                row[key], row[f"{key}_std"], row[f"{key}_runs"] = _stats([r[key] for r in group])
                diffs = [r[key] - base[r["seed"]][key] for r in group
                         if r["seed"] in base and r[key] is not None and base[r["seed"]][key] is not None]
                row[f"{key}_gain"], row[f"{key}_gain_std"], row[f"{key}_paired_runs"] = _stats(diffs)
            rows.append(row)
    return rows


def _pm(mean, std, fmt, scale=1.0, signed=False):
    if mean is None:
        return "n/a"
    text = format(mean * scale, ("+" if signed else "") + fmt)
    return text + ("" if std is None else " ± " + format(std * scale, fmt))


def markdown(rows):
    """Markdown table: mIoU in %, MDE in metres, gains over F = 0 of the same setting."""
    lines = ["| setting | F | runs | mIoU (%) | MDE (m) | mIoU gain (pp) | MDE change (m) |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['setting']} | {r['synthetic_fraction']:g} | {r['runs']} | "
                     f"{_pm(r['miou'], r['miou_std'], '.1f', 100)} | {_pm(r['mde_m'], r['mde_m_std'], '.0f')} | "
                     f"{_pm(r['miou_gain'], r['miou_gain_std'], '.1f', 100, True)} | "
                     f"{_pm(r['mde_m_gain'], r['mde_m_gain_std'], '.0f', 1, True)} |")
    lines.append("")
    lines.append("Mean ± sample std over seeds; gains are per-seed paired differences to F = 0 of the same "
                 "setting (mean ± std).")
    return "\n".join(lines) + "\n"


def write_report(runs_dir, out_dir, overwrite=False):
    """Write synthetic_gain.json, .md and .png into `out_dir`; returns the rows."""
    paths = [os.path.join(out_dir, name) for name in OUTPUTS]
    for path in paths:
        io_utils.refuse_existing(path, overwrite)
    runs = collect(runs_dir)
    rows = summarize(runs)
    io_utils.write_json(paths[0], {"rows": rows, "runs": runs})
    with io_utils.atomic_path(paths[1]) as tmp:
        with open(tmp, "w") as f:
            f.write(markdown(rows))
    glacier_viz.save_synthetic_gain_plot(rows, paths[2])
    return rows
