"""Golden figures: short seeded SIC, ice-chart, glacier-zone and pix2pix runs give the numbers recorded
in tests/golden/figures.json (every history.csv cell and every number of the evaluation JSONs), to 1e-6
on the machine they were recorded on.

A refactor that moves code must not move a figure. The runs go through the entry points
(`python -m tfseaice.train` / `tfseaice.evaluate`), in fp32 with TensorFlow's oneDNN graph rewrites off.
Bit-equal figures across CPU models are out of reach: the matrix kernels (oneDNN's sgemm under Eigen),
numpy's transcendental functions and XLA pick their code and blocking by the CPU, and Adam's first
steps turn rounding differences into visible ones (capping oneDNN at AVX2 on the recording machine moved
R² by up to 0.055 and flipped confusion counts). So the comparison is exact (1e-6) when the machine's
fingerprint (CPU model, ISA, caches, cores) is the recording's, and elsewhere checks what rounding
cannot move: the same figures, each confusion's total, and every other figure within CROSS_MACHINE.
Record again, on purpose, after a change that is meant to move the figures:

  TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python tests/test_golden_figures.py --write
"""

import csv
import json
import math
import os
import pathlib
import subprocess
import sys
import tempfile

import pytest

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
GOLDEN = HERE / "golden" / "figures.json"
TOLERANCE = 1e-6
CROSS_MACHINE = 0.2   # another CPU model: |a - b| <= 0.2 * max(1, |a|) (measured cross-ISA drift: <= 0.055)
ENV = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": "0", "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
# Not figures: wall-clock times, file names, and the machine/software a run was made on.
SKIP_KEYS = ("time", "seconds", "sec", "per_s", "path", "file", "dir", "machine", "version", "cpu", "onednn",
             "precision", "date", "host")
COMMON = ["--epochs=2", "--steps_per_epoch=2", "--batch_size=4", "--seed=1", "--image_every=1",
          "--precision=fp32", "--deterministic"]


def cli(*args):
    res = subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, env=ENV, cwd=ROOT,
                         timeout=900)
    assert res.returncode == 0, f"{args[:2]}: {res.stderr[-3000:]}"


def history(model_dir):
    """{column: [value per epoch]} of history.csv."""
    with open(os.path.join(model_dir, "history.csv")) as f:
        rows = list(csv.DictReader(f))
    return {k: [float(r[k]) for r in rows] for k in rows[0]}


def numbers(obj, prefix=""):
    """Every number of a JSON document, flattened to {"a.b.0": value} (skipping non-figures)."""
    out = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            if not any(s in str(k).lower() for s in SKIP_KEYS):
                out.update(numbers(v, f"{prefix}{k}."))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out.update(numbers(v, f"{prefix}{i}."))
    elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
        out[prefix.rstrip(".")] = float(obj)
    return out


def make_data(work):
    """The seeded sample data the runs train on (made in this process: no TensorFlow arithmetic)."""
    sys.path.insert(0, str(HERE))
    from data_prep import glacier_to_tfrecord
    from sic_fixtures import convert_tiny
    from tfseaice.simulate import glaciers

    sic_records, _ = convert_tiny(work / "sic")
    glaciers.make_sample_dataset(str(work / "glacier_raw"), 3, seed=1, test_fraction=0.34, min_size=300,
                                 max_size=330)
    glacier_to_tfrecord.convert(str(work / "glacier_raw"), str(work / "glacier"), patch_size=256,
                                val_fraction=0.3, seed=1)
    return sic_records, str(work / "glacier")


def run_all(work):
    """Train and evaluate every task briefly; {run: {figure: value}}."""
    sic_records, glacier_records = make_data(work)
    scene = sorted((work / "sic" / "scenes").glob("*.nc"))[0]
    figures = {}
    for task in ("sic_regional", "icechart_regional"):
        model_dir = work / task
        cli("tfseaice.train", f"--task={task}", f"--data_dir={sic_records}", f"--model_dir={model_dir}",
            "--filters=4,8,8,8", "--learning_rate=3e-3", *COMMON)
        cli("tfseaice.evaluate", "--task=sic", f"--model_dir={model_dir}", f"--scenes_glob={scene}",
            "--downsample=2", "--tile=64", "--overlap=16", "--batch_size=4", "--precision=fp32",
            f"--output={work}/{task}.json")
        figures[f"{task}/history"] = history(model_dir)
        figures[f"{task}/evaluation"] = numbers(json.load(open(work / f"{task}.json")))
    glacier = [f"--data_dir={glacier_records}", *COMMON]
    cli("tfseaice.train", "--task=glacier_zones", f"--model_dir={work}/zones", "--filters=2,4,4",
        "--noaugment", "--learning_rate=1e-3", *glacier)
    cli("tfseaice.train", "--task=pix2pix", f"--model_dir={work}/p2p", "--generator_filters=4",
        "--discriminator_filters=4", "--learning_rate=2e-4", "--checkpoint_every=1", *glacier)
    cli("tfseaice.evaluate", "--task=pix2pix", f"--model_dir={work}/p2p", f"--zones_model_dir={work}/zones",
        "--batch_size=4", f"--out_dir={work}/p2p_eval")
    figures["glacier_zones/history"] = history(work / "zones")
    figures["pix2pix/history"] = history(work / "p2p")
    figures["pix2pix/evaluation"] = numbers(json.load(open(work / "p2p_eval" / "evaluation.json")))
    return figures


