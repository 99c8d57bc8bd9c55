r"""The whole performance table in one command (`make bench-compare`): tfseaice against the PyTorch
reference, pair by pair, interleaved, with repeats, on this machine's CPU kind.

  python -m bench.compare [--repeats=3] [--pairs=inference,training,regional_loss]
      [--torch_python=PATH] [--tiny]

Pairs (targets from the performance issue; each ratio is ours / theirs, measured in one repeat):
- inference: `predict_scene` on a `--scene` (2-channel, 80 m, tiling and blending included; the
  package default: --precision=auto, oneDNN on, BatchNorm folded, its default tiling
  `--our_batch_size` x `--our_tile`) in Mpx/s, against PyTorch's fastest forward pass of the same
  U-Net, the best of `--batch_size` tiles of `--tile`² and of our tiling (no tiling on its side).
  Target 1.3.
- training: the package-default SIC train step (bench/train_step.py, batch 16 x 256²) against
  PyTorch's best mode (bench/torch_unet_reference.py), images/s. Target 2.
- regional_loss: the vectorised regional loss + gradient against the paper's per-polygon loop
  (bench/regional_loss.py), calls/s; both equal within 1e-5. Target 200.

Writes bench/results/compare_<cpu kind>.json (kinds: avx2, avx512, avx512_bf16, amx; the machine
and its ISA flags inside). `make bench-compare` then runs `scripts/results_docs.py --write`, which
rewrites the `bench:compare` block of docs/performance.md from every compare_*.json
(`render_block`): one table per CPU kind measured.
PyTorch: `--torch_python`, else $TFSEAICE_TORCH_PYTHON, .cache/torchvenv or /tmp/torchvenv
(`make bench-compare` builds .cache/torchvenv from bench/torch-requirements.txt).
"""

import argparse
import glob
import json
import os
import sys
import time

from bench.lib.children import torch_python
from bench.lib.compare import PAIRS, TARGETS, cpu_kind, inference_once, ratio_summary, regional_once, training_once
from bench.lib.machine import cpu_flags, machine_line
from bench.lib.results import RESULTS_DIR, progress, summary_line, write_result
from tfseaice.serving.scene_inference import DEFAULT_BATCH_SIZE, DEFAULT_TILE  # numpy only: no TF in the parent

UNITS = {"inference": "Mpx/s", "training": "images/s", "regional_loss": "calls/s"}
THEIRS = {"inference": "PyTorch forward pass", "training": "PyTorch train step", "regional_loss": "per-polygon loop"}


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--pairs", default=",".join(PAIRS))
    ap.add_argument("--scene", default="2500x2600", help="HxW of the inference scene")
    ap.add_argument("--tile", type=int, default=512, help="PyTorch's forward pass: tile side (inference)")
    ap.add_argument("--batch_size", type=int, default=4, help="PyTorch's forward pass: tiles per call (inference)")
    ap.add_argument("--our_tile", type=int, default=DEFAULT_TILE,
                    help="ours: predict_scene's tile (the package default); PyTorch also runs at it, best kept")
    ap.add_argument("--our_batch_size", type=int, default=DEFAULT_BATCH_SIZE, help="ours: tiles per call")
    ap.add_argument("--torch_python", default=None)
    ap.add_argument("--torch_inference_modes", default="fp32_cl,bf16_cl")
    ap.add_argument("--torch_training_modes", default="fp32_cl,bf16_cl")
    ap.add_argument("--torch_steps", type=int, default=3)
    ap.add_argument("--train_steps", type=int, default=4)
    ap.add_argument("--loop_repeats", type=int, default=2)
    ap.add_argument("--child_timeout", type=float, default=1800)
    ap.add_argument("--results_dir", default=None)
    ap.add_argument("--tiny", action="store_true", help="tiny sizes in every child (a smoke test, not a measurement)")
    return ap.parse_args(argv)


