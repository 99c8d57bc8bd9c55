"""The train-step suite: every configuration in its own process, the PyTorch reference, one table.

Merged into train_step.json; a configuration whose run was contended (CPU
stall > --max_stall) runs again while the retry budget lasts, keeping the faster.
"""

import json
import os
import tempfile
import time

from bench.lib.children import module_argv, run_child, torch_python
from bench.lib.machine import loadavg, peak_flops
from bench.lib.results import print_table, progress, summary_line, write_result
from bench.lib.step import BF16_RTOL_LATER, BF16_RTOL_STEP0
from bench.lib.timing import cpu_share, wait_for_quiet

PYTORCH_ISSUE_REFERENCE = {
    "source": "issue 6 (PyTorch 2.13 on this machine, batch 16, 256^2, filters 16,32,64,64)",
    "fp32_images_per_s": 2.0,
    "bf16_channels_last_images_per_s": 9.0,
}
TARGET_VS_PYTORCH = 1.3


def suite_configs(scale):
    """(tag, argv) of the suite. `scale` multiplies the step counts (tests use tiny ones)."""
    def steps(n):
        return str(max(1, int(round(n * scale))))

    sic = ["--task=sic_regional", "--batch_size=16", "--patch_size=256", "--channels=2"]
    starter, wide = "--filters=16,32,64,64", "--filters=32,64,128,256"
    p2p = ["--task=pix2pix", "--patch_size=256", "--filters=64"]
    cfgs = [
        # The package default: --precision=auto (bf16 on a CPU with AMX/AVX512-BF16, else fp32).
        ("sic_default", sic + [starter, "--steps=" + steps(6), "--parity_steps=" + steps(3)]),
        ("sic_fp32", sic + [starter, "--precision=fp32", "--steps=" + steps(6)]),
        ("sic_fp32_nondet", sic + [starter, "--precision=fp32", "--deterministic=false", "--steps=" + steps(3)]),
        ("sic_fp32_xla", sic + [starter, "--precision=fp32", "--jit", "--steps=" + steps(4)]),
        ("sic_bf16_xla", sic + [starter, "--precision=bf16", "--jit", "--steps=" + steps(6), "--parity_steps=0"]),
        ("sic_bf16_t1", sic + [starter, "--precision=bf16", "--threads=1", "--steps=" + steps(3), "--parity_steps=0"]),
        ("sic_wide_fp32", sic + [wide, "--precision=fp32", "--steps=" + steps(3)]),
        ("sic_wide_bf16", sic + [wide, "--precision=bf16", "--steps=" + steps(4), "--parity_steps=0"]),
        ("pix2pix_b1_fp32", p2p + ["--batch_size=1", "--precision=fp32", "--steps=" + steps(5)]),
        ("pix2pix_b1_bf16", p2p + ["--batch_size=1", "--precision=bf16", "--steps=" + steps(5),
                                   "--parity_steps=" + steps(3)]),
        ("pix2pix_b1_fp32_xla", p2p + ["--batch_size=1", "--precision=fp32", "--jit", "--steps=" + steps(5)]),
        ("pix2pix_b8_fp32", p2p + ["--batch_size=8", "--precision=fp32", "--steps=" + steps(2), "--warmup=1"]),
        ("pix2pix_b8_bf16", p2p + ["--batch_size=8", "--precision=bf16", "--steps=" + steps(3), "--warmup=1",
                                   "--parity_steps=0"]),
    ]
    return cfgs


