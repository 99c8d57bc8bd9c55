"""Evaluation of a pix2pix glacier model (`python -m tfseaice.evaluate --task=pix2pix`).

Writes the folder `output` (default MODEL_DIR/eval) whole, through a temporary
sibling folder renamed at the end (a failed evaluation leaves nothing behind):

* `curves.json`, `curves.png` — non-binary Dice and SSIM of every periodic
  generator checkpoint (checkpoints/epoch_NNNN.weights.h5) on the validation
  set, per epoch (paper Fig. 3). Scores recorded during training
  (checkpoint_scores.json) are reused unless `recompute_curves`.
* `evaluation.json`, `table.md` — the Table I row (Dice, SSIM) at the chosen
  epoch, next to the trivial baseline (every pixel filled with its class's
  mean training intensity, times Gamma speckle whose number of looks is the
  class's mean^2 / variance in the training patches), and, with a zone model
  (`zones_model_dir`, task glacier_zones), the FCN-score: the zone model
  applied to generated images, scored against the input masks (pixel accuracy,
  mean IoU over rock / glacier / ocean, no data ignored), with real images as
  the ceiling and the baseline images as the floor.

Generated images are quantised to 8 bit (as `tfseaice.generate` writes them)
before scoring. Dice and SSIM: tfseaice.metrics (paper Eq. 6; 11x11 Gaussian
SSIM, sigma 1.5, K1 0.01, K2 0.03, data range 1), mean over validation images.
A speckle generator (--speckle=gamma*) adds two rows: its speckle-free median
image, and the speckle oracle (tfseaice.evaluation.pix2pix_realism): SSIM
falls with any correct speckle, so its loss is read against that oracle.
Realism (per-class mean and local speckle CV, lattice peak, `realism.png`):
tfseaice.evaluation.pix2pix_realism. `bn_at_inference` ("moving" | "batch")
chooses the generator's BatchNorm statistics (tfseaice.models.pix2pix).
`speckle_looks` (> 1) makes a speckle generator draw Gamma speckle of that
many looks on every pixel instead of its trained L, in the curves too
(tfseaice.serving.generator.override_looks): the SSIM it costs to draw
speckle of another equivalent number of looks, the median image unchanged.
"""

import glob
import os
import re

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from tfseaice import io_utils, metrics
from tfseaice.data import dataset_info, glacier, pipeline
from tfseaice.errors import InputError
from tfseaice.evaluation import glacier_viz, pix2pix_realism
from tfseaice.models.pix2pix import set_bn_at_inference, set_dropout_at_inference
from tfseaice.models.speckle import params_and_image_model, reset_speckle_seed, split_params
from tfseaice.serving.generator import override_looks, pix2pix_config
from tfseaice.serving.loading import load_trained
from tfseaice.tasks import pix2pix as task
from tfseaice.tasks.glacier_zones import predict_classes
from tfseaice.tasks.pix2pix_batches import condition, to_unit_range
from tfseaice.tasks.pix2pix_callbacks import read_scores

PAPER_TABLE_I = {  # epoch 210, paper Table I
    "orig": {"dice": 0.2638, "ssim": 0.8409},
    "gen5": {"dice": 0.2266, "ssim": 0.8492},
    "dis3": {"dice": 0.1566, "ssim": 0.8448},
    "l1_1_gan_100": {"dice": 0.1578, "ssim": 0.7926},
    "l1_50_gan_50": {"dice": 0.1484, "ssim": 0.7379},
}


# ------------------------------------------------------------------ helpers

def load_split(data_dir, info, split, max_examples=None):
    """Whole split in memory: sar [N,P,P,1] in [0,1], mask [N,P,P] int32, extra | None."""
    ds = pipeline.glacier_dataset(data_dir, split, 32, training=False, info=info)
    sar, mask, extra = [], [], []
    n = 0
    for b in ds:
        sar.append(b["sar"].numpy())
        mask.append(b["mask"].numpy())
        if "extra" in b:
            extra.append(b["extra"].numpy())
        n += len(sar[-1])
        if max_examples and n >= max_examples:
            break
    if not sar:
        raise InputError(data_dir, f"split {split!r} holds no example")
    out = [np.concatenate(sar), np.concatenate(mask), np.concatenate(extra) if extra else None]
    if max_examples:
        out = [None if a is None else a[:max_examples] for a in out]
    return out


