"""Atomic netCDF writing of sample scenes (raw and ready-to-train).

Why atomic: a reader (or a second run) must never see a half-written file, and
a failed write must leave the previous file intact.
"""

import os
import tempfile

import numpy as np


def _encoding(ds):
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
    """Write `ds` as netCDF4 atomically: a temporary name in the same folder, then os.replace.

    A reader never sees a half-written file, and a failed write leaves the
    previous file (if any) intact.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=folder)
    os.close(fd)
    try:
        ds.to_netcdf(tmp, mode="w", format="NETCDF4", engine="netcdf4", encoding=_encoding(ds))
        publish(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def publish(tmp, path):
    """Give the temporary file the usual permissions (mkstemp makes it 0600), rename it."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, path)