def fingerprint():
    """What decides the kernels' arithmetic: CPU model, the ISA extensions that switch kernels, caches, cores."""
    info = pathlib.Path("/proc/cpuinfo").read_text() if pathlib.Path("/proc/cpuinfo").exists() else ""
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "")
    words = set(next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), []))
    caches = sorted(p.read_text().strip() for p in pathlib.Path("/sys/devices/system/cpu/cpu0/cache").glob("index*/size"))
    isa = sorted(words & {"avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16"})
    return {"cpu": model, "isa": isa, "caches": caches, "cores": os.cpu_count()}


def _counts_group(key):
    """The confusion a count belongs to ('a.counts.3.4' -> 'a.counts'), None for other figures."""
    head, sep, _ = key.partition(".counts.")
    return head + ".counts" if sep else None


def differences(golden, got, tolerance=TOLERANCE):
    """Lines naming every figure that is missing, new, or off by more than `tolerance` (relative to
    max(1, |golden|)). With a tolerance above 1e-3 (another machine) a confusion's counts are compared
    by their total (the pixels scored), not one by one."""
    out = []
    for run in sorted(set(golden) | set(got)):
        g, n = golden.get(run, {}), got.get(run, {})
        totals = {}
        for key in sorted(set(g) | set(n)):
            if key not in n or key not in g:
                out.append(f"{run} {key}: {'missing' if key not in n else 'new'}")
                continue
            a, b = g[key], n[key]
            a, b = (a, b) if isinstance(a, list) else ([a], [b])
            group = _counts_group(key) if tolerance > 1e-3 else None
            if group:
                t = totals.setdefault(group, [0.0, 0.0])
                t[0], t[1] = t[0] + sum(a), t[1] + sum(b)
            elif len(a) != len(b) or any(not _close(x, y, tolerance) for x, y in zip(a, b)):
                out.append(f"{run} {key}: golden {a}, now {b}")
        out += [f"{run} {group} total: golden {a}, now {b}" for group, (a, b) in sorted(totals.items()) if a != b]
    return out


def _close(x, y, tolerance):
    if math.isnan(x) or math.isnan(y):
        return math.isnan(x) and math.isnan(y)
    return abs(x - y) <= tolerance * max(1.0, abs(x))


@pytest.fixture(scope="module")
def figures(tmp_path_factory):
    return run_all(tmp_path_factory.mktemp("golden"))


def test_short_seeded_runs_give_the_golden_figures(figures):
    record = json.loads(GOLDEN.read_text())
    golden = record["figures"]
    tolerance = TOLERANCE if record["machine"] == fingerprint() else CROSS_MACHINE
    assert set(golden) == {"sic_regional/history", "sic_regional/evaluation", "icechart_regional/history",
                           "icechart_regional/evaluation", "glacier_zones/history", "pix2pix/history",
                           "pix2pix/evaluation"}
    assert all(golden.values()), "a run recorded no figure"
    assert differences(golden, figures, tolerance) == [], f"tolerance {tolerance} (recorded on {record['machine']})"


def test_the_comparison_catches_a_moved_missing_or_new_figure():
    golden = {"r/history": {"loss": [0.5, 0.25]}, "r/evaluation": {"r2": 0.9, "f1": float("nan")}}
    assert differences(golden, json.loads(json.dumps(golden))) == []
    assert differences(golden, {"r/history": {"loss": [0.5, 0.25 + 2e-6]},
                                "r/evaluation": {"r2": 0.9 + 5e-7, "f1": float("nan")}}) == \
        ["r/history loss: golden [0.5, 0.25], now [0.5, 0.250002]"]
    assert differences(golden, {"r/history": {"loss": [0.5]}, "r/evaluation": {"r2": 0.9, "x": 1.0}}) == [
        "r/evaluation f1: missing", "r/evaluation x: new", "r/history loss: golden [0.5, 0.25], now [0.5]"]
    assert numbers({"a": {"b": [1, 2.5], "train_seconds": 3.0, "ok": True}, "path": 4}) == {"a.b.0": 1.0,
                                                                                          "a.b.1": 2.5}
    # Another machine: drift within CROSS_MACHINE passes, a confusion's counts may move between cells but
    # not change their total, and a figure that moves by more (a changed default, say) fails.
    conf = {"r/evaluation": {"f1": 0.5, "c.counts.0.0": 10.0, "c.counts.0.1": 2.0}}
    moved = {"r/evaluation": {"f1": 0.55, "c.counts.0.0": 9.0, "c.counts.0.1": 3.0}}
    assert differences(conf, moved) != [] and differences(conf, moved, CROSS_MACHINE) == []
    lost = {"r/evaluation": {"f1": 0.9, "c.counts.0.0": 9.0, "c.counts.0.1": 2.0}}
    assert differences(conf, lost, CROSS_MACHINE) == ["r/evaluation f1: golden [0.5], now [0.9]",
                                                      "r/evaluation c.counts total: golden 12.0, now 11.0"]
    assert set(fingerprint()) == {"cpu", "isa", "caches", "cores"}


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit(__doc__)
    with tempfile.TemporaryDirectory() as tmp:
        result = run_all(pathlib.Path(tmp))
    GOLDEN.parent.mkdir(exist_ok=True)
    GOLDEN.write_text(json.dumps({"machine": fingerprint(), "figures": result}, indent=1, sort_keys=True) + "\n")
    print(f"wrote {GOLDEN}: {sum(len(v) for v in result.values())} figures")