def generate_batch(generator, mask, extra, batch_size=8):
    """Generated images in [0, 1], quantised to 8 bit, [N,H,W,1]."""
    @tf.function(reduce_retracing=True)
    def run(m, e):
        return to_unit_range(generator(condition(m, e), training=False))

    outs = []
    for i in range(0, len(mask), batch_size):
        e = None if extra is None else tf.constant(extra[i:i + batch_size])
        outs.append(run(tf.constant(mask[i:i + batch_size]), e).numpy())
    out = np.concatenate(outs)
    return np.rint(out * 255.0) / 255.0


def generate_median_batch(generator, mask, extra, batch_size=8):
    """A speckle generator's speckle-free median image in [0, 1], quantised, [N,H,W,1]; None without speckle."""
    parts = params_and_image_model(generator)
    if parts is None:
        return None
    outs = []
    for i in range(0, len(mask), batch_size):
        e = None if extra is None else tf.constant(extra[i:i + batch_size])
        raw, _ = parts(condition(tf.constant(mask[i:i + batch_size]), e), training=False)
        outs.append(to_unit_range(split_params(raw)[0]).numpy())
    return np.rint(np.concatenate(outs) * 255.0) / 255.0


def image_scores(fake01, real01):
    """Mean per-image Dice and SSIM of [N,H,W,1] arrays in [0, 1]."""
    dice = [metrics.dice_non_binary(f, r) for f, r in zip(fake01, real01)]
    ssim = []
    for i in range(0, len(fake01), 32):
        ssim.append(metrics.batch_ssim(fake01[i:i + 32], real01[i:i + 32]).numpy())
    return {"dice": float(np.mean(dice)), "ssim": float(np.mean(np.concatenate(ssim))),
            "num_images": int(len(dice))}


def class_statistics(info, data_dir=None):
    """{class index: (mean, std)} of SAR in [0, 1] over the training patches."""
    stats = (info.get("class_stats") or {}).get("train")
    if not stats:
        if data_dir is None:
            raise InputError("dataset_info.json", "has no class_stats; convert again")
        sar, mask, _ = load_split(data_dir, info, "train")
        stats = {}
        for i, name in enumerate(glacier.CLASS_NAMES):
            v = sar[..., 0][mask == i]
            stats[name] = {"mean": float(v.mean()) if v.size else 0.0, "std": float(v.std()) if v.size else 0.0}
    return {i: (stats[name]["mean"], stats[name]["std"]) for i, name in enumerate(glacier.CLASS_NAMES)}


def baseline_images(mask, class_stats, seed=0):
    """Trivial baseline: class mean intensity times Gamma(L, 1/L) speckle, L = mean^2/var.

    No-data pixels are 0. Quantised to 8 bit. Returns [N,H,W,1] in [0, 1].
    """
    rng = np.random.default_rng(seed)
    out = np.zeros(mask.shape, np.float64)
    for c, (mean, std) in class_stats.items():
        sel = mask == c
        if c == glacier.NO_DATA or not sel.any() or mean <= 0:
            continue
        looks = float(np.clip(mean * mean / max(std * std, 1e-6), 1.0, 100.0))
        out[sel] = mean * rng.gamma(looks, 1.0 / looks, size=int(sel.sum()))
    out = np.clip(np.rint(out * 255.0), 0, 255) / 255.0
    return out[..., None].astype(np.float32)


def list_checkpoints(model_dir):
    """[(epoch, path)] of periodic generator checkpoints, sorted."""
    found = []
    for p in glob.glob(os.path.join(model_dir, "checkpoints", "epoch_*.weights.h5")):
        m = re.search(r"epoch_(\d+)\.weights\.h5$", p)
        if m:
            found.append((int(m.group(1)), p))
    return sorted(found)


def _fmt(v):
    return "–" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:.4f}"


