"""Sample AI4Arctic scenes (tfseaice.simulate) and their CLI (data_prep.make_sample_scenes).

Beyond layout, these check the properties that make the samples useful: the
chart agrees with the pixel truth within chart rounding while truth varies
inside polygons, speckle has ENL ~4.4, wind-roughened water is as bright as
ice in HH while HV water sits at the noise floor, and the backscatter falls
with incidence angle.
"""

import os
import re
import subprocess
import sys

import netCDF4
import numpy as np
import pytest
import xarray as xr
from scipy import ndimage

from tfseaice.data import codes
from tfseaice.simulate import backscatter, writers
from tfseaice.simulate.ancillary import N_GCP
from tfseaice.simulate.ready_to_train import make_ready_to_train
from tfseaice.simulate.scenes import make_scene, raw_file_name, ready_file_name, scene_metadata, scene_seed

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIZE = 384
SEEDS = (11, 12, 13)
RAW_NAME = re.compile(r"^S1A_EW_GRDM_1SDH_(\d{8}T\d{6})_sample_icechart_(dmi|cis)\.nc$")
RTT_NAME = re.compile(r"^(\d{8}T\d{6})_(dmi|cis)_prep\.nc$")
SAR_GRID_VARS = ("nersc_sar_primary", "nersc_sar_secondary", "polygon_icechart", "distance_map", "sic_truth")
GCP_VARS = ("sar_grid_line", "sar_grid_sample", "sar_grid_latitude", "sar_grid_longitude",
            "sar_grid_incidenceangle", "sar_grid_height")
GRID_2KM_VARS = tuple(f"btemp_{f}{p}" for f in ("6_9", "7_3", "10_7", "18_7", "23_8", "36_5", "89_0")
                      for p in "hv") + ("u10m_rotated", "v10m_rotated", "t2m", "skt", "tcwv", "tclw")


@pytest.fixture(scope="module")
def scenes():
    return [make_scene(s, SIZE) for s in SEEDS]


@pytest.fixture(scope="module")
def scene(scenes):
    return scenes[0]


def parse_codes(ds):
    """Independent parse of polygon_codes: header list and {poly_id: row dict}."""
    entries = list(ds["polygon_codes"].values)
    header = entries[0].split(";")
    rows = {}
    for entry in entries[1:]:
        fields = entry.split(";")
        assert len(fields) == len(header), entry
        rows[int(fields[0])] = dict(zip(header, fields))
    return header, rows


def polygon_means(ds):
    """{poly_id: (mean sic_truth over its pixels with finite truth, pixel count)}."""
    ids = ds["polygon_icechart"].values
    truth = ds["sic_truth"].values
    ok = np.isfinite(ids) & np.isfinite(truth)
    out = {}
    for pid in np.unique(ids[np.isfinite(ids)]).astype(int):
        m = ok & (ids == pid)
        out[pid] = (float(truth[m].astype(np.float64).mean()) if m.any() else np.nan, int(m.sum()))
    return out


