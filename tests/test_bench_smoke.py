"""Smoke tests of bench/: every benchmark script runs with tiny sizes, prints its
closing `key=value` line and writes its JSON (with the machine). Nothing is timed
here: speed is measured by `make bench`, never asserted in tests."""

import json
import os
import subprocess
import sys

import pytest


REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from bench.lib.results import parse_summary  # noqa: E402


def run_bench(name, args, tmp_path, timeout=600):
    """Run `python -m bench.NAME` from the repository root; (its summary line as a dict, its JSON)."""
    results = tmp_path / "results"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", TFSEAICE_BENCH_CACHE=str(tmp_path / "cache"),
               CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run([sys.executable, "-m", f"bench.{name}", *args,
                           f"--results_dir={results}"], capture_output=True, text=True, env=env,
                          timeout=timeout, cwd=REPO)
    assert proc.returncode == 0, f"{name} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    summary = parse_summary(proc.stdout)
    with open(results / f"{name}.json") as f:
        doc = json.load(f)
    assert doc["benchmark"] == name
    machine = doc["machine"]
    for key in ("cpu_model", "cores", "isa_flags", "tensorflow_version", "loadavg_1_5_15"):
        assert key in machine, key
    return summary, doc


def test_ragged_vs_padded(tmp_path):
    summary, doc = run_bench("ragged_vs_padded", ["--batch_size=2", "--patch_size=32", "--filters=4,4,8,8",
                                                  "--steps=2", "--warmup=1", "--repeats=2", "--loss_calls=3"], tmp_path)
    assert {"ragged_img_s", "padded_img_s", "slowdown_pct", "loss_ragged_ms", "equal"} <= set(summary)
    assert summary["equal"] == "true" and doc["ragged_equals_padded"] is True
    assert doc["loss_abs_diff"] < 1e-5


def test_regional_loss(tmp_path):
    summary, doc = run_bench("regional_loss", ["--batch_size=2", "--patch_size=32", "--min_polygons=3",
                                               "--max_polygons=6", "--repeats=1"], tmp_path)
    assert {"speedup", "loop_s", "vectorised_s", "loss_abs_diff", "grad_max_abs_diff", "equal"} <= set(summary)
    assert summary["equal"] == "true"
    assert doc["equal_within_1e-5"] is True


def test_train_step_sic_fp32(tmp_path):
    summary, doc = run_bench("train_step", ["--task=sic_regional", "--batch_size=2", "--patch_size=32",
                                            "--channels=2", "--filters=4,4,8,8", "--steps=2", "--warmup=1",
                                            "--precision=fp32"],
                             tmp_path)
    assert {"steps_per_s", "images_per_s", "gflops", "fraction_of_peak", "loss_finite"} <= set(summary)
    assert summary["loss_finite"] == "true"
    assert float(summary["images_per_s"]) > 0
    assert doc["train_gflop_per_image"] > 0 and "derivation" in doc["peak_all"]["fp32"]


def test_train_step_sic_bf16_parity(tmp_path):
    summary, doc = run_bench("train_step", ["--batch_size=2", "--patch_size=32", "--filters=4,4,8,8",
                                            "--steps=1", "--warmup=1", "--precision=bf16",
                                            "--parity_steps=1"], tmp_path)
    assert "bf16_parity_ok" in summary
    assert len(doc["bf16_parity"]["bf16_losses"]) == 1


def test_train_step_suite(tmp_path):
    summary, doc = run_bench("train_step", ["--suite", "--suite_tiny", "--suite_scale=0.01", "--batch_size=2",
                                            "--patch_size=32", "--warmup=1", "--no_torch",
                                            "--suite_only=sic_default,pix2pix_b1_fp32",
                                            # a loaded test machine: no waiting for quiet, no contended re-runs
                                            "--quiet_wait=0", "--max_retries=0"], tmp_path)
    assert {"default_images_per_s", "best_sic_config", "speedup_vs_torch", "failures"} <= set(summary)
    assert summary["failures"] == "0"
    assert [r["tag"] for r in doc["results"]] == ["sic_default", "pix2pix_b1_fp32"]
    pix2pix = doc["results"][1]
    assert "discriminator" in pix2pix["flops_derivation"] and pix2pix["images_per_s"] > 0