def table_markdown(result):
    row = result["table_row"]
    lines = [f"Model `{result['variant']}` at epoch {row['epoch']} ({row['num_images']} validation patches)", "",
             "| images | non-binary Dice | SSIM | FCN pixel acc. | FCN mIoU |",
             "|---|---|---|---|---|"]
    fcn = result.get("fcn_score") or {}
    for key, label in (("generated", f"pix2pix {result['variant']}"),
                       ("generated_median", "its speckle-free median image"),
                       ("speckle_oracle", "real backscatter (15x15 mean) x fresh Gamma speckle"),
                       ("baseline", "trivial baseline"), ("real", "real images (ceiling)")):
        if key not in result["image_scores"]:
            continue
        s = result["image_scores"].get(key, {})
        f = fcn.get(key, {})
        lines.append(f"| {label} | {_fmt(s.get('dice'))} | {_fmt(s.get('ssim'))} | "
                     f"{_fmt(f.get('pixel_accuracy'))} | {_fmt(f.get('mean_iou'))} |")
    paper = PAPER_TABLE_I.get(result["variant"])
    if paper:
        lines.append(f"| paper Table I ({result['variant']}, epoch 210, real data) | {paper['dice']:.4f} | "
                     f"{paper['ssim']:.4f} | – | – |")
    if "generated_minus_baseline_miou" in fcn:
        lines += ["", f"FCN mIoU, generator minus trivial baseline: {fcn['generated_minus_baseline_miou']:+.4f} "
                      "(a measurement: its sign moves with the zone model's seed)"]
    if result.get("realism"):
        lines += pix2pix_realism.realism_markdown(result)
    if result.get("checks"):
        lines += ["", "Checks: " + ", ".join(f"{k}: {'yes' if v else 'NO'}" for k, v in result["checks"].items())]
    return "\n".join(lines) + "\n"


def _variant_name(cfg, model_dir):
    e = cfg.extra or {}
    known = {(4, 4, 1.0, 100.0): "orig", (5, 4, 1.0, 100.0): "gen5", (4, 3, 1.0, 100.0): "dis3",
             (4, 4, 100.0, 1.0): "l1_1_gan_100", (4, 4, 50.0, 50.0): "l1_50_gan_50"}
    if e.get("gen_upsample", "transpose") != "transpose" or e.get("speckle", "none") != "none":
        return os.path.basename(os.path.normpath(model_dir))   # not a paper variant
    key = (int(e.get("gen_kernel", 4)), int(e.get("disc_kernel", 4)), float(e.get("gan_weight", 1.0)),
           float(e.get("l1_weight", 100.0)))
    return known.get(key, os.path.basename(os.path.normpath(model_dir)))


# --------------------------------------------------------------- evaluate

def evaluate(model_dir, data_dir=None, zones_model_dir=None, epoch=0, output=None, split="val",
             batch_size=8, dropout_at_inference=False, seed=0, recompute_curves=False,
             max_examples=None, bn_at_inference="moving", speckle_looks=0.0):
    """Evaluate a trained pix2pix model folder; returns the result dict (also written).

    Args:
      model_dir: pix2pix model folder (task.json, checkpoints/).
      data_dir: converted glacier data (default: the one it was trained on).
      zones_model_dir: trained glacier_zones model folder for the FCN-score (optional).
      epoch: periodic checkpoint for the Table I row; 0 = the last one (if none
        exists, the `best` weights of the run).
      output: folder for curves.{json,png}, evaluation.json, table.md
        (default MODEL_DIR/eval).
      split: evaluation split ("val" as in the paper, or "test").
      dropout_at_inference: generate with dropout on (paper's noise).
      seed: seed of the baseline speckle, of dropout noise and of Gamma speckle.
      recompute_curves: score every checkpoint again instead of reusing
        checkpoint_scores.json.
      bn_at_inference: "moving" BatchNorm statistics or per-image "batch" ones.
      speckle_looks: > 1: Gamma speckle of this many looks instead of the trained L
        (speckle generators only); 0: the trained L.
    """
    output = output or os.path.join(model_dir, "eval")
    # Written into a temporary sibling folder that is renamed at the end: an
    # evaluation that fails half-way (e.g. --epoch without a checkpoint) leaves
    # no partial output folder behind.
    with io_utils.atomic_path(output) as work:
        os.makedirs(work)
        result = _evaluate_into(model_dir, data_dir=data_dir, zones_model_dir=zones_model_dir, epoch=epoch,
                                output=work, split=split, batch_size=batch_size,
                                dropout_at_inference=dropout_at_inference, seed=seed,
                                recompute_curves=recompute_curves, max_examples=max_examples,
                                bn_at_inference=bn_at_inference, speckle_looks=speckle_looks)
    logging.info("pix2pix evaluation written to %s", output)
    return result


