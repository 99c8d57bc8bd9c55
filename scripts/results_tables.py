"""The results tables that scripts/results.py reruns over seeds: one entry each, and how a figure is written.

An entry names the quickstart script that makes the table's figures, its data
steps (run once) and its training/scoring steps (run per seed), how to read one
seed's figures from its output folder, and the table's rows, columns, headline
figures, goals and comparisons, and the columns of its at-a-glance table in the
README ("glance"; the full table is in docs/results.md).
"""

import os

from tfseaice import io_utils
from tfseaice.errors import InputError

# Columns whose metric cannot exceed 1 (R², F1, SSIM, Dice, accuracy, mIoU): a documented range stops there.
# Not RMSE, and not a ratio to the real-image ceiling (generated images could segment better than real ones).
AT_MOST_ONE = frozenset({"polygon_r2", "pixel_r2", "truth_pixel_r2", "truth_ice_water_f1", "dice", "ssim",
                         "fcn_pixel_accuracy", "fcn_miou", "truth_sod_f1", "truth_floe_f1", "truth_sic_from_sod_r2"})


def load_json(path):
    """A metrics JSON of one seed's run; missing or unreadable -> InputError naming it."""
    doc = io_utils.read_json(path)
    if doc is None:
        raise InputError(path, "is missing (did that run finish?)")
    return doc


def cell(s, digits=3):
    """'mean ± std' of a summary (just the mean for one value)."""
    if s["std"] is None:
        return f"{s['mean']:.{digits}f}"
    return f"{s['mean']:.{digits}f} ± {s['std']:.{digits}f}"


def label(spec, row, col):
    """'<row label> <column label>' without markdown, for one figure of a table."""
    return f"{dict(spec['rows'])[row]} {dict(spec['columns'])[col]}".replace("*", "").replace("`", "")


def doc_name(doc):
    """results/<table>_<precision>.json: one document per table and precision (mixed: 'bf16+fp32');
    a loss grid's (its `losses` set, scripts/results_losses.py) is results/<table>_losses_<precision>.json."""
    return f"{doc['table']}_{'losses_' if doc.get('losses') else ''}{'+'.join(doc['precision'])}.json"


def _scene_metrics(task_prefix, keys):
    """Reader of one seed's whole-scene evaluations: metrics_{prefix}_{regional,pixel}.json -> {row: {key: value}}."""
    def read(out):
        return {row: {k: load_json(os.path.join(out, f"metrics_{task_prefix}_{row}.json"))[k] for k in keys}
                for row in ("regional", "pixel")}
    return read


def _glacier_figures(out):
    ev = load_json(os.path.join(out, "pix2pix", "eval", "evaluation.json"))
    fcn = ev["fcn_score"]
    ratio = {"generated": fcn["generated_to_real_miou"], "baseline": fcn["baseline_to_real_miou"], "real": 1.0}
    return {row: {"dice": ev["image_scores"][key]["dice"], "ssim": ev["image_scores"][key]["ssim"],
                  "fcn_pixel_accuracy": fcn[key]["pixel_accuracy"], "fcn_miou": fcn[key]["mean_iou"],
                  "fcn_miou_to_real": ratio[key]}
            for row, key in (("pix2pix", "generated"), ("baseline", "baseline"), ("real", "real"))}


