"""Atomic netCDF writing of sample scenes (raw and ready-to-train).

Why atomic: a reader (or a second run) must never see a half-written file, and
a failed write must leave the previous file intact.
"""

import numpy as np

from tfseaice import io_utils


def _encoding(ds):
    """netCDF encoding: strings as variable-length str, chunked 2-D grids, uint8 without fill."""
    enc = {}
    for name, var in ds.variables.items():
        if var.dtype == object:
            enc[name] = {"dtype": str}
            continue
        e = {}
        if var.dims == ("sar_lines", "sar_samples"):
            e["chunksizes"] = tuple(min(1024, s) for s in var.shape)
            if name not in ("nersc_sar_primary", "nersc_sar_secondary"):  # speckle does not compress
                e.update(zlib=True, complevel=1, shuffle=True)
        if var.dtype == np.uint8:
            e["_FillValue"] = None
        enc[name] = e
    return enc


def write_scene(ds, path):
    """Write `ds` as netCDF4 atomically (io_utils.atomic_path: a temporary sibling, then rename).

    A reader never sees a half-written file, and a failed write leaves the
    previous file (if any) intact.
    """
    with io_utils.atomic_path(path) as tmp:
        ds.to_netcdf(tmp, mode="w", format="NETCDF4", engine="netcdf4", encoding=_encoding(ds))
