"""Read a Sentinel-1 GRD product (`.SAFE` folder or its `.zip`) into the AI4Arctic raw layout at 40 m.

Why: users hold Sentinel-1 products, not AI4Arctic files (issue 23). The
result has the dims and variables of an AI4Arctic raw file
(`nersc_sar_primary`/`_secondary` sigma0 in dB, NaN = no data, and the
`sar_grid_*` geolocation points in output pixel coordinates), so the
pipeline writes it as a scene netCDF and every reader downstream
(tfseaice.data.ai4arctic, scene_grids) takes it unchanged.

The chain, per polarisation (sources and choices in docs/sentinel1.md):
1. DN from the measurement GeoTIFF (uint16), read with rasterio in blocks of
   lines (`/vsizip/` inside a zip): a full IW GRDH never becomes one float
   array (peak memory is a few blocks plus the 40 m output).
2. sigma0 = (DN^2 - N) / A^2 with A the `sigmaNought` LUT (bilinear,
   sentinel1_calibration.py) and N the thermal noise, range LUT x the
   azimuth LUT block of each sub-swath (IPF >= 2.9) or range only (older
   IPF) (sentinel1_noise.py). DN = 0 (outside the swath) is NaN.
3. Multilook in linear power by k x k block means (IW GRDH 10 m: k = 4 for
   40 m; EW GRDM 40 m: k = 1), times `downsample`; the signed values are
   averaged, so noise subtraction stays unbiased in the mean.
4. Floor: a 40 m value below SIGMA0_FLOOR_DB (negative or tiny power after
   noise subtraction, i.e. signal under the noise floor) is set to it, so
   the swath never holds NaN or -inf. Then dB.
5. Geometry: the annotation's geolocation grid (xarray-sentinel's `gcp`
   group) kept as points, their line/sample brought to output pixels: output
   pixel i covers product lines [k i, k i + k), so product line L sits at
   (L - (k - 1) / 2) / k. Readers interpolate them (scene_grids.py).
"""

import numpy as np
import rasterio
import rasterio.errors
import xarray as xr
from rasterio.windows import Window

from tfseaice.data.downsampling import block_mean
from tfseaice.data.sentinel1_calibration import sigma_nought
from tfseaice.data.sentinel1_noise import choose_correction, noise_at, parse_noise
from tfseaice.data.sentinel1_safe import (GRD_SPACINGS_M, SafeProduct, geolocation_grid, image_information,
                                          product_info)
from tfseaice.errors import InputError

__all__ = ["read_product", "product_info", "CHANNEL_POLARISATIONS", "SIGMA0_FLOOR_DB", "OUTPUT_SPACING_M"]

OUTPUT_SPACING_M = 40
SIGMA0_FLOOR_DB = -40.0        # also xarray-sentinel's calibrate_intensity(min_db=-40) default
CHANNEL_POLARISATIONS = {"hh": "HH", "hv": "HV", "vv": "VV", "vh": "VH"}
VARIABLES = ("nersc_sar_primary", "nersc_sar_secondary")
BLOCK_PIXELS = 8 << 20         # input samples per line block (~32 MB per float32 temporary)
SAR_DIMS = ("sar_lines", "sar_samples")


def _polarisations(product, channels):
    channels = tuple(str(c).lower() for c in channels)
    unknown = [c for c in channels if c not in CHANNEL_POLARISATIONS]
    if not 1 <= len(channels) <= 2 or unknown or len(set(channels)) != len(channels):
        raise InputError("channels", f"must be one or two of hh, hv, vv, vh (primary first), got {channels}")
    have = product.attrs["polarisations"]
    missing = [CHANNEL_POLARISATIONS[c] for c in channels if CHANNEL_POLARISATIONS[c] not in have]
    if missing:
        raise InputError(product.path, f"has polarisation{'s' if len(have) > 1 else ''} {' and '.join(have)} "
                                       f"only; channels {', '.join(channels)} need {' and '.join(missing)}")
    return channels, [CHANNEL_POLARISATIONS[c] for c in channels]


def _factor(product, spacing, downsample):
    """Product pixels per output pixel along each axis (40 m x downsample / product spacing)."""
    f = int(downsample)
    if f < 1 or f != downsample:
        raise ValueError(f"downsample must be an integer >= 1, got {downsample}")
    match = [s for s in GRD_SPACINGS_M if abs(spacing - s) < 0.5]
    if not match:
        raise InputError(product.path, f"pixel spacing {spacing:g} m: only EW GRDM (40 m) and IW GRDH (10 m) "
                                       "products are read")
    return int(round(OUTPUT_SPACING_M / match[0])) * f


