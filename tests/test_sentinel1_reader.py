"""Sentinel-1 GRD reader (tfseaice.data.sentinel1) against sample products with known sigma0.

The products are written by tfseaice.simulate.safe_products from seeded
sigma0 made here: smooth HH, HV with a noise-dominated band (true HV 9 dB
under the noise) across every sub-swath, a strip far under the noise (the
floor) and a no-data border (DN 0). Each check is one that a wrong chain
fails: skipping the noise or applying one sub-swath's azimuth block to every
sample is run here too and must break the calibration bound.
"""

import os
import shutil

import numpy as np
import pytest
import xmlschema
from xarray_sentinel import esa_safe

from tfseaice.data import sentinel1, sentinel1_noise, sentinel1_safe
from tfseaice.data.scene_grids import gcp_lat_lon
from tfseaice.errors import InputError
from tfseaice.simulate import safe_products
from tfseaice.simulate.safe_products import MODES, seam_samples, write_safe_product

H, W = 480, 600            # EW product, 40 m
NODATA_COLS = 12           # DN 0 at the near-range edge
NOISE_ROWS = slice(0, 200)  # HV -33 dB: noise-dominated (NESZ about -24 dB)
FLOOR_ROWS = slice(440, 480)  # HV -60 dB: far under the noise, must hit the floor
BOUND_DB = 0.2
START = "2020-02-03T04:05:06"


def _latlon(lines, samples):
    """Truth geolocation: a gently curved grid (bilinear between 21 x 21 points is within 1e-3 deg)."""
    lat = 72.0 + lines * 40 / 111320.0 - samples * 5 / 111320.0 + 1e-9 * samples ** 2
    lon = -15.0 + samples * 40 / (111320.0 * np.cos(np.radians(lat))) + lines * 3e-6
    return lat, lon


def _grid(shape, spacing_m=40.0):
    gl = np.linspace(0, shape[0] - 1, 21).round()
    gs = np.linspace(0, shape[1] - 1, 21).round()
    L, S = np.meshgrid(gl, gs, indexing="ij")
    lat, lon = _latlon(L * spacing_m / 40, S * spacing_m / 40)
    return dict(grid_lines=gl, grid_samples=gs, lat=lat, lon=lon, incidence=19.0 + 27.0 * S / (shape[1] - 1))


def _truth(seed, shape=(H, W)):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:shape[0], 0:shape[1]] / np.array(shape).reshape(2, 1, 1)
    hh_db = -14.0 - 4.0 * x + 1.5 * np.sin(6 * y + rng.uniform(0, 6)) + rng.normal(0, 1.0, shape)
    hv_db = -21.0 - 3.0 * x + 1.0 * np.cos(5 * y) + rng.normal(0, 1.0, shape)
    hv_db[NOISE_ROWS] = -33.0 + rng.normal(0, 0.5, hv_db[NOISE_ROWS].shape)
    hv_db[FLOOR_ROWS] = -60.0
    hh, hv = 10 ** (hh_db / 10), 10 ** (hv_db / 10)
    hh[:, :NODATA_COLS] = np.nan
    hv[:, :NODATA_COLS] = np.nan
    return hh, hv


@pytest.fixture(scope="module")
def ew(tmp_path_factory):
    d = tmp_path_factory.mktemp("ew")
    hh, hv = _truth(1)
    kw = dict(sigma0_hh=hh, sigma0_hv=hv, start_time=START, seed=7, **_grid(hh.shape))
    folder = write_safe_product(d, **kw)
    zipped = write_safe_product(d, zip=True, **kw)
    return dict(folder=folder, zip=zipped, hh=hh, hv=hv, kw=kw, dir=d)


