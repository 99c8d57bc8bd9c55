"""A Sentinel-1 product (and its SIGRID-3 chart, when one pairs with it) as a scene in the AI4Arctic raw layout.

Why: every command of tfseaice reads AI4Arctic raw scenes. A product read by
`sentinel1.read_product` is already in that layout (SAR in dB at 40 m,
`sar_grid_*`); this module adds what the layout has beside it:
- `distance_map` from the GSHHG coastline (`land.py`), so `--land_mask=distance_map`
  works unchanged;
- with a chart, `polygon_icechart` and `polygon_codes` with the AI4Arctic
  header (`sigrid3_raster.rasterize_chart`), so `egg_codes` and the SIC/SOD/FLOE
  targets come out as for AI4Arctic files;
- a file name that `ai4arctic.scene_key` parses: `<start>_s1_<product name>.nc`.

Pairing (issue 23): a chart goes with a product when the time stamp in its
file name lies within `max_offset_hours` of the acquisition start AND its
labelled (I/W) polygons cover part of the scene; the nearest chart in time
that covers it wins. An explicit pair (`--pairs_csv`) skips the time test,
never the coverage test. A product whose candidates all miss it becomes a
chart-less scene, with that reason in the report.
"""

import datetime
import os
import re

import numpy as np

from tfseaice.data import land, scene_writer, sentinel1, sigrid3, sigrid3_raster
from tfseaice.errors import InputError

PRODUCT_CHANNELS = ("hh", "hv", "vv", "vh")
_START_RE = re.compile(r"(\d{8}T\d{6})")


def is_product(path):
    """True for a Sentinel-1 product path: a `.SAFE` folder, or a `.zip` whose name starts with S1."""
    base = os.path.basename(os.fspath(path).rstrip("/\\"))
    if base.upper().endswith(".SAFE"):
        return True
    return base.lower().endswith(".zip") and base.upper().startswith("S1")


def product_name(path):
    """The product name: the file name without `.SAFE`, `.zip` or `.SAFE.zip`."""
    base = os.path.basename(os.fspath(path).rstrip("/\\"))
    for suffix in (".zip", ".SAFE", ".safe"):
        if base.endswith(suffix):
            base = base[:-len(suffix)]
    return base


def start_time(path):
    """Acquisition start (UTC, aware) from a product file name: its first `YYYYMMDDThhmmss`."""
    m = _START_RE.search(product_name(path))
    if not m:
        raise InputError(path, "product name has no start time YYYYMMDDThhmmss")
    return datetime.datetime.strptime(m.group(1), "%Y%m%dT%H%M%S").replace(tzinfo=datetime.timezone.utc)


def scene_file_name(path):
    """`<start>_s1_<product name>.nc`: `ai4arctic.scene_key` reads the start time from it."""
    return f"{start_time(path):%Y%m%dT%H%M%S}_s1_{product_name(path)}.nc"


def sar_channels(channels):
    """The polarisations among the model channels, in order (hh, hv by default)."""
    pols = tuple(c for c in channels if c in PRODUCT_CHANNELS)
    return pols or ("hh", "hv")


def product_dataset(path, channels=("hh", "hv"), with_land=True):
    """The product as a raw-layout Dataset at 40 m, with `distance_map` (GSHHG) unless `with_land` is False."""
    ds = sentinel1.read_product(path, channels=sar_channels(channels))
    return ds.assign(distance_map=land.distance_map_variable(ds, path)) if with_land else ds


def chart_candidates(product_path, chart_paths, max_offset_hours):
    """[(chart path, offset hours)] of the charts whose file-name time lies within the window, nearest first."""
    t0 = start_time(product_path)
    out = []
    for c in chart_paths:
        offset = sigrid3.time_offset_hours(sigrid3.parse_chart_time(c), t0)
        if offset is not None and offset <= max_offset_hours:
            out.append((c, round(offset, 3)))
    return sorted(out, key=lambda co: (co[1], co[0]))


def _netcdf_attrs(attrs):
    """Global attributes netCDF can hold (str, numbers, numeric arrays); the rest as text."""
    out = {}
    for k, v in attrs.items():
        if isinstance(v, (str, int, float, np.number)):
            out[k] = v
        elif isinstance(v, (list, tuple, np.ndarray)) and np.asarray(v).dtype.kind in "iuf":
            out[k] = np.asarray(v)
        elif v is not None:
            out[k] = str(v)
    return out


def pick_chart(ds, product_path, candidates):
    """(chart, report) for the first candidate chart that covers part of the scene, else (None, report).

    `candidates`: [(chart path, offset hours or None)] in the order to try. A
    candidate that cannot be read is an InputError (the product fails: a broken
    chart is not silently dropped).
    """
    grid = sigrid3_raster.product_grid(ds, product_name(product_path))
    footprint = grid.footprint_lonlat((ds.sizes["sar_lines"], ds.sizes["sar_samples"]))
    missed = []
    for path, offset in candidates:
        chart = sigrid3.read_chart(path)
        fraction = float(sigrid3_raster.chart_overlaps(chart, footprint))
        if fraction > 0:
            return chart, {"chart": path, "chart_offset_hours": offset, "chart_overlap": round(fraction, 4)}
        missed.append(os.path.basename(path))
    if missed:
        return None, {"chart": None, "reason": f"chart(s) {', '.join(missed)} miss the product (no labelled "
                                               "polygon covers the scene): written without a chart"}
    return None, {"chart": None, "reason": "no chart within --max_chart_offset_hours of the acquisition start, and none in --pairs_csv"}


def make_scene(product_path, candidates=(), channels=("hh", "hv")):
    """(raw-layout Dataset, report dict) of a product and the first of its candidate charts that covers it."""
    ds = product_dataset(product_path, channels)
    chart, report = pick_chart(ds, product_path, candidates)
    if chart is not None:
        ids, polygon_codes = sigrid3_raster.rasterize_chart(chart, ds)
        if len(polygon_codes) < 2:
            report = {"chart": None, "reason": f"chart {os.path.basename(chart.path)} covers no pixel of the "
                                               "product once rasterised: written without a chart"}
        else:
            ds = scene_writer.add_chart(ds, ids, polygon_codes, {"source": os.path.basename(chart.path)})
            report["polygons"] = len(polygon_codes) - 1
            if chart.unlabelled:
                report["unlabelled_polygons"] = {k: [int(i) for i in v] for k, v in chart.unlabelled.items()}
    ds.attrs = _netcdf_attrs({**ds.attrs, "scene_id": ds.attrs.get("acquisition_time", ""),
                              "ice_chart": os.path.basename(report["chart"]) if report.get("chart") else "none",
                              "ice_chart_offset_hours": report.get("chart_offset_hours"),
                              "conversion": "tfseaice data_prep.sentinel1_to_scenes (docs/sentinel1_pipeline.md)"})
    report.update(product=product_path, scene=scene_file_name(product_path),
                  shape=[int(ds.sizes["sar_lines"]), int(ds.sizes["sar_samples"])])
    return ds, report


def write_product_scene(product_path, out_dir, candidates=(), channels=("hh", "hv")):
    """Make a product's scene and write it (atomically) to `out_dir/<scene_file_name>`; returns the report."""
    ds, report = make_scene(product_path, candidates, channels)
    scene_writer.write_scene(ds, os.path.join(out_dir, report["scene"]))
    return report
