"""Read AI4Arctic Sea Ice Challenge scenes: raw (40 m) or ready-to-train (80 m), with or without a chart.

A `Scene` holds what every later step needs on one grid: SAR channels, the
chart's polygon id per pixel and the polygon table (when the scene has a
chart), the file's own AutoICE class charts (ready-to-train), and optional
pixel truth. Output pixel spacing is always 40 m x `downsample` (relative to the
raw grid): raw files are reduced by `downsample`, ready-to-train files (already
80 m) by `downsample / 2`. SAR is averaged in linear power (multilooking), then
returned in dB; polygon ids are taken by majority vote in each block, never
averaged.

Conventions of the real files (sources in docs/ai4arctic.md):
- A scene without `polygon_icechart`/`polygon_codes` (the challenge's test
  files, any new Sentinel-1 scene) is read without a chart: it can be mapped
  and scored against a reference file, not trained on.
- Ready-to-train SAR had NaN replaced by 0: a pixel whose SAR channels are all
  exactly 0 is no data (NaN here, in every channel read from that file).
- `distance_map` is a class index (0 = land, then 41 distance bins); with
  `land_mask="distance_map"` land pixels leave the chart (polygon id -1), so they
  are in no polygon mean and no pixel loss.
"""

import dataclasses
import glob
import os
import re

import numpy as np
import xarray as xr
from absl import logging

from tfseaice.data.chart_rasters import class_charts, crop, read_truths
from tfseaice.data.codes import PolygonTable, parse_polygon_codes
from tfseaice.data.downsampling import block_fraction, block_majority, block_mean, db_block_mean
from tfseaice.data.scene_grids import grid_2km, incidence_angle
from tfseaice.errors import InputError

RAW_SPACING_M = 40
SAR_VARIABLES = {"hh": "nersc_sar_primary", "hv": "nersc_sar_secondary"}
DB_CHANNELS = ("hh", "hv")
GRID_2KM_PREFIXES = ("btemp_", "u10m_rotated", "v10m_rotated", "t2m", "skt", "tcwv", "tclw")
DEFAULT_CHANNELS = ("hh", "hv")
LAND_CLASS = 0            # distance_map class of land
# Upper edges (km) of distance_map classes 1..40; class 41 is over 300 km (docs/ai4arctic.md).
DISTANCE_CLASS_EDGES_KM = (0.5, *range(1, 21), *range(25, 51, 5), *range(60, 101, 10), *range(125, 301, 25))
LAND_MASKS = ("distance_map", "none")
_TIME_RE = re.compile(r"(\d{8}T\d{6})")
_SERVICE_RE = re.compile(r"(dmi|cis)", re.IGNORECASE)


@dataclasses.dataclass
class Scene:
    """One scene on one grid. `chart_ids` is -1 outside the chart (land, no chart), None without a chart."""

    scene_id: str
    path: str
    channels: tuple
    sar: np.ndarray            # float32 [H, W, C], NaN = no data
    chart_ids: np.ndarray | None    # int64 [H, W]; None: the scene has no chart
    table: PolygonTable | None
    pixel_spacing_m: float
    sar_units: str             # "dB" (raw) or "standard_scaled" (ready-to-train)
    sic_truth: np.ndarray | None = None  # float32 [H, W]
    sod_truth: np.ndarray | None = None  # uint8 [H, W] SOD class per pixel, 255 = no truth
    floe_truth: np.ndarray | None = None  # uint8 [H, W] FLOE class per pixel, 255 = no truth
    class_charts: dict = dataclasses.field(default_factory=dict)  # the file's own AutoICE charts, uint8 [H, W]
    unlabelled_polygons: dict = dataclasses.field(default_factory=dict)  # reason -> polygon ids made unlabelled

    @property
    def shape(self):
        return self.sar.shape[:2]

    @property
    def has_chart(self):
        return self.chart_ids is not None

    def chart_sic(self):
        """The rasterised chart: SIC of each pixel's polygon, NaN where unlabelled (or no chart)."""
        if not self.has_chart:
            return np.full(self.shape, np.nan, np.float32)
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


