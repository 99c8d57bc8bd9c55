"""Read AI4Arctic Sea Ice Challenge scenes (raw 40 m, or ready-to-train 80 m + raw).

A `Scene` holds what every later step needs on one grid: SAR channels, the
chart's polygon id per pixel, the polygon table, and optional pixel truth.
Output pixel spacing is always 40 m x `downsample` (relative to the raw grid):
raw files are reduced by `downsample`, ready-to-train files (already 80 m) by
`downsample / 2`. SAR is averaged in linear power (multilooking), then returned
in dB; polygon ids are taken by majority vote in each block, never averaged.
"""

import dataclasses
import glob
import os
import re

import numpy as np
import xarray as xr

from tfseaice.data.codes import PolygonTable, parse_polygon_codes
from tfseaice.errors import InputError

RAW_SPACING_M = 40
SAR_VARIABLES = {"hh": "nersc_sar_primary", "hv": "nersc_sar_secondary"}
DB_CHANNELS = ("hh", "hv")
GRID_2KM_PREFIXES = ("btemp_", "u10m_rotated", "v10m_rotated", "t2m", "skt", "tcwv", "tclw")
DEFAULT_CHANNELS = ("hh", "hv")
_TIME_RE = re.compile(r"(\d{8}T\d{6})")
_SERVICE_RE = re.compile(r"(dmi|cis)", re.IGNORECASE)


@dataclasses.dataclass
class Scene:
    """One scene on one grid. `chart_ids` is -1 outside the chart (land, no chart)."""

    scene_id: str
    path: str
    channels: tuple
    sar: np.ndarray            # float32 [H, W, C], NaN = no data
    chart_ids: np.ndarray      # int64 [H, W]
    table: PolygonTable
    pixel_spacing_m: float
    sar_units: str             # "dB" (raw) or "standard_scaled" (ready-to-train)
    sic_truth: np.ndarray | None = None  # float32 [H, W]

    @property
    def shape(self):
        return self.chart_ids.shape

    def chart_sic(self):
        """The rasterised chart: SIC of each pixel's polygon, NaN where unlabelled."""
        return self.table.lookup(self.chart_ids)

    def valid_mask(self):
        """Pixels usable for training: finite SAR in every channel, labelled polygon."""
        return np.isfinite(self.sar).all(axis=-1) & np.isfinite(self.chart_sic())


def scene_key(path):
    """(acquisition time, ice service) parsed from an AI4Arctic file name."""
    name = os.path.basename(path)
    t = _TIME_RE.search(name)
    s = _SERVICE_RE.search(name.replace("icechart", ""))
    if not t:
        raise InputError(path, "file name has no acquisition time YYYYMMDDThhmmss")
    return t.group(1), (s.group(1).lower() if s else "")


def scene_id_of(path):
    """Scene id as the ready-to-train files name it: `YYYYMMDDThhmmss_service`."""
    time, service = scene_key(path)
    return f"{time}_{service}" if service else time


def is_ready_to_train(path, ds=None):
    if os.path.basename(path).endswith("_prep.nc"):
        return True
    return ds is not None and "polygon_icechart" not in ds and "SIC" in ds


def find_raw_for(rtt_path, raw_glob):
    """The raw file with the same acquisition time and service as a ready-to-train file."""
    key = scene_key(rtt_path)
    matches = [p for p in sorted(glob.glob(raw_glob)) if not is_ready_to_train(p) and _safe_key(p) == key]
    if not matches:
        raise InputError(rtt_path, f"no raw file matching {key[0]} {key[1]} in --raw_glob {raw_glob!r} (needed for polygon ids)")
    return matches[0]


def _safe_key(path):
    try:
        return scene_key(path)
    except InputError:
        return None


