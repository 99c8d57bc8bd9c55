"""One scene file in, its SIC products out: OUT.nc (CF-1.8) and OUT.png (paper Fig. 2 panel)."""

import datetime
import os

from absl import logging

import tfseaice
from tfseaice import io_utils, viz
from tfseaice.data import ai4arctic
from tfseaice.data.geolocation import gcp_lat_lon
from tfseaice.errors import InputError
from tfseaice.serving.scene_inference import model_channels
from tfseaice.serving.sic_netcdf import products_dataset, write_netcdf
from tfseaice.serving.sic_products import predict_products


def png_path(out):
    stem, _ = os.path.splitext(out)
    return stem + ".png"


def predict_scene_file(model, info, scene_path, out, downsample=None, channels=None, raw_glob=None,
                       tile=512, overlap=64, batch_size=4, threshold=0.5, overwrite=False,
                       history=None):
    """Read a scene, predict, write OUT.nc and OUT.png. Returns the Dataset written."""
    for p in (out, png_path(out)):
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
    scene = ai4arctic.read_scene(scene_path, channels, downsample, raw_glob=raw_glob)
    logging.info("%s: %d x %d pixels at %g m", scene.scene_id, *scene.shape, scene.pixel_spacing_m)
    products = predict_products(model, scene, tile, overlap, batch_size, threshold)
    raw_path = scene_path
    if ai4arctic.is_ready_to_train(scene_path):
        raw_path = ai4arctic.find_raw_for(scene_path, raw_glob)
    lat_lon = gcp_lat_lon(raw_path, scene.shape, downsample)
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    ds = products_dataset(scene, products, downsample, lat_lon, threshold=threshold, attrs={
        "source": info.get("source", "tfseaice"),
        "history": f"{now}: {history or 'tfseaice.serving.sic_scene.predict_scene_file'}",
        "date_created": now,
        "tfseaice_version": tfseaice.__version__,
        "inference": f"tiles {tile} px, overlap {overlap} px, raised-cosine blending",
    })
    write_netcdf(ds, out)
    viz.save_sic_products_panel(scene, products, png_path(out))
    return ds