def distance_classes(km):
    """distance_map class index (float32, as the files store it) of distances to land in km; 0 km = land."""
    km = np.asarray(km, np.float32)
    classes = 1 + np.searchsorted(np.asarray(DISTANCE_CLASS_EDGES_KM, np.float32), km, side="left")
    return np.where(km > 0, classes, LAND_CLASS).astype(np.float32)


# ------------------------------------------------------------------ channels
def _sar_var(ds, path, name, f, in_db, nodata=None):
    var = SAR_VARIABLES.get(name, name)
    _require(ds, path, [var])
    a = ds[var].values
    if a.ndim != 2:
        raise InputError(path, f"variable {var} is not 2-D (shape {a.shape})")
    if nodata is not None:
        a = np.where(nodata, np.nan, a)
    return db_block_mean(a, f) if in_db else block_mean(a, f)


def zero_filled_nodata(ds):
    """Ready-to-train no-data: [H, W] bool where every SAR variable of the file is exactly 0."""
    present = [v for v in SAR_VARIABLES.values() if v in ds.variables]
    if not present:
        return None
    mask = ds[present[0]].values == 0
    for v in present[1:]:
        mask &= ds[v].values == 0
    return mask


def _read_channels(ds, path, channels, f, in_db, raw_f, ref_ds=None, ref_path=None, nodata=None):
    """Channels on the output grid (`f`: reduction of `ds`; `raw_f`: output pixel in raw 40 m pixels).

    GCP and 2 km channels may come from `ref_ds` (the raw twin of a
    ready-to-train file). `nodata` ([H, W] bool at the resolution of `ds`) is
    NaN in every channel read from `ds` at that resolution.
    """
    arrays = {}
    for name in channels:
        if name in SAR_VARIABLES or name == "distance_map":
            arrays[name] = _sar_var(ds, path, name, f, in_db and name in DB_CHANNELS, nodata)
    shape = next(iter(arrays.values())).shape if arrays else None
    for name in channels:
        if name in arrays:
            continue
        if shape is None:
            raise InputError(path, f"{name} needs at least one SAR channel")
        if name == "incidence_angle":
            if "sar_incidenceangle" in ds.variables:   # ready-to-train: on the 80 m grid
                arrays[name] = _sar_var(ds, path, "sar_incidenceangle", f, False, nodata)
            elif ref_ds is not None:
                arrays[name] = incidence_angle(ref_ds, ref_path, shape, raw_f)
            else:
                arrays[name] = incidence_angle(ds, path, shape, raw_f)
        elif name.startswith(GRID_2KM_PREFIXES):
            src, src_path = ds, path
            if name not in ds.variables and ref_ds is not None and name in ref_ds.variables:
                src, src_path = ref_ds, ref_path
            _require(src, src_path, [name])
            arrays[name] = grid_2km(src[name].values, src_path, name, shape, raw_f)
        else:
            raise InputError(path, f"unknown channel {name!r} (use hh, hv, incidence_angle, distance_map, btemp_*, ERA5 names)")
    return arrays


def _stack(arrays, channels, path):
    shapes = {a.shape for a in arrays.values()}
    if len(shapes) != 1:
        raise InputError(path, f"channels have different shapes {sorted(shapes)}")
    sar = np.stack([arrays[c] for c in channels], axis=-1)
    if not np.isfinite(sar).any():
        raise InputError(path, "SAR is all NaN or zero-filled (no valid pixel)")
    return sar


# --------------------------------------------------------------------- charts
def has_polygon_chart(ds, path):
    """True if the file carries a polygon chart; a file with half of one is refused."""
    have = [n for n in ("polygon_icechart", "polygon_codes") if n in ds.variables]
    if len(have) == 1:
        other = "polygon_codes" if have[0] == "polygon_icechart" else "polygon_icechart"
        raise InputError(path, f"has {have[0]} but no {other} (a chart needs both)")
    return len(have) == 2