def test_train_step_profile(tmp_path):
    summary, doc = run_bench("train_step_profile", ["--batch_size=2", "--patch_size=32", "--filters=4,4,8,8",
                                                    "--steps=1", "--repeats=1", "--precision=fp32",
                                                    "--kernel_calls=1"], tmp_path)
    assert [p["part"] for p in doc["parts"]] == ["forward", "regional loss", "backward", "optimizer + trackers"]
    assert sum(p["ms"] for p in doc["parts"]) == pytest.approx(doc["piece_ms"]["step"])   # the parts add up
    assert summary["biggest"] in ("forward", "regional_loss", "backward", "optimizer_+_trackers")
    ops = {r["op"]: r for r in doc["op_types"]}   # from the profiler's trace of whole steps
    assert {"Conv2D", "Conv2DBackpropFilter", "Conv2DBackpropInput"} <= set(ops)
    assert not any(op.startswith("_Mkl") or "::" in op for op in ops)   # op types, not kernels or bookkeeping
    assert sum(r["share_pct"] for r in doc["op_types"]) == pytest.approx(100)
    kernels = doc["conv_kernels"]   # each conv alone: the U-Net's 18 3x3 convs and the 1x1 head
    assert [k["name"] for k in kernels][:2] == ["enc0_conv1", "enc0_conv2"] and kernels[-1]["name"] == "logits"
    assert len(kernels) == 19 and doc["conv_kernel_totals"]["skipped"] == []
    assert "input_grad_ms" not in kernels[0] and all("input_grad_ms" in k for k in kernels[1:])
    dec0 = next(k for k in kernels if k["name"] == "dec0_conv1")   # upsampled 8 + skip 4 channels at 32²
    assert (dec0["h"], dec0["cin"], dec0["cout"]) == (32, 8, 4)
    assert dec0["gflop"] == pytest.approx(2 * 2 * 32 * 32 * 9 * 8 * 4 / 1e9)
    totals = doc["conv_kernel_totals"]
    assert totals["weight_grad"]["ms"] == pytest.approx(sum(k["weight_grad_ms"] for k in kernels))
    assert totals["weight_grad_at_forward_rate_ms"] == pytest.approx(
        totals["weight_grad"]["gflop"] / totals["forward"]["gflops"] * 1000)


def test_op_profile_rows():
    from bench.lib.op_profile import _op_type, top_rows

    assert _op_type("gradient_tape/m/conv/Conv2DBackpropFilter:_MklNativeConv2DBackpropFilter") == \
        "Conv2DBackpropFilter"
    assert _op_type("m/up/Cast:Cast") == "Cast"
    rows = top_rows({"A": 6.0, "B": 3.0, "C": 0.5, "D": 0.5}, n=2)
    assert [(r["op"], r["ms"], r["share_pct"]) for r in rows] == [("A", 6.0, 60.0), ("B", 3.0, 30.0),
                                                                    ("other", 1.0, 10.0)]


def _torch_python():
    for py in (os.environ.get("TFSEAICE_TORCH_PYTHON"), "/tmp/torchvenv/bin/python"):
        if py and os.path.exists(py):
            return py
    return None


def test_torch_reference(tmp_path):
    """With a torch interpreter (optional, not a dependency) it reports; without, it says so in one line."""
    py = _torch_python() or sys.executable
    proc = subprocess.run([py, "-m", "bench.torch_unet_reference", "--mode=bf16_cl",
                           "--batch_size=2", "--patch_size=32", "--filters=4,4,8,8", "--steps=1", "--warmup=1"],
                          capture_output=True, text=True, timeout=300, cwd=REPO)
    if "No module named 'torch'" in proc.stderr or "has no torch" in proc.stderr:
        assert proc.returncode != 0
        assert proc.stderr.strip().splitlines()[-1].startswith(f"ERROR: {py}: has no torch")
        return
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["images_per_s"] > 0 and out["loss_finite"]


