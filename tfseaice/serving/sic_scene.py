"""One scene file in, its SIC products out: OUT.nc (CF-1.8), OUT_<product>.tif (GeoTIFF) and OUT.png (paper Fig. 2 panel)."""

import datetime
import os

from absl import logging

import tfseaice
from tfseaice import io_utils, viz
from tfseaice.precision import model_precision
from tfseaice.data import ai4arctic, scene_files
from tfseaice.errors import InputError
from tfseaice.models.flip_average import inference_flips
from tfseaice.serving.scene_inference import DEFAULT_BATCH_SIZE, DEFAULT_TILE, model_channels
from tfseaice.serving.sic_netcdf import products_dataset, write_netcdf
from tfseaice.serving.sic_geotiff import geotiff_path, write_geotiffs
from tfseaice.serving.sic_products import predict_products


def png_path(out):
    stem, _ = os.path.splitext(out)
    return stem + ".png"


FORMATS = ("netcdf", "geotiff")
ALL_PRODUCTS = ("sic", "ice_water", "polygon_sic", "chart_sic", "polygon_id", "sic_truth",
                "sod", "floe", "sod_truth", "floe_truth")


def scene_georeference(scene_path, raw_glob, shape, downsample):
    """((lat, lon) [H, W] or None, the raw GCPs or None): `scene_files.georeference` (raw file, product,
    or a ready-to-train file through its raw twin in `raw_glob`)."""
    return scene_files.georeference(scene_path, raw_glob, shape, downsample)


def output_paths(out, formats):
    """Every file a prediction may write for `formats` (checked before any work)."""
    paths = [png_path(out)]
    if "netcdf" in formats:
        paths.append(out)
    if "geotiff" in formats:
        paths += [geotiff_path(out, p) for p in ALL_PRODUCTS]
    return paths


def predict_scene_file(model, info, scene_path, out, downsample=None, channels=None, raw_glob=None,
                       tile=DEFAULT_TILE, overlap=64, batch_size=DEFAULT_BATCH_SIZE, threshold=0.5, overwrite=False,
                       history=None, land_mask="distance_map", formats=("netcdf",)):
    """Read a scene (with or without a chart), predict, write OUT.nc (and/or OUT_<product>.tif) and
    OUT.png. Returns the products Dataset."""
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown or not formats:
        raise InputError("--format", f"choose one or more of {', '.join(FORMATS)} (got {', '.join(formats) or 'none'})")
    for p in output_paths(out, formats):
        io_utils.refuse_existing(p, overwrite)
    channels = tuple(channels or info.get("channels") or ai4arctic.DEFAULT_CHANNELS)
    downsample = int(downsample or info.get("downsample") or 2)
    if info.get("downsample") and downsample != int(info["downsample"]):
        logging.warning("predicting at downsample %d but the model was trained at %s",
                        downsample, info["downsample"])
    expected = model_channels(model)
    if expected is None and info.get("channels"):
        expected = len(info["channels"])
    if expected is not None and expected != len(channels):
        raise InputError(scene_path, f"the model takes {expected} channel(s) but {len(channels)} were asked for ({', '.join(channels)})")
    scene = scene_files.read_scene(scene_path, channels, downsample, raw_glob=raw_glob, land_mask=land_mask)
    logging.info("%s: %d x %d pixels at %g m%s", scene.scene_id, *scene.shape, scene.pixel_spacing_m,
                 "" if scene.has_chart else " (no chart: sic and ice_water only)")
    products = predict_products(model, scene, tile, overlap, batch_size, threshold)
    lat_lon, gcps = scene_georeference(scene_path, raw_glob, scene.shape, downsample)
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    flips = inference_flips(info.get("flip_tta"))
    ds = products_dataset(scene, products, downsample, lat_lon, threshold=threshold, attrs={
        "source": info.get("source", "tfseaice"),
        "history": f"{now}: {history or 'tfseaice.serving.sic_scene.predict_scene_file'}",
        "date_created": now,
        "tfseaice_version": tfseaice.__version__,
        "inference": f"tiles {tile} px, overlap {overlap} px, raised-cosine blending, {model_precision(model)}"
                     + (f", mean of each tile's {flips} flips" if flips > 1 else ""),
        "inference_precision": model_precision(model),
        "inference_flips": flips,
    })
    if "netcdf" in formats:
        write_netcdf(ds, out)
    if "geotiff" in formats:
        if gcps is None:
            logging.warning("%s: no ground control points (a ready-to-train file needs --raw_glob): "
                            "the GeoTIFFs are not georeferenced", scene_path)
        write_geotiffs(products, out, gcps, downsample)
    viz.save_sic_products_panel(scene, products, png_path(out))
    return ds
