r"""Glacier CaFFe layout -> glacier TFRecord shards, as an Apache Beam pipeline.

  python -m data_prep.glacier_to_tfrecord --data_root=DATA_RAW --output_dir=records \
      --patch_size=256 --val_fraction=0.1 --seed=1 [--overwrite] \
      [--runner=DirectRunner] [other Beam options are passed through]

As in the pix2pix glacier paper, every image of `sar_images/train/` is cut into
non-overlapping `patch_size` x `patch_size` patches (the remainder at the right
and bottom edge is dropped; patches with more than `--max_nodata_fraction` no
data are dropped) and the *patches* (not the images) are split at random,
seeded, into train and validation (`--val_fraction`, default 0.1 = the paper's
90/10). Note that this puts patches of one image on both sides of the split, as
the paper does. Images of `sar_images/test/` (when present) are cut the same
way into `test` shards, unsplit.

Masks are stored as class indices (0 no data, 1 rock, 2 glacier, 3 ocean);
extra conditioning channels (`DATA_ROOT/<channel>/{split}/NAME_<channel>.png|npy`,
auto-detected, or named with --extra_channels) are stored beside them. Output:
`{train,val,test}-NNNNN-of-NNNNN.tfrecord`, `dataset_info.json` (kind
"glacier") and `failed_images.json` (one line per image that could not be
read, with the reason; the other images are converted).
"""

import os
import time
import traceback

import apache_beam as beam
import numpy as np
from absl import flags, logging

import tfseaice
from data_prep import beam_common
from tfseaice import cli
from tfseaice.data import glacier, records
from tfseaice.errors import InputError

FLAGS = flags.FLAGS
FAILED_REPORT = "failed_images.json"


def define_flags():
    """Flags of this entry point (defined on demand: other converters share names)."""
    beam_common.define_beam_flags()
    flags.DEFINE_string("data_root", None, "CaFFe data root (sar_images/, zones/ ...).", required=True)
    flags.DEFINE_string("output_dir", None, "Folder for shards and dataset_info.json.", required=True)
    flags.DEFINE_integer("patch_size", 256, "Patch side in pixels (non-overlapping patches).")
    flags.DEFINE_float("val_fraction", 0.1, "Fraction of the training patches for validation.")
    flags.DEFINE_integer("seed", 1, "Seed of the train/val patch split.")
    flags.DEFINE_float("max_nodata_fraction", 0.9, "Drop patches with a larger no-data fraction.")
    flags.DEFINE_string("train_split", "train", "CaFFe split folder that is cut into train/val.")
    flags.DEFINE_string("test_split", "test", "CaFFe split folder converted whole into test shards "
                        "when present ('' = never).")
    flags.DEFINE_list("extra_channels", ["auto"], "Extra conditioning channels: 'auto' (every "
                      "channel folder found), '' (none) or folder names.")


# ------------------------------------------------------------------ plain functions

def patch_offsets(height, width, patch_size):
    """Top-left corners of the non-overlapping patches that fit in an image."""
    return [(r, c) for r in range(0, height - patch_size + 1, patch_size)
            for c in range(0, width - patch_size + 1, patch_size)]


def image_patches(image, patch_size, max_nodata_fraction=0.9):
    """Cut a GlacierImage into patches.

    Returns (patches, dropped) where patches is a list of dicts with offset,
    sar uint8 [P,P], classes uint8 [P,P], extra float32 [P,P,E] | None, and
    dropped counts patches with too much no data.
    """
    h, w = image.sar.shape
    out, dropped = [], 0
    for r, c in patch_offsets(h, w, patch_size):
        cls = image.classes[r:r + patch_size, c:c + patch_size]
        if np.mean(cls == glacier.NO_DATA) > max_nodata_fraction:
            dropped += 1
            continue
        out.append({
            "offset": (r, c),
            "sar": np.ascontiguousarray(image.sar[r:r + patch_size, c:c + patch_size]),
            "classes": np.ascontiguousarray(cls),
            "extra": None if image.extra is None else
            np.ascontiguousarray(image.extra[r:r + patch_size, c:c + patch_size]),
        })
    return out, dropped


