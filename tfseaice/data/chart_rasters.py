"""AutoICE class rasters on a scene's output grid: the file's own charts and per-pixel class truth.

Classes are labels: a reduced grid takes the majority class of each block
(`downsampling.block_majority`), never a mean. 255 is a masked pixel (the
charts' `chart_fill_value`; "no truth" in `sod_truth`/`floe_truth`).
"""

import numpy as np

from tfseaice.data.downsampling import block_majority, block_mean

AUTOICE_CHARTS = ("SIC", "SOD", "FLOE")
CHART_FILL = 255          # AutoICE class rasters: masked pixel


def class_raster(values):
    """An AutoICE chart as uint8 classes; a float raster's NaN (xarray's decoded fill) becomes 255."""
    a = np.asarray(values)
    if a.dtype.kind == "f":
        a = np.where(np.isfinite(a), a, CHART_FILL)
    return a.astype(np.uint8)


def class_charts(ds, f, shape):
    """The AutoICE class charts a ready-to-train file carries (uint8, 255 = masked), on the output grid."""
    out = {}
    for name in AUTOICE_CHARTS:
        if name in ds.variables:
            out[name] = block_majority(class_raster(ds[name].values), f)[:shape[0], :shape[1]]
    return out


def read_truths(ds, f, sic_variable, sod_variable, floe_variable):
    """{sic_truth, sod_truth, floe_truth} of `ds` reduced by `f` (None where the name is empty or absent).

    SIC truth is a fraction: block mean. SOD/FLOE truth are classes (uint8,
    255 = no truth): block majority.
    """
    def present(name):
        return bool(name) and name in ds.variables

    return {
        "sic_truth": block_mean(ds[sic_variable].values, f) if present(sic_variable) else None,
        "sod_truth": block_majority(class_raster(ds[sod_variable].values), f) if present(sod_variable) else None,
        "floe_truth": block_majority(class_raster(ds[floe_variable].values), f) if present(floe_variable) else None,
    }


def crop(truths, h, w):
    """Each raster of a `read_truths` dict cropped to [:h, :w] (None stays None)."""
    return {k: None if v is None else v[:h, :w] for k, v in truths.items()}