TABLES = {
    "sic": {
        "title": "SIC quickstart (`make quickstart`): whole-scene evaluation of 3 held-out sample scenes",
        "script": "scripts/quickstart_sic.sh", "data_steps": "1 2", "seed_steps": "3 4 5",
        "shared": ("scenes", "test_scenes", "records", "sample_scene.png"),
        "figures": _scene_metrics("sic", ("polygon_rmse", "polygon_r2", "pixel_rmse", "pixel_r2", "truth_pixel_rmse",
                                            "truth_pixel_r2", "truth_ice_water_f1")),
        "task_files": ("models/sic_regional/task.json", "models/sic_pixel/task.json"),
        "rows": (("regional", "**regional loss** (`sic_regional`)"), ("pixel", "pixel baseline (`sic_pixel`)")),
        "columns": (("polygon_rmse", "polygon RMSE"), ("polygon_r2", "polygon R²"),
                    ("pixel_rmse", "pixel RMSE (vs chart)"), ("pixel_r2", "pixel R² (vs chart)"),
                    ("truth_pixel_rmse", "pixel RMSE (vs truth)"), ("truth_pixel_r2", "pixel R² (vs truth)"),
                    ("truth_ice_water_f1", "ice/water F1 (vs truth)")),
        "headline": (("regional", "polygon_r2"), ("regional", "truth_pixel_r2"),
                     ("pixel", "polygon_r2"), ("pixel", "truth_pixel_r2")),
        "glance": ("polygon_r2", "truth_pixel_r2", "truth_ice_water_f1"),
        "goals": (("polygon R² ≥ 0.95", "regional", "polygon_r2", 0.95),
                  ("pixel R² vs truth ≥ 0.85", "regional", "truth_pixel_r2", 0.85)),
        "comparisons": (("regional loss beats the pixel baseline in polygon R²", "regional", "pixel", "polygon_r2"),
                        ("regional loss beats the pixel baseline in pixel R² vs truth", "regional", "pixel",
                         "truth_pixel_r2")),
    },
    "glacier": {
        "title": "pix2pix glacier quickstart (`make quickstart-glacier`): validation patches",
        "script": "scripts/quickstart_glacier.sh", "data_steps": "1 2", "seed_steps": "3 4 5",
        "shared": ("raw", "records"),
        "figures": _glacier_figures,
        "task_files": ("zones/task.json", "pix2pix/task.json"),
        "rows": (("pix2pix", "**pix2pix `orig`** (quickstart size)"),
                 ("baseline", "trivial baseline (class mean intensity + speckle)"),
                 ("real", "real images (ceiling)")),
        "columns": (("dice", "non-binary Dice"), ("ssim", "SSIM"), ("fcn_pixel_accuracy", "FCN pixel accuracy"),
                    ("fcn_miou", "FCN mIoU"), ("fcn_miou_to_real", "FCN mIoU / real ceiling")),
        "headline": (("pix2pix", "ssim"), ("pix2pix", "fcn_miou"), ("pix2pix", "fcn_miou_to_real"),
                     ("baseline", "fcn_miou_to_real")),
        "glance": ("ssim", "fcn_miou", "fcn_miou_to_real"),
        "goals": (),
        "comparisons": (("the generator beats the trivial baseline in SSIM", "pix2pix", "baseline", "ssim"),
                        ("the generator beats the trivial baseline in FCN mIoU", "pix2pix", "baseline",
                         "fcn_miou")),
    },
    "icechart": {
        "title": "Ice types quickstart (`make quickstart-icechart`): whole-scene evaluation of 3 held-out sample scenes",
        "script": "scripts/quickstart_icechart.sh", "data_steps": "1 2", "seed_steps": "3 4",
        "shared": ("scenes", "test_scenes", "records"),
        "figures": _scene_metrics("icechart", ("polygon_r2", "truth_pixel_r2", "truth_sod_f1", "truth_floe_f1",
                                                 "truth_sic_from_sod_r2")),
        "task_files": ("models/icechart_regional/task.json", "models/icechart_pixel/task.json"),
        "rows": (("regional", "**regional + composition losses** (`icechart_regional`)"),
                 ("pixel", "pixel baseline, dominant classes (`icechart_pixel`)")),
        "columns": (("polygon_r2", "SIC polygon R²"), ("truth_pixel_r2", "SIC pixel R² (vs truth)"),
                    ("truth_sod_f1", "SOD weighted F1 (vs truth)"), ("truth_floe_f1", "FLOE weighted F1 (vs truth)"),
                    ("truth_sic_from_sod_r2", "1 − P(open water) R² (vs SIC truth)")),
        "headline": (("regional", "truth_sod_f1"), ("regional", "truth_floe_f1"), ("regional", "truth_pixel_r2"),
                     ("pixel", "truth_sod_f1")),
        "glance": ("truth_sod_f1", "truth_floe_f1", "truth_pixel_r2"),
        "goals": (("SOD weighted F1 vs truth ≥ 0.75", "regional", "truth_sod_f1", 0.75),),
        "comparisons": (("regional beats the pixel baseline in SOD F1 vs truth", "regional", "pixel", "truth_sod_f1"),
                        ("regional beats the pixel baseline in FLOE F1 vs truth", "regional", "pixel",
                         "truth_floe_f1")),
    },
}