def open_dataset(path):
    """Open a netCDF file, turning any failure into a one-line InputError."""
    if not os.path.exists(path):
        raise InputError(path, "file does not exist")
    try:
        return xr.open_dataset(path, engine="netcdf4", mask_and_scale=True, cache=False)
    except Exception as exc:  # netCDF4 raises OSError/ValueError/RuntimeError variants
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(path, f"cannot be read as netCDF ({msg})") from None


def _require(ds, path, names):
    missing = [n for n in names if n not in ds.variables]
    if missing:
        raise InputError(path, f"missing required variable {', '.join(missing)}")


# ---------------------------------------------------------------- downsampling
def _blocks(a, f):
    h, w = a.shape[0] // f * f, a.shape[1] // f * f
    a = a[:h, :w]
    return a.reshape(h // f, f, w // f, f, *a.shape[2:]).swapaxes(1, 2)


def block_mean(a, f):
    """NaN-aware mean over f x f blocks (edges cropped to a multiple of f)."""
    if f == 1:
        return a.astype(np.float32, copy=False)
    b = _blocks(a.astype(np.float32, copy=False), f)
    b = b.reshape(b.shape[0], b.shape[1], f * f, *b.shape[4:])
    finite = np.isfinite(b)
    total = np.where(finite, b, 0).sum(axis=2, dtype=np.float64)
    count = finite.sum(axis=2)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan).astype(np.float32)


def db_block_mean(a_db, f):
    """Average dB backscatter over f x f blocks in linear power, back to dB."""
    if f == 1:
        return a_db.astype(np.float32, copy=False)
    with np.errstate(invalid="ignore"):
        power = np.power(np.float32(10.0), a_db.astype(np.float32) / np.float32(10.0))
    mean = block_mean(power, f)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (np.float32(10.0) * np.log10(mean)).astype(np.float32)


def block_majority(ids, f, rows_per_chunk=512):
    """Most frequent id in each f x f block (ties: the first in row-major order).

    Ids are labels: they are voted on, never averaged, so no id that is absent
    from a block (or from the scene) can appear.
    """
    ids = np.asarray(ids)
    if f == 1:
        return ids.copy()
    b = _blocks(ids, f)
    out = np.empty(b.shape[:2], ids.dtype)
    for r0 in range(0, b.shape[0], rows_per_chunk):
        chunk = b[r0:r0 + rows_per_chunk].reshape(-1, f * f)
        counts = (chunk[:, :, None] == chunk[:, None, :]).sum(axis=2)
        pick = np.argmax(counts, axis=1)
        out[r0:r0 + rows_per_chunk] = chunk[np.arange(len(chunk)), pick].reshape(-1, b.shape[1])
    return out


# ------------------------------------------------------------------ channels
def incidence_angle(ds, path, shape, f):
    """Interpolate the 21 x 21 GCP incidence angles bilinearly to block centres."""
    _require(ds, path, ["sar_grid_line", "sar_grid_sample", "sar_grid_incidenceangle"])
    lines = ds["sar_grid_line"].values.astype(np.float64)
    samples = ds["sar_grid_sample"].values.astype(np.float64)
    values = ds["sar_grid_incidenceangle"].values.astype(np.float64)
    ul, us = np.unique(lines), np.unique(samples)
    if len(ul) * len(us) != len(values):
        raise InputError(path, f"GCPs do not form a regular grid ({len(ul)} lines x {len(us)} samples != {len(values)} points)")
    grid = np.full((len(ul), len(us)), np.nan)
    grid[np.searchsorted(ul, lines), np.searchsorted(us, samples)] = values
    if not np.isfinite(grid).all():
        raise InputError(path, "incidence angle GCP grid has gaps")
    out_lines = np.arange(shape[0]) * f + (f - 1) / 2.0
    out_samples = np.arange(shape[1]) * f + (f - 1) / 2.0
    along = np.stack([np.interp(out_samples, us, row) for row in grid])  # [21, W]
    full = np.stack([np.interp(out_lines, ul, along[:, j]) for j in range(along.shape[1])], axis=1)
    return full.astype(np.float32)


