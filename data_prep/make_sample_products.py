r"""Write sample Sentinel-1 GRD products and the SIGRID-3 charts that go with them (seeded).

  python -m data_prep.make_sample_products --out_dir=DIR [--num_products=6] [--size=512] [--seed=1] \
      [--chartless=1] [--overwrite]

Product i is the sample scene of (--seed, i) (tfseaice.simulate.scenes, the
scenes of make_sample_scenes) written as a SAFE product with known sigma0
(tfseaice.simulate.sample_products; every second one as a .zip), and its chart
as a SIGRID-3 file (tfseaice.simulate.sigrid3_files; shapefile, zipped shapefile
and GeoPackage in turn, EPSG:3413) time-stamped up to 12 h before the
acquisition. The last --chartless products get no chart and are written as
.zip to DIR/unseen/: the quickstart maps one of them straight from its zip.

Why the scenes are moved: the sample scenes lie at random places around
Greenland and Canada, often on land by the real (GSHHG) coastline, which
`distance_map` now comes from. Each scene's tie points are shifted to one of
SITES (open water, one on the East Greenland coast so that land shows),
jittered by the seed, so products and charts agree with the real coastline.

Files: DIR/products/S1A_EW_GRDM_1SDH_<start>_....SAFE|.zip (charted), DIR/charts/<service>_...,
DIR/unseen/S1A_....zip (no chart), and
DIR/sample_products.json (per product: path, chart or null, scene seed, site).
"""

import datetime
import os
import shutil
import time

import numpy as np
from absl import flags

from tfseaice import cli, io_utils
from tfseaice.errors import InputError
from tfseaice.simulate import sample_products, scenes, sigrid3_files

FLAGS = flags.FLAGS
# (lat, lon, where): open water of the Greenland Sea, Fram Strait, Baffin Bay, Labrador Sea, Barents Sea;
# the mouth of Scoresby Sund (East Greenland coast: real land in the scene).
SITES = ((75.0, -5.0, "Greenland Sea"), (70.2, -21.9, "Scoresby Sund mouth"), (78.5, 2.0, "Fram Strait"),
         (73.5, -62.0, "Baffin Bay"), (59.0, -55.0, "Labrador Sea"), (76.0, 40.0, "Barents Sea"))
CHART_FORMATS = ("shp", "zip", "gpkg")
MANIFEST = "sample_products.json"


def define_flags():
    flags.DEFINE_string("out_dir", None, "Output folder (products/, charts/, unseen/, sample_products.json).", required=True)
    flags.DEFINE_integer("num_products", 6, "Number of products.")
    flags.DEFINE_integer("size", 512, "Product side in 40 m pixels.")
    flags.DEFINE_integer("seed", 1, "Seed: product i is the sample scene of (seed, i); site jitter and chart times too.")
    flags.DEFINE_integer("chartless", 1, "The last N products get no chart (and are written as .zip).")
    flags.DEFINE_bool("overwrite", False, "Replace an existing sample set in --out_dir.")


def relocate(ds, lat0, lon0):
    """`ds` with its tie points moved so that their centre lies at (lat0, lon0), shape kept (east-west scaled)."""
    lat, lon = ds["sar_grid_latitude"].values, ds["sar_grid_longitude"].values
    lat_c, lon_c = float(np.mean(lat)), float(np.mean(lon))
    scale = np.cos(np.radians(lat_c)) / np.cos(np.radians(lat0))
    out = ds.copy()
    out["sar_grid_latitude"] = (ds["sar_grid_latitude"].dims, lat - lat_c + lat0, ds["sar_grid_latitude"].attrs)
    out["sar_grid_longitude"] = (ds["sar_grid_longitude"].dims, (lon - lon_c) * scale + lon0,
                                 ds["sar_grid_longitude"].attrs)
    return out


def write_sample_set(out_dir, num_products=6, size=512, seed=1, chartless=1, overwrite=False):
    """Write the products and charts; returns the manifest rows (see the module doc)."""
    if num_products < 1:
        raise InputError("--num_products", f"must be >= 1, got {num_products}")
    if not 0 <= chartless <= num_products:
        raise InputError("--chartless", f"must be in [0, --num_products], got {chartless}")
    if size < 64:
        raise InputError("--size", f"must be >= 64 pixels, got {size}")
    for sub in ("products", "charts", "unseen", MANIFEST):
        io_utils.refuse_existing(os.path.join(out_dir, sub), overwrite)
    for sub in ("products", "charts", "unseen"):   # --overwrite: the old set goes as a whole (names change with the seed)
        shutil.rmtree(os.path.join(out_dir, sub), ignore_errors=True)
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(num_products):
        s = scenes.scene_seed(seed, i)
        lat0, lon0, site = SITES[i % len(SITES)]
        jitter = rng.uniform(-0.3, 0.3, 2)
        offset_h = float(rng.uniform(0, 12))
        ds = relocate(scenes.make_scene(s, size), lat0 + jitter[0], lon0 + jitter[1] / np.cos(np.radians(lat0)))
        with_chart = i < num_products - chartless
        product = sample_products.product_from_scene(ds, os.path.join(out_dir, "products" if with_chart else "unseen"),
                                                     zip=(i % 2 == 1) or not with_chart, overwrite=overwrite)
        chart = None
        if with_chart:
            t = datetime.datetime.strptime(ds.attrs["acquisition_time"], "%Y%m%dT%H%M%S")
            chart = sigrid3_files.write_sigrid3(ds, os.path.join(out_dir, "charts"),
                                                fmt=CHART_FORMATS[i % len(CHART_FORMATS)],
                                                time=t - datetime.timedelta(hours=offset_h))
        rows.append({"product": product, "chart": chart, "scene_seed": s, "site": site,
                     "acquisition_time": ds.attrs["acquisition_time"], "chart_offset_hours": round(offset_h, 2)
                     if chart else None})
    io_utils.write_json(os.path.join(out_dir, MANIFEST), rows)
    return rows


def main(argv):
    del argv
    t0 = time.time()
    rows = write_sample_set(FLAGS.out_dir, FLAGS.num_products, FLAGS.size, FLAGS.seed, FLAGS.chartless,
                            FLAGS.overwrite)
    n_chart = sum(1 for r in rows if r["chart"])
    print(f"Wrote {len(rows)} sample products ({FLAGS.size} x {FLAGS.size} px at 40 m, seed {FLAGS.seed}; "
          f"{n_chart} with a SIGRID-3 chart, {len(rows) - n_chart} without) to {FLAGS.out_dir} "
          f"in {time.time() - t0:.1f} s")
    for r in rows:
        print(f"  {os.path.basename(r['product'])}  {r['site']}  chart: "
              f"{os.path.basename(r['chart']) if r['chart'] else 'none'}")


if __name__ == "__main__":
    define_flags()
    cli.run(main)