def class_stats(sar, classes):
    """Per-class [count, sum, sum of squares] of the uint8 SAR values, int64 [num_classes, 3].

    Integers, so that adding them up gives the same totals in any order: every
    Beam runner combines patches in its own order, and float sums would differ
    in the last digits from runner to runner.
    """
    x = sar.astype(np.int64).ravel()
    k = classes.astype(np.int64).ravel()
    n = glacier.NUM_CLASSES
    # bincount adds the weights as float64: exact for one patch's integer sums (< 2**53)
    return np.stack([np.bincount(k, minlength=n), np.bincount(k, x, minlength=n),
                     np.bincount(k, x * x, minlength=n)], axis=1).astype(np.int64)


def patch_key(name, offset):
    return f"{name}/{offset[0]:05d}_{offset[1]:05d}"


class PatchImage(beam.DoFn):
    """(split, name) -> (split, key, serialized example, stats) + one report dict."""

    def __init__(self, data_root, patch_size, max_nodata_fraction, extra_names):
        self.data_root = data_root
        self.patch_size = patch_size
        self.max_nodata_fraction = max_nodata_fraction
        self.extra_names = tuple(extra_names)

    def process(self, element):
        split, name = element
        report = {"split": split, "name": name,
                  "path": os.path.join(self.data_root, "sar_images", split, name + ".png")}
        try:
            img = glacier.read_image(self.data_root, split, name, self.extra_names)
            patches, dropped = image_patches(img, self.patch_size, self.max_nodata_fraction)
            examples = [(patch_key(name, p["offset"]),
                         records.encode_glacier(p["sar"], p["classes"], name, p["offset"],
                                                p["extra"], self.extra_names),
                         class_stats(p["sar"], p["classes"]))
                        for p in patches]
        except InputError as exc:
            report.update(path=exc.path, error=exc.what)
        except Exception as exc:  # one broken file must not stop the rest
            report["error"] = f"{type(exc).__name__}: {exc}"
            report["traceback"] = traceback.format_exc(limit=3)
        if "error" in report:
            yield beam.pvalue.TaggedOutput("report", report)
            return
        report.update(height=int(img.sar.shape[0]), width=int(img.sar.shape[1]),
                      kept=len(examples), dropped_nodata=dropped)
        for key, rec, stats in examples:
            yield split, key, rec, stats
        yield beam.pvalue.TaggedOutput("report", report)


def _assign(element, val_keys, train_split):
    split, key, rec, stats = element
    if split == train_split:
        split = "val" if key in val_keys else "train"
    return split, key, rec, stats


def _val_keys(keys, val_fraction, seed):
    return set(beam_common.seeded_split(keys, val_fraction, seed)[1])


def _sum_stats(items):
    items = list(items)
    return np.sum(items, axis=0, dtype=np.int64) if items else np.zeros((glacier.NUM_CLASSES, 3), np.int64)


def _stats_json(stats):
    """Per-class pixels, mean and std of SAR in [0, 1], from class_stats totals (exact integers)."""
    out = {}
    for i, cname in enumerate(glacier.CLASS_NAMES):
        n, s, ss = (int(v) for v in stats[i])
        mean = s / (255 * n) if n else 0.0
        var = (n * ss - s * s) / (255 * 255 * n * n) if n else 0.0
        out[cname] = {"pixels": n, "mean": mean, "std": var ** 0.5}
    return out


def _image_size(path):
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.size[0] * im.size[1]
    except Exception:
        return 0


