"""Realistic sample AI4Arctic scenes with per-pixel SIC, SOD and FLOE truth: seeds, names, make_scene.

Why: real AI4Arctic charts give one SIC per polygon, so nobody can check pixel
SIC on them. These scenes are written in the *raw AI4Arctic layout* (same file
names, dims, dtypes, `polygon_codes` table, NaN land) plus `sic_truth`, the
true per-pixel SIC, and they carry what makes SAR SIC hard (DESIGN.md §3):

* **truth** (terrain.py, floes.py, render.py): vast pack floes split by cracks
  and leads (open or refrozen), a marginal ice zone (MIZ) where concentration
  ramps down and floes shrink to small floes and brash (fractional pixels),
  open water, fast ice along a fractal coastline, land and islands (NaN),
  ragged no-data stripes at 1-2 swath edges (NaN SAR and truth).
* **backscatter** (backscatter.py): per ice type, incidence slopes, wind over
  water, HV noise floor, linear mixing, Gamma speckle with ENL 4.4.
* **charts** (charts.py) drawn as an analyst would.
* **ice-type truth**: `sod_truth` and `floe_truth`, the AutoICE SOD / FLOE
  class of each pixel's surface type and floe form (charts.pixel_classes,
  tables of tfseaice.data.egg_codes; 255 = no truth). They draw nothing.

Everything comes from `numpy.random.default_rng(seed)`: three independent
streams (metadata, layout, speckle). The stages of make_scene draw from the
layout stream in a fixed order, which is what makes a scene reproducible.
"""

import datetime

import numpy as np
import xarray as xr

from tfseaice.data import codes, egg_codes
from tfseaice.data.ai4arctic import distance_classes
from tfseaice.simulate import ancillary, charts, floes, render, terrain
from tfseaice.simulate.backscatter import ENL, Swath
from tfseaice.simulate.grid import PIXEL_SPACING_M

SYNTHETIC_NOTE = ("synthetic sample scene made by tfseaice.simulate (not real Sentinel-1 "
                  "data); sic_truth is the true per-pixel sea-ice concentration")
SAR_DIMS = ("sar_lines", "sar_samples")
TYPE_TRUTH = {  # variable -> (what, class names, the class of what, where no truth)
    "sod_truth": ("stage of development", egg_codes.SOD_CLASSES, "surface type", "land, no data"),
    "floe_truth": ("floe size", egg_codes.FLOE_CLASSES, "floe form",
                   "land, no data, and fast ice and level ice in refrozen leads, unlabelled as in the challenge"),
}


# ------------------------------------------------------------------ names, seeds

