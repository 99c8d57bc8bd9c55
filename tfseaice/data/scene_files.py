"""Any scene a user hands a command: an AI4Arctic netCDF, or a Sentinel-1 product (`.SAFE` folder / `.zip`).

Why one place: predict, evaluate and autoice accept a product wherever they
accept a scene file (issue 23). A product is read into the raw layout
(`sentinel1_scenes.product_dataset`: SAR dB at 40 m, GCPs; the GSHHG `distance_map`
only when it is a model channel: a product read directly has no chart for it to mask)
and from there follows the very code path of a raw file
(`ai4arctic.read_raw_dataset`), so its products are made the same way.
Why not inside `ai4arctic.read_scene`: the Sentinel-1 modules sit beside it in
data/, and a dispatch there would tie them into one import cycle.

The product's tie points are kept (a few hundred numbers, the last few products)
so that georeferencing the outputs does not read the product a second time.
"""

import collections
import os
import threading

from tfseaice.data import ai4arctic, sentinel1_scenes
from tfseaice.data.scene_grids import gcp_lat_lon, gcp_points
from tfseaice.errors import InputError

is_product = sentinel1_scenes.is_product
GCP_VARIABLES = ("sar_grid_line", "sar_grid_sample", "sar_grid_latitude", "sar_grid_longitude",
                 "sar_grid_incidenceangle", "sar_grid_height")
_GCP_CACHE = collections.OrderedDict()   # (abspath, mtime) -> (Dataset of the GCPs, 40 m shape)
_CACHE_SIZE = 8
_LOCK = threading.Lock()


def is_scene_path(path):
    """A file, or a product folder/zip: what a --scenes_glob may match."""
    return os.path.isfile(path) or (is_product(path) and os.path.exists(path))


def _key(path):
    try:
        return os.path.abspath(path), os.path.getmtime(path)
    except OSError:
        raise InputError(path, "file does not exist") from None


def _remember(path, ds):
    gcps = ds[[v for v in GCP_VARIABLES if v in ds.variables]].load()
    with _LOCK:
        _GCP_CACHE[_key(path)] = (gcps, (int(ds.sizes["sar_lines"]), int(ds.sizes["sar_samples"])))
        while len(_GCP_CACHE) > _CACHE_SIZE:
            _GCP_CACHE.popitem(last=False)


def _product_gcps(path):
    """(GCP Dataset, 40 m shape) of a product: remembered from its last read, else read now."""
    with _LOCK:
        hit = _GCP_CACHE.get(_key(path))
    if hit is None:
        from tfseaice.data import sentinel1

        ds = sentinel1.read_product(path, channels=("hh",) if "HH" in _pols(path) else ("vv",))
        _remember(path, ds)
        with _LOCK:
            hit = _GCP_CACHE[_key(path)]
    return hit


def _pols(path):
    from tfseaice.data import sentinel1

    return tuple(sentinel1.product_info(path)["polarisations"])


def read_scene(path, channels=ai4arctic.DEFAULT_CHANNELS, downsample=1, raw_path=None, raw_glob=None,
               truth_variable="sic_truth", land_mask="distance_map", sod_truth_variable="sod_truth",
               floe_truth_variable="floe_truth"):
    """`ai4arctic.read_scene` for netCDF files; a product is read into the raw layout, then the same way."""
    if not is_product(path):
        return ai4arctic.read_scene(path, channels, downsample, raw_path=raw_path, raw_glob=raw_glob,
                                    truth_variable=truth_variable, land_mask=land_mask,
                                    sod_truth_variable=sod_truth_variable, floe_truth_variable=floe_truth_variable)
    if not os.path.exists(path):
        raise InputError(path, "file does not exist")
    # A product read directly has no chart, so the land mask would remove nothing: the GSHHG
    # distance_map (~6 s and ~1.2 GB to load the index) is made only when it is a model channel.
    ds = sentinel1_scenes.product_dataset(path, channels, with_land="distance_map" in channels)
    _remember(path, ds)
    return ai4arctic.read_raw_dataset(ds, path, channels, downsample, truth_variable, land_mask,
                                      sod_truth_variable, floe_truth_variable)


def georeference(scene_path, raw_glob, shape, downsample):
    """((lat, lon) [H, W] or None, GCP points or None) of a scene on its output grid.

    A raw file or product has its own GCPs; a ready-to-train file uses its raw
    twin when `raw_glob` is given, and has none otherwise.
    """
    if is_product(scene_path):
        gcps, _ = _product_gcps(scene_path)
        return gcp_lat_lon(gcps, scene_path, shape, downsample), gcp_points(gcps, scene_path)
    raw_path = scene_path
    if ai4arctic.is_ready_to_train(scene_path):
        if not raw_glob:
            return None, None
        raw_path = ai4arctic.find_raw_for(scene_path, raw_glob)
    with ai4arctic.open_dataset(raw_path) as ds:
        return gcp_lat_lon(ds, raw_path, shape, downsample), gcp_points(ds, raw_path)


def raw_shape(path):
    """(sar_lines, sar_samples) of a scene at its own spacing, and that spacing in metres."""
    if is_product(path):
        _, shape = _product_gcps(path)
        return shape, float(ai4arctic.RAW_SPACING_M)
    with ai4arctic.open_dataset(path) as ds:
        h, w = ds.sizes.get("sar_lines", 0), ds.sizes.get("sar_samples", 0)
        spacing = float(ds.attrs.get("pixel_spacing", 2 * ai4arctic.RAW_SPACING_M)) \
            if ai4arctic.is_ready_to_train(path, ds) else float(ai4arctic.RAW_SPACING_M)
    return (int(h), int(w)), spacing
