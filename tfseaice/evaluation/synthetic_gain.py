"""The synthetic-data experiment's table: zones.json of many runs -> mean ± std per setting, gain over F = 0.

Run layout (written by scripts/synthetic_gain.sh):

    RUNS_DIR/<setting>/[<generator>_]F<fraction>/seed<seed>/zones.json

where <setting> names the real-data setting (e.g. `full`, `real25`), the
optional <generator> the pix2pix recipe that made the synthetic pairs (e.g.
`paper`, `realism`; the real-only runs, F = 0, have none and are every
generator's reference), F the --synthetic_fraction and zones.json is
`python -m tfseaice.evaluate --task=glacier_zones` output (keys `miou`,
`mde_m`, `images_without_front`). A `train.json` beside it (epochs run, best
epoch, steps; the script writes it from the model's history) is carried along.

Per (setting, generator, F): number of runs, mean and sample std (ddof 1;
None for one run) of mIoU and MDE over the seeds, the 95 % confidence
interval of the mean (Student t, n - 1 degrees of freedom: with 5 seeds the
half-width is 2.78 std / sqrt(5)), and the gain over F = 0 of the same
setting: mean, std and 95 % CI of the per-seed paired differences (seeds
present at both). MDE is averaged over the runs that have one (a run whose
model finds no front has none). `answer` states, per setting and generator,
whether the synthetic pairs moved the front (MDE) beyond the CI.
"""

import glob
import math
import os
import re

import numpy as np
from scipy import stats as scipy_stats

from tfseaice import io_utils
from tfseaice.errors import InputError

RUN_RE = re.compile(r"(?P<setting>[^/]+)/(?:(?P<generator>[A-Za-z0-9]+)_)?F(?P<fraction>\d+(?:\.\d*)?)"
                    r"/seed(?P<seed>\d+)/zones\.json$")
CAFFE_MDE_ANCHORS_M = {"CaFFe baseline": 753.0, "HookFormer": 353.0, "best published": 184.0}
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
    for path in sorted(glob.glob(os.path.join(runs_dir, "*", "*F*", "seed*", "zones.json"))):
        rel = os.path.relpath(path, runs_dir).replace(os.sep, "/")
        m = RUN_RE.match(rel)
        if not m:
            raise InputError(path, "is not RUNS_DIR/<setting>/F<fraction>/seed<seed>/zones.json")
        result = io_utils.read_json(path)
        if not isinstance(result, dict) or "miou" not in result:
            raise InputError(path, "has no 'miou' (not a zones evaluator output)")
        train = io_utils.read_json(os.path.join(os.path.dirname(path), "train.json"), missing={})
        runs.append({"setting": m["setting"], "generator": m["generator"],
                     "synthetic_fraction": float(m["fraction"]), "seed": int(m["seed"]),
                     "miou": _number(result["miou"]), "mde_m": _number(result.get("mde_m")),
                     "images_without_front": result.get("images_without_front"), "path": path,
                     "epochs_run": train.get("epochs_run"), "best_epoch": train.get("best_epoch"),
                     "steps": train.get("steps")})
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


def ci95_half_width(std, n):
    """Half-width of the 95 % t-interval of a mean of n values with sample std `std` (None if n < 2)."""
    if std is None or n is None or n < 2:
        return None
    return float(scipy_stats.t.ppf(0.975, n - 1) * std / math.sqrt(n))


def summarize(runs):
    """One row per (setting, generator, F), settings in first-seen order, the real-only row (F = 0) first,
    then per generator F ascending (see the module docstring)."""
    rows = []
    for setting in dict.fromkeys(r["setting"] for r in runs):
        mine = [r for r in runs if r["setting"] == setting]
        base = {r["seed"]: r for r in mine if r["synthetic_fraction"] == 0.0}
        cells = sorted({(r["synthetic_fraction"] > 0, r.get("generator") or "", r["synthetic_fraction"])
                        for r in mine})
        for _, generator, fraction in cells:
            group = sorted((r for r in mine if r["synthetic_fraction"] == fraction
                            and (r.get("generator") or "") == generator), key=lambda r: r["seed"])
            row = {"setting": setting, "generator": generator or None, "synthetic_fraction": fraction,
                   "runs": len(group), "seeds": [r["seed"] for r in group]}
            for key in ("miou", "mde_m"):
                row[key], row[f"{key}_std"], row[f"{key}_runs"] = _stats([r[key] for r in group])
                row[f"{key}_ci95"] = ci95_half_width(row[f"{key}_std"], row[f"{key}_runs"])
                diffs = [r[key] - base[r["seed"]][key] for r in group
                         if r["seed"] in base and r[key] is not None and base[r["seed"]][key] is not None]
                row[f"{key}_gain"], row[f"{key}_gain_std"], row[f"{key}_paired_runs"] = _stats(diffs)
                row[f"{key}_gain_ci95"] = ci95_half_width(row[f"{key}_gain_std"], row[f"{key}_paired_runs"])
            steps = [r.get("steps") for r in group if r.get("steps") is not None]
            row["steps_mean"] = float(np.mean(steps)) if steps else None
            row["steps_range"] = [int(min(steps)), int(max(steps))] if steps else None
            rows.append(row)
    return rows