def _grid_2km(ds, path, name, shape):
    from skimage.transform import resize

    a = ds[name].values.astype(np.float32)
    if a.ndim != 2:
        raise InputError(path, f"variable {name} is not 2-D")
    filled = np.where(np.isfinite(a), a, np.nanmean(a) if np.isfinite(a).any() else 0.0)
    return resize(filled, shape, order=1, mode="edge", anti_aliasing=False,
                  preserve_range=True).astype(np.float32)


def _sar_var(ds, path, name, f, in_db):
    var = SAR_VARIABLES.get(name, name)
    _require(ds, path, [var])
    a = ds[var].values
    if a.ndim != 2:
        raise InputError(path, f"variable {var} is not 2-D (shape {a.shape})")
    return db_block_mean(a, f) if in_db else block_mean(a, f)


def _read_channels(ds, path, channels, f, in_db, ref_ds=None, ref_path=None, ref_f=None):
    """Channels on the output grid. 2 km / GCP channels may come from `ref_ds` (raw)."""
    arrays = {}
    for name in channels:
        if name in SAR_VARIABLES or name == "distance_map":
            arrays[name] = _sar_var(ds, path, name, f, in_db and name in DB_CHANNELS)
    shape = next(iter(arrays.values())).shape if arrays else None
    for name in channels:
        if name in arrays:
            continue
        src, src_path, src_f = (ds, path, f)
        if name == "incidence_angle":
            if "sar_grid2d_incidenceangle" in ds.variables:
                arrays[name] = block_mean(ds["sar_grid2d_incidenceangle"].values, f)
                continue
            if ref_ds is not None:
                src, src_path, src_f = ref_ds, ref_path, ref_f
            if shape is None:
                raise InputError(path, "incidence_angle needs at least one SAR channel")
            arrays[name] = incidence_angle(src, src_path, shape, src_f)
        elif name.startswith(GRID_2KM_PREFIXES):
            if name not in ds.variables and ref_ds is not None and name in ref_ds.variables:
                src, src_path = ref_ds, ref_path
            _require(src, src_path, [name])
            if shape is None:
                raise InputError(path, f"{name} needs at least one SAR channel")
            arrays[name] = _grid_2km(src, src_path, name, shape)
        else:
            raise InputError(path, f"unknown channel {name!r} (use hh, hv, incidence_angle, distance_map, btemp_*, ERA5 names)")
    return arrays


def _stack(arrays, channels, path):
    shapes = {a.shape for a in arrays.values()}
    if len(shapes) != 1:
        raise InputError(path, f"channels have different shapes {sorted(shapes)}")
    sar = np.stack([arrays[c] for c in channels], axis=-1)
    if not np.isfinite(sar).any():
        raise InputError(path, "SAR is all NaN (no valid pixel)")
    return sar


def _chart_ids(ds, path, f):
    """(ids voted onto the 40 m x f grid, every id present in the full-resolution raster).

    The ids are checked against polygon_codes at full resolution: a polygon of
    a few pixels can be outvoted by the downsampling and would go unchecked.
    """
    a = ds["polygon_icechart"].values
    ids = np.where(np.isfinite(a), a, -1).astype(np.int64)
    return block_majority(ids, f), _present_ids(ids)


def _present_ids(ids):
    """Sorted ids >= 0 of an integer raster (bincount: one pass, where the ids are small)."""
    valid = ids[ids >= 0]
    if valid.size and valid.max() < 10_000_000:
        return np.flatnonzero(np.bincount(valid.ravel()))
    return np.unique(valid)


def _table(ds, path):
    return parse_polygon_codes(ds["polygon_codes"].values, source=path)


def _check_ids_in_table(present, table, path):
    missing = np.setdiff1d(present, table.ids)
    if len(missing):
        raise InputError(path, f"polygon_icechart has id(s) {missing[:5].tolist()} that polygon_codes lacks")


