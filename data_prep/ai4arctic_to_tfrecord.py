r"""AI4Arctic netCDF scenes -> SIC TFRecord shards, as an Apache Beam pipeline.

  python -m data_prep.ai4arctic_to_tfrecord --input_glob='raw/*.nc' \
      --output_dir=records --patch_size=256 --stride=256 --downsample=2 \
      --val_fraction=0.1 --seed=1 [--runner=DirectRunner] [Beam options...]

Ready-to-train inputs (`*_prep.nc`) also need `--raw_glob` for polygon ids.
Train/val split is by scene (seeded). A scene that fails is listed with its
reason in `failed_scenes.json`; the rest is converted. Normalisation
statistics (per channel, over finite pixels of kept training patches) go to
`dataset_info.json`, with the polygons (in kept patches) per dominant SOD/FLOE
class (`polygon_classes`, per split and in total) and how many have a
composition (`polygon_compositions`).
"""

import glob
import os
import time
import traceback

import apache_beam as beam
import numpy as np
from absl import flags, logging

import tfseaice
from data_prep import beam_common
from tfseaice import cli
from tfseaice.data import ai4arctic, egg_codes, records
from tfseaice.data.patches import iter_patches
from tfseaice.errors import InputError

FLAGS = flags.FLAGS


def define_flags():
    """Command-line flags (defined only when run as a program)."""
    beam_common.define_beam_flags()
    flags.DEFINE_string("input_glob", None, "Scenes to convert (raw *.nc or ready-to-train *_prep.nc).", required=True)
    flags.DEFINE_string("output_dir", None, "Folder for shards and dataset_info.json.", required=True)
    flags.DEFINE_string("raw_glob", None, "Raw files that supply polygon ids for ready-to-train inputs.")
    flags.DEFINE_list("channels", list(ai4arctic.DEFAULT_CHANNELS), "Input channels: hh, hv, incidence_angle, distance_map, btemp_*, ERA5 names.")
    flags.DEFINE_integer("patch_size", 256, "Patch side in output pixels.")
    flags.DEFINE_integer("stride", 256, "Patch stride in output pixels.")
    flags.DEFINE_integer("downsample", 2, "Output pixel = 40 m x downsample.")
    flags.DEFINE_float("val_fraction", 0.1, "Fraction of scenes for validation.")
    flags.DEFINE_integer("seed", 1, "Seed of the train/val split.")
    flags.DEFINE_string("truth_variable", "sic_truth", "Per-pixel truth variable stored when a scene has it ('' = never).")
    flags.DEFINE_string("sod_truth_variable", "sod_truth", "Per-pixel SOD class truth stored when a scene has it ('' = never).")
    flags.DEFINE_string("floe_truth_variable", "floe_truth", "Per-pixel FLOE class truth stored when a scene has it ('' = never).")
    flags.DEFINE_enum("land_mask", "distance_map", list(ai4arctic.LAND_MASKS),
                      "distance_map: land pixels (class 0) leave every polygon and pixel loss; none: chart only.")