def _sigma0_db(product, files, lines, samples, k, noise_correction):
    """(sigma0 dB [lines // k, samples // k] float32, correction applied) of one polarisation."""
    a = sigma_nought(product, files["group"], samples)
    tables = parse_noise(product, files["noise"], samples)
    correction = choose_correction(noise_correction, tables, product)
    out_h, out_w = lines // k, samples // k
    if out_h == 0 or out_w == 0:
        raise InputError(product.path, f"image of {lines} x {samples} samples is smaller than one output pixel")
    out = np.empty((out_h, out_w), np.float32)
    block = max(k, BLOCK_PIXELS // samples // k * k)
    floor = np.float32(10 ** (SIGMA0_FLOOR_DB / 10))
    name = files["measurement"].rsplit("/", 1)[-1]
    try:
        with rasterio.open(product.gdal_path(files["measurement"])) as src:
            if (src.height, src.width, src.count) != (lines, samples, 1) or src.dtypes[0] != "uint16":
                raise InputError(product.path, f"measurement {name} is {src.count} x {src.height} x {src.width} "
                                               f"{src.dtypes[0]}, the annotation says 1 x {lines} x {samples} uint16")
            for l0 in range(0, out_h * k, block):
                l1 = min(l0 + block, out_h * k)
                dn = src.read(1, window=Window(0, l0, samples, l1 - l0))
                rows = np.arange(l0, l1, dtype=np.float64)
                power = dn.astype(np.float32)
                power *= power
                noise = noise_at(tables, rows, correction)
                if noise is not None:
                    power -= noise
                    del noise
                amp = a.at(rows)
                power /= amp
                power /= amp
                del amp
                power[dn == 0] = np.nan
                ml = block_mean(power[:, :out_w * k], k)
                np.maximum(ml, floor, out=ml)                      # NaN stays NaN
                out[l0 // k:l1 // k] = np.float32(10.0) * np.log10(ml)
    except (rasterio.errors.RasterioError, OSError) as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(product.path, f"measurement {name} is cut short or unreadable ({msg})") from None
    return out, correction


def _grid_variables(grid, k):
    """The `sar_grid_*` variables: the annotation's points, line/sample in output pixels."""
    dim = ("sar_grid_points",)
    shift = (k - 1) / 2.0
    return {
        "sar_grid_line": (dim, ((grid["line"] - shift) / k).astype(np.float32),
                          {"long_name": "GCP line (row) in sar_lines pixels"}),
        "sar_grid_sample": (dim, ((grid["pixel"] - shift) / k).astype(np.float32),
                            {"long_name": "GCP sample (column) in sar_samples pixels"}),
        "sar_grid_latitude": (dim, grid["latitude"], {"units": "degrees_north"}),
        "sar_grid_longitude": (dim, grid["longitude"], {"units": "degrees_east"}),
        "sar_grid_incidenceangle": (dim, grid["incidence"].astype(np.float32), {"units": "degrees"}),
        "sar_grid_height": (dim, grid["height"].astype(np.float32), {"units": "m"}),
    }


def read_product(path, channels=("hh", "hv"), downsample=1, noise_correction="auto"):
    """A Sentinel-1 GRD product as an xarray.Dataset in the AI4Arctic raw layout at 40 m x `downsample`.

    channels: the primary then the optional secondary channel, from hh, hv, vv, vh (("vv", "vh") for a
    VV+VH product); a polarisation the product lacks -> InputError naming the file and what it has.
    noise_correction: "auto" (range x per-sub-swath azimuth LUT from IPF 2.9 on, range only before),
    "range_azimuth", "range" or "none" (the last two for measurements such as the seam steps).
    Variables: nersc_sar_primary [, nersc_sar_secondary] (sigma0 dB, float32, NaN = no data) on
    (sar_lines, sar_samples); sar_grid_line/_sample/_latitude/_longitude/_incidenceangle/_height on
    sar_grid_points. Global attributes: product name, mission, mode, product type, polarisations,
    acquisition start/stop (ISO), IPF version, pixel_spacing, noise_correction, sigma0 floor.
    Every problem of the input raises InputError(path, what).
    """
    product = SafeProduct(path)
    product.require_grd()
    channels, pols = _polarisations(product, channels)
    files = {pol: product.pol_files(pol) for pol in pols}
    lines, samples, spacing, _ = image_information(product, files[pols[0]]["annotation"])
    k = _factor(product, spacing, downsample)
    grid = geolocation_grid(product, files[pols[0]]["group"])
    data_vars, applied = {}, []
    for var, channel, pol in zip(VARIABLES, channels, pols):
        if pol != pols[0]:
            other = image_information(product, files[pol]["annotation"])[:2]
            if other != (lines, samples):
                raise InputError(product.path, f"{pol} image is {other[0]} x {other[1]}, {pols[0]} is "
                                               f"{lines} x {samples}")
        db, correction = _sigma0_db(product, files[pol], lines, samples, k, noise_correction)
        applied.append(correction)
        data_vars[var] = (SAR_DIMS, db, {
            "long_name": f"{pol} sigma0, ESA thermal noise removed ({correction})", "units": "dB",
            "polarisation": pol, "channel": channel})
    if not any(np.isfinite(v[1]).any() for v in data_vars.values()):
        raise InputError(product.path, "has no valid pixel (every DN is 0)")
    data_vars.update(_grid_variables(grid, k))
    a = product.attrs
    start = str(np.datetime64(a["start_time"], "s"))
    attrs = {
        "product_name": product.name, "original_id": product.name, "mission": a["mission"], "mode": a["mode"],
        "product_type": a["product_type"], "polarisations": " ".join(a["polarisations"]),
        "channels": " ".join(channels), "acquisition_start": a["start_time"], "acquisition_stop": a["stop_time"],
        "acquisition_time": start.replace("-", "").replace(":", ""), "ipf_version": a["ipf_version"],
        "pixel_spacing": np.int32(OUTPUT_SPACING_M * int(downsample)),
        "source_pixel_spacing": np.float32(spacing), "multilook_factor": np.int32(k),
        "noise_correction": applied[0] if len(set(applied)) == 1 else " ".join(applied),
        "noise_correction_comment": (
            "range_azimuth: noise range LUT (bilinear) x the noise azimuth LUT block of each sub-swath on its "
            "own samples (IPF >= 2.9); range: range LUT only (older IPF); ESA tables, not NERSC's de-noising"),
        "sigma0_floor_db": np.float32(SIGMA0_FLOOR_DB),
        "source": "tfseaice.data.sentinel1.read_product (docs/sentinel1.md)",
    }
    return xr.Dataset(data_vars=data_vars, attrs=attrs)
