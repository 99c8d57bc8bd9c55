"""GeoTIFF products a GIS opens in place: one file per product, georeferenced by the scene's GCPs.

QGIS and ArcGIS place a raster from its ground control points (EPSG:4326
lon/lat at pixel positions) without any step of the user's. The GCPs are the
raw file's 21 x 21 grid moved to the output grid: raw pixel centre L (40 m)
lies at L + 0.5 in GDAL's corner-based pixel coordinates, i.e. (L + 0.5) / f on
a grid of 40 m x f pixels. Missing data: NaN (float products), 255
(ice_water and the sod/floe class maps), -1 (polygon_id).
"""

import os
import warnings

import numpy as np
import rasterio
from rasterio.errors import NotGeoreferencedWarning
from rasterio.control import GroundControlPoint
from rasterio.crs import CRS

from tfseaice import io_utils

NODATA = {"ice_water": 255, "polygon_id": -1, "sod": 255, "floe": 255, "sod_truth": 255, "floe_truth": 255}


def output_gcps(points, f):
    """rasterio GroundControlPoints on the 40 m x f output grid from raw GCPs (lines, samples, lat, lon)."""
    lines, samples, lat, lon = points
    return [GroundControlPoint(row=(line + 0.5) / f, col=(sample + 0.5) / f, x=float(x), y=float(y),
                               id=str(k))
            for k, (line, sample, y, x) in enumerate(zip(lines, samples, lat, lon))]


def geotiff_path(out, product):
    """OUT.nc -> OUT_<product>.tif."""
    stem, _ = os.path.splitext(out)
    return f"{stem}_{product}.tif"


def write_geotiffs(products, out, gcp_points=None, downsample=1):
    """Write one GeoTIFF per product next to `out`; returns the paths written.

    `gcp_points`: the raw file's (lines, samples, lat, lon), or None (the
    GeoTIFFs are then written without georeferencing).
    """
    gcps = output_gcps(gcp_points, downsample) if gcp_points is not None else None
    written = []
    for name, array in products.items():
        array = np.asarray(array)
        nodata = NODATA.get(name, np.nan if array.dtype.kind == "f" else None)
        path = geotiff_path(out, name)
        with io_utils.atomic_path(path) as tmp, warnings.catch_warnings():
            # rasterio warns on open that the new file has no georeferencing yet; the GCPs follow.
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(tmp, "w", driver="GTiff", height=array.shape[0], width=array.shape[1], count=1,
                               dtype=array.dtype, nodata=nodata, compress="deflate", tiled=True) as dst:
                dst.write(array, 1)
                dst.set_band_description(1, name)
                if gcps:
                    dst.gcps = (gcps, CRS.from_epsg(4326))
        written.append(path)
    return written
