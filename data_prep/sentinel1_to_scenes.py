r"""Sentinel-1 GRD products (+ SIGRID-3 charts) -> scenes in the AI4Arctic raw layout, as an Apache Beam pipeline.

  python -m data_prep.sentinel1_to_scenes --safe_glob='products/S1*' --chart_glob='charts/*.shp' \
      --output_dir=scenes [--max_chart_offset_hours=24] [--pairs_csv=pairs.csv] [--channels=hh,hv] \
      [--overwrite] [--runner=DirectRunner|FlinkRunner|SparkRunner|DataflowRunner] [Beam options...]

One product per element. Each product becomes `<start>_s1_<product>.nc`
(`nersc_sar_primary`/`_secondary` dB at 40 m, `sar_grid_*`, a GSHHG
`distance_map`, and with a chart `polygon_icechart` + `polygon_codes`), which
`ai4arctic_to_tfrecord`, `evaluate`, `predict` and `autoice` read unchanged.

Pairing: a chart goes with a product when the time stamp in its file name
lies within --max_chart_offset_hours of the acquisition start and its labelled
polygons cover part of the scene (nearest in time first). --pairs_csv (columns
`safe,chart`; paths relative to the CSV's folder; an empty chart = none) gives
explicit pairs, which skip the time test but not the coverage test; with
--safe_glob as well, the products it matches that the CSV does not list are
paired by time. A product without a chart becomes a chart-less scene.

In --output_dir: the scenes, `scenes.json` (per scene: product, chart, time
offset, coverage, or why it has no chart; written last) and
`failed_scenes.json` (each product that failed, with the reason; the others
convert). Scenes are staged and moved in at the end: an existing conversion
is refused without --overwrite (and replaced as a whole with it).
"""

import csv
import glob
import os
import time
import traceback

import apache_beam as beam
from absl import flags, logging

from data_prep import beam_common
from tfseaice import cli, io_utils
from tfseaice.data import sentinel1_scenes, sigrid3
from tfseaice.errors import InputError

FLAGS = flags.FLAGS
REPORT = "scenes.json"
FAILED = "failed_scenes.json"
PATTERNS = ("*.nc", REPORT, FAILED)


def define_flags():
    """Command-line flags (defined only when run as a program)."""
    flags.DEFINE_string("runner", "DirectRunner", "Beam runner (DirectRunner, DataflowRunner, FlinkRunner, SparkRunner).")
    flags.DEFINE_bool("overwrite", False, "Replace an existing conversion in --output_dir.")
    flags.DEFINE_string("safe_glob", None, "Sentinel-1 GRD products: .SAFE folders and/or .zip files.")
    flags.DEFINE_string("chart_glob", None, "SIGRID-3 charts (.shp, zipped .shp, .gpkg) with a time stamp in the name.")
    flags.DEFINE_string("pairs_csv", None, "Explicit pairs: a CSV with columns safe,chart.")
    flags.DEFINE_float("max_chart_offset_hours", 24.0, "Largest |chart time - acquisition start| for pairing by time.")
    flags.DEFINE_string("output_dir", None, "Folder for the scene netCDF files and reports.", required=True)
    flags.DEFINE_list("channels", ["hh", "hv"], "Polarisations: hh,hv (or vv,vh) -> nersc_sar_primary, _secondary.")


class StagedScenes(beam_common.StagedOutput):
    """beam_common's staging folder, for scene files and their reports instead of shards."""

    def _existing(self):
        if not os.path.isdir(self.output_dir):
            return []
        return sorted(p for pattern in PATTERNS for p in glob.glob(os.path.join(self.output_dir, pattern)))

    def commit_scenes(self, names, reports):
        """Replace the old conversion: remove its files, move the scenes in, reports last (scenes.json)."""
        old_report = os.path.join(self.output_dir, REPORT)
        if os.path.exists(old_report):   # first, so the folder reads incomplete while we swap
            os.remove(old_report)
        for old in self._existing():
            os.remove(old)
        for name in names:
            os.replace(os.path.join(self.staging, name), os.path.join(self.output_dir, name))
        for name in (FAILED, REPORT):
            io_utils.write_json(os.path.join(self.output_dir, name), reports[name])
        self.abort()


class ConvertProduct(beam.DoFn):
    """(product path, [(chart path, offset hours)]) -> one report dict; the scene goes to the staging folder."""

    def __init__(self, staging, channels):
        self.staging, self.channels = staging, tuple(channels)

    def process(self, element):
        product, candidates = element
        t0 = time.time()
        try:
            with beam_common.NETCDF_LOCK:   # libnetcdf/HDF5 is not thread-safe (see beam_common)
                report = sentinel1_scenes.write_product_scene(product, self.staging, candidates, self.channels)
            report["seconds"] = round(time.time() - t0, 2)
        except InputError as exc:
            report = {"product": product, "error": str(exc) if exc.path != product else exc.what}
        except Exception as exc:  # a broken product must not stop the others
            report = {"product": product, "error": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
                      "traceback": traceback.format_exc(limit=3)}
        yield report