def blocks(a, b):
    h, w = a.shape[0] // b * b, a.shape[1] // b * b
    return a[:h, :w].reshape(h // b, b, w // b, b).swapaxes(1, 2).reshape(h // b, w // b, b * b)


def incidence_per_sample(ds):
    us = np.unique(ds["sar_grid_sample"].values)
    grid = ds["sar_grid_incidenceangle"].values.reshape(N_GCP, N_GCP)
    return np.interp(np.arange(ds.sizes["sar_samples"]), us, grid[N_GCP // 2])


# ------------------------------------------------------------------ determinism

def test_same_seed_same_scene_different_seed_different():
    a = make_scene(5, 256)
    b = make_scene(5, 256)
    c = make_scene(6, 256)
    for name in a.variables:
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)
    assert a.attrs == b.attrs
    assert not np.array_equal(a["nersc_sar_primary"].values, c["nersc_sar_primary"].values, equal_nan=True)
    assert not np.array_equal(a["sic_truth"].values, c["sic_truth"].values, equal_nan=True)
    assert raw_file_name(a) != raw_file_name(c)


def test_scene_seeds_and_names_differ_per_scene():
    seeds = [scene_seed(7, i) for i in range(20)]
    assert len(set(seeds)) == 20
    assert seeds == [scene_seed(7, i) for i in range(20)]
    assert scene_seed(8, 0) != seeds[0]
    names = {raw_file_name(*scene_metadata(s)) for s in seeds}
    assert len(names) == 20
    for name in names:
        assert RAW_NAME.match(name), name


# ------------------------------------------------------------------ layout

def test_raw_layout(scene):
    n2 = int(np.ceil(SIZE * 40 / 2000))
    assert dict(scene.sizes) == {"sar_lines": SIZE, "sar_samples": SIZE, "sar_grid_points": 441,
                                 "2km_grid_lines": n2, "2km_grid_samples": n2,
                                 "polygon_codes": scene.sizes["polygon_codes"]}
    for name in SAR_GRID_VARS:
        assert scene[name].dims == ("sar_lines", "sar_samples"), name
        assert scene[name].dtype == np.float32, name
    for name in GCP_VARS:
        assert scene[name].dims == ("sar_grid_points",), name
    for name in GRID_2KM_VARS:
        assert scene[name].dims == ("2km_grid_lines", "2km_grid_samples"), name
        assert scene[name].dtype == np.float32 and np.isfinite(scene[name].values).all(), name
    assert scene.attrs["pixel_spacing"] == 40
    assert scene.attrs["ice_service"] in ("dmi", "cis")
    assert "synthetic" in scene.attrs["synthetic"]
    assert scene.attrs["seed"] == SEEDS[0]
    assert scene.attrs["scene_id"] == f"{scene.attrs['acquisition_time']}_{scene.attrs['ice_service']}"
    assert "class index" in scene["distance_map"].attrs["long_name"]
    assert RAW_NAME.match(raw_file_name(scene))
    assert RTT_NAME.match(ready_file_name(scene))


def test_gcps_and_incidence_angle(scene):
    lines = np.unique(scene["sar_grid_line"].values)
    smp = np.unique(scene["sar_grid_sample"].values)
    assert len(lines) == len(smp) == 21
    assert lines[0] == 0 and lines[-1] == SIZE - 1 and smp[0] == 0 and smp[-1] == SIZE - 1
    inc = scene["sar_grid_incidenceangle"].values.reshape(21, 21)
    assert (np.diff(inc, axis=1) > 0).all(), "incidence must increase with sample index"
    assert 18.5 < inc.min() < 20 and 45.5 < inc.max() < 47
    assert 30 < inc.mean() < 35 and 6 < inc.std() < 9
    lat = scene["sar_grid_latitude"].values
    assert 55 < lat.min() and lat.max() < 85


def test_polygon_codes_table(scenes):
    for ds in scenes:
        header, rows = parse_codes(ds)
        assert ds["polygon_codes"].values[0] == codes.HEADER
        assert header == "poly_id;CT;CA;SA;FA;CB;SB;FB;CC;SC;FC;CN;CD;CF;POLY_TYPE".split(";")
        ids = np.array(sorted(rows))
        assert 6 <= len(ids) <= 20, len(ids)
        assert ids.min() >= 1 and ids.max() <= 999
        assert not np.array_equal(ids, np.arange(1, len(ids) + 1)), "ids should not be 1..K"
        raster_ids = set(np.unique(ds["polygon_icechart"].values[np.isfinite(ds["polygon_icechart"].values)]).astype(int))
        assert raster_ids == set(rows)
        for row in rows.values():
            assert row["POLY_TYPE"] in ("I", "W")
            for col in ("CT", "CA", "SA", "FA", "CB", "SB", "FB", "CC", "SC", "FC", "CN", "CD"):
                int(row[col])  # integer codes, -9 = not filled
            assert re.fullmatch(r"-9|\d\d(\d\d|-9)", row["CF"]), row["CF"]
            if row["POLY_TYPE"] == "W":
                assert int(row["CT"]) in (0, 1, 2)


def test_chart_codes_vary_like_real_charts():
    """Over a handful of scenes: water polygons, 91/92, unknown 98/99, many tens, CF like 08-9."""
    all_rows = [r for s in range(8) for r in parse_codes(make_scene(scene_seed(1, s), 128))[1].values()]
    assert any(r["POLY_TYPE"] == "W" for r in all_rows)
    assert any(r["CF"].endswith("-9") and r["CF"] != "-9" for r in all_rows)
    cts = {int(r["CT"]) for r in all_rows}
    assert cts & {91, 92} and cts & {99, 98} and len(cts & set(range(10, 91, 10))) >= 6, cts
    unknown = sum(int(r["CT"]) in (98, 99) for r in all_rows)
    assert 0 < unknown <= 0.15 * len(all_rows), (unknown, len(all_rows))


def test_land_nodata_and_nan(scenes):
    for ds in scenes:
        hh = ds["nersc_sar_primary"].values
        hv = ds["nersc_sar_secondary"].values
        ids = ds["polygon_icechart"].values
        truth = ds["sic_truth"].values
        np.testing.assert_array_equal(np.isnan(hh), np.isnan(hv))
        land = np.isnan(ids)
        assert 0.01 < land.mean() < 0.3
        assert np.isnan(truth[land]).all()
        land_sar = land & np.isfinite(hh)
        assert land_sar.sum() > 0.5 * land.sum(), "land has SAR data"
        sea = np.isfinite(truth)
        assert np.median(hh[land_sar]) > np.median(hh[sea]) + 3, "land is bright"
        # No-data: NaN SAR and truth in stripes along 1-2 scene edges only.
        nodata = np.isnan(hh)
        assert 0.003 < nodata.mean() < 0.15
        assert np.isnan(truth[nodata]).all()
        assert np.isnan(truth).sum() == (land | nodata).sum()
        edge = max(int(0.15 * SIZE), 8)
        inner = nodata[edge:-edge, edge:-edge]
        assert not inner.any(), "no-data only at the swath edges"
        touched = [nodata[:, 0].mean() > 0.9, nodata[:, -1].mean() > 0.9,
                   nodata[0].mean() > 0.9, nodata[-1].mean() > 0.9]
        assert 1 <= sum(touched) <= 2, touched
        dist = ds["distance_map"].values   # AI4Arctic classes: 0 land, 1..41 distance bins
        assert (dist[land] == 0).all() and (dist[~land] >= 1).all() and dist.max() > 3
        assert (dist == np.round(dist)).all() and dist.max() <= 41
        assert ((truth >= 0) | np.isnan(truth)).all() and ((truth <= 1) | np.isnan(truth)).all()


def test_netcdf_round_trip_and_atomic_write(tmp_path, scene):
    path = tmp_path / raw_file_name(scene)
    writers.write_scene(scene, path)
    assert sorted(os.listdir(tmp_path)) == [path.name], "no temporary files left behind"
    with netCDF4.Dataset(path) as nc:  # stored as a variable-length string, as the real files are
        assert nc["polygon_codes"].dtype is str and nc["polygon_codes"].dimensions == ("polygon_codes",)
    with xr.open_dataset(path) as back:
        codes = back["polygon_codes"].values
        # xarray hands an index coordinate back as numpy.str_, a subclass of str (never bytes).
        assert all(isinstance(c, str) for c in codes), [type(c) for c in codes[:3]]
        assert list(codes) == list(scene["polygon_codes"].values)
        assert codes[1].split(";")[-1] in ("I", "W")
        for name in scene.data_vars:
            assert back[name].dtype == scene[name].dtype, name
            np.testing.assert_array_equal(back[name].values, scene[name].values, err_msg=name)
        assert back.attrs["pixel_spacing"] == 40 and back.attrs["ice_service"] == scene.attrs["ice_service"]


# ------------------------------------------------------------------ chart vs truth

def test_chart_ct_matches_mean_truth_within_chart_rounding(scenes):
    """Rule, with m = mean sic_truth over a polygon's pixels where truth is finite:

    * POLY_TYPE W, or CT 0/1/2 (ice free):  m <= 0.05
    * CT 10, 20, ..., 90:                   |m - CT/100| <= 0.05
    * CT 91 (9+/10):                        0.90 <= m <= 1   (the generator uses [0.95, 0.99))
    * CT 92 (10/10):                        m >= 0.95        (the generator uses >= 0.99)
    * CT 98 / 99 (no label):                not checked
    (1e-6 tolerance for float rounding.)
    """
    checked = 0
    for ds in scenes:
        _, rows = parse_codes(ds)
        means = polygon_means(ds)
        for pid, row in rows.items():
            ct, kind = int(row["CT"]), row["POLY_TYPE"]
            m, count = means[pid]
            if ct in (98, 99):
                continue
            assert count > 0, pid
            if kind == "W" or ct in (0, 1, 2):
                assert m <= 0.05 + 1e-6, (pid, ct, m)
            elif ct == 91:
                assert 0.9 - 1e-6 <= m <= 1.0, (pid, ct, m)
            elif ct == 92:
                assert m >= 0.95 - 1e-6, (pid, ct, m)
            else:
                assert 10 <= ct <= 90 and ct % 10 == 0, ct
                assert abs(m - ct / 100) <= 0.05 + 1e-6, (pid, ct, m)
            checked += 1
    assert checked >= 20


def test_truth_varies_inside_polygons(scenes):
    mixed = 0
    partial = 0
    for ds in scenes:
        _, rows = parse_codes(ds)
        ids = ds["polygon_icechart"].values
        truth = ds["sic_truth"].values
        for pid, row in rows.items():
            if not 10 <= int(row["CT"]) <= 90:
                continue
            partial += 1
            t = truth[(ids == pid) & np.isfinite(truth)]
            if t.std() > 0.2 and (t <= 0.05).mean() > 0.05 and (t >= 0.95).mean() > 0.05:
                mixed += 1
    assert partial >= 6 and mixed >= 0.8 * partial, (mixed, partial)


def test_truth_has_floes_of_many_sizes_leads_and_miz(scenes):
    pack_water, pack_thin = [], []
    for ds in scenes:
        truth = ds["sic_truth"].values
        finite = np.isfinite(truth)
        assert 0.01 < ((truth > 0.02) & (truth < 0.98)).sum() / finite.sum() < 0.3, "fractional (brash) pixels"
        assert (truth[finite] == 0).mean() > 0.15, "open water"
        labels, n = ndimage.label(truth >= 0.5)
        areas = np.bincount(labels.ravel())[1:]
        assert n > 30 and areas.max() > 1000 * np.median(areas), (n, areas.max(), np.median(areas))
        # MIZ: floes shrink towards open water. Local concentration at each floe's centre
        # (smoothed truth) is lower around small floes (< 50 px) than around big ones (>= 200 px).
        local = ndimage.gaussian_filter(np.nan_to_num(truth), 12)
        centres = ndimage.center_of_mass(np.ones_like(labels), labels, np.arange(1, n + 1))
        conc = np.array([local[int(r), int(c)] for r, c in centres])
        small, large = areas < 50, areas >= 200
        assert small.sum() > 20 and large.sum() >= 1
        assert np.median(conc[small]) < np.median(conc[large]) - 0.2
        # Leads: the most ice-covered polygons still have open water, much of it in thin
        # (< 7 px wide) leads and cracks.
        ids = ds["polygon_icechart"].values
        pack = np.isin(ids, [p for p, r in parse_codes(ds)[1].items() if int(r["CT"]) in (80, 90, 91, 92)])
        water_in_pack = pack & (truth == 0)
        thin = water_in_pack & ~ndimage.binary_opening(water_in_pack, iterations=3)
        pack_water.append(water_in_pack.sum())
        pack_thin.append(thin.sum())
    assert sum(w > 0 for w in pack_water) >= 2, pack_water
    assert sum(pack_thin) > 0.25 * sum(pack_water), (pack_thin, pack_water)


# ------------------------------------------------------------------ SAR physics

def test_speckle_enl_on_homogeneous_water(scenes, record_property):
    """ENL = mean^2 / variance of linear intensity in 12 x 12 windows of open water."""
    values = []
    for ds in scenes:
        truth = ds["sic_truth"].values
        water = ndimage.binary_erosion(truth == 0, iterations=3)
        windows = blocks(water, 12).all(axis=-1)
        for name in ("nersc_sar_primary", "nersc_sar_secondary"):
            lin = blocks(10 ** (ds[name].values.astype(np.float64) / 10), 12)[windows]
            values.append(np.median(lin.mean(-1) ** 2 / lin.var(-1)))
    enl = float(np.median(values))
    record_property("enl", enl)
    print(f"measured ENL on homogeneous water: {enl:.2f} (per scene/channel {np.round(values, 2).tolist()})")
    assert 3.5 <= enl <= 5.5, values
    assert all(3.5 <= v <= 5.5 for v in values), values


def test_wind_roughened_water_vs_ice_and_hv_noise_floor(scenes):
    calm = []
    for ds in scenes:
        truth = ds["sic_truth"].values
        hh = ds["nersc_sar_primary"].values
        hv = ds["nersc_sar_secondary"].values
        water = ndimage.binary_erosion(truth == 0, iterations=3)
        ice = ndimage.binary_erosion(truth == 1, iterations=3)
        # Multilook 8 x 8 so speckle does not decide.
        look = lambda a: 10 * np.log10(blocks(10 ** (a / 10), 8).mean(-1))  # noqa: E731
        w, i = blocks(water, 8).all(-1), blocks(ice, 8).all(-1)
        hh_w, hh_i = look(hh)[w], look(hh)[i]
        assert np.percentile(hh_w, 95) >= np.percentile(hh_i, 25), "windy water as bright as ice in HH"
        assert np.percentile(hh_w, 95) - np.percentile(hh_w, 5) > 4, "water HH varies with wind"
        calm.append(np.percentile(hh_w, 5) - np.percentile(hh_i, 5))
        hv_w, hv_i = look(hv)[w], look(hv)[i]
        assert -30.5 < np.median(hv_w) < -26.5, np.median(hv_w)
        assert np.percentile(hv_w, 90) < -24.5
        assert np.median(hv_i) > np.median(hv_w) + 2.5
    assert min(calm) < -3, f"calm water darker than ice in some scene: {calm}"


def test_backscatter_model_incidence_slopes_and_wind():
    theta = np.array([25.0, 35.0, 45.0])
    for surface in (backscatter.NEW, backscatter.YOUNG, backscatter.THIN_FYI, backscatter.THICK_FYI, backscatter.OLD, backscatter.FAST):
        hh, hv = backscatter.backscatter_db(surface, theta)
        slope = (hh[2] - hh[0]) / 20
        assert -0.3 <= slope <= -0.15, (surface, slope)
        assert hv[1] < hh[1] - 5
    ice_hh = {s: backscatter.backscatter_db(s, 35.0)[0] for s in (backscatter.YOUNG, backscatter.THICK_FYI, backscatter.OLD)}
    assert ice_hh[backscatter.YOUNG] < ice_hh[backscatter.THICK_FYI] < ice_hh[backscatter.OLD]
    assert all(-18 <= v <= -10 for v in ice_hh.values())
    calm_hh, calm_hv = backscatter.backscatter_db(backscatter.WATER, theta, wind_ms=3.0)
    calm_slope = (calm_hh[2] - calm_hh[0]) / 20
    assert -0.8 <= calm_slope <= -0.5, calm_slope
    assert -24 < calm_hh[1] < -20
    windy_hh, windy_hv = backscatter.backscatter_db(backscatter.WATER, theta, wind_ms=12.0)
    fyi_hh, _ = backscatter.backscatter_db(backscatter.THICK_FYI, theta)
    assert windy_hh[0] > fyi_hh[0] and windy_hh[1] >= fyi_hh[1] - 1
    assert (windy_hv < backscatter.NOISE_FLOOR_DB[1]).all() and (calm_hv < backscatter.NOISE_FLOOR_DB[1] - 5).all()


def test_scene_backscatter_falls_with_incidence(scenes):
    """Median HH difference of ice pixel pairs 16 samples apart, per degree (robust to floe edges)."""
    slopes = []
    for ds in scenes:
        hh = ds["nersc_sar_primary"].values
        ice = ndimage.binary_erosion(ds["sic_truth"].values == 1, iterations=3)
        inc = incidence_per_sample(ds)
        d = 16
        pair = ice[:, d:] & ice[:, :-d]
        slopes.append(np.median((hh[:, d:] - hh[:, :-d])[pair]) / (inc[d] - inc[0]))
    assert -0.35 <= np.mean(slopes) <= -0.1, slopes


# ------------------------------------------------------------------ ready-to-train

def test_ready_to_train(scene):
    rtt = make_ready_to_train(scene)
    half = SIZE // 2
    assert rtt.sizes["sar_lines"] == rtt.sizes["sar_samples"] == half
    assert rtt.attrs["pixel_spacing"] == 80
    assert "polygon_icechart" not in rtt and "polygon_codes" not in rtt.variables
    for name in ("SIC", "SOD", "FLOE"):
        assert rtt[name].dtype == np.uint8 and rtt[name].attrs["chart_fill_value"] == 255
    sic = rtt["SIC"].values
    assert set(np.unique(sic)) <= set(range(11)) | {255}
    # SAR: 2 x 2 mean in linear power, back to dB, standard-scaled with the fixed statistics.
    hh = scene["nersc_sar_primary"].values.astype(np.float64)
    lin = blocks(10 ** (hh / 10), 2).mean(-1)
    expect = (10 * np.log10(lin) + 14.5) / 5.7
    ok = np.isfinite(expect)
    np.testing.assert_allclose(rtt["nersc_sar_primary"].values[ok], expect[ok], atol=1e-4)
    assert abs(np.nanmean(rtt["nersc_sar_primary"].values)) < 1.5
    # No data is 0 in every SAR variable, never NaN (the real files' convention).
    nodata = (rtt["nersc_sar_primary"].values == 0) & (rtt["nersc_sar_secondary"].values == 0)
    hv = scene["nersc_sar_secondary"].values
    expect_nodata = blocks(np.isnan(hh), 2).all(-1) | blocks(np.isnan(hv), 2).all(-1)
    assert expect_nodata.any() and np.array_equal(nodata, expect_nodata)
    assert np.isfinite(rtt["nersc_sar_primary"].values).all()
    inc = rtt["sar_incidenceangle"].values
    assert (inc[nodata] == 0).all() and -3 < inc[~nodata].min() < inc[~nodata].max() < 3
    # SIC classes come from the chart: CT x 10 of the (never averaged) polygon id.
    _, rows = parse_codes(scene)
    ids40 = scene["polygon_icechart"].values
    top_left = ids40[0::2, 0::2]
    same = blocks(np.nan_to_num(ids40, nan=-1), 2)
    uniform = (same == same[..., :1]).all(-1) & np.isfinite(top_left) & ~nodata
    for pid, row in rows.items():
        ct = int(row["CT"])
        where = uniform & (top_left == pid)
        if not where.any():
            continue
        expected = (0 if row["POLY_TYPE"] == "W" or ct in (0, 1, 2) else
                    10 if ct in (91, 92) else 255 if ct in (98, 99) else ct // 10)
        assert (sic[where] == expected).all(), (pid, ct, np.unique(sic[where]))
    land = blocks(np.isnan(ids40), 2).all(-1)
    assert (sic[land] == 255).all() and (rtt["SOD"].values[land] == 255).all()
    assert (sic[nodata] == 255).all()
    np.testing.assert_allclose(np.nanmean(rtt["sic_truth"].values), np.nanmean(scene["sic_truth"].values), atol=0.02)


# ------------------------------------------------------------------ CLI

def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "data_prep.make_sample_scenes", *args],
                          cwd=REPO, capture_output=True, text=True, timeout=300)


def test_cli_writes_refuses_overwrite_and_is_deterministic(tmp_path):
    out = tmp_path / "scenes"
    panel = tmp_path / "panel.png"
    args = [f"--out_dir={out}", "--num_scenes=2", "--size=128", "--seed=4", "--ready_to_train", f"--panel={panel}"]
    first = run_cli(*args)
    assert first.returncode == 0, first.stderr
    names = sorted(os.listdir(out))
    raws = [n for n in names if RAW_NAME.match(n)]
    rtts = [n for n in names if RTT_NAME.match(n)]
    assert len(raws) == 2 and len(rtts) == 2 and len(names) == 4, names
    assert {RAW_NAME.match(n).groups() for n in raws} == {RTT_NAME.match(n).groups() for n in rtts}
    assert "Wrote 2 sample scene(s)" in first.stdout
    assert len([line for line in first.stderr.splitlines() if "scene " in line and ".nc" in line]) == 2
    assert panel.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for n in rtts:
        with xr.open_dataset(out / n) as ds:
            assert ds.attrs["pixel_spacing"] == 80 and ds.sizes["sar_lines"] == 64
            assert "polygon_icechart" not in ds and ds["SIC"].dtype == np.uint8
    for n in raws:
        with xr.open_dataset(out / n) as ds:
            assert ds.sizes["sar_lines"] == 128 and "sic_truth" in ds
    before = {n: (out / n).read_bytes() for n in names}
    mtimes = {n: os.path.getmtime(out / n) for n in names}

    refused = run_cli(*args)
    assert refused.returncode == 1
    last = refused.stderr.strip().splitlines()[-1]
    assert re.fullmatch(r"ERROR: .*\.(nc|png): output exists; pass --overwrite to replace it", last), last
    assert {n: os.path.getmtime(out / n) for n in names} == mtimes

    again = run_cli(*args, "--overwrite")
    assert again.returncode == 0, again.stderr
    assert sorted(os.listdir(out)) == names
    assert {n: (out / n).read_bytes() for n in names} == before, "same seed gives byte-identical files"

    other = run_cli(f"--out_dir={out}", "--num_scenes=1", "--size=128", "--seed=5")
    assert other.returncode == 0, other.stderr
    assert len(os.listdir(out)) == 5


def test_cli_rejects_bad_flags(tmp_path):
    bad = run_cli(f"--out_dir={tmp_path}", "--num_scenes=0")
    assert bad.returncode == 1
    assert bad.stderr.strip().splitlines()[-1].startswith("ERROR: --num_scenes: ")