def suite(args):
    """Run the suite (train_step.py's flags in `args`), write train_step.json; 0 if no configuration failed."""
    tmp = tempfile.mkdtemp(prefix="tfseaice-train-step-")
    rows, failures = [], []
    configs = suite_configs(args.suite_scale)
    retries_left = [args.max_retries]
    t_suite = time.time()
    if args.suite_only:
        keep = set(args.suite_only.split(","))
        configs = [c for c in configs if c[0] in keep]
    for n, (tag, argv) in enumerate(configs, 1):
        progress(f"train step {n}/{len(configs)}: {tag}")
        out_dir = os.path.join(tmp, tag)
        extra = [] if any(a.startswith("--warmup") for a in argv) else [f"--warmup={args.warmup}"]
        if args.suite_tiny:  # smoke test: tiny models (pix2pix needs 256^2: 8 stride-2 levels)
            argv = [a for a in argv if not a.startswith(("--patch_size", "--batch_size", "--filters"))]
            if "--task=pix2pix" in argv:
                argv += ["--patch_size=256", "--batch_size=1", "--filters=4"]
            else:
                argv += [f"--patch_size={args.patch_size}", f"--batch_size={args.batch_size}", "--filters=4,4,8,8"]
        runs = []
        for attempt in range(2):
            wait_for_quiet(args.quiet_load, args.quiet_wait, log=lambda m: None)
            path = os.path.join(out_dir, f"run{attempt}", "train_step.json")
            code, text = run_child(module_argv("train_step") + argv + extra
                                   + [f"--results_dir={os.path.dirname(path)}"], args.child_timeout)
            if code != 0 or not os.path.exists(path):
                failures.append({"tag": tag, "returncode": code, "tail": text[-2000:]})
                print(text[-2000:])
                break
            with open(path) as f:
                r = json.load(f)
            r.pop("machine", None)
            runs.append(r)
            stall = r.get("cpu_stall_fraction")
            print(f"    -> {r['images_per_s']:.2f} img/s, {r['achieved_gflops']:.1f} GFLOP/s, "
                  f"CPU share {cpu_share(r):.2f}, CPU stall {stall if stall is None else round(stall, 2)}, "
                  f"load {r['loadavg_after'][0]}")
            # Contended (tasks waited for a CPU most of the time): once more if time allows, keep the faster.
            if (stall is None or stall <= args.max_stall or retries_left[0] <= 0
                    or time.time() - t_suite > args.retry_budget_s):
                break
            retries_left[0] -= 1
            print(f"    contended (CPU stall {stall:.2f} > {args.max_stall}): once more")
        if not runs:
            continue
        r = max(runs, key=lambda x: x["images_per_s"])
        r["tag"] = tag
        r["attempts"] = [{"images_per_s": x["images_per_s"], "cpu_share": cpu_share(x),
                          "cpu_stall_fraction": x.get("cpu_stall_fraction"),
                          "loadavg_before": x["loadavg_before"], "loadavg_after": x["loadavg_after"]} for x in runs]
        rows.append(r)

    torch_rows, torch_note = [], None
    tpy = torch_python()
    if tpy and not args.no_torch:
        modes = [m for m in args.torch_modes.split(",") if m]
        for mode in modes:
            progress(f"PyTorch reference: {mode}")
            targs = module_argv("torch_unet_reference", tpy) + [f"--mode={mode}", "--warmup=1"]
            if args.suite_tiny:
                targs += [f"--patch_size={args.patch_size}", f"--batch_size={args.batch_size}", "--filters=4,4,8,8",
                          "--steps=1"]
            else:
                targs += [f"--steps={max(1, int(round(3 * args.suite_scale)))}"]
            wait_for_quiet(args.quiet_load, args.quiet_wait, log=lambda m: None)
            code, text = run_child(targs, args.child_timeout)
            if code == 0:
                line = [ln for ln in text.splitlines() if ln.startswith("{")]
                if line:
                    t = json.loads(line[-1])
                    torch_rows.append(t)
                    print(f"    -> {t['images_per_s']:.2f} img/s")
                    continue
            failures.append({"tag": f"torch_{mode}", "returncode": code, "tail": text[-2000:]})
            print(text[-2000:])
        torch_note = "measured here with bench/torch_unet_reference.py"
    else:
        torch_note = ("PyTorch not installed (pip install torch==2.13.0 into /tmp/torchvenv): "
                      "using the issue's reference numbers")

    peak = peak_flops()
    table = []
    for r in rows:
        table.append({"config": r["label"], "img_s": r["images_per_s"], "steps_s": r["steps_per_s"],
                      "gflops": r["achieved_gflops"], "peak": 100 * r["fraction_of_peak"],
                      "finite": r["loss_finite"], "parity": (r.get("bf16_parity") or {}).get("ok", ""),
                      "share": cpu_share(r), "stall": r.get("cpu_stall_fraction"), "load": r["loadavg_after"][0]})
    for t in torch_rows:
        table.append({"config": f"PyTorch {t['label']}", "img_s": t["images_per_s"], "steps_s": t["steps_per_s"],
                      "gflops": t.get("achieved_gflops"), "peak": 100 * t["achieved_gflops"] / peak[
                          "bf16" if t["mode"].startswith("bf16") else "fp32"]["gflops"],
                      "finite": t.get("loss_finite"), "parity": "", "share": cpu_share(t), "stall": t.get("cpu_stall_fraction"),
                      "load": t["loadavg_after"][0]})
    print()
    print_table(table, ["config", ("img_s", "img/s"), ("steps_s", "steps/s"), ("gflops", "GFLOP/s"),
                               ("peak", "% peak"), ("finite", "finite"), ("parity", "bf16~fp32"), ("share", "CPU share"),
                               ("stall", "CPU stall"), ("load", "load1")],
                       title="training step throughput (median step; peak = fp32 AVX-512 or bf16 AMX, see JSON)")

    by_tag = {r["tag"]: r for r in rows}
    sic_tags = [t for t in ("sic_default", "sic_fp32", "sic_fp32_nondet", "sic_fp32_xla", "sic_bf16_xla", "sic_bf16_t1")
                if t in by_tag and by_tag[t]["loss_finite"]
                and (by_tag[t].get("bf16_parity") or {}).get("ok", True)]
    best = max(sic_tags, key=lambda t: by_tag[t]["images_per_s"]) if sic_tags else None
    if torch_rows:
        torch_best = max(torch_rows, key=lambda t: t["images_per_s"])
        torch_best_ips, torch_best_label = torch_best["images_per_s"], f"measured {torch_best['label']}"
    else:
        torch_best_ips = PYTORCH_ISSUE_REFERENCE["bf16_channels_last_images_per_s"]
        torch_best_label = "issue reference bf16 autocast + channels_last"
    summary = {
        "default_images_per_s": by_tag["sic_default"]["images_per_s"] if "sic_default" in by_tag else float("nan"),
        "best_sic_config": by_tag[best]["label"].replace(" ", "_") if best else "none",
        "best_sic_images_per_s": by_tag[best]["images_per_s"] if best else float("nan"),
        "torch_best_images_per_s": torch_best_ips,
        "speedup_vs_torch": (by_tag[best]["images_per_s"] / torch_best_ips) if best else float("nan"),
        "target_vs_torch": TARGET_VS_PYTORCH,
        "failures": len(failures),
        "load1": loadavg()[0],
    }
    payload = {
        "suite_scale": args.suite_scale,
        "results": rows,
        "pytorch": {"rows": torch_rows, "note": torch_note, "issue_reference": PYTORCH_ISSUE_REFERENCE,
                    "best": torch_best_label},
        "peak": peak,
        "failures": failures,
        "summary": summary,
        "bf16_tolerance": {"rtol_step0": BF16_RTOL_STEP0, "rtol_later": BF16_RTOL_LATER,
                           "justification": "bf16 unit round-off 2^-9 (0.2 %) per rounding, fp32 accumulation; "
                                            "~20 conv layers compound as a random walk to ~2 % on activations, "
                                            "the squared-error loss doubles it: 5 % on the first step; 10 % on "
                                            "later steps, whose weights were updated with differently rounded gradients"},
    }
    path = write_result("train_step", payload, args.results_dir)
    print(f"wrote {path}")
    summary_line(summary)
    return 0 if not failures else 1
