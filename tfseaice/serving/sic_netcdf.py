"""The CF-1.8 netCDF file of a scene's SIC products (and SOD/FLOE class maps), written atomically."""

import os

import numpy as np
import xarray as xr

from tfseaice import io_utils
from tfseaice.data.egg_codes import FLOE_CLASSES, SOD_CLASSES, UNLABELLED

CLASS_VARIABLES = {   # uint8 class maps: CF flags, fill UNLABELLED
    "sod": (SOD_CLASSES, "stage of development predicted per pixel (AutoICE SOD class, most probable)"),
    "floe": (FLOE_CLASSES, "floe size predicted per pixel (AutoICE FLOE class, most probable)"),
    "sod_truth": (SOD_CLASSES, "pixel stage of development truth carried by the input scene (AutoICE SOD class)"),
    "floe_truth": (FLOE_CLASSES, "pixel floe size truth carried by the input scene (AutoICE FLOE class)"),
}


def class_attrs(classes, long_name):
    """CF flag attributes of a uint8 class map (`_FillValue` UNLABELLED goes in the encoding)."""
    return {"long_name": long_name, "units": "1",
            "flag_values": np.arange(len(classes), dtype=np.uint8), "flag_meanings": " ".join(classes),
            "valid_range": np.array([0, len(classes) - 1], np.uint8),
            "comment": f"classes as the AutoICE challenge (tfseaice.data.egg_codes); {UNLABELLED} = no data"}


def products_dataset(scene, products, downsample, lat_lon=None, attrs=None, threshold=0.5):
    """The CF-1.8 xarray.Dataset of the products on the scene grid."""
    h, w = scene.shape
    dims = ("sar_lines", "sar_samples")
    spacing = float(scene.pixel_spacing_m)
    coords = {
        "sar_lines": ("sar_lines", np.arange(h, dtype=np.int32), {
            "long_name": "line (row) index on the output grid", "units": "1", "axis": "Y",
            "pixel_spacing": spacing, "pixel_spacing_units": "m", "downsample": int(downsample),
            "comment": "line of the pixel centre on the 40 m raw grid = index * downsample + (downsample - 1) / 2"}),
        "sar_samples": ("sar_samples", np.arange(w, dtype=np.int32), {
            "long_name": "sample (column) index on the output grid", "units": "1", "axis": "X",
            "pixel_spacing": spacing, "pixel_spacing_units": "m", "downsample": int(downsample),
            "comment": "sample of the pixel centre on the 40 m raw grid = index * downsample + (downsample - 1) / 2"}),
    }
    if lat_lon is not None:
        coords["lat"] = (dims, lat_lon[0], {"standard_name": "latitude", "long_name": "latitude",
                                            "units": "degrees_north",
                                            "comment": "bilinear interpolation of the scene's 21 x 21 GCPs"})
        coords["lon"] = (dims, lat_lon[1], {"standard_name": "longitude", "long_name": "longitude",
                                            "units": "degrees_east",
                                            "comment": "bilinear interpolation of the scene's 21 x 21 GCPs"})
    sic_attrs = {"units": "1", "standard_name": "sea_ice_area_fraction",
                 "valid_range": np.array([0.0, 1.0], np.float32)}
    data = {
        "sic": (dims, products["sic"], {**sic_attrs,
                "long_name": "sea ice concentration predicted per pixel (sigmoid output of the U-Net)"}),
        "ice_water": (dims, products["ice_water"], {
            "long_name": "ice/water segmentation of the pixel sea ice concentration",
            "flag_values": np.array([0, 1], np.uint8), "flag_meanings": "water ice",
            "valid_range": np.array([0, 1], np.uint8),
            "comment": f"ice where sic >= {threshold:g}; {255} = no data"}),
    }
    chart_attrs = {
        "polygon_sic": {**sic_attrs,
                        "long_name": "predicted sea ice concentration averaged over each ice chart polygon",
                        "comment": "mean of sic over the polygon's pixels with valid SAR (paper Fig. 2g)"},
        "chart_sic": {**sic_attrs, "long_name": "sea ice concentration of the ice chart (polygon CT, rasterised)",
                      "comment": "NaN where the chart gives no label (land, outside the chart, CT 98/99)"},
        "polygon_id": {"long_name": "ice chart polygon id (poly_id)", "units": "1"},
    }
    for name, attrs_ in chart_attrs.items():   # only for a scene with a chart
        if name in products:
            data[name] = (dims, products[name], attrs_)
    if "sic_truth" in products:
        data["sic_truth"] = (dims, products["sic_truth"], {**sic_attrs,
                             "long_name": "pixel sea ice concentration truth carried by the input scene"})
    for name, (classes, long_name) in CLASS_VARIABLES.items():
        if name in products:
            data[name] = (dims, np.asarray(products[name], np.uint8), class_attrs(classes, long_name))
    ds = xr.Dataset(data, coords=coords)
    ds.attrs.update({
        "Conventions": "CF-1.8",
        "title": "Sea ice concentration from Sentinel-1 SAR (tfseaice weakly supervised U-Net)",
        "references": "Patel et al., Region-level ground truth can produce pixel-level segmentation "
                      "for sea ice concentration (regional loss); AI4Arctic Sea Ice Challenge Dataset",
        "scene_id": scene.scene_id,
        "input_file": os.path.basename(scene.path),
        "channels": ",".join(scene.channels),
        "pixel_spacing_m": spacing,
        "downsample": int(downsample),
        "ice_water_threshold": float(threshold),
    })
    ds.attrs.update(attrs or {})
    return ds


def _encoding(ds):
    enc = {}
    for name, var in ds.variables.items():
        e = {}
        if var.dtype == np.float32:
            e["_FillValue"] = np.float32(np.nan)
        elif name == "ice_water" or name in CLASS_VARIABLES:
            e["_FillValue"] = np.uint8(255)
        elif name == "polygon_id":
            e["_FillValue"] = np.int32(-1)
        if var.ndim == 2:
            e.update(zlib=True, complevel=4)
        if name in ("sar_lines", "sar_samples"):
            e["_FillValue"] = None
        enc[name] = e
    return enc


def write_netcdf(ds, path):
    """Write the products atomically (temporary name, then rename)."""
    with io_utils.atomic_path(path) as tmp:
        ds.to_netcdf(tmp, format="NETCDF4", engine="netcdf4", encoding=_encoding(ds))
