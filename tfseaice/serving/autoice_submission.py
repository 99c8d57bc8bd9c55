"""The AutoICE upload package: one uint8 class raster per scene and chart, in one netCDF file.

As the challenge's `test_upload.ipynb` writes it: variable
`{scene_name}_{chart}` (scene_name = `YYYYMMDDThhmmss_svc`, the first 19 characters of a ready-to-train file name,
chart SIC, and SOD/FLOE when the model predicts them) with dims
`{scene_name}_{chart}_dim0` and `_dim1`, on the scene's 80 m grid, zlib level
1. Every pixel gets a class (the model's output also where the SAR is no
data: the reference masks those). Scenes are written one at a time into a
temporary file that is renamed at the end, so memory holds one scene and an
interrupted run leaves no package behind.
"""

import time

import netCDF4
import numpy as np
from absl import logging
from skimage.transform import rescale

from tfseaice import io_utils
from tfseaice.data import ai4arctic, autoice, scene_files
from tfseaice.data.codes import sic_classes
from tfseaice.errors import InputError
from tfseaice.models.flip_average import inference_flips
from tfseaice.precision import model_precision
from tfseaice.serving.scene_inference import DEFAULT_BATCH_SIZE, DEFAULT_TILE, predict_scene_charts

CHALLENGE_SPACING_M = 80.0
MAX_GRID_MISMATCH = 2   # pixels a prediction grid may fall short of the target's (edge cropping)


def to_grid(pred, shape, factor, path, order=1):
    """`pred` [h, w] on pixels `factor` times the target's, as [H, W] = `shape` (bilinear, edges kept;
    `order=0`: nearest, for class maps, whose dtype is kept)."""
    if factor != 1:
        if factor != int(factor) or factor < 1:
            raise InputError(path, f"prediction pixels are {factor:g} x the target's; need a whole factor >= 1")
        pred = rescale(pred.astype(np.float32), int(factor), order=order, mode="edge", preserve_range=True,
                       anti_aliasing=False).astype(np.float32 if order else pred.dtype)
    h, w = min(pred.shape[0], shape[0]), min(pred.shape[1], shape[1])
    if max(shape[0] - h, shape[1] - w) > MAX_GRID_MISMATCH * max(1, int(factor)):
        raise InputError(path, f"prediction grid {pred.shape} does not cover the target grid {shape}")
    return np.pad(pred[:h, :w], ((0, shape[0] - h), (0, shape[1] - w)), mode="edge")


def challenge_classes(heads, shape, factor, path):
    """{"SIC", and "SOD"/"FLOE" when predicted: uint8 [H, W] = `shape`} from `predict_scene_charts`
    output on pixels `factor` times the target's (SIC interpolated before classing, classes nearest)."""
    out = {"SIC": sic_classes(to_grid(heads["sic"], shape, factor, path))}
    for chart in ("SOD", "FLOE"):
        if chart.lower() in heads:
            out[chart] = to_grid(heads[chart.lower()], shape, factor, path, order=0).astype(np.uint8)
    return out


def challenge_shape(path):
    """The 80 m grid of a scene: a ready-to-train file's own, or half a raw file's (cropped to even)."""
    (h, w), spacing = scene_files.raw_shape(path)   # a raw file, a product (40 m) or a ready-to-train file
    ratio = spacing / CHALLENGE_SPACING_M
    if not h or not w:
        raise InputError(path, "has no sar_lines x sar_samples grid")
    return int(h * ratio), int(w * ratio)


def _scene_names(paths):
    names = {}
    for p in paths:
        name = autoice.scene_name(p)
        if name in names:
            raise InputError(p, f"has the same scene name {name} as {names[name]}")
        names[name] = p
    return list(names)


def write_upload_package(model, info, scene_paths, out, overwrite=False, tile=DEFAULT_TILE, overlap=64,
                         batch_size=DEFAULT_BATCH_SIZE):
    """Predict every scene and write the upload package `out`; returns {variable: shape}."""
    scene_paths = sorted(scene_paths)
    if not scene_paths:
        raise InputError("--scenes_glob", "matches no file")
    io_utils.refuse_existing(out, overwrite)
    names = _scene_names(scene_paths)
    channels = tuple(info.get("channels") or ai4arctic.DEFAULT_CHANNELS)
    downsample = int(info.get("downsample") or 2)
    written = {}
    with io_utils.atomic_path(out) as tmp:
        with netCDF4.Dataset(tmp, "w", format="NETCDF4") as nc:
            nc.setncattr("title", "AutoICE upload package (tfseaice)")
            nc.setncattr("inference_precision", model_precision(model))
            nc.setncattr("inference_flips", inference_flips(info.get("flip_tta")))
            for k, (name, path) in enumerate(zip(names, scene_paths), 1):
                start = time.time()
                scene = scene_files.read_scene(path, channels, downsample, truth_variable=None, land_mask="none")
                shape = challenge_shape(path)
                charts = challenge_classes(predict_scene_charts(
                    model, scene.sar, tile=tile, overlap=overlap, batch_size=batch_size, mask_nodata=False),
                    shape, scene.pixel_spacing_m / CHALLENGE_SPACING_M, path)
                for chart, classes in charts.items():
                    var = f"{name}_{chart}"
                    for d, n in zip((f"{var}_dim0", f"{var}_dim1"), classes.shape):
                        nc.createDimension(d, n)
                    v = nc.createVariable(var, "u1", (f"{var}_dim0", f"{var}_dim1"), zlib=True, complevel=1,
                                          fill_value=False)   # as xarray writes uint8: no _FillValue
                    v[:] = classes
                    written[var] = classes.shape
                del scene, charts
                logging.info("[%d/%d] %s: %d x %d pixels in %.1f s", k, len(scene_paths), name, *shape,
                             time.time() - start)
    return written