def test_torch_reference_inference_mode():
    """--inference times the forward pass alone and reports Mpx/s of the tiles (needs a torch interpreter)."""
    py = _torch_python()
    if py is None:
        return   # optional: the reference's missing-torch message is tested above
    proc = subprocess.run([py, "-m", "bench.torch_unet_reference", "--inference", "--mode=fp32_cl",
                           "--batch_size=2", "--patch_size=32", "--filters=4,4,8,8", "--steps=1", "--warmup=1"],
                          capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["inference"] and out["pixels_per_call"] == 2 * 32 * 32 and out["output_finite"]
    assert out["mpx_per_s"] == pytest.approx(out["pixels_per_call"] / out["call_seconds_median"] / 1e6)


def test_input_pipeline(tmp_path):
    summary, doc = run_bench("input_pipeline", ["--scenes=1", "--scene_size=512", "--batch_size=1",
                                                "--batches=2", "--warmup=1", "--train_steps=1",
                                                "--filters=4,4,8,8"], tmp_path)
    assert {"patches_per_s", "step_images_per_s", "ratio", "fed_images_per_s", "meets_target"} <= set(summary)
    assert float(summary["patches_per_s"]) > 0


def test_scene_inference(tmp_path):
    summary, doc = run_bench("scene_inference", ["--sizes=64x80,96x130", "--tile=64", "--overlap=16",
                                                 "--batch_size=2", "--variants=64:1:bf16:1,64:2:fp32:0:1:0", "--retries=0",
                                                 "--torch_modes=fp32_cl"], tmp_path)
    assert {"seconds", "pixels_per_s", "peak_rss_mb", "working_growth_mb", "meets_target"} <= set(summary)
    assert [r["pixels"] for r in doc["sizes"]] == [64 * 80, 96 * 130]
    assert all(r["nan_mask_ok"] for r in doc["sizes"] + doc["variants"])
    # BatchNorm folded as the serving path runs it, unless a variant says otherwise.
    assert [r["fold_batchnorm"] for r in doc["sizes"] + doc["variants"]] == [True, True, True, False]
    # fp32 and bf16 side by side on the largest size, with the agreement of their products.
    assert {"fp32_mpx_per_s", "bf16_mpx_per_s", "bf16_max_abs_dsic", "bf16_sic_class_agreement_pct"} <= set(summary)
    assert doc["precisions"]["bf16"]["model_compute_dtype"] == "bfloat16"
    assert doc["precisions"]["fp32"]["model_compute_dtype"] == "float32"
    assert all(r["output_dtype"] == "float32" and r["nan_mask_ok"] for r in doc["precisions"].values())
    agree = doc["bf16_vs_fp32"]
    assert agree["nan_mask_equal"] and agree["pixels"] > 0.8 * 96 * 130
    assert 0 < agree["max_abs_diff"] < 0.05 and agree["sic_class_agreement_pct"] > 90
    if doc["pytorch"]["rows"]:   # with a torch interpreter (optional)
        assert doc["pytorch"]["rows"][0]["mode"] == "fp32_cl" and "speedup_vs_torch" in summary


def test_data_prep(tmp_path):
    summary, doc = run_bench("data_prep", ["--size=512"], tmp_path)
    assert {"seconds", "mb_per_s", "input_mb", "patches"} <= set(summary)
    assert doc["input_mb"] > 0 and doc["seconds"] > 0


def test_data_prep_downsample_sweep(tmp_path):
    """One child per factor: per-factor seconds, peak RSS, patches and vote timings; other keys kept."""
    results = tmp_path / "results"
    results.mkdir()
    (results / "data_prep.json").write_text(json.dumps({"benchmark": "data_prep", "seconds": 27.5}))
    summary, doc = run_bench("data_prep", ["--downsample_sweep=2,4", "--size=512", "--sweep_patch_size=32",
                                           "--majority_crop=128", "--pairwise_factors=2"], tmp_path)
    assert doc["seconds"] == 27.5  # the whole-scene run's figures are kept
    sweep = doc["downsample_sweep"]
    assert sweep["factors"] == [2, 4] and sweep["size"] == 512 and sweep["patch_size"] == 32
    assert [r["downsample"] for r in sweep["rows"]] == [2, 4]
    for r in sweep["rows"]:
        assert r["seconds"] > 0 and r["peak_rss_mb"] > 0 and r["patches"] > 0 and not r["failed"]
        assert r["majority"]["seconds"] > 0 and r["majority"]["pixels"] == 512 * 512
    # the finer grid cuts more 32^2 patches out of the same scene
    assert sweep["rows"][0]["patches"] > sweep["rows"][1]["patches"]
    ref = sweep["rows"][0]["majority"]["crop_reference"]
    assert ref["crop"] == [128, 128] and ref["same_ids"] is True and ref["pairwise_s"] > 0
    assert "crop_reference" not in sweep["rows"][1]["majority"]
    assert {"f2_s", "f2_peak_mb", "f2_patches", "f4_s", "f4_peak_mb", "f4_patches", "flat"} <= set(summary)
    assert int(summary["f4_patches"]) == sweep["rows"][1]["patches"]


def test_data_prep_downsample_sweep_refuses_patchless_factor(tmp_path):
    """A factor whose grid is smaller than one patch is refused before anything runs."""
    proc = subprocess.run([sys.executable, "-m", "bench.data_prep", "--downsample_sweep=2,20", "--size=512",
                           "--sweep_patch_size=32", f"--results_dir={tmp_path}"], capture_output=True, text=True,
                          cwd=REPO, timeout=120, env=dict(os.environ, TFSEAICE_BENCH_CACHE=str(tmp_path / "cache")))
    assert proc.returncode != 0
    assert "--downsample=20" in proc.stderr and "smaller than one patch" in proc.stderr
    assert not (tmp_path / "data_prep.json").exists()


def test_scripts_import_only_bench_lib():
    """No bench script imports another (shared code lives in bench/lib); no bench module over 400 lines."""
    import ast
    import glob

    for path in glob.glob(os.path.join(REPO, "bench", "*.py")) + glob.glob(os.path.join(REPO, "bench", "lib", "*.py")):
        with open(path) as f:
            text = f.read()
        assert text.count("\n") <= 400, f"{path}: {text.count(chr(10))} lines"
        for node in ast.walk(ast.parse(text)):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                if name == "bench" or name.startswith("bench."):
                    assert name == "bench.lib" or name.startswith("bench.lib."), f"{path} imports {name}"


def test_torch_reference_imports_no_tensorflow():
    """The PyTorch reference runs under a torch-only interpreter: importing it must not need TF or tfseaice."""
    code = ("import sys\n"
            "class Block:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name.split('.')[0] in ('tensorflow', 'keras', 'tfseaice', 'data_prep'):\n"
            "            raise ImportError(f'blocked: {name}')\n"
            "sys.meta_path.insert(0, Block())\n"
            "import bench.torch_unet_reference as ref\n"
            "print(ref.sic_batch(1, 16, 2)['sar'].shape)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == "(1, 16, 16, 2)"