def answer(rows):
    """Plain sentences per (setting, generator): did the synthetic pairs move the front beyond the 95 % CI?"""
    lines = []
    for r in rows:
        if r["synthetic_fraction"] == 0.0:
            continue
        who = f"{r['setting']}, {r['generator'] or 'synthetic'} pairs, F = {r['synthetic_fraction']:g}"
        gain, ci = r["mde_m_gain"], r["mde_m_gain_ci95"]
        if gain is None:
            lines.append(f"- {who}: no paired front distance (a model found no front).")
            continue
        if ci is None:
            verdict = "undecided (one paired seed, no interval)"
        elif gain + ci < 0:
            verdict = "helps the front"
        elif gain - ci > 0:
            verdict = "hurts the front"
        else:
            verdict = "no measurable effect on the front (the 95 % CI spans 0)"
        span = "" if ci is None else f" ± {ci:.0f}"
        lines.append(f"- {who}: MDE change {gain:+.0f}{span} m over {r['mde_m_paired_runs']} paired seeds: "
                     f"{verdict}; real-only MDE {_pm(_base_mde(rows, r), None, '.0f')} m against CaFFe's "
                     + " / ".join(f"{v:.0f}" for v in CAFFE_MDE_ANCHORS_M.values()) + " m.")
    return lines


def _base_mde(rows, row):
    for r in rows:
        if r["setting"] == row["setting"] and r["synthetic_fraction"] == 0.0:
            return r["mde_m"]
    return None


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
        label = r["setting"] + (f" ({r['generator']})" if r.get("generator") else "")
        lines.append(f"| {label} | {r['synthetic_fraction']:g} | {r['runs']} | "
                     f"{_pm(r['miou'], r['miou_std'], '.1f', 100)} | {_pm(r['mde_m'], r['mde_m_std'], '.0f')} | "
                     f"{_pm(r['miou_gain'], r['miou_gain_std'], '.1f', 100, True)} | "
                     f"{_pm(r['mde_m_gain'], r['mde_m_gain_std'], '.0f', 1, True)} |")
    lines.append("")
    lines.append("Mean ± sample std over seeds; gains are per-seed paired differences to F = 0 of the same "
                 "setting (mean ± std).")
    return "\n".join(lines) + "\n"


def _ci(mean, half, fmt, scale=1.0, signed=False):
    return _pm(mean, half, fmt, scale, signed)


def ci_markdown(rows):
    """Markdown table with generators, 95 % t-intervals and zone-model steps, then the plain answer."""
    lines = ["| setting | generator | F | seeds | steps (mean, range) | mIoU (%) | MDE (m) | mIoU gain (pp) | "
             "MDE change (m) |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        steps = "n/a" if r["steps_mean"] is None else f"{r['steps_mean']:.0f} ({r['steps_range'][0]}–{r['steps_range'][1]})"
        lines.append(f"| {r['setting']} | {r['generator'] or 'real only'} | {r['synthetic_fraction']:g} | {r['runs']} | "
                     f"{steps} | {_ci(r['miou'], r['miou_ci95'], '.1f', 100)} | "
                     f"{_ci(r['mde_m'], r['mde_m_ci95'], '.0f')} | "
                     f"{_ci(r['miou_gain'], r['miou_gain_ci95'], '.1f', 100, True)} | "
                     f"{_ci(r['mde_m_gain'], r['mde_m_gain_ci95'], '.0f', 1, True)} |")
    lines += ["", "Mean ± 95 % confidence half-width (Student t, n - 1 degrees of freedom) over seeds; gains are "
                  "per-seed paired differences to the real-only runs of the same setting. CaFFe's published test "
                  "MDE anchors: " + ", ".join(f"{k} {v:.0f} m" for k, v in CAFFE_MDE_ANCHORS_M.items()) + ".",
              "", "Does synthetic SAR help the calving front?", ""] + answer(rows)
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
            f.write(markdown(rows) + "\n" + ci_markdown(rows))
    save_ci_plot(rows, paths[2])
    return rows


def save_ci_plot(rows, path, title="Zone U-Net with synthetic training patches (mean, 95 % CI over seeds)"):
    """PNG: mIoU and MDE (absolute, with 95 % t-intervals) against F, one line per setting and generator,
    CaFFe's MDE anchors as dashed lines."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.2))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2)
    for setting in dict.fromkeys(r["setting"] for r in rows):
        mine = [r for r in rows if r["setting"] == setting]
        base = [r for r in mine if r["synthetic_fraction"] == 0.0]
        generators = sorted({r["generator"] or "" for r in mine if r["synthetic_fraction"] > 0}) or [""]
        for generator in generators:
            sub = base + [r for r in mine if r["synthetic_fraction"] > 0 and (r["generator"] or "") == generator]
            label = setting + (f" / {generator}" if generator else "")
            x = [r["synthetic_fraction"] for r in sub]
            for ax, key, scale in ((axes[0], "miou", 100.0), (axes[1], "mde_m", 1.0)):
                y = [np.nan if r[key] is None else r[key] * scale for r in sub]
                err = [0.0 if r[f"{key}_ci95"] is None else r[f"{key}_ci95"] * scale for r in sub]
                ax.errorbar(x, y, yerr=err, marker="o", capsize=3, label=label)
    for name, value in CAFFE_MDE_ANCHORS_M.items():
        axes[1].axhline(value, color="gray", lw=0.8, ls="--")
        axes[1].annotate(f"CaFFe: {name}", (0.0, value), fontsize=7, color="gray")
    for ax, label in ((axes[0], "zone mIoU (%)"), (axes[1], "front MDE (m; lower = better)")):
        ax.set_xlabel("synthetic fraction F")
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    with io_utils.atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