def _db_blocks(power, f):
    h, w = power.shape[0] // f * f, power.shape[1] // f * f
    b = power[:h, :w].reshape(h // f, f, w // f, f).mean(axis=(1, 3))
    return 10 * np.log10(b)


def _biases(ds, hh, hv, f=2):
    """Median dB bias (read - truth) at 40 m x f per (channel, region, sub-swath)."""
    out = {}
    edges = np.r_[0, seam_samples("EW", hh.shape[1]), hh.shape[1]] // f
    regions = {"HH": {"all": slice(None)},
               "HV": {"noise": slice(NOISE_ROWS.start // f, NOISE_ROWS.stop // f),
                      "signal": slice(NOISE_ROWS.stop // f, FLOOR_ROWS.start // f)}}
    for var, pol, truth in (("nersc_sar_primary", "HH", hh), ("nersc_sar_secondary", "HV", hv)):
        diff = ds[var].values - _db_blocks(truth, f)
        for region, rows in regions[pol].items():
            for k in range(len(edges) - 1):
                block = diff[rows, max(edges[k], NODATA_COLS // f + 1):edges[k + 1]]
                out[(pol, region, MODES["EW"]["swaths"][k])] = float(np.nanmedian(block))
    return out


# ----------------------------------------------------------------- calibration and noise

def test_sigma0_recovered_at_80m_in_every_sub_swath(ew):
    ds = sentinel1.read_product(ew["folder"], downsample=2)
    assert ds.attrs["pixel_spacing"] == 80 and ds.attrs["noise_correction"] == "range_azimuth"
    biases = _biases(ds, ew["hh"], ew["hv"])
    assert len(biases) == 15
    bad = {k: round(v, 3) for k, v in biases.items() if abs(v) >= BOUND_DB}
    assert not bad, bad


def test_skipping_the_noise_breaks_the_bound(ew):
    ds = sentinel1.read_product(ew["folder"], downsample=2, noise_correction="none")
    biases = _biases(ds, ew["hh"], ew["hv"])
    assert min(v for k, v in biases.items() if k[1] == "noise") > 3.0   # noise 9 dB over the signal


def test_one_azimuth_block_for_every_sample_breaks_the_bound(ew, monkeypatch):
    """xarray-sentinel's noise_azimuth group keeps the first block only: that must fail the check."""
    def first_block_everywhere(noise, lines, blocks):
        b = blocks[0]
        noise *= np.interp(lines, b.lines, b.lut).astype(np.float32)[:, None]
        return noise

    monkeypatch.setattr(sentinel1_noise, "apply_azimuth_blocks", first_block_everywhere)
    biases = _biases(sentinel1.read_product(ew["folder"], downsample=2), ew["hh"], ew["hv"])
    wrong = [k for k, v in biases.items() if abs(v) >= BOUND_DB]
    assert {k[2] for k in wrong} >= {"EW2", "EW3", "EW4", "EW5"}, biases
    assert abs(biases[("HV", "noise", "EW1")]) < BOUND_DB   # its own block is right


def test_ignoring_the_blocks_line_bounds_breaks_the_bound(ew, monkeypatch):
    """Each sub-swath has two azimuth blocks (segments); applying both to every line must fail."""
    tables = sentinel1_noise.parse_noise(sentinel1_safe.SafeProduct(ew["folder"]), _noise_file(ew["folder"]), W)
    assert len(tables.blocks) == 10 and len({(b.first_line, b.last_line) for b in tables.blocks}) == 2

    def all_lines(noise, lines, blocks):
        for b in blocks:
            noise[:, b.first_sample:b.last_sample + 1] *= np.interp(lines, b.lines, b.lut).astype(np.float32)[:, None]
        return noise

    monkeypatch.setattr(sentinel1_noise, "apply_azimuth_blocks", all_lines)
    biases = _biases(sentinel1.read_product(ew["folder"], downsample=2), ew["hh"], ew["hv"])
    assert sum(abs(v) >= BOUND_DB for v in biases.values()) >= 4, biases


def _noise_file(folder):
    d = os.path.join(folder, "annotation", "calibration")
    return os.path.join(d, next(n for n in sorted(os.listdir(d)) if n.startswith("noise-") and "-hv-" in n))


def test_range_only_leaves_a_bias_where_the_azimuth_gain_is_not_1(ew):
    biases = _biases(sentinel1.read_product(ew["folder"], downsample=2, noise_correction="range"), ew["hh"], ew["hv"])
    # azimuth gain 1.35 in EW3: noise left over; 0.70 in EW1: too much removed.
    assert biases[("HV", "noise", "EW3")] > 1.0 and biases[("HV", "noise", "EW1")] < -1.0


def test_no_data_is_nan_and_the_swath_never_is(ew):
    ds = sentinel1.read_product(ew["folder"])
    hv = ds["nersc_sar_secondary"].values
    assert np.isnan(hv[:, :NODATA_COLS]).all()
    inside = hv[:, NODATA_COLS:]
    assert np.isfinite(inside).all() and np.isfinite(ds["nersc_sar_primary"].values[:, NODATA_COLS:]).all()
    assert inside.min() == np.float32(sentinel1.SIGMA0_FLOOR_DB)
    assert np.median(hv[FLOOR_ROWS, NODATA_COLS:]) == np.float32(sentinel1.SIGMA0_FLOOR_DB)
    assert (inside[NOISE_ROWS] > sentinel1.SIGMA0_FLOOR_DB).mean() > 0.95


def test_old_ipf_is_corrected_in_range_only(tmp_path):
    hh, hv = _truth(2)
    path = write_safe_product(tmp_path, sigma0_hh=hh, sigma0_hv=hv, start_time=START, seed=3, ipf="2.84",
                              **_grid(hh.shape))
    ds = sentinel1.read_product(path, downsample=2)
    assert ds.attrs["noise_correction"] == "range" and ds.attrs["ipf_version"] == "2.84"
    assert max(abs(v) for v in _biases(ds, hh, hv).values()) < BOUND_DB
    with pytest.raises(InputError, match="no noise azimuth blocks"):
        sentinel1.read_product(path, noise_correction="range_azimuth")


# ----------------------------------------------------------------- geometry, layout, formats

def test_geolocation_within_a_thousandth_of_a_degree(ew):
    ds = sentinel1.read_product(ew["folder"])
    lat, lon = gcp_lat_lon(ds, ew["folder"], (H, W), 1)
    tl, tn = _latlon(*np.mgrid[0:H, 0:W].astype(np.float64))
    assert np.abs(lat - tl).max() < 1e-3 and np.abs(lon - tn).max() < 1e-3
    g = _grid((H, W))
    np.testing.assert_allclose(ds["sar_grid_latitude"].values, g["lat"].ravel(), atol=1e-8)
    assert ds.sizes["sar_grid_points"] == 441 and ds["sar_grid_incidenceangle"].values.max() == pytest.approx(46.0)


def test_iw_10m_is_multilooked_4x4_to_40m(tmp_path):
    shape = (800, 960)
    rng = np.random.default_rng(5)
    hh = 10 ** (-12 / 10) * rng.gamma(1.0, 1.0, shape)      # single-look speckle at 10 m
    hv = 10 ** (-22 / 10) * rng.gamma(1.0, 1.0, shape)
    path = write_safe_product(tmp_path, mode="IW", sigma0_hh=hh, sigma0_hv=hv, start_time=START, seed=4,
                              **_grid(shape, spacing_m=10.0))
    assert os.path.basename(path).startswith("S1A_IW_GRDH_1SDH_")
    ds = sentinel1.read_product(path)
    assert ds["nersc_sar_primary"].shape == (200, 240) and ds.attrs["multilook_factor"] == 4
    for var, truth in (("nersc_sar_primary", hh), ("nersc_sar_secondary", hv)):
        diff = ds[var].values - _db_blocks(truth, 4)
        assert abs(np.median(diff)) < 0.05 and np.percentile(np.abs(diff), 99) < 0.5
    # product line L -> output (L - 1.5) / 4: the output pixel centres meet the truth geolocation.
    lat, lon = gcp_lat_lon(ds, path, (200, 240), 1)
    tl, tn = _latlon(*(np.mgrid[0:200, 0:240] * 4 + 1.5) / 4.0)
    assert np.abs(lat - tl).max() < 1e-3 and np.abs(lon - tn).max() < 1e-3
    assert ds["sar_grid_line"].values.min() == pytest.approx(-0.375)


def test_zip_reads_like_the_folder(ew):
    a, b = sentinel1.read_product(ew["folder"]), sentinel1.read_product(ew["zip"])
    for name in a.data_vars:
        np.testing.assert_array_equal(a[name].values, b[name].values)
    assert a.attrs["product_name"] == b.attrs["product_name"]


def test_vv_vh_product(tmp_path, ew):
    path = write_safe_product(tmp_path, polarisations=("VV", "VH"), sigma0_hh=ew["hh"], sigma0_hv=ew["hv"],
                              start_time=START, seed=7, **_grid((H, W)))
    assert "_1SDV_" in os.path.basename(path)
    ds = sentinel1.read_product(path, channels=("vv", "vh"))
    assert ds["nersc_sar_primary"].attrs["polarisation"] == "VV" and ds.attrs["polarisations"] == "VV VH"
    ref = sentinel1.read_product(ew["folder"])
    np.testing.assert_array_equal(ds["nersc_sar_secondary"].values, ref["nersc_sar_secondary"].values)
    with pytest.raises(InputError, match=r"VV and VH only; channels hh, hv need HH and HV") as err:
        sentinel1.read_product(path)
    assert os.path.basename(path) in str(err.value)


def test_product_info_reads_the_manifest_only(ew):
    info = sentinel1.product_info(ew["zip"])
    assert (info["mission"], info["mode"], info["product_type"], info["polarisations"]) == ("S1A", "EW", "GRD",
                                                                                           ("HH", "HV"))
    assert info["start_time"].startswith(START) and info["stop_time"] > info["start_time"]
    g = _grid((H, W))
    assert info["footprint_lat"][0] == pytest.approx(g["lat"][0, 0], abs=1e-5)
    assert info["footprint_lon"][2] == pytest.approx(g["lon"][-1, -1], abs=1e-5)
    assert info["name"] == os.path.basename(ew["folder"])[:-5]


def test_calibration_and_noise_files_validate_against_the_esa_xsds(ew):
    ann = os.path.join(ew["folder"], "annotation", "calibration")
    for name in sorted(os.listdir(ann)):
        kind = name.split("-")[0]
        schema = esa_safe.cached_sentinel1_schemas(kind)
        schema.validate(os.path.join(ann, name))          # raises on any deviation
    broken = open(os.path.join(ann, sorted(os.listdir(ann))[0])).read().replace("<sigmaNought", "<sigmaZero", 1)
    broken = broken.replace("</sigmaNought>", "</sigmaZero>", 1)
    with pytest.raises(xmlschema.XMLSchemaValidationError):
        esa_safe.cached_sentinel1_schemas("calibration").validate(broken)


# ----------------------------------------------------------------- bad input

def _copy(ew, tmp_path):
    dst = tmp_path / os.path.basename(ew["folder"])
    shutil.copytree(ew["folder"], dst)
    return str(dst)


def _remove(pattern):
    def damage(path):
        for root, _, names in os.walk(path):
            for n in names:
                if n.startswith(pattern) and "-hv-" in n:
                    os.remove(os.path.join(root, n))
        return path
    return damage


def _truncate_tiff(path):
    meas = os.path.join(path, "measurement")
    tiff = os.path.join(meas, sorted(os.listdir(meas))[-1])
    with open(tiff, "r+b") as f:
        f.truncate(os.path.getsize(tiff) // 2)
    return path


def _manifest(text_from, text_to):
    def damage(path):
        m = os.path.join(path, "manifest.safe")
        text = open(m).read()
        assert text_from in text
        open(m, "w").write(text.replace(text_from, text_to))
        return path
    return damage


def _garbage_manifest(path):
    open(os.path.join(path, "manifest.safe"), "w").write('<?xml version="1.0"?>\n<xfdu:XFDU xmlns:xfdu="urn:x"><meta')
    return path


S2_PLATFORM = ("<safe:familyName>SENTINEL-1</safe:familyName><safe:number>A</safe:number>",
               "<safe:familyName>SENTINEL-2</safe:familyName><safe:number>A</safe:number>")


@pytest.mark.parametrize("damage, what", [
    (_remove("calibration-"), "no calibration file for HV"),
    (_remove("noise-"), "no noise file for HV"),
    (_truncate_tiff, "measurement .*hv.*tiff is cut short"),
    (_garbage_manifest, "manifest.safe cannot be parsed"),
    (_manifest(*S2_PLATFORM), "not a Sentinel-1 product .*SENTINEL-2"),
    (_manifest("<safe:number>A</safe:number>", "<safe:number>X</safe:number>"), "Sentinel-1X, not one of"),
    (_manifest("<s1sarl1:productType>GRD<", "<s1sarl1:productType>SLC<"), "SLC product; only GRD"),
], ids=["no_calibration", "no_noise", "tiff_cut_short", "manifest_unreadable", "sentinel2", "mission_x", "slc"])
def test_bad_folder_is_one_line_naming_the_file(ew, tmp_path, damage, what):
    path = damage(_copy(ew, tmp_path))
    with pytest.raises(InputError, match=what) as err:
        sentinel1.read_product(path)
    assert err.value.path == path and "\n" not in str(err.value)


def test_truncated_zip(ew, tmp_path):
    data = open(ew["zip"], "rb").read()
    path = str(tmp_path / os.path.basename(ew["zip"]))
    open(path, "wb").write(data[: len(data) * 2 // 3])
    with pytest.raises(InputError, match="not a complete .zip|damaged .zip") as err:
        sentinel1.read_product(path)
    assert err.value.path == path and "\n" not in str(err.value)


def test_single_pol_product_when_two_channels_are_asked(tmp_path, ew):
    path = write_safe_product(tmp_path, sigma0_hh=ew["hh"], start_time=START, seed=2, **_grid((H, W)))
    assert "_1SSH_" in os.path.basename(path)
    assert sentinel1.read_product(path, channels=("hh",))["nersc_sar_primary"].shape == (H, W)
    with pytest.raises(InputError, match="has polarisation HH only; channels hh, hv need HV") as err:
        sentinel1.read_product(path)
    assert err.value.path == path


def test_slc_written_by_the_writer_is_refused(tmp_path, ew):
    path = write_safe_product(tmp_path, sigma0_hh=ew["hh"], product_type="SLC", start_time=START, seed=2,
                              **_grid((H, W)))
    assert "_EW_SLC__1SSH_" in os.path.basename(path)
    assert sentinel1.product_info(path)["product_type"] == "SLC"      # metadata is still readable
    with pytest.raises(InputError, match="is an SLC product; only GRD"):
        sentinel1.read_product(path, channels=("hh",))


# ----------------------------------------------------------------- products of the sample scenes

def test_sample_scene_product_gives_the_scene_back(tmp_path):
    from tfseaice.simulate import sample_products, scenes

    ds = scenes.make_scene(11, 128)
    path = sample_products.product_from_scene(ds, tmp_path, zip=True)
    assert ds.attrs["acquisition_time"] in os.path.basename(path)
    out = sentinel1.read_product(path)
    for var in ("nersc_sar_primary", "nersc_sar_secondary"):
        a, b = out[var].values, ds[var].values
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
        assert abs(np.nanmedian(a - b)) < 0.05
    lat, lon = gcp_lat_lon(out, path, (128, 128), 1)
    lat0, lon0 = gcp_lat_lon(ds, "scene", (128, 128), 1)
    assert np.abs(lat - lat0).max() < 1e-3 and np.abs(lon - lon0).max() < 1e-3
    assert safe_products.seam_samples("EW", 128).tolist() == [29, 54, 78, 102]