def scene_seed(seed, index):
    """Seed of scene `index` in a run with `seed`: same (seed, index) -> same scene."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1, np.uint32)[0])


def _rngs(seed):
    """Independent streams (metadata, layout, speckle) from default_rng(seed)."""
    return np.random.default_rng(seed).spawn(3)


def scene_metadata(seed, ice_service=None):
    """(acquisition time `YYYYMMDDThhmmss`, ice service) of the scene `seed` makes.

    Cheap, so an entry point can name (and refuse) outputs before generating.
    """
    meta = _rngs(seed)[0]
    seconds = int(meta.integers(0, 4 * 365 * 86400))
    service = ("dmi", "cis")[int(meta.integers(0, 2))]
    t = datetime.datetime(2018, 1, 1) + datetime.timedelta(seconds=seconds)
    return t.strftime("%Y%m%dT%H%M%S"), (ice_service or service)


def raw_file_name(ds_or_time, ice_service=None):
    """`S1A_EW_GRDM_1SDH_{time}_sample_icechart_{service}.nc` for a scene (or time, service)."""
    time, service = _time_service(ds_or_time, ice_service)
    return f"S1A_EW_GRDM_1SDH_{time}_sample_icechart_{service}.nc"


def ready_file_name(ds_or_time, ice_service=None):
    """`{time}_{service}_prep.nc`: the ready-to-train file matching a raw scene."""
    time, service = _time_service(ds_or_time, ice_service)
    return f"{time}_{service}_prep.nc"


def _time_service(ds_or_time, ice_service):
    if isinstance(ds_or_time, xr.Dataset):
        return ds_or_time.attrs["acquisition_time"], ds_or_time.attrs["ice_service"]
    return ds_or_time, ice_service


# ------------------------------------------------------------------ the scene

def make_scene(seed, size=1024, *, ice_service=None):
    """A synthetic raw AI4Arctic scene (40 m, size x size) with `sic_truth`.

    Deterministic in (seed, size). Returns an xarray.Dataset in the raw layout;
    write it with `writers.write_scene(ds, dir / raw_file_name(ds))`.
    The stages below draw from `rng` in this order; reordering them changes every scene.
    """
    size = int(size)
    if size < 64:
        raise ValueError(f"size must be >= 64, got {size}")
    seed = int(seed)
    acq_time, service = scene_metadata(seed, ice_service)
    _, rng, speckle_rng = _rngs(seed)

    lay = terrain.draw_layout(rng, size)
    nodata_params = terrain.draw_nodata_stripes(rng, size)
    floe_layers = floes.draw_floes(rng, size, lay)
    swath = Swath(rng, size)
    chart = charts.ChartTally(charts.draw_partition(rng, lay, size), size)
    grid2 = ancillary.Grid2Tally(size)
    image = render.render(size, lay, nodata_params, floe_layers, swath, chart, grid2, speckle_rng)
    rows, lut = charts.draw_polygon_table(rng, chart, lay, size)
    _labels_to_poly_ids(image.labels, lut, image.block)
    grid2_vars = ancillary.grid_2km(rng, lay, grid2)
    gcp_vars = ancillary.gcps(rng, size, swath.incidence, service, lay)
    return _dataset(image, rows, gcp_vars, grid2_vars, seed, acq_time, service)


def _labels_to_poly_ids(labels, lut, block):
    """Replace chart label indices by their poly_ids, in place and in row blocks (NaN stays NaN)."""
    for r0 in range(0, labels.shape[0], block):
        blk = labels[r0:r0 + block]
        m = np.isfinite(blk)
        blk[m] = lut[blk[m].astype(np.intp)]


def _type_truth_vars(image):
    """`sod_truth`, `floe_truth`: uint8 class rasters with CF flag attributes (255 = no truth)."""
    out = {}
    for name, values in (("sod_truth", image.sod), ("floe_truth", image.floe)):
        what, classes, source, no_truth = TYPE_TRUTH[name]
        out[name] = (SAR_DIMS, values, {
            "long_name": f"true per-pixel {what} class, AutoICE classes (synthetic scenes only)",
            "units": "1",
            "flag_values": np.arange(len(classes), dtype=np.uint8),
            "flag_meanings": " ".join(classes),
            "no_truth_value": np.uint8(egg_codes.UNLABELLED),
            "comment": f"the class of the pixel's {source} (its SIGRID-3 code -> class by "
                       f"tfseaice.data.egg_codes); {egg_codes.UNLABELLED} = no truth ({no_truth}); "
                       "a pixel less than half ice is open water (0)"})
    return out


def _dataset(image, rows, gcp_vars, grid2_vars, seed, acq_time, service):
    """The raw-layout xarray.Dataset of a rendered scene."""
    return xr.Dataset(
        data_vars={
            "nersc_sar_primary": (SAR_DIMS, image.hh, {
                "long_name": "HH backscatter, noise corrected", "units": "dB", "polarisation": "HH"}),
            "nersc_sar_secondary": (SAR_DIMS, image.hv, {
                "long_name": "HV backscatter, noise corrected", "units": "dB", "polarisation": "HV"}),
            "polygon_icechart": (SAR_DIMS, image.labels, {
                "long_name": "ice chart poly_id of each pixel (see polygon_codes)",
                "comment": "NaN outside the chart (land)"}),
            "distance_map": (SAR_DIMS, distance_classes(image.distance), {
                "long_name": "distance to land as a class index", "units": "1",
                "comment": "0 land; 1: 0-0.5 km, 2: 0.5-1 km, then 1 km steps to 20 km, 5 km to 50 km, "
                           "10 km to 100 km, 25 km to 300 km, 41: over 300 km (the AI4Arctic classes)"}),
            "sic_truth": (SAR_DIMS, image.truth, {
                "long_name": "true per-pixel sea-ice concentration (synthetic scenes only)",
                "units": "1", "valid_range": np.array([0.0, 1.0], np.float32),
                "comment": "NaN on land and in the no-data border"}),
            **_type_truth_vars(image),
            **gcp_vars, **grid2_vars,
        },
        coords={"polygon_codes": ("polygon_codes", np.array([codes.HEADER] + rows, dtype=object))},
        attrs={
            "scene_id": f"{acq_time}_{service}",
            "original_id": raw_file_name(acq_time, service)[:-3],
            "acquisition_time": acq_time,
            "ice_service": service,
            "pixel_spacing": np.int32(PIXEL_SPACING_M),
            "seed": np.int64(seed),
            "synthetic": SYNTHETIC_NOTE,
            "speckle_enl": ENL,
        },
    )
