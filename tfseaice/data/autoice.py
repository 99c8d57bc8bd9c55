"""AutoICE (AI4Arctic Sea Ice Challenge) files and class rasters: names, reference files, charts as classes.

Conventions (sources in docs/ai4arctic.md):
- A scene is named by the first 19 characters of its file name
  (`20180716T110418_cis`), as the challenge's upload package names it.
- Reference files (`*_reference.nc`, released after the challenge) hold the
  test scenes' charts `SIC`, `SOD`, `FLOE`: uint8 class rasters on the 80 m
  ready-to-train grid, 255 = masked.
- SIC classes are CT in tenths (0..10); a scene's own polygon chart gives them
  through `codes.sic_classes` (POLY_TYPE W -> 0, CT 98/99/unknown -> 255).
"""

import glob
import os

import numpy as np

from tfseaice.data.ai4arctic import AUTOICE_CHARTS, CHART_FILL, open_dataset, scene_key
from tfseaice.data.codes import sic_classes
from tfseaice.errors import InputError

SCENE_NAME_LENGTH = 19


def scene_name(path):
    """The challenge's scene name: the first 19 characters of the file name."""
    name = os.path.basename(path)
    if len(name) < SCENE_NAME_LENGTH:
        raise InputError(path, f"file name is shorter than the {SCENE_NAME_LENGTH} characters of a scene name "
                               "(YYYYMMDDThhmmss_svc)")
    return name[:SCENE_NAME_LENGTH]


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
                a = np.asarray(ds[name].values)
                if a.ndim != 2:
                    raise InputError(path, f"{name} is not a 2-D class raster (shape {a.shape})")
                if a.dtype.kind == "f":
                    a = np.where(np.isfinite(a), a, CHART_FILL)
                charts[name] = a.astype(np.uint8)
    if "SIC" not in charts:
        raise InputError(path, "holds no SIC chart (a reference file has SIC, SOD, FLOE class rasters)")
    return charts


def chart_classes(scene):
    """{chart: uint8 [H, W]} on the scene grid from the scene's own chart, or {} without one.

    A polygon chart gives SIC by the starter pack's rules; otherwise the class
    charts a ready-to-train file carries are used as they are.
    """
    if scene.has_chart:
        return {"SIC": sic_classes(scene.chart_sic())}
    return dict(scene.class_charts)
