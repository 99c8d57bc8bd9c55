"""Write scenes in the AI4Arctic raw layout (netCDF4), atomically.

Why here, in data/: scenes made from Sentinel-1 products (data_prep.sentinel1_to_scenes)
and the sample scenes (tfseaice.simulate) are the same files, read back by
`ai4arctic.read_scene`, so one writer serves both (simulate imports it; data
never imports simulate).

Why atomic: a reader (or a second run) must never see a half-written file, and
a failed write must leave the previous file intact (io_utils.atomic_path: a
temporary sibling, then rename).
"""

import numpy as np

from tfseaice import io_utils
from tfseaice.data import codes

SAR_DIMS = ("sar_lines", "sar_samples")
CHUNK = 1024
UNCOMPRESSED = ("nersc_sar_primary", "nersc_sar_secondary")   # speckle does not compress


def encoding(ds):
    """netCDF encoding: strings as variable-length str, chunked 2-D grids, uint8 without fill."""
    enc = {}
    for name, var in ds.variables.items():
        if var.dtype == object:
            enc[name] = {"dtype": str}
            continue
        e = {}
        if var.dims == SAR_DIMS:
            e["chunksizes"] = tuple(min(CHUNK, s) for s in var.shape)
            if name not in UNCOMPRESSED:
                e.update(zlib=True, complevel=1, shuffle=True)
        if var.dtype == np.uint8:
            e["_FillValue"] = None
        enc[name] = e
    return enc


def write_scene(ds, path):
    """Write `ds` as netCDF4 atomically; a reader never sees a half-written file."""
    with io_utils.atomic_path(path) as tmp:
        ds.to_netcdf(tmp, mode="w", format="NETCDF4", engine="netcdf4", encoding=encoding(ds))


def add_chart(ds, polygon_icechart, polygon_codes, attrs=None):
    """`ds` with the chart variables of the raw layout: `polygon_icechart` (float32 ids, NaN outside) and
    the string coordinate `polygon_codes` (entry 0 the AI4Arctic header)."""
    entries = list(polygon_codes)
    if not entries or entries[0].split(";")[0] not in ("poly_id", "id"):
        entries = [codes.HEADER] + entries
    ids = np.asarray(polygon_icechart, np.float32)
    return ds.assign(polygon_icechart=(SAR_DIMS, ids, {
        "long_name": "ice chart poly_id of each pixel (see polygon_codes)",
        "comment": "NaN outside the chart", **(attrs or {})})).assign_coords(
        polygon_codes=("polygon_codes", np.array(entries, dtype=object)))