def _evaluate_into(model_dir, data_dir=None, zones_model_dir=None, epoch=0, output=None, split="val",
                   batch_size=8, dropout_at_inference=False, seed=0, recompute_curves=False,
                   max_examples=None, bn_at_inference="moving", speckle_looks=0.0):
    """`evaluate` writing into the folder `output`, which exists (see `evaluate`)."""
    keras.utils.set_random_seed(seed)
    meta, cfg = pix2pix_config(model_dir)
    data_dir = data_dir or cfg.data_dir
    info = dataset_info.load(data_dir, kind="glacier")
    variant = _variant_name(cfg, model_dir)
    sar, mask, extra = load_split(data_dir, info, split, max_examples)
    real01 = sar

    # per-checkpoint curves (paper Fig. 3)
    stored = {c["epoch"]: c for c in read_scores(model_dir).get("checkpoints", [])}
    ckpts = list_checkpoints(model_dir)
    reuse = (not recompute_curves and not dropout_at_inference and split == "val" and not max_examples
             and bn_at_inference == "moving" and not speckle_looks
             and os.path.abspath(data_dir) == os.path.abspath(cfg.data_dir))
    generator = task.build_generator_from(cfg, meta["dataset_info"], dropout_at_inference=dropout_at_inference)
    set_bn_at_inference(generator, bn_at_inference)

    def load_generator(path):   # a checkpoint's weights, then the looks override (the weights hold L)
        generator.load_weights(path)
        override_looks(generator, speckle_looks, model_dir)
    curves = []
    for ep, path in ckpts:
        if reuse and ep in stored and "dice" in stored[ep]:
            curves.append({"epoch": ep, "dice": stored[ep]["dice"], "ssim": stored[ep]["ssim"], "source": "training"})
            continue
        load_generator(path)
        reset_speckle_seed(generator, seed)
        s = image_scores(generate_batch(generator, mask, extra, batch_size), real01)
        curves.append({"epoch": ep, "dice": s["dice"], "ssim": s["ssim"], "source": "evaluation"})
    io_utils.write_json(os.path.join(output, "curves.json"), {"variant": variant, "split": split, "curves": curves})
    if curves:
        glacier_viz.save_checkpoint_curves(curves, os.path.join(output, "curves.png"), f"pix2pix {variant} ({split})")

    # generator at the chosen epoch
    if epoch:
        match = [p for e, p in ckpts if e == int(epoch)]
        if not match:
            raise InputError(model_dir, f"has no checkpoint of epoch {epoch} "
                                        f"(have: {', '.join(str(e) for e, _ in ckpts) or 'none'})")
        load_generator(match[0])
        chosen = int(epoch)
    elif ckpts:
        load_generator(ckpts[-1][1])
        chosen = ckpts[-1][0]
    else:
        model, _ = load_trained(model_dir, "best", expect_task="pix2pix")
        generator.set_weights(model.generator.get_weights())
        override_looks(generator, speckle_looks, model_dir)
        chosen = meta.get("epochs_done") or "best"
    set_dropout_at_inference(generator, dropout_at_inference)
    reset_speckle_seed(generator, seed)
    fake01 = generate_batch(generator, mask, extra, batch_size)
    base01 = baseline_images(mask, class_statistics(info, data_dir), seed=seed)
    scores = {"generated": image_scores(fake01, real01), "baseline": image_scores(base01, real01),
              "real": image_scores(real01, real01)}
    median01 = generate_median_batch(generator, mask, extra, batch_size)
    if median01 is not None:   # speckle head: its structure without the speckle, and what speckle costs
        scores["generated_median"] = image_scores(median01, real01)
        looks = float(speckle_looks or (cfg.extra or {}).get("speckle_looks") or 0) or 3.5
        scores["speckle_oracle"] = image_scores(
            pix2pix_realism.speckle_oracle(real01, mask, looks, seed=seed), real01)
        scores["speckle_oracle"]["looks"] = looks
    result = {
        "variant": variant, "model_dir": os.path.abspath(model_dir), "data_dir": os.path.abspath(data_dir),
        "split": split, "epoch": chosen, "dropout_at_inference": bool(dropout_at_inference),
        "bn_at_inference": bn_at_inference, "speckle_looks_override": float(speckle_looks or 0) or None,
        "table_row": {"model": variant, "epoch": chosen, "dice": scores["generated"]["dice"],
                      "ssim": scores["generated"]["ssim"], "num_images": scores["generated"]["num_images"]},
        "image_scores": scores, "curves": curves, "paper_table_i": PAPER_TABLE_I.get(variant),
        "metric_settings": {
            "dice": "non-binary Dice (paper Eq. 6), images in [0, 1], mean over images",
            "ssim": f"{metrics.SSIM_FILTER_SIZE}x{metrics.SSIM_FILTER_SIZE} Gaussian window, sigma "
                    f"{metrics.SSIM_FILTER_SIGMA}, K1 {metrics.SSIM_K1}, K2 {metrics.SSIM_K2}, data range 1",
            "baseline": "class mean training intensity x Gamma(L, 1/L), L = mean^2/var per class",
            "speckle_oracle": "speckle generators: each real image's 15x15 mean linear intensity x a fresh "
                              "Gamma(L) draw, L = the model's speckle_looks (what correct speckle costs in SSIM)",
            "fcn_score": "zone model on images vs input masks; no-data pixels ignored; mIoU over rock, glacier, ocean"},
    }
    checks = {"ssim_beats_baseline": scores["generated"]["ssim"] > scores["baseline"]["ssim"]}
    realism, spectra = pix2pix_realism.realism_result(fake01, real01, mask)
    result.update(realism)
    pix2pix_realism.save_realism_figure(spectra, realism, os.path.join(output, "realism.png"),
                                        f"pix2pix {variant} ({split}, BatchNorm {bn_at_inference})")

    if zones_model_dir:
        zones, _ = load_trained(zones_model_dir, "best", expect_task="glacier_zones")
        fcn = {}
        for key, images in (("real", real01), ("generated", fake01), ("baseline", base01)):
            pred = predict_classes(zones, images, batch_size)
            s = metrics.segmentation_scores(pred, mask, glacier.NUM_CLASSES, ignore=glacier.NO_DATA)
            s["per_class_iou"] = {glacier.CLASS_NAMES[c]: v for c, v in s["per_class_iou"].items()}
            fcn[key] = s
        ceiling = fcn["real"]["mean_iou"]
        fcn["generated_to_real_miou"] = fcn["generated"]["mean_iou"] / ceiling if ceiling else float("nan")
        fcn["baseline_to_real_miou"] = fcn["baseline"]["mean_iou"] / ceiling if ceiling else float("nan")
        fcn["zones_model_dir"] = os.path.abspath(zones_model_dir)
        result["fcn_score"] = fcn
        # Measurements, not checks: the FCN-score moves with the zone model's seed (results/glacier_fp32.json
        # and glacier_bf16.json: the generator's mIoU led the trivial baseline's on 2 of 3 seeds in each), so no
        # pass/fail is printed.
        fcn["generated_minus_baseline_miou"] = fcn["generated"]["mean_iou"] - fcn["baseline"]["mean_iou"]
    result["checks"] = checks
    io_utils.write_json(os.path.join(output, "evaluation.json"), result)
    with io_utils.atomic_path(os.path.join(output, "table.md")) as tmp:
        with open(tmp, "w") as f:
            f.write(table_markdown(result))
    return result
