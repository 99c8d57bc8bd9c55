"""Thermal-noise tables of a Sentinel-1 GRD product: range LUT x per-sub-swath azimuth LUT blocks.

Why written by hand and not taken from xarray-sentinel (0.9.x): its
`noise_range` group requires every noise range vector to share one pixel
grid, which GRD products from IPF 2.9 on do not (each vector has its own
pixel list; it raises "Unable to organise noise vectors in a regular
line-pixel grid"), and its `noise_azimuth` group keeps only the first
`noiseAzimuthVector` ("BROKEN: GRDs have line and noise_azimuth_lut of
different size, we take the first one") — one sub-swath's block applied to
the whole image, which is the error tests/test_sentinel1_reader.py catches.
Its bundled noise XSD also knows only the IPF >= 2.9 layout.

What is done (docs/sentinel1.md; ESA "Thermal Denoising of Products Generated
by the S-1 IPF", MPC-0392, and the Product Specification S1-RS-MDA-52-7441):
- IPF >= 2.9 (`noiseRangeVectorList` + `noiseAzimuthVectorList`): the range LUT
  is interpolated bilinearly (each vector along its own pixels, then between
  vector lines); each azimuth vector is a block with its swath,
  firstAzimuthLine/lastAzimuthLine, firstRangeSample/lastRangeSample and a LUT
  on its `line` list, linear in lines, and multiplies the range noise of its
  own samples only. Samples in no block keep the range noise (gain 1).
- Older products (`noiseVectorList` / `noiseLut`): range only.
The file is parsed with ElementTree (both layouts, and fast on the MB-sized
noise files of real products).
"""

import dataclasses
import io
import os
from xml.etree import ElementTree

import numpy as np

from tfseaice.data.sentinel1_calibration import LineInterpolator, along_pixels
from tfseaice.errors import InputError

RANGE_AZIMUTH, RANGE_ONLY, NO_NOISE = "range_azimuth", "range", "none"
NOISE_CORRECTIONS = ("auto", RANGE_AZIMUTH, RANGE_ONLY, NO_NOISE)


@dataclasses.dataclass
class AzimuthBlock:
    swath: str
    first_line: int
    last_line: int
    first_sample: int
    last_sample: int
    lines: np.ndarray
    lut: np.ndarray


@dataclasses.dataclass
class NoiseTables:
    range_lut: LineInterpolator
    blocks: list          # [AzimuthBlock]; empty for IPF < 2.9 layouts
    layout: str           # "ipf>=2.9" or "ipf<2.9"


def _floats(el, tag):
    return np.array((el.findtext(tag) or "").split(), np.float64)


def parse_noise(product, noise_path, width):
    """NoiseTables of one polarisation's noise file."""
    data = product.read_bytes(noise_path, "noise file")
    name = os.path.basename(noise_path)
    try:
        root = ElementTree.parse(io.BytesIO(data)).getroot()
    except ElementTree.ParseError as exc:
        raise InputError(product.path, f"noise file {name} cannot be parsed ({exc})") from None
    vectors = root.findall("./noiseRangeVectorList/noiseRangeVector")
    lut_tag, layout = "noiseRangeLut", "ipf>=2.9"
    if not vectors:
        vectors, lut_tag, layout = root.findall("./noiseVectorList/noiseVector"), "noiseLut", "ipf<2.9"
    if not vectors:
        raise InputError(product.path, f"noise file {name} has no noise range vectors")
    lines, rows = [], []
    for v in vectors:
        pixels, values = _floats(v, "pixel"), _floats(v, lut_tag)
        if len(pixels) == 0 or len(pixels) != len(values):
            raise InputError(product.path, f"noise file {name}: a range vector has {len(pixels)} pixels and "
                                           f"{len(values)} values")
        lines.append(float(v.findtext("line")))
        rows.append(along_pixels(pixels, values, width))
    blocks = []
    for b in root.findall("./noiseAzimuthVectorList/noiseAzimuthVector"):
        blines, lut = _floats(b, "line"), _floats(b, "noiseAzimuthLut")
        if len(blines) == 0 or len(blines) != len(lut):
            raise InputError(product.path, f"noise file {name}: an azimuth vector has {len(blines)} lines and "
                                           f"{len(lut)} values")
        get = lambda tag, default: int(b.findtext(tag) or default)  # noqa: E731
        blocks.append(AzimuthBlock(swath=b.findtext("swath") or "", first_line=get("firstAzimuthLine", 0),
                                   last_line=get("lastAzimuthLine", 2**31), first_sample=get("firstRangeSample", 0),
                                   last_sample=get("lastRangeSample", width - 1), lines=blines, lut=lut))
    return NoiseTables(LineInterpolator(lines, rows), blocks, layout)


def apply_azimuth_blocks(noise, lines, blocks):
    """Multiply `noise` [B, W] (lines `lines`) by each block's azimuth LUT on its own lines and samples."""
    l0, l1 = lines[0], lines[-1]
    for b in blocks:
        if b.last_line < l0 or b.first_line > l1:
            continue
        rows = (lines >= b.first_line) & (lines <= b.last_line)
        gain = np.interp(lines[rows], b.lines, b.lut).astype(np.float32)
        r = np.flatnonzero(rows)
        noise[r[0]:r[-1] + 1, b.first_sample:b.last_sample + 1] *= gain[:, None]
    return noise


def choose_correction(requested, tables, product):
    """The correction applied: `auto` = range x azimuth blocks when the product has them, else range only."""
    if requested not in NOISE_CORRECTIONS:
        raise ValueError(f"noise_correction must be one of {NOISE_CORRECTIONS}, got {requested!r}")
    if requested == "auto":
        return RANGE_AZIMUTH if tables.blocks else RANGE_ONLY
    if requested == RANGE_AZIMUTH and not tables.blocks:
        raise InputError(product.path, f"has no noise azimuth blocks (IPF {product.attrs['ipf_version']}); "
                                       "use range-only noise correction")
    return requested


def noise_at(tables, lines, correction):
    """Noise power (DN^2) [B, W] float32 for image lines `lines` under `correction`, or None for none."""
    if correction == NO_NOISE:
        return None
    noise = tables.range_lut.at(lines)
    if correction == RANGE_AZIMUTH:
        apply_azimuth_blocks(noise, np.asarray(lines, np.float64), tables.blocks)
    return noise
