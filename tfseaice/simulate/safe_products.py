"""Sample Sentinel-1 GRD products (SAFE folders or .zip) whose calibrated, de-noised sigma0 is known.

Why: no real product can be shipped with the tests, and a reader can only be
checked against a product whose sigma0 is known. Given sigma0 (linear power,
at the product's pixel spacing) and a geolocation grid, the writer draws a
calibration LUT and a thermal-noise field and writes the digital numbers

    DN = round(sqrt(sigma0 * A^2 + N)),   N = noise range LUT x noise azimuth LUT

(the inverse of the Sentinel-1 Product Specification's sigma0 = (DN^2 - N) / A^2,
S1-RS-MDA-52-7441 and ESA's MPC-0392 for the noise tables), with A and N the
bilinear interpolation of the LUT vectors written to the XML. Only DN rounding
separates what a correct reader returns from the input. The noise added is its
expected value (no noise speckle). Noise range vectors get irregular pixel
positions per line, as real IPF >= 2.9 products have, and each sub-swath's
azimuth block gets its own level (AZIMUTH_GAIN), so that a reader applying one
block to every sample, or skipping the noise, is caught in a noise-dominated
HV region. Each sub-swath has two azimuth segments (blocks with their own
first/last line, the inner seams moved by width/150 samples in the second, its
gain 12 % higher), as real products have several blocks per sub-swath along
azimuth: a reader that ignores the blocks' line bounds is caught too.
IPF < 2.9: the old range-only noise layout.

Layout (docs/sentinel1.md): NAME.SAFE/manifest.safe, annotation/*.xml,
annotation/calibration/{calibration,noise}-*.xml, measurement/*.tiff (uint16,
the geolocation grid as GCPs in EPSG:4326).
"""

import hashlib
import os
import shutil
import tempfile
import zipfile
import zlib

import numpy as np
import rasterio
from rasterio.control import GroundControlPoint
from scipy.interpolate import interp1d

from tfseaice import io_utils
from tfseaice.simulate import safe_xml

MODES = {  # pixel spacing (m), product class letter, sub-swaths and their bounds (fraction of width), line time, A level
    "EW": dict(spacing=40.0, resolution="M", swaths=("EW1", "EW2", "EW3", "EW4", "EW5"),
               bounds=(0.0, 0.23, 0.42, 0.61, 0.80, 1.0), dt=5.99e-3, a0=420.0),
    "IW": dict(spacing=10.0, resolution="H", swaths=("IW1", "IW2", "IW3"),
               bounds=(0.0, 0.36, 0.69, 1.0), dt=1.4984e-3, a0=520.0),
}
AZIMUTH_GAIN = {"EW": (0.70, 1.00, 1.35, 0.85, 1.20), "IW": (0.75, 1.25, 0.95)}  # distinct per block
SEGMENT_STEP = 0.12      # azimuth segment j of a sub-swath: gain x (1 + 0.12 j); two segments per sub-swath
NESZ_DB = -24.0          # noise-equivalent sigma0 at a sub-swath centre; +3 dB at its edges (scalloping)
BLOCK_LINES = 1024
POLARISATION_CODES = {("HH", "HV"): "DH", ("HH",): "SH", ("VV", "VH"): "DV", ("VV",): "SV"}
REP_IDS = {"annotation": "s1Level1ProductSchema", "calibration": "s1Level1CalibrationSchema",
           "noise": "s1Level1NoiseSchema", "measurement": "s1Level1MeasurementSchema"}


def seam_samples(mode, width):
    """Samples where a sub-swath ends and the next begins in the first azimuth segment (noise block edges)."""
    return (np.asarray(MODES[mode]["bounds"][1:-1]) * width).round().astype(int)