def read_scene(path, channels=DEFAULT_CHANNELS, downsample=1, raw_path=None, raw_glob=None,
               truth_variable="sic_truth"):
    """Read one scene onto a grid of 40 m x `downsample` pixels.

    Raw files give everything. Ready-to-train files (`*_prep.nc`) give SAR and
    need the matching raw file (`raw_path`, or found in `raw_glob`) for
    `polygon_icechart` and `polygon_codes`. `truth_variable` is read when
    present (sample scenes carry `sic_truth`).
    """
    channels = tuple(channels)
    if not channels:
        raise ValueError("at least one channel is required")
    ds = open_dataset(path)
    with ds:
        if is_ready_to_train(path, ds):
            return _read_rtt(ds, path, channels, downsample, raw_path, raw_glob, truth_variable)
        _require(ds, path, ["polygon_icechart", "polygon_codes"])
        f = int(downsample)
        if f < 1:
            raise ValueError(f"downsample must be >= 1, got {downsample}")
        arrays = _read_channels(ds, path, channels, f, in_db=True)
        sar = _stack(arrays, channels, path)
        chart_ids, present = _chart_ids(ds, path, f)
        if chart_ids.shape != sar.shape[:2]:
            raise InputError(path, f"SAR {ds['nersc_sar_primary'].shape if 'nersc_sar_primary' in ds else sar.shape[:2]} and polygon_icechart {ds['polygon_icechart'].shape} differ in shape")
        table = _table(ds, path)
        _check_ids_in_table(present, table, path)
        truth = None
        if truth_variable and truth_variable in ds.variables:
            truth = block_mean(ds[truth_variable].values, f)
        return Scene(scene_id=scene_id_of(path), path=path, channels=channels, sar=sar,
                     chart_ids=chart_ids, table=table, pixel_spacing_m=RAW_SPACING_M * f,
                     sar_units="dB", sic_truth=truth)


def _read_rtt(ds, path, channels, downsample, raw_path, raw_glob, truth_variable):
    spacing = float(ds.attrs.get("pixel_spacing", 2 * RAW_SPACING_M))
    ratio = spacing / RAW_SPACING_M
    if downsample % ratio:
        raise InputError(path, f"ready-to-train file is {spacing:g} m; --downsample={downsample} (x40 m) is not a multiple of it")
    f = int(downsample // ratio)
    if raw_path is None:
        if raw_glob is None:
            raise InputError(path, "ready-to-train file has no polygon ids; give the raw files with --raw_glob")
        raw_path = find_raw_for(path, raw_glob)
    raw = open_dataset(raw_path)
    with raw:
        _require(raw, raw_path, ["polygon_icechart", "polygon_codes"])
        raw_f = int(downsample)
        arrays = _read_channels(ds, path, channels, f, in_db=False, ref_ds=raw, ref_path=raw_path, ref_f=raw_f)
        sar = _stack(arrays, channels, path)
        chart_ids, present = _chart_ids(raw, raw_path, raw_f)
        truth = None
        if truth_variable and truth_variable in raw.variables:
            truth = block_mean(raw[truth_variable].values, raw_f)
        table = _table(raw, raw_path)
    h = min(sar.shape[0], chart_ids.shape[0])
    w = min(sar.shape[1], chart_ids.shape[1])
    if max(sar.shape[0] - h, chart_ids.shape[0] - h, sar.shape[1] - w, chart_ids.shape[1] - w) > 2:
        raise InputError(path, f"grid {sar.shape[:2]} does not match raw file {os.path.basename(raw_path)} grid {chart_ids.shape} at {spacing:g} m")
    chart_ids = chart_ids[:h, :w]
    _check_ids_in_table(present, table, raw_path)
    return Scene(scene_id=scene_id_of(path), path=path, channels=channels, sar=sar[:h, :w],
                 chart_ids=chart_ids, table=table, pixel_spacing_m=RAW_SPACING_M * downsample,
                 sar_units="standard_scaled", sic_truth=None if truth is None else truth[:h, :w])