def convert(data_root, output_dir, beam_args=(), patch_size=256, val_fraction=0.1, seed=1,
            max_nodata_fraction=0.9, train_split="train", test_split="test", extra_channels="auto",
            overwrite=False, num_shards=0, shard_mb=128, runner="DirectRunner"):
    """Run the conversion; returns (dataset_info dict, failed list)."""
    if patch_size <= 0:
        raise InputError("--patch_size", f"must be positive, got {patch_size}")
    if not 0 <= val_fraction < 1:
        raise InputError("--val_fraction", f"must be in [0, 1), got {val_fraction}")
    if not 0 <= max_nodata_fraction <= 1:
        raise InputError("--max_nodata_fraction", f"must be in [0, 1], got {max_nodata_fraction}")
    splits_present = glacier.list_splits(data_root)
    if train_split not in splits_present:
        raise InputError(os.path.join(data_root, "sar_images", train_split), "folder not found")
    sources = [train_split] + ([test_split] if test_split and test_split in splits_present
                               and test_split != train_split else [])
    if extra_channels in ("auto", ["auto"], ("auto",)):
        extra_names = glacier.find_extra_channels(data_root)
    else:
        extra_names = [c for c in (extra_channels or []) if c]
        for c in extra_names:
            if not os.path.isdir(os.path.join(data_root, c)):
                raise InputError(os.path.join(data_root, c), f"extra channel folder {c!r} not found")
    items = []
    for split in sources:
        d = os.path.join(data_root, "sar_images", split)
        names = sorted(f[:-4] for f in os.listdir(d) if f.lower().endswith(".png") and not f.startswith("."))
        items += [(split, n) for n in names]
    if not any(s == train_split for s, _ in items):
        raise InputError(os.path.join(data_root, "sar_images", train_split), "holds no .png image")

    with beam_common.StagedOutput(output_dir, overwrite) as out:
        bytes_per_pixel = 2 + 4 * len(extra_names)
        size = {s: sum(_image_size(os.path.join(data_root, "sar_images", s, n + ".png"))
                       for ss, n in items if ss == s) * bytes_per_pixel for s in sources}
        est = {"train": size[train_split] * (1 - val_fraction), "val": size[train_split] * val_fraction}
        n_shards = {"train": beam_common.shard_count(est["train"], num_shards, shard_mb),
                    "val": beam_common.shard_count(est["val"], num_shards, shard_mb) if val_fraction > 0 else 0}
        out_splits = ["train", "val"]
        if len(sources) > 1:
            out_splits.append("test")
            n_shards["test"] = beam_common.shard_count(size[test_split], num_shards, shard_mb)
        logging.info("Converting %d images (%s) from %s into %s", len(items),
                     ", ".join(f"{s}: {sum(1 for x, _ in items if x == s)}" for s in sources),
                     data_root, output_dir)
        t0 = time.time()
        with beam_common.make_pipeline(beam_args, runner) as p:
            cut = (p
                   | "Images" >> beam.Create(items)
                   | "Reshuffle" >> beam.Reshuffle()
                   | "Patch" >> beam.ParDo(PatchImage(data_root, patch_size, max_nodata_fraction,
                                                      extra_names)).with_outputs("report", main="patches"))
            val_keys = (cut.patches
                        | "TrainOnly" >> beam.Filter(lambda e: e[0] == train_split)
                        | "Keys" >> beam.Map(lambda e: e[1])
                        | "AllKeys" >> beam.combiners.ToList()
                        | "ValKeys" >> beam.Map(_val_keys, val_fraction, seed))
            assigned = cut.patches | "Assign" >> beam.Map(
                _assign, beam.pvalue.AsSingleton(val_keys), train_split)
            for split in out_splits:
                if not n_shards[split]:
                    continue
                source = test_split if split == "test" else split
                (assigned
                 | f"Only{split}" >> beam.Filter(lambda e, s=source: e[0] == s)
                 | f"Key{split}" >> beam.Map(lambda e: (e[1], e[2]))
                 | f"Write{split}" >> beam_common.WriteShards(out.staging, split, n_shards[split]))
            (assigned
             | "StatsBySplit" >> beam.Map(lambda e: ({test_split: "test"}.get(e[0], e[0]), e[3]))
             | "SumStats" >> beam.CombinePerKey(_sum_stats)
             | "StatsJson" >> beam.Map(lambda kv: {"split": kv[0], "stats": kv[1].tolist(),
                                                   "count": None})
             | "WriteStats" >> beam_common.WriteJson(os.path.join(out.staging, "_stats.json")))
            (assigned
             | "CountBySplit" >> beam.Map(lambda e: ({test_split: "test"}.get(e[0], e[0]), 1))
             | "Count" >> beam.CombinePerKey(sum)
             | "CountJson" >> beam.Map(lambda kv: {"split": kv[0], "count": kv[1]})
             | "WriteCounts" >> beam_common.WriteJson(os.path.join(out.staging, "_counts.json")))
            cut.report | "Reports" >> beam_common.WriteJson(os.path.join(out.staging, "_reports.json"))
        reports = out.read_json("_reports.json", [])
        stats = {d["split"]: np.asarray(d["stats"]) for d in out.read_json("_stats.json", [])}
        counts = {d["split"]: d["count"] for d in out.read_json("_counts.json", [])}
        failed = [{"path": r["path"], "error": r["error"]} for r in reports if "error" in r]
        if len(failed) == len(items):
            raise InputError(failed[0]["path"], f"every image failed; first: {failed[0]['error']}")
        if not counts.get("train"):
            raise InputError(data_root, f"no training patch of {patch_size}x{patch_size} px "
                                        f"(images too small or mostly no data?)")
        shard_names = {s: [beam_common.shard_name(s, i, n_shards[s]) for i in range(n_shards[s])]
                       for s in out_splits}
        ok = [r for r in reports if "error" not in r]
        info = {
            "schema_version": records.SCHEMA_VERSION,
            "kind": "glacier",
            "created_by": f"tfseaice {tfseaice.__version__} data_prep.glacier_to_tfrecord",
            "data_root": os.path.abspath(data_root),
            "patch_size": patch_size,
            "split_unit": "patch",
            "val_fraction": val_fraction,
            "seed": seed,
            "max_nodata_fraction": max_nodata_fraction,
            "num_classes": glacier.NUM_CLASSES,
            "class_names": list(glacier.CLASS_NAMES),
            "zone_values": list(glacier.ZONE_VALUES),
            "sar_encoding": "uint8; decode_glacier returns sar / 255 in [0, 1]",
            "extra_channels": list(extra_names),
            "class_stats": {s: _stats_json(v) for s, v in sorted(stats.items())},
            "num_images_failed": len(failed),
            "num_patches_dropped_nodata": int(sum(r["dropped_nodata"] for r in ok)),
            "splits": {},
            "seconds": round(time.time() - t0, 2),
        }
        for split in out_splits:
            src = test_split if split == "test" else train_split
            info["splits"][split] = {
                "num_examples": int(counts.get(split, 0)),
                "num_images": len({r["name"] for r in ok if r["split"] == src}),
                "shards": shard_names[split],
            }
        out.commit(sum(shard_names.values(), []), info, {FAILED_REPORT: failed})
    return info, failed


def main(argv):
    info, failed = convert(
        FLAGS.data_root, FLAGS.output_dir, beam_args=argv[1:], patch_size=FLAGS.patch_size,
        val_fraction=FLAGS.val_fraction, seed=FLAGS.seed, max_nodata_fraction=FLAGS.max_nodata_fraction,
        train_split=FLAGS.train_split, test_split=FLAGS.test_split,
        extra_channels=FLAGS.extra_channels, overwrite=FLAGS.overwrite,
        num_shards=FLAGS.num_shards, shard_mb=FLAGS.shard_mb, runner=FLAGS.runner)
    beam_common.print_failures(failed)
    parts = ", ".join(f"{s} {v['num_examples']} patches in {len(v['shards'])} shards"
                      for s, v in info["splits"].items())
    print(f"Converted {FLAGS.data_root}: {parts}; {len(failed)} images failed"
          f"{' (see ' + os.path.join(FLAGS.output_dir, FAILED_REPORT) + ')' if failed else ''}; "
          f"{info['num_patches_dropped_nodata']} no-data patches dropped; {info['seconds']} s "
          f"-> {FLAGS.output_dir}")


if __name__ == "__main__":
    define_flags()
    cli.run(main, flags_parser=beam_common.parse_flags)