def product_name(mission, mode, product_type, polarisations, start, stop, orbit, take, crc):
    """`S1A_EW_GRDM_1SDH_<start>_<stop>_<orbit>_<take>_<crc>` (Product Specification naming)."""
    kind = f"GRD{MODES[mode]['resolution']}" if product_type == "GRD" else f"{product_type:_<4}"
    fmt = lambda t: str(np.datetime64(t, "s")).replace("-", "").replace(":", "")  # noqa: E731
    return (f"{mission}_{mode}_{kind}_1S{POLARISATION_CODES[tuple(polarisations)]}_{fmt(start)}_{fmt(stop)}_"
            f"{orbit:06d}_{take:06X}_{crc:04X}")


class NoiseModel:
    """The calibration and noise tables of one product, and their bilinear interpolation (writer side)."""

    def __init__(self, rng, mode, height, width, ipf_new):
        m = MODES[mode]
        self.mode, self.height, self.width, self.ipf_new = mode, height, width, ipf_new
        pix_step = 40 if width >= 2000 else max(4, width // 24)
        self.cal_pixels = np.unique(np.r_[np.arange(0, width, pix_step), width - 1])
        self.cal_lines = _vector_lines(height, rng)
        x = self.cal_pixels / max(width - 1, 1)
        level = m["a0"] * rng.uniform(0.9, 1.1)
        tilt = rng.uniform(0.02, 0.05)
        self.cal_sigma = np.stack([level * (1 + 0.35 * x) * (1 + tilt * np.sin(2 * np.pi * li / max(height, 1)))
                                   for li in self.cal_lines]).astype(np.float32)
        edges = (np.asarray(m["bounds"]) * width).round().astype(int)
        self.swath_edges = edges
        self.range_vectors = []
        for line in _vector_lines(height, rng):
            pixels = np.unique(np.r_[0, np.sort(rng.choice(np.arange(1, width - 1), size=min(width - 2, max(
                8, width // pix_step + int(rng.integers(-3, 4)))), replace=False)), width - 1])
            self.range_vectors.append((int(line), pixels, self._range_noise(line, pixels, rng)))
        self.azimuth_blocks = []
        if ipf_new:
            for j, (first, last, e) in enumerate(self._segments(rng, edges)):
                for k, name in enumerate(m["swaths"]):
                    lines = np.unique(np.r_[np.arange(first, last + 1, max(1, height // 12)), last])
                    wobble = 1 + 0.08 * np.sin(2 * np.pi * lines / max(height, 1) * (k + 1) + rng.uniform(0, 6))
                    self.azimuth_blocks.append(dict(
                        swath=name, first_line=int(first), last_line=int(last), first_sample=int(e[k]),
                        last_sample=int(e[k + 1]) - 1, lines=lines,
                        lut=(AZIMUTH_GAIN[mode][k] * (1 + SEGMENT_STEP * j) * wobble).astype(np.float32)))

    def _segments(self, rng, edges):
        """(first line, last line, sub-swath edges) of each azimuth segment: the seams move between them."""
        height, width = self.height, self.width
        if height < 8:
            return [(0, height - 1, edges)]
        split = height // 2 + int(rng.integers(-(height // 8), height // 8 + 1))
        moved = np.r_[edges[0], edges[1:-1] + max(1, width // 150), edges[-1]]
        return [(0, split - 1, edges), (split, height - 1, moved)]

    def _range_noise(self, line, pixels, rng):
        """Noise range LUT (DN^2): NESZ with a scalloped profile per sub-swath, times A^2."""
        edges = self.swath_edges
        k = np.clip(np.searchsorted(edges, pixels, side="right") - 1, 0, len(edges) - 2)
        pos = (pixels - edges[k]) / np.maximum(edges[k + 1] - edges[k], 1)
        nesz_db = NESZ_DB + 3.0 * (2 * pos - 1) ** 2 + 0.4 * k - 1.0
        a = interp1d(self.cal_pixels, self.cal_sigma, axis=1)(pixels)
        a = interp1d(self.cal_lines, a, axis=0)(np.clip(line, self.cal_lines[0], self.cal_lines[-1]))
        return (10 ** (nesz_db / 10) * a ** 2).astype(np.float32)

    def cal_squared(self, lines):
        """A^2 [len(lines), width] float64, bilinear in the sigmaNought vectors."""
        rows = interp1d(self.cal_pixels, self.cal_sigma.astype(np.float64), axis=1)(np.arange(self.width))
        return interp1d(self.cal_lines, rows, axis=0)(lines) ** 2

    def noise(self, lines):
        """N [len(lines), width] float64: range LUT (bilinear) x each block's azimuth LUT on its lines and samples."""
        vec_lines = np.array([v[0] for v in self.range_vectors], np.float64)
        rows = np.stack([np.interp(np.arange(self.width), p, v) for _, p, v in self.range_vectors])
        n = interp1d(vec_lines, rows, axis=0)(lines)
        for b in self.azimuth_blocks:
            rows = (lines >= b["first_line"]) & (lines <= b["last_line"])
            if not rows.any():
                continue
            f = interp1d(b["lines"], b["lut"].astype(np.float64), bounds_error=False,
                         fill_value=(float(b["lut"][0]), float(b["lut"][-1])))
            r = np.flatnonzero(rows)                      # lines are consecutive: one slice of rows
            n[r[0]:r[-1] + 1, b["first_sample"]:b["last_sample"] + 1] *= f(lines[rows])[:, None]
        return n


def _vector_lines(height, rng):
    """Lines of LUT vectors: about every height/10 lines (real: ~1 s), first at 0, last at or past the end."""
    step = max(2, height // int(rng.integers(8, 12)))
    return np.unique(np.r_[np.arange(0, height, step), height - 1 + int(rng.integers(0, 3))]).astype(np.int64)


def _grid(values, lines, samples, shape):
    """`values` on the grid points: sampled there if image-sized, else already [len(lines), len(samples)]."""
    a = np.asarray(values, np.float64)
    if a.ndim == 0:
        return np.full((len(lines), len(samples)), float(a))
    if a.shape == tuple(shape):
        return a[np.ix_(lines, samples)]
    if a.shape != (len(lines), len(samples)):
        raise ValueError(f"geolocation array {a.shape} is neither the image {shape} nor the grid "
                         f"{(len(lines), len(samples))}")
    return a


def write_safe_product(out_dir, *, sigma0_hh, sigma0_hv=None, lat, lon, incidence, start_time, seed=0,
                       mode="EW", polarisations=None, ipf="3.71", zip=False, height_m=0.0, grid_lines=None,
                       grid_samples=None, product_type="GRD", mission="S1A", orbit=None, overwrite=False,
                       block_lines=BLOCK_LINES, shape=None):
    """Write a Sentinel-1 GRD product; return the path of its `.SAFE` folder (or `.zip` with zip=True).

    sigma0_hh / sigma0_hv: linear sigma0 [lines, samples] at the product's pixel spacing (EW 40 m, IW 10 m),
    NaN = outside the swath (DN 0); or callables f(l0, l1) -> rows [l1 - l0, samples] with `shape` given
    (full-size products without whole-image arrays, bench/sentinel1_read.py). `sigma0_hh` is the co-polarised channel: HH, or VV with
    polarisations=("VV", "VH"); ("HH",) or ("VV",) writes a single-pol product (1SSH / 1SSV).
    lat, lon, incidence (deg), height_m: image-sized arrays (sampled at the grid points) or grid-sized
    [len(grid_lines), len(grid_samples)] (default grid: 21 x 21 integer points spanning the image).
    start_time: numpy datetime64 or ISO string. ipf: "3.71" (IPF >= 2.9: noise azimuth blocks per
    sub-swath) or e.g. "2.84" (range-only noise). product_type="SLC" and mission="S1B".."S1D" exist
    for error tests; the pixels of an "SLC" are still GRD-like (readers refuse it from the manifest).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be EW or IW, got {mode!r}")
    m = MODES[mode]
    sigmas = [sigma0_hh] + ([] if sigma0_hv is None else [sigma0_hv])
    polarisations = tuple(polarisations or (("HH", "HV") if sigma0_hv is not None else ("HH",)))
    if len(polarisations) != len(sigmas) or polarisations not in POLARISATION_CODES:
        raise ValueError(f"polarisations {polarisations} do not match the {len(sigmas)} sigma0 arrays given")
    height, width = shape if callable(sigma0_hh) else np.shape(sigma0_hh)
    rng = np.random.default_rng(seed)
    start = np.datetime64(start_time, "us")
    dt = m["dt"]
    stop = start + np.timedelta64(int(round((height - 1) * dt * 1e6)), "us")
    orbit = int(orbit if orbit is not None else rng.integers(1000, 60000))
    take = int(rng.integers(0x10000, 0xFFFFF))
    major, minor = ipf.split(".")[:2]
    ipf_new = (int(major), int(minor.ljust(2, "0"))) >= (2, 90)     # "2.84" < "2.9" = 2.90 <= "3.71"
    name = product_name(mission, mode, product_type, polarisations, start, stop, orbit, take,
                        zlib.crc32(f"{seed}{start}".encode()) & 0xFFFF)
    p = dict(mission=mission, mode=mode, product_type=product_type, start=start, stop=stop, orbit=orbit,
             take=take, relative_orbit=(orbit - 73) % 175 + 1, polarisations=polarisations, swaths=m["swaths"],
             pass_="DESCENDING", spacing=m["spacing"], dt=dt, width=width, height=height,
             anx=start - np.timedelta64(1800, "s"), ipf_text=f"{int(major):03d}.{minor.ljust(2, '0')}")
    p["pass"] = p.pop("pass_")
    gl = np.asarray(grid_lines if grid_lines is not None else np.linspace(0, height - 1, 21).round(), np.int64)
    gs = np.asarray(grid_samples if grid_samples is not None else np.linspace(0, width - 1, 21).round(), np.int64)
    gcps = _gcp_table(p, gl, gs, *(_grid(v, gl, gs, (height, width)) for v in (lat, lon, incidence, height_m)))
    p["mid_incidence"] = float(np.median(gcps["incidence"]))
    model = NoiseModel(rng, mode, height, width, ipf_new)
    target = os.path.join(out_dir, name + (".zip" if zip else ".SAFE"))
    io_utils.refuse_existing(target, overwrite)
    os.makedirs(out_dir, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{name}.", dir=out_dir)
    os.chmod(tmp, 0o755)
    try:
        files = []
        for image_number, (pol, sigma) in enumerate(zip_(polarisations, sigmas), start=1):
            files += _write_pol(tmp, p, pol, image_number, sigma, model, gcps, block_lines)
        footprint = [(gcps["latitude"][i], gcps["longitude"][i]) for i in _corner_indices(len(gl), len(gs))]
        with open(os.path.join(tmp, "manifest.safe"), "w") as f:
            f.write(safe_xml.manifest_xml(p, files, footprint))
        with io_utils.atomic_path(target) as out:
            if zip:
                _zip_folder(tmp, out, name + ".SAFE")
            else:
                os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


zip_ = zip  # the keyword argument `zip` shadows the builtin inside write_safe_product


def _corner_indices(n_lines, n_samples):
    return [0, n_samples - 1, n_lines * n_samples - 1, (n_lines - 1) * n_samples]


def _gcp_table(p, gl, gs, lat, lon, inc, hgt):
    """Flat geolocation grid (line-major, as the annotation lists it) with times and angles."""
    lines, samples = (a.ravel() for a in np.meshgrid(gl, gs, indexing="ij"))
    return dict(line=lines, pixel=samples, latitude=lat.ravel(), longitude=lon.ravel(), height=hgt.ravel(),
                incidence=inc.ravel(), elevation=inc.ravel() - 3.5,
                azimuth_time=p["start"] + (lines * p["dt"] * 1e6).astype("timedelta64[us]"),
                slant_range_time=4.5e-3 + samples * p["spacing"] * 2.0 / 299792458.0 * 1.3)


def _file_stem(p, pol, image_number):
    fmt = lambda t: str(np.datetime64(t, "s")).replace("-", "").replace(":", "").lower()  # noqa: E731
    kind = "grd" if p["product_type"] == "GRD" else p["product_type"].lower()
    return (f"{p['mission'].lower()}-{p['mode'].lower()}-{kind}-{pol.lower()}-{fmt(p['start'])}-"
            f"{fmt(p['stop'])}-{p['orbit']:06d}-{p['take']:06x}-{image_number:03d}")


def _write_pol(root, p, pol, image_number, sigma, model, gcps, block_lines):
    """One polarisation's annotation, calibration, noise and measurement; their manifest entries."""
    stem = _file_stem(p, pol, image_number)
    times = lambda lines: p["start"] + (np.asarray(lines) * p["dt"] * 1e6).astype("timedelta64[us]")  # noqa: E731
    texts = {
        f"annotation/{stem}.xml": ("annotation", safe_xml.annotation_xml(p, pol, image_number, gcps)),
        f"annotation/calibration/calibration-{stem}.xml": ("calibration", safe_xml.calibration_xml(
            p, pol, image_number, model.cal_lines, model.cal_pixels, model.cal_sigma, times(model.cal_lines))),
        f"annotation/calibration/noise-{stem}.xml": ("noise", safe_xml.noise_xml(
            p, pol, image_number, model.range_vectors, model.azimuth_blocks,
            times([v[0] for v in model.range_vectors]), model.ipf_new)),
    }
    entries = []
    for rel, (kind, text) in texts.items():
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)
        entries.append((REP_IDS[kind], rel, *_size_md5(path)))
    rel = f"measurement/{stem}.tiff"
    _write_measurement(os.path.join(root, rel), sigma, model, gcps, block_lines)
    entries.append((REP_IDS["measurement"], rel, *_size_md5(os.path.join(root, rel))))
    return entries


def _write_measurement(path, sigma, model, gcps, block_lines):
    """uint16 DN GeoTIFF in line blocks, GCPs (EPSG:4326) at the geolocation grid points."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    height, width = model.height, model.width
    points = [GroundControlPoint(row=float(r), col=float(c), x=float(x), y=float(y), z=float(z))
              for r, c, x, y, z in zip(gcps["line"], gcps["pixel"], gcps["longitude"], gcps["latitude"],
                                       gcps["height"])]
    profile = dict(driver="GTiff", width=width, height=height, count=1, dtype="uint16",
                   gcps=points, crs="EPSG:4326")
    with rasterio.open(path, "w", **profile) as dst:
        dst.gcps = (points, rasterio.crs.CRS.from_epsg(4326))
        for l0 in range(0, height, block_lines):
            l1 = min(height, l0 + block_lines)
            lines = np.arange(l0, l1, dtype=np.float64)
            s = np.asarray(sigma(l0, l1) if callable(sigma) else sigma[l0:l1], np.float64)
            finite = np.isfinite(s)
            power = np.maximum(np.where(finite, s, 0.0), 0.0) * model.cal_squared(lines) + model.noise(lines)
            dn = np.clip(np.rint(np.sqrt(power)), 1, 65535).astype(np.uint16)
            dn[~finite] = 0
            dst.write(dn, 1, window=rasterio.windows.Window(0, l0, width, l1 - l0))


def _size_md5(path):
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return os.path.getsize(path), h.hexdigest()


def _zip_folder(folder, zip_path, arc_root):
    """`NAME.zip` holding `NAME.SAFE/...`, as ESA distributes products (deflate)."""
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for dirpath, _, names in sorted(os.walk(folder)):
            for n in sorted(names):
                full = os.path.join(dirpath, n)
                zf.write(full, os.path.join(arc_root, os.path.relpath(full, folder)))