def measure(args):
    if args.tiny:
        args.scene, args.tile, args.batch_size, args.train_steps, args.torch_steps = "96x130", 64, 2, 1, 1
        args.our_tile, args.our_batch_size = args.tile, args.batch_size
    pairs = [p for p in args.pairs.split(",") if p]
    unknown = sorted(set(pairs) - set(PAIRS))
    if unknown:
        raise SystemExit(f"ERROR: --pairs: unknown {unknown}; choose from {', '.join(PAIRS)}")
    torch_py = args.torch_python or torch_python()
    if not torch_py and set(pairs) & {"inference", "training"}:
        raise SystemExit("ERROR: no Python with torch: pass --torch_python, set $TFSEAICE_TORCH_PYTHON, "
                         "or run `make bench-compare`, which builds .cache/torchvenv")
    once = {"inference": lambda: inference_once(args, torch_py), "training": lambda: training_once(args, torch_py),
            "regional_loss": lambda: regional_once(args)}
    runs = {p: [] for p in pairs}
    t0 = time.time()
    for r in range(1, args.repeats + 1):
        for p in pairs:
            progress(f"repeat {r}/{args.repeats}: {p}")
            ours, theirs, detail = once[p]()
            runs[p].append({"ours": ours, "theirs": theirs, "ratio": ours / theirs, **detail})
            print(f"    -> ours {ours:.4g} vs {theirs:.4g} {UNITS[p]}: {ours / theirs:.3g}x", flush=True)
    result = {"cpu_kind": cpu_kind(cpu_flags()), "repeats": args.repeats, "seconds": time.time() - t0,
              "machine_line": machine_line(), "config": vars(args), "pairs": {}}
    for p, rs in runs.items():
        result["pairs"][p] = {"unit": UNITS[p], "theirs": THEIRS[p], "runs": rs,
                              **ratio_summary([x["ours"] for x in rs], [x["theirs"] for x in rs], TARGETS[p])}
    return result


def render(docs):
    """Markdown: one table per CPU kind (documents as compare_<kind>.json holds them)."""
    out = []
    for doc in sorted(docs, key=lambda d: d["cpu_kind"]):
        m = doc["machine"]
        out += [f"**{doc['cpu_kind']}**: {doc['machine_line']}; {doc['repeats']} interleaved repeats, "
                f"commit {m.get('git_commit', '?')}, `{doc['command']}`", "",
                "| pair | tfseaice (median) | reference (median) | ratio median (min–max) | target | met on every repeat |",
                "|---|---|---|---|---|---|"]
        for p, s in doc["pairs"].items():
            ours = sorted(r["ours"] for r in s["runs"])[len(s["runs"]) // 2]
            theirs = sorted(r["theirs"] for r in s["runs"])[len(s["runs"]) // 2]
            out.append(f"| {p} | {ours:.3g} {s['unit']} | {theirs:.3g} {s['unit']} ({s['theirs']}) | "
                       f"**{s['median']:.3g}x** ({s['min']:.3g}–{s['max']:.3g}) | {s['target']:g}x | "
                       f"{'yes' if s['meets_target'] else 'no'} |")
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def render_block(results_dir=RESULTS_DIR):
    """The generated `bench:compare` block of docs/performance.md, from every compare_*.json in `results_dir`."""
    docs = []
    for f in sorted(glob.glob(os.path.join(results_dir, "compare_*.json"))):
        with open(f) as fh:
            docs.append(json.load(fh))
    head = ("<!-- generated by `make bench-compare` (python -m bench.compare; scripts/results_docs.py) from "
            "bench/results/compare_*.json: edit neither by hand -->\n")
    return head + (render(docs) if docs else "No `make bench-compare` run recorded yet.\n")


def main(argv=None):
    args = parse_args(argv)
    result = measure(args)
    path = write_result(f"compare_{result['cpu_kind']}", result, args.results_dir)
    print(f"wrote {path}")
    with open(path) as f:
        print(render([json.load(f)]))
    summary_line({f"{p}_ratio_median": s["median"] for p, s in result["pairs"].items()}
                 | {f"{p}_ratio_min": s["min"] for p, s in result["pairs"].items()}
                 | {"cpu_kind": result["cpu_kind"]})
    return 0


if __name__ == "__main__":
    sys.exit(main())
