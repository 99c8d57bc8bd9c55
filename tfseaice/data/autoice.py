"""AutoICE (AI4Arctic Sea Ice Challenge) files and class rasters: names, reference files, charts as classes.

Conventions (sources in docs/ai4arctic.md):
- A scene is named `20180716T110418_cis` (acquisition time, ice service): the
  first 19 characters of a ready-to-train file's name, as the challenge's
  upload package names it.
- Reference files (`*_reference.nc`, released after the challenge) hold the
  test scenes' charts `SIC`, `SOD`, `FLOE`: uint8 class rasters on the 80 m
  ready-to-train grid, 255 = masked.
- SIC classes are CT in tenths (0..10); a scene's own polygon chart gives them
  through `codes.sic_classes` (POLY_TYPE W -> 0, CT 98/99/unknown -> 255).
"""

import glob

import numpy as np
import xarray as xr

from tfseaice.data.ai4arctic import is_ready_to_train, open_dataset, read_scene, scene_id_of, scene_key
from tfseaice.data.chart_rasters import AUTOICE_CHARTS, CHART_FILL, class_raster
from tfseaice.data.codes import sic_classes
from tfseaice.errors import InputError
from tfseaice.io_utils import atomic_path

def scene_name(path):
    """The challenge's scene name `YYYYMMDDThhmmss_svc`: the first 19 characters of a ready-to-train
    file's name, read from the acquisition time and ice service of any AI4Arctic file name."""
    return scene_id_of(path)


def find_reference_for(scene_path, reference_glob):
    """The reference file with the same acquisition time and ice service as `scene_path`."""
    key = scene_key(scene_path)
    for path in sorted(glob.glob(reference_glob)):
        try:
            if scene_key(path) == key:
                return path
        except InputError:
            continue
    raise InputError(scene_path, f"no reference file for {key[0]} {key[1]} in --reference_glob {reference_glob!r}")


def read_reference(path):
    """{chart: uint8 [H, W]} of the AutoICE charts a reference (or ready-to-train) file holds."""
    with open_dataset(path) as ds:
        charts = {}
        for name in AUTOICE_CHARTS:
            if name in ds.variables:
                a = class_raster(ds[name].values)
                if a.ndim != 2:
                    raise InputError(path, f"{name} is not a 2-D class raster (shape {a.shape})")
                charts[name] = a
    if "SIC" not in charts:
        raise InputError(path, "holds no SIC chart (a reference file has SIC, SOD, FLOE class rasters)")
    return charts


def chart_classes(scene):
    """{chart: uint8 [H, W]} on the scene grid from the scene's own chart, or {} without one.

    A polygon chart gives SIC by the starter pack's rules, and SOD/FLOE as each
    polygon's dominant class where its table has them (`PolygonTable.lookup_class`);
    otherwise the class charts a ready-to-train file carries are used as they are.
    """
    if scene.has_chart:
        out = {"SIC": sic_classes(scene.chart_sic())}
        out.update({c: scene.table.lookup_class(scene.chart_ids, c) for c in ("SOD", "FLOE")})
        return out
    return dict(scene.class_charts)


def reference_file_name(path):
    """`{scene_name}_reference.nc`, as the challenge's reference files are named."""
    return f"{scene_name(path)}_reference.nc"


def split_reference(path, test_path, reference_path):
    """Split a scene with a chart the way the challenge released its test set.

    `test_path`: the file without its chart; `reference_path`: the chart as
    AutoICE class rasters on the 80 m grid. A ready-to-train file gives its
    SIC, SOD and FLOE; a raw file gives SIC from its polygons by the starter
    pack's rules (land by `distance_map` masked), and SOD/FLOE as the polygons'
    dominant classes where `chart_classes` has them. Both written atomically.
    """
    with open_dataset(path) as ds:
        ds = ds.load()
    if is_ready_to_train(path, ds):
        chart_vars = [n for n in AUTOICE_CHARTS if n in ds.variables]
        if "SIC" not in chart_vars:
            raise InputError(path, "has no SIC chart to split off (is it a test file already?)")
        reference = xr.Dataset({n: ds[n] for n in chart_vars})
    else:
        chart_vars = [n for n in ("polygon_icechart", "polygon_codes") if n in ds.variables]
        scene = read_scene(path, ("hh",), downsample=2, truth_variable=None)
        if not scene.has_chart:
            raise InputError(path, "has no chart to split off (is it a test file already?)")
        reference = xr.Dataset({n: (("sar_lines", "sar_samples"), a, {"chart_fill_value": np.uint8(CHART_FILL)})
                                for n, a in chart_classes(scene).items()})
    reference.attrs["scene_id"] = scene_name(path)
    with atomic_path(reference_path) as tmp:
        reference.to_netcdf(tmp)
    with atomic_path(test_path) as tmp:
        ds.drop_vars(chart_vars).to_netcdf(tmp)