def _chart_ids(ds, path, f, land_mask):
    """(ids voted onto the 40 m x f grid, every id present in the full-resolution raster).

    The ids are checked against polygon_codes at full resolution: a polygon of
    a few pixels can be outvoted by the downsampling and would go unchecked.
    Land (distance_map class 0, at least half of a block) gets id -1.
    """
    a = ds["polygon_icechart"].values
    ids = np.where(np.isfinite(a), a, -1).astype(np.int64)
    present = _present_ids(ids)
    voted = block_majority(ids, f)
    if land_mask == "distance_map" and "distance_map" in ds.variables:
        land = block_fraction(ds["distance_map"].values == LAND_CLASS, f) >= 0.5
        voted[land[:voted.shape[0], :voted.shape[1]]] = -1
    return voted, present


def _present_ids(ids):
    """Sorted ids >= 0 of an integer raster (bincount: one pass, where the ids are small)."""
    valid = ids[ids >= 0]
    if valid.size and valid.max() < 10_000_000:
        return np.flatnonzero(np.bincount(valid.ravel()))
    return np.unique(valid)


def _table(ds, path):
    return parse_polygon_codes(ds["polygon_codes"].values, source=path)


def _unlabel_odd_polygons(chart_ids, present, table, path):
    """Raster ids that polygon_codes lacks become -1 (unlabelled), with a warning naming them.

    Returns {reason: ids} of the polygons left unlabelled for being odd: raster
    ids the table lacks, and table rows whose POLY_TYPE is neither I nor W.
    """
    missing = np.setdiff1d(present, table.ids)
    if len(missing):
        logging.warning("%s: polygon_icechart has id(s) %s that polygon_codes lacks; those pixels are unlabelled",
                        path, missing[:10].tolist())
        chart_ids[np.isin(chart_ids, missing)] = -1
    odd = {"not_in_polygon_codes": missing.tolist(), "poly_type_not_i_or_w": table.odd_type_ids().tolist()}
    return {k: v for k, v in odd.items() if v}


def _check_land_mask(land_mask):
    if land_mask not in LAND_MASKS:
        raise InputError("--land_mask", f"must be one of {', '.join(LAND_MASKS)}, got {land_mask!r}")


def read_scene(path, channels=DEFAULT_CHANNELS, downsample=1, raw_path=None, raw_glob=None,
               truth_variable="sic_truth", land_mask="distance_map", sod_truth_variable="sod_truth",
               floe_truth_variable="floe_truth"):
    """Read one scene onto a grid of 40 m x `downsample` pixels.

    Raw files give everything they hold; a raw file without a chart gives a
    Scene without one. Ready-to-train files (`*_prep.nc`) give SAR (zero-filled
    no-data as NaN) and their own AutoICE charts; polygon ids come from the
    matching raw file (`raw_path`, or found in `raw_glob`) when one is given,
    otherwise the Scene has no polygon chart. `truth_variable` (SIC, block
    mean), `sod_truth_variable` and `floe_truth_variable` (classes, block
    majority) are read when present (sample scenes carry them); "" or None:
    never.
    """
    channels = tuple(channels)
    if not channels:
        raise ValueError("at least one channel is required")
    _check_land_mask(land_mask)
    ds = open_dataset(path)
    with ds:
        if is_ready_to_train(path, ds):
            return _read_rtt(ds, path, channels, downsample, raw_path, raw_glob, land_mask,
                             (truth_variable, sod_truth_variable, floe_truth_variable))
        return read_raw_dataset(ds, path, channels, downsample, truth_variable, land_mask,
                                sod_truth_variable, floe_truth_variable)