def read_pairs(pairs_csv):
    """{product path: chart path or None} from a CSV with columns safe,chart (relative to the CSV's folder)."""
    if not os.path.isfile(pairs_csv):
        raise InputError(pairs_csv, "file does not exist")
    base = os.path.dirname(os.path.abspath(pairs_csv))
    with open(pairs_csv, newline="") as f:
        reader = csv.DictReader(f)
        fields = [c.strip().lower() for c in (reader.fieldnames or [])]
        if "safe" not in fields or "chart" not in fields:
            raise InputError(pairs_csv, f"needs the columns safe,chart (has {','.join(fields) or 'none'})")
        pairs = {}
        for n, row in enumerate(reader, start=2):
            row = {k.strip().lower(): (v or "").strip() for k, v in row.items() if k}
            if not row["safe"]:
                raise InputError(pairs_csv, f"line {n}: empty safe")
            safe = os.path.normpath(os.path.join(base, row["safe"]))
            pairs[safe] = os.path.normpath(os.path.join(base, row["chart"])) if row["chart"] else None
    return pairs


def plan(safe_glob=None, chart_glob=None, pairs_csv=None, max_chart_offset_hours=24.0):
    """[(product, [(chart, offset hours or None)])], sorted by product: the pipeline's elements."""
    if not safe_glob and not pairs_csv:
        raise InputError("flags", "give --safe_glob and/or --pairs_csv")
    if max_chart_offset_hours < 0:
        raise InputError("--max_chart_offset_hours", f"must be >= 0, got {max_chart_offset_hours}")
    explicit = read_pairs(pairs_csv) if pairs_csv else {}
    products = sorted(os.path.normpath(p) for p in glob.glob(safe_glob) if sentinel1_scenes.is_product(p)) \
        if safe_glob else []
    if safe_glob and not products:
        raise InputError(safe_glob, "--safe_glob matches no Sentinel-1 product (.SAFE folder or S1*.zip)")
    charts = sorted(p for p in glob.glob(chart_glob) if os.path.isfile(p)
                    and p.lower().endswith(sigrid3.SUFFIXES)) if chart_glob else []   # not a shapefile's .dbf, .prj
    if chart_glob and not charts:
        raise InputError(chart_glob, f"--chart_glob matches no SIGRID-3 chart ({', '.join(sigrid3.SUFFIXES)})")
    elements = {p: [(c, None)] if c else [] for p, c in explicit.items()}
    for p in products:
        if p not in elements:
            elements[p] = sentinel1_scenes.chart_candidates(p, charts, max_chart_offset_hours)
    return sorted(elements.items())


def convert(output_dir, safe_glob=None, chart_glob=None, pairs_csv=None, max_chart_offset_hours=24.0,
            channels=("hh", "hv"), beam_args=(), runner="DirectRunner", overwrite=False):
    """Run the conversion; returns (scene reports, failed list)."""
    elements = plan(safe_glob, chart_glob, pairs_csv, max_chart_offset_hours)
    names = [sentinel1_scenes.scene_file_name(p) for p, _ in elements]
    clash = {n for n in names if names.count(n) > 1}
    if clash:
        raise InputError(sorted(clash)[0], "two products would give this scene file (same product twice?)")
    with StagedScenes(output_dir, overwrite) as out:
        logging.info("Converting %d products into %s", len(elements), output_dir)
        t0 = time.time()
        with beam_common.make_pipeline(beam_args, runner) as p:
            (p
             | "Products" >> beam.Create(elements)
             | "Reshuffle" >> beam.Reshuffle()
             | "Convert" >> beam.ParDo(ConvertProduct(out.staging, channels))
             | "Reports" >> beam_common.WriteJson(os.path.join(out.staging, "_reports.json")))
        reports = out.read_json("_reports.json", [])
        failed = sorted(({"path": r["product"], "error": r["error"]} for r in reports if "error" in r),
                        key=lambda r: r["path"])
        ok = sorted((r for r in reports if "error" not in r), key=lambda r: r["scene"])
        if not ok:
            first = failed[0] if failed else {"path": output_dir, "error": "no product converted"}
            raise InputError(first["path"], f"every product failed; first: {first['error']}")
        for r in ok:
            r["product"] = os.path.abspath(r["product"])
        logging.info("%d scenes in %.1f s", len(ok), time.time() - t0)
        out.commit_scenes([r["scene"] for r in ok], {FAILED: failed, REPORT: ok})
    return ok, failed


def main(argv):
    ok, failed = convert(FLAGS.output_dir, FLAGS.safe_glob, FLAGS.chart_glob, FLAGS.pairs_csv,
                         FLAGS.max_chart_offset_hours, FLAGS.channels, beam_args=argv[1:], runner=FLAGS.runner,
                         overwrite=FLAGS.overwrite)
    beam_common.print_failures(failed)
    charted = sum(1 for r in ok if r.get("chart"))
    print(f"Wrote {len(ok)} scenes ({charted} with a chart, {len(ok) - charted} without; {len(failed)} failed, "
          f"listed in {os.path.join(FLAGS.output_dir, FAILED)}) -> {FLAGS.output_dir}")
    for r in ok:
        if not r.get("chart"):
            print(f"  no chart: {r['scene']}: {r['reason']}")


if __name__ == "__main__":
    define_flags()
    cli.run(main, flags_parser=beam_common.parse_flags)