class ConvertScene(beam.DoFn):
    """One scene -> keyed serialized patches (main output) + one report dict."""

    def __init__(self, channels, patch_size, stride, downsample, raw_glob, truth_variable, land_mask,
                 sod_truth_variable="sod_truth", floe_truth_variable="floe_truth"):
        truth_variables = (truth_variable, sod_truth_variable, floe_truth_variable)
        self.args = (tuple(channels), patch_size, stride, downsample, raw_glob, truth_variables, land_mask)

    def process(self, element):
        path, split = element
        channels, patch_size, stride, downsample, raw_glob, truth_variables, land_mask = self.args
        truth_variable, sod_truth_variable, floe_truth_variable = truth_variables
        report = {"path": path, "split": split}
        try:
            with beam_common.NETCDF_LOCK:  # libnetcdf is not thread-safe: see there
                scene = ai4arctic.read_scene(path, channels, downsample, raw_glob=raw_glob,
                                             truth_variable=truth_variable, land_mask=land_mask,
                                             sod_truth_variable=sod_truth_variable,
                                             floe_truth_variable=floe_truth_variable)
            counts = {}
            examples = []
            sums = np.zeros(len(channels))
            sumsq = np.zeros(len(channels))
            n = np.zeros(len(channels))
            max_k = 0
            seen = set()
            for p in iter_patches(scene, patch_size, stride, counts):
                key = f"{scene.scene_id}/{p.offset[0]:06d}_{p.offset[1]:06d}"
                examples.append((key, records.encode_sic(
                    p.sar, p.polygon_ids, p.polygon_sic, p.polygon_global_id,
                    p.polygon_pixel_count, scene.scene_id, p.offset, p.sic_truth, **p.record_tables())))
                seen.update(p.polygon_global_id.tolist())
                finite = np.isfinite(p.sar)
                x = np.where(finite, p.sar, 0).astype(np.float64)
                sums += x.sum(axis=(0, 1))
                sumsq += (x * x).sum(axis=(0, 1))
                n += finite.sum(axis=(0, 1))
                max_k = max(max_k, len(p.polygon_sic))
            if not counts.get("kept"):
                raise InputError(path, no_patch_reason(scene, patch_size))
        except InputError as exc:
            report["error"] = exc.what
        except Exception as exc:  # a broken scene must not stop the other 500
            report["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            report["traceback"] = traceback.format_exc(limit=3)
        if "error" in report:
            yield beam.pvalue.TaggedOutput("report", report)
            return
        report.update(scene_id=scene.scene_id, kept=counts["kept"],
                      dropped_unlabelled=counts["dropped_unlabelled"], max_polygons=max_k,
                      has_truth=scene.sic_truth is not None, sar_units=scene.sar_units,
                      has_sod_truth=scene.sod_truth is not None, has_floe_truth=scene.floe_truth is not None,
                      **polygon_class_report(scene.table, sorted(seen)),
                      pixel_spacing_m=scene.pixel_spacing_m,
                      unlabelled_polygons={k: len(v) for k, v in scene.unlabelled_polygons.items()},
                      sum=sums.tolist(), sumsq=sumsq.tolist(), count=n.tolist())
        for key, rec in examples:
            yield split, key, rec
        yield beam.pvalue.TaggedOutput("report", report)


def no_patch_reason(scene, patch_size):
    """Why a scene that was read gave no training patch (for failed_scenes.json)."""
    present = np.unique(scene.chart_ids[scene.chart_ids >= 0])
    if not np.isfinite(scene.table.lookup(present)).any():
        return ("no labelled polygon: every chart polygon in the scene is unlabelled "
                "(CT 98, 99, -9 or an unknown code), so it gives no training patch")
    return (f"no {patch_size}x{patch_size} patch holds a labelled polygon with valid SAR "
            "(labelled polygons only where SAR is NaN?), so it gives no training patch")


def polygon_class_report(table, ids):
    """Dominant-class counts and composition-labelled counts of the polygons `ids` of a scene's table."""
    rows = table.rows(np.asarray(ids, np.int64))
    return {"polygon_classes": {"SOD": egg_codes.class_counts(table.sod_class[rows], "SOD"),
                                "FLOE": egg_codes.class_counts(table.floe_class[rows], "FLOE")},
            "polygon_compositions": {"SOD": int(np.isfinite(table.sod_composition[rows]).all(axis=1).sum()),
                                     "FLOE": int(np.isfinite(table.floe_composition[rows]).all(axis=1).sum()),
                                     "polygons": len(rows)}}


def sum_counts(dicts):
    """Key-wise sum of nested {name: int} dicts of the same shape."""
    out = {}
    for d in dicts:
        for k, v in d.items():
            out[k] = sum_counts([out.get(k, {}), v]) if isinstance(v, dict) else out.get(k, 0) + v
    return out


def estimate_bytes(path, num_channels, patch_size, stride, downsample):
    """Rough size of one scene's examples, from the netCDF header only."""
    try:
        ds = ai4arctic.open_dataset(path)
        with ds:
            h = ds.sizes.get("sar_lines", 0)
            w = ds.sizes.get("sar_samples", 0)
            f = downsample / (2 if ai4arctic.is_ready_to_train(path, ds) else 1)
    except InputError:
        return 0
    return int(h / f * w / f * (4 * num_channels + 8))


def build_info(reports, splits, shard_names, args):
    ok = [r for r in reports if "error" not in r]
    train = [r for r in ok if r["split"] == "train"]
    channels = args["channels"]
    s = np.sum([r["sum"] for r in train], axis=0) if train else np.zeros(len(channels))
    ss = np.sum([r["sumsq"] for r in train], axis=0) if train else np.zeros(len(channels))
    n = np.sum([r["count"] for r in train], axis=0) if train else np.zeros(len(channels))
    mean = s / np.maximum(n, 1)
    std = np.sqrt(np.maximum(ss / np.maximum(n, 1) - mean**2, 0))
    std = np.where(std > 1e-6, std, 1.0)
    units = sorted({r["sar_units"] for r in ok})
    info = {
        "schema_version": records.SCHEMA_VERSION,
        "kind": "sic",
        "created_by": f"tfseaice {tfseaice.__version__} data_prep.ai4arctic_to_tfrecord",
        "channels": channels,
        "sar_units": units[0] if len(units) == 1 else units,
        "normalization": {"mean": mean.tolist(), "std": std.tolist(), "pixels": n.tolist(), "split": "train"},
        "patch_size": args["patch_size"], "stride": args["stride"], "downsample": args["downsample"],
        "pixel_spacing_m": ai4arctic.RAW_SPACING_M * args["downsample"],
        "val_fraction": args["val_fraction"], "seed": args["seed"],
        "has_truth": bool(ok) and all(r["has_truth"] for r in ok),
        "has_sod_truth": bool(ok) and all(r["has_sod_truth"] for r in ok),
        "has_floe_truth": bool(ok) and all(r["has_floe_truth"] for r in ok),
        # Polygons in kept patches (each once per scene) per AutoICE dominant class, and how many of them
        # have a composition (the regional target); per split under "splits".
        "polygon_classes": sum_counts(r["polygon_classes"] for r in ok),
        "polygon_compositions": sum_counts(r["polygon_compositions"] for r in ok),
        "max_polygons_per_patch": max([r["max_polygons"] for r in ok], default=0),
        "num_scenes_failed": len(reports) - len(ok),
        "num_patches_dropped_unlabelled": int(sum(r["dropped_unlabelled"] for r in ok)),
        "land_mask": args["land_mask"],
        # Per scene, polygons left unlabelled for being odd (a raster id polygon_codes lacks, a POLY_TYPE
        # other than I/W); scenes without any are not listed.
        "unlabelled_polygons": {r["scene_id"]: r["unlabelled_polygons"] for r in sorted(ok, key=lambda r: r["scene_id"])
                                if r.get("unlabelled_polygons")},
        "splits": {},
    }
    for split in ("train", "val"):
        rs = [r for r in ok if r["split"] == split]
        info["splits"][split] = {
            "scenes": sorted(r["scene_id"] for r in rs),
            "num_examples": int(sum(r["kept"] for r in rs)),
            "shards": shard_names[split],
            "polygon_classes": sum_counts(r["polygon_classes"] for r in rs),
        }
    return info


def convert(input_glob, output_dir, beam_args=(), channels=ai4arctic.DEFAULT_CHANNELS, patch_size=256,
            stride=256, downsample=2, val_fraction=0.1, seed=1, raw_glob=None,
            truth_variable="sic_truth", overwrite=False, num_shards=0, shard_mb=128,
            runner="DirectRunner", land_mask="distance_map", sod_truth_variable="sod_truth",
            floe_truth_variable="floe_truth"):
    """Run the conversion; returns (dataset_info dict, failed list)."""
    paths = sorted(p for p in glob.glob(input_glob) if os.path.isfile(p))
    if not paths:
        raise InputError(input_glob, "--input_glob matches no file")
    if patch_size <= 0 or stride <= 0 or downsample <= 0:
        raise InputError("flags", "--patch_size, --stride and --downsample must be positive")
    if not 0 <= val_fraction < 1:
        raise InputError("flags", f"--val_fraction must be in [0, 1), got {val_fraction}")
    with beam_common.StagedOutput(output_dir, overwrite) as out:
        train, val = beam_common.seeded_split(paths, val_fraction, seed)
        split_of = {p: "train" for p in train} | {p: "val" for p in val}
        sizes = {s: sum(estimate_bytes(p, len(channels), patch_size, stride, downsample)
                        for p in paths if split_of[p] == s) for s in ("train", "val")}
        n_shards = {s: beam_common.shard_count(sizes[s], num_shards, shard_mb) if sizes[s] or s == "train" else 0
                    for s in ("train", "val")}
        n_shards["val"] = n_shards["val"] if val else 0
        logging.info("Converting %d scenes (%d train, %d val) into %s", len(paths), len(train), len(val), output_dir)
        t0 = time.time()
        with beam_common.make_pipeline(beam_args, runner) as p:
            outputs = (p
                       | "Scenes" >> beam.Create([(path, split_of[path]) for path in paths])
                       | "Reshuffle" >> beam.Reshuffle()
                       | "Convert" >> beam.ParDo(ConvertScene(
                           channels, patch_size, stride, downsample, raw_glob, truth_variable, land_mask,
                           sod_truth_variable, floe_truth_variable)).with_outputs("report", main="examples"))
            for split in ("train", "val"):
                if n_shards[split]:
                    (outputs.examples
                     | f"Only{split}" >> beam.Filter(lambda e, s=split: e[0] == s)
                     | f"Key{split}" >> beam.Map(lambda e: (e[1], e[2]))
                     | f"Write{split}" >> beam_common.WriteShards(out.staging, split, n_shards[split]))
            outputs.report | "Reports" >> beam_common.WriteJson(os.path.join(out.staging, "_reports.json"))
        reports = out.read_json("_reports.json", [])
        shard_names = {s: [beam_common.shard_name(s, i, n_shards[s]) for i in range(n_shards[s])]
                       for s in ("train", "val")}
        args = dict(channels=list(channels), patch_size=patch_size, stride=stride, downsample=downsample,
                    val_fraction=val_fraction, seed=seed, land_mask=land_mask)
        failed = [{"path": r["path"], "error": r["error"]} for r in reports if "error" in r]
        if len(failed) == len(paths):
            raise InputError(failed[0]["path"], f"every scene failed; first: {failed[0]['error']}")
        info = build_info(reports, split_of, shard_names, args)
        info["seconds"] = round(time.time() - t0, 2)
        out.commit(shard_names["train"] + shard_names["val"], info, {"failed_scenes.json": failed})
    return info, failed


def main(argv):
    info, failed = convert(
        FLAGS.input_glob, FLAGS.output_dir, beam_args=argv[1:], channels=FLAGS.channels,
        patch_size=FLAGS.patch_size, stride=FLAGS.stride, downsample=FLAGS.downsample,
        val_fraction=FLAGS.val_fraction, seed=FLAGS.seed, raw_glob=FLAGS.raw_glob,
        truth_variable=FLAGS.truth_variable, overwrite=FLAGS.overwrite,
        num_shards=FLAGS.num_shards, shard_mb=FLAGS.shard_mb, runner=FLAGS.runner, land_mask=FLAGS.land_mask,
        sod_truth_variable=FLAGS.sod_truth_variable, floe_truth_variable=FLAGS.floe_truth_variable)
    beam_common.print_failures(failed)
    tr, va = info["splits"]["train"], info["splits"]["val"]
    print(f"Converted {len(tr['scenes']) + len(va['scenes'])} scenes ({len(failed)} failed, listed in "
          f"{os.path.join(FLAGS.output_dir, 'failed_scenes.json')}): train {tr['num_examples']} patches in "
          f"{len(tr['shards'])} shards, val {va['num_examples']} patches in {len(va['shards'])} shards, "
          f"{info['num_patches_dropped_unlabelled']} unlabelled patches dropped; {info['seconds']} s -> {FLAGS.output_dir}")


if __name__ == "__main__":
    define_flags()
    cli.run(main, flags_parser=beam_common.parse_flags)
