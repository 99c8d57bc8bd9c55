"""Markdown "Performance" table from bench/results/*.json (the generated block of bench/README.md
and docs/performance.md, rewritten by `python scripts/results_docs.py --write`).

  python -m bench.report [--results_dir=bench/results]

Each benchmark's JSON names the machine it ran on; they are listed one by one, because
`make bench` and single reruns (`python -m bench.scene_inference`, ...) need not share one.
"""

import argparse
import json
import os
import sys

from bench.lib.machine import machine_line
from bench.lib.results import RESULTS_DIR


def load(results_dir, name):
    path = os.path.join(results_dir, f"{name}.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def fmt(v, nd=3):
    if v is None:
        return "-"
    if isinstance(v, float):
        if abs(v) >= 100:
            return f"{v:,.0f}"
        return f"{v:.{nd}g}"
    return str(v)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--results_dir", default=RESULTS_DIR)
    args = ap.parse_args(argv)
    print(report(args.results_dir))
    return 0


def report(results_dir=RESULTS_DIR):
    """The Markdown table and, above it, the machine and date of each benchmark's run."""
    rows, machines = [], []

    r = load(results_dir, "regional_loss")
    if r:
        machines.append(("regional_loss", r["machine"]))
        c = r["config"]
        rows.append((f"regional loss + grad, batch {c['batch_size']} x {c['patch_size']}^2, {r['pairs']} polygons",
                     f"{fmt(r['vectorised_seconds'] * 1000)} ms vs loop {fmt(r['loop_seconds'])} s",
                     f"**{fmt(r['speedup'])}x** (equal: {r['equal_within_1e-5']})", ">= 200x",
                     fmt(r["loadavg_after"][0])))

    t = load(results_dir, "train_step")
    if t:
        machines.append(("train_step", t["machine"]))
        for x in t["results"]:
            par = x.get("bf16_parity")
            note = f", bf16~fp32 {'ok' if par['ok'] else 'NO'}" if par else ""
            rows.append((f"train step {x['label']}",
                         f"{fmt(x['images_per_s'])} img/s ({fmt(x['steps_per_s'])} steps/s)",
                         f"{fmt(x['achieved_gflops'])} GFLOP/s = {100 * x['fraction_of_peak']:.1f} % of "
                         f"{'bf16' if x['config']['precision'] == 'bf16' else 'fp32'} peak{note}",
                         "", fmt(x["loadavg_after"][0])))
        for x in t["pytorch"]["rows"]:
            rows.append((f"PyTorch {x['torch_version']} {x['label']}", f"{fmt(x['images_per_s'])} img/s",
                         f"{fmt(x['achieved_gflops'])} GFLOP/s", "", fmt(x["loadavg_after"][0])))
        s = t["summary"]
        rows.append(("SIC U-Net best vs PyTorch best", f"{fmt(s['best_sic_images_per_s'])} vs "
                     f"{fmt(s['torch_best_images_per_s'])} img/s", f"**{fmt(s['speedup_vs_torch'])}x**",
                     f">= {s['target_vs_torch']}x", ""))

    f = load(results_dir, "train_step_profile")
    if f:
        machines.append(("train_step_profile", f["machine"]))
        c = f["settings"]
        for part in f["parts"]:
            rows.append((f"train step profile: {part['part']} (sic, batch {c['batch_size']} x {c['patch_size']}^2, "
                         f"{c['precision_chosen']})", f"{fmt(part['ms'])} ms", f"{part['share_pct']:.1f} % of the step",
                         "", fmt(f["loadavg_end"][0])))
        for op in f.get("op_types", [])[:6]:
            rows.append((f"train step op type: {op['op']} (the same step)", f"{fmt(op['ms'])} ms",
                         f"{op['share_pct']:.1f} % of the summed op time", "", fmt(f["loadavg_end"][0])))
        k = f.get("conv_kernel_totals")
        if k:
            for kind, label in (("forward", "forward"), ("weight_grad", "weight gradients"),
                                ("input_grad", "input gradients")):
                rows.append((f"conv kernels alone, layer by layer: {label} (the same batch)",
                             f"{fmt(k[kind]['ms'])} ms", f"{fmt(k[kind]['gflops'])} GFLOP/s", "",
                             fmt(f["loadavg_end"][0])))
            rows.append(("conv kernels alone: weight gradients at the forward kernels' rate",
                         f"{fmt(k['weight_grad_at_forward_rate_ms'])} ms",
                         f"{fmt(k['weight_grad']['ms'] - k['weight_grad_at_forward_rate_ms'])} ms less", "", ""))

    p = load(results_dir, "input_pipeline")
    if p:
        machines.append(("input_pipeline", p["machine"]))
        rows.append((f"input pipeline (parse + augment), batch {p['config']['batch_size']} x {p['patch_size']}^2",
                     f"{fmt(p['pipeline_patches_per_s'])} patches/s vs step {fmt(p['step_images_per_s'])} img/s",
                     f"**{fmt(p['ratio'])}x**; fed by it: {fmt(p['fed_images_per_s'])} img/s", ">= 3x",
                     fmt(p["loadavg_after"][0])))

    s = load(results_dir, "scene_inference")
    if s:
        machines.append(("scene_inference", s["machine"]))
        extra = [x for x in (s.get("precisions") or {}).values() if x.get("kind") == "precision"]
        for x in s["sizes"] + extra + s["variants"]:
            onednn = "" if x.get("onednn", True) else ", no oneDNN"
            rows.append((f"scene inference {x['height']}x{x['width']} (tile {x['tile']}, batch {x['batch_size']}, "
                         f"{x['precision']}{onednn})", f"**{fmt(x['seconds'])} s** ({fmt(x['pixels_per_s'] / 1e6)} Mpx/s; "
                         f"cold {fmt(x['first_call_seconds'])} s)",
                         f"peak RSS {fmt(x['peak_rss_mb'])} MB, working {fmt(x['working_mb'])} MB, "
                         f"CPU stall {fmt(x.get('cpu_stall_fraction') or 0)}",
                         "<= 30 s" if x["height"] * x["width"] >= 5000 * 5200 else "", fmt(x["loadavg_after"][0])))
        a = s.get("bf16_vs_fp32")
        if a:
            rows.append(("scene inference bf16 vs fp32 products", f"max abs dSIC {fmt(a['max_abs_diff'])}, "
                         f"mean {fmt(a['mean_abs_diff'])}", f"ice/water {fmt(a['ice_water_agreement_pct'])} %, "
                         f"AutoICE SIC classes {fmt(a['sic_class_agreement_pct'])} % agree", "", ""))
        for t in (s.get("pytorch") or {}).get("rows", []):
            rows.append((f"PyTorch {t['torch_version']} {t['label']}", f"{fmt(t['mpx_per_s'])} Mpx/s",
                         f"{fmt(t['achieved_gflops'])} GFLOP/s, CPU stall {fmt(t.get('cpu_stall_fraction') or 0)}", "",
                         fmt(t["loadavg_after"][0])))
        sm = s["summary"]
        if "speedup_vs_torch" in sm:
            rows.append(("scene inference (whole pipeline) vs PyTorch forward pass (best)",
                         f"{fmt(sm['mpx_per_s'])} vs {fmt(sm['torch_best_mpx_per_s'])} Mpx/s",
                         f"**{fmt(sm['speedup_vs_torch'])}x** ({sm['torch_best_mode']})",
                         f">= {sm['target_vs_torch']}x", ""))

    d = load(results_dir, "data_prep")
    if d:
        machines.append(("data_prep", d["machine"]))
        rows.append((f"data prep, raw {d['config']['size']}^2 scene ({fmt(d['input_mb'])} MB) -> {d['patches']} patches",
                     f"**{fmt(d['seconds'])} s**", f"{fmt(d['mb_per_s'])} MB/s"
                     + (f" (read_scene {fmt(d['read_scene_seconds'])} s)" if d.get("read_scene_seconds") else ""),
                     "", fmt(d["loadavg_after"][0])))

    lines = ["Machines (each benchmark's JSON in bench/results/):", ""]
    lines += [f"- `{name}.json`, {m.get('time_utc', '?')[:10]}: {machine_line(m)}" for name, m in machines]
    lines += ["", "| benchmark | result | detail | target | load1 |", "|---|---|---|---|---|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