def read_raw_dataset(ds, path, channels=DEFAULT_CHANNELS, downsample=1, truth_variable="sic_truth",
                     land_mask="distance_map", sod_truth_variable="sod_truth", floe_truth_variable="floe_truth"):
    """A Scene from an open raw-layout Dataset `ds` (a raw file, or a Sentinel-1 product read into that layout)."""
    channels = tuple(channels)
    _check_land_mask(land_mask)
    f = int(downsample)
    if f < 1:
        raise ValueError(f"downsample must be >= 1, got {downsample}")
    arrays = _read_channels(ds, path, channels, f, in_db=True, raw_f=f)
    sar = _stack(arrays, channels, path)
    chart_ids = table = None
    odd = {}
    if has_polygon_chart(ds, path):
        chart_ids, present = _chart_ids(ds, path, f, land_mask)
        if chart_ids.shape != sar.shape[:2]:
            raise InputError(path, f"SAR {ds['nersc_sar_primary'].shape if 'nersc_sar_primary' in ds else sar.shape[:2]} and polygon_icechart {ds['polygon_icechart'].shape} differ in shape")
        table = _table(ds, path)
        odd = _unlabel_odd_polygons(chart_ids, present, table, path)
    truths = read_truths(ds, f, truth_variable, sod_truth_variable, floe_truth_variable)
    return Scene(scene_id=scene_id_of(path), path=path, channels=channels, sar=sar,
                 chart_ids=chart_ids, table=table, pixel_spacing_m=RAW_SPACING_M * f,
                 sar_units="dB", unlabelled_polygons=odd, **truths)


def _read_rtt(ds, path, channels, downsample, raw_path, raw_glob, land_mask, truth_names):
    spacing = float(ds.attrs.get("pixel_spacing", 2 * RAW_SPACING_M))
    ratio = spacing / RAW_SPACING_M
    if downsample % ratio:
        raise InputError(path, f"ready-to-train file is {spacing:g} m; --downsample={downsample} (x40 m) is not a multiple of it")
    f = int(downsample // ratio)
    if raw_path is None and raw_glob is not None:
        raw_path = find_raw_for(path, raw_glob)
    nodata = zero_filled_nodata(ds)
    if raw_path is None:
        arrays = _read_channels(ds, path, channels, f, in_db=False, raw_f=int(downsample), nodata=nodata)
        sar = _stack(arrays, channels, path)
        truths = crop(read_truths(ds, f, *truth_names), *sar.shape[:2])
        return Scene(scene_id=scene_id_of(path), path=path, channels=channels, sar=sar, chart_ids=None,
                     table=None, pixel_spacing_m=RAW_SPACING_M * downsample, sar_units="standard_scaled",
                     class_charts=class_charts(ds, f, sar.shape[:2]), **truths)
    raw = open_dataset(raw_path)
    with raw:
        _require(raw, raw_path, ["polygon_icechart", "polygon_codes"])
        raw_f = int(downsample)
        arrays = _read_channels(ds, path, channels, f, in_db=False, raw_f=raw_f, ref_ds=raw, ref_path=raw_path,
                                nodata=nodata)
        sar = _stack(arrays, channels, path)
        chart_ids, present = _chart_ids(raw, raw_path, raw_f, land_mask)
        truths = read_truths(raw, raw_f, *truth_names)
        table = _table(raw, raw_path)
    h = min(sar.shape[0], chart_ids.shape[0])
    w = min(sar.shape[1], chart_ids.shape[1])
    if max(sar.shape[0] - h, chart_ids.shape[0] - h, sar.shape[1] - w, chart_ids.shape[1] - w) > 2:
        raise InputError(path, f"grid {sar.shape[:2]} does not match raw file {os.path.basename(raw_path)} grid {chart_ids.shape} at {spacing:g} m")
    chart_ids = chart_ids[:h, :w]
    odd = _unlabel_odd_polygons(chart_ids, present, table, raw_path)
    return Scene(scene_id=scene_id_of(path), path=path, channels=channels, sar=sar[:h, :w],
                 chart_ids=chart_ids, table=table, pixel_spacing_m=RAW_SPACING_M * downsample,
                 sar_units="standard_scaled", class_charts=class_charts(ds, f, (h, w)), unlabelled_polygons=odd,
                 **crop(truths, h, w))
