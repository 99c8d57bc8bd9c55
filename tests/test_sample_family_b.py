"""Sample-scene family B (tfseaice/simulate/family_b.py, `make_sample_scenes --family=B`).

What must hold: B is deterministic per seed and never a family A scene; it has
A's file layout, so the readers and evaluation take it unchanged; its charts
parse and agree with its own pixel truth (CT, and the egg codes' stage shares
with `sod_truth`); and it differs from A where it claims to: incidence falls
across the swath, ice backscatter is flatter with incidence, fewer looks, a
higher HV noise floor, and fjords cut the coast. Family A itself is checked
(fingerprints included) by test_samples.py and test_sample_ice_types.py.
"""

import os
import re
import subprocess
import sys

import numpy as np
import pytest
import xarray as xr
from scipy import ndimage

from tfseaice.data import codes, egg_codes
from tfseaice.data.ai4arctic import read_scene
from tfseaice.simulate import family_b, writers
from tfseaice.simulate.ready_to_train import make_ready_to_train
from tfseaice.simulate.scenes import make_scene as make_scene_a
from tfseaice.simulate.scenes import raw_file_name, scene_seed

from test_samples import blocks, incidence_per_sample, parse_codes, polygon_means

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIZE = 320
SEEDS = (21, 22, 23)


@pytest.fixture(scope="module")
def family():
    return {"A": [make_scene_a(s, SIZE) for s in SEEDS], "B": [family_b.make_scene(s, SIZE) for s in SEEDS]}


def test_deterministic_per_seed_and_never_a_family_a_scene():
    a, b, c = family_b.make_scene(5, 192), family_b.make_scene(5, 192), family_b.make_scene(6, 192)
    for name in a.variables:
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)
    assert a.attrs == b.attrs and a.attrs["sample_family"] == "B" and a.attrs["speckle_enl"] == 3.0
    assert not np.array_equal(a["nersc_sar_primary"].values, c["nersc_sar_primary"].values, equal_nan=True)
    assert not np.array_equal(a["sic_truth"].values, c["sic_truth"].values, equal_nan=True)
    twin = make_scene_a(5, 192)
    assert raw_file_name(twin) != raw_file_name(a)
    assert not np.array_equal(twin["sic_truth"].values, a["sic_truth"].values, equal_nan=True)
    names = {raw_file_name(*family_b.scene_metadata(scene_seed(3, i))) for i in range(20)}
    assert len(names) == 20


def test_same_layout_as_family_a_and_the_readers_take_it(family, tmp_path):
    for a, b in zip(family["A"], family["B"]):
        assert set(b.variables) == set(a.variables)
        for name in a.variables:
            assert (b[name].dims, b[name].dtype) == (a[name].dims, a[name].dtype), name
        assert dict(b.sizes) | {"polygon_codes": 0} == dict(a.sizes) | {"polygon_codes": 0}
    ds = family["B"][0]
    path = tmp_path / raw_file_name(ds)
    writers.write_scene(ds, path)
    scene = read_scene(str(path))
    assert scene.table is not None and len(scene.table.ids) == ds.sizes["polygon_codes"] - 1
    rtt = make_ready_to_train(ds)
    assert rtt.attrs["pixel_spacing"] == 80 and set(np.unique(rtt["SIC"].values)) <= set(range(11)) | {255}


def test_charts_parse_and_ct_agrees_with_truth(family):
    """As family A's rule (test_samples): W / CT 0-2 -> mean truth <= 0.05, tens within 0.05, 91 >= 0.9, 92 >= 0.95."""
    checked = 0
    for ds in family["B"]:
        header, rows = parse_codes(ds)
        assert ds["polygon_codes"].values[0] == codes.HEADER
        raster = ds["polygon_icechart"].values
        assert set(np.unique(raster[np.isfinite(raster)]).astype(int)) == set(rows)
        table = codes.parse_polygon_codes(ds["polygon_codes"].values)
        assert len(table.ids) == len(rows)
        means = polygon_means(ds)
        for pid, row in rows.items():
            assert re.fullmatch(r"-9|\d\d(\d\d|-9)", row["CF"]), row["CF"]
            ct, kind = int(row["CT"]), row["POLY_TYPE"]
            m, count = means[pid]
            if ct in (98, 99):
                continue
            if kind == "W" or ct in (0, 1, 2):
                assert m <= 0.05 + 1e-6, (pid, ct, m)
            elif ct == 91:
                assert 0.9 - 1e-6 <= m <= 1.0, (pid, ct, m)
            elif ct == 92:
                assert m >= 0.95 - 1e-6, (pid, ct, m)
            else:
                assert abs(m - ct / 100) <= 0.05 + 1e-6, (pid, ct, m)
            checked += 1
    assert checked >= 12


def test_egg_code_stage_shares_agree_with_sod_truth(family):
    """Each labelled polygon's SOD composition (egg code -> classes) vs the share of each class in its
    `sod_truth` pixels: within 0.2 per class (tenths rounding, stages under 5 % left out, ice-cake pixels
    under half ice counted as water in the truth but as ice in the chart)."""
    compared, worst = 0, 0.0
    for ds in family["B"]:
        table = codes.parse_polygon_codes(ds["polygon_codes"].values)
        ids, sod = ds["polygon_icechart"].values, ds["sod_truth"].values
        for k, pid in enumerate(table.ids):
            q = table.sod_composition[k]
            pixels = sod[(ids == pid) & (sod != egg_codes.UNLABELLED)]
            if not np.all(np.isfinite(q)) or len(pixels) < 500:
                continue
            share = np.bincount(pixels, minlength=egg_codes.NUM_SOD)[:egg_codes.NUM_SOD] / len(pixels)
            worst = max(worst, float(np.abs(share - q).max()))
            compared += 1
    assert compared >= 8 and worst <= 0.2, (compared, worst)


def _ice_slope(ds):
    hh = ds["nersc_sar_primary"].values
    ice = ndimage.binary_erosion(ds["sic_truth"].values == 1, iterations=3)
    inc = incidence_per_sample(ds)
    d = 16
    pair = ice[:, d:] & ice[:, :-d]
    return np.median((hh[:, d:] - hh[:, :-d])[pair]) / (inc[d] - inc[0])


def _water_enl_and_hv(ds):
    truth = ds["sic_truth"].values
    water = ndimage.binary_erosion(truth == 0, iterations=3)
    windows = blocks(water, 12).all(axis=-1)
    lin = blocks(10 ** (ds["nersc_sar_secondary"].values.astype(np.float64) / 10), 12)[windows]
    return float(np.median(lin.mean(-1) ** 2 / lin.var(-1))), float(10 * np.log10(np.median(lin.mean(-1))))


def test_family_b_differs_from_a_in_incidence_texture_and_noise(family, record_property):
    inc = {f: [np.diff(incidence_per_sample(ds)).mean() for ds in family[f]] for f in family}
    assert all(v > 0 for v in inc["A"]) and all(v < 0 for v in inc["B"]), inc
    slope = {f: float(np.mean([_ice_slope(ds) for ds in family[f]])) for f in family}
    water = {f: [_water_enl_and_hv(ds) for ds in family[f]] for f in family}
    enl = {f: float(np.median([e for e, _ in water[f]])) for f in family}
    hv = {f: float(np.median([h for _, h in water[f]])) for f in family}
    record_property("family_stats", {"slope": slope, "enl": enl, "hv_water_db": hv})
    print(f"ice HH slope dB/deg {slope}, ENL on water {enl}, HV over water dB {hv}")
    assert -0.3 < slope["A"] < -0.12 and -0.16 < slope["B"] < -0.05 and slope["B"] > slope["A"] + 0.03, slope
    assert 3.6 < enl["A"] < 5.5 and 2.4 < enl["B"] < 3.5, enl
    assert hv["B"] > hv["A"] + 1.0, hv


def test_fjords_cut_the_coast(family):
    """Sea reaches into the land band through narrow inlets: just inside the coast, the land along the
    scene edge that holds it is broken by runs of sea (2-4 fjords per scene; some start inland)."""
    inlets = []
    for ds in family["B"]:
        land = np.isnan(ds["polygon_icechart"].values) & np.isfinite(ds["nersc_sar_primary"].values)
        views = {"top": land, "bottom": land[::-1], "left": land.T, "right": land.T[::-1]}
        side = max(views, key=lambda k: views[k][2].mean())
        band = views[side][:, SIZE // 10: -SIZE // 10]      # rows from that edge inwards, no-data ends cut off
        depth = max(k for k in range(SIZE // 2) if band[k].mean() > 0.8)
        _, runs = ndimage.label(~band[depth])
        inlets.append(runs)
    assert min(inlets) >= 1 and sum(inlets) >= 5, inlets


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "data_prep.make_sample_scenes", *args],
                          cwd=REPO, capture_output=True, text=True, timeout=300)


def test_cli_family_b_is_deterministic_and_not_family_a(tmp_path):
    args = ["--num_scenes=2", "--size=128", "--seed=4"]
    first, again, a = tmp_path / "b1", tmp_path / "b2", tmp_path / "a"
    stdout = []
    for out, extra in ((first, ["--family=B"]), (again, ["--family=B"]), (a, [])):
        run = run_cli(f"--out_dir={out}", *args, *extra)
        assert run.returncode == 0, run.stderr
        stdout.append(run.stdout)
    assert "(family B, " in stdout[0] and "(family" not in stdout[2]
    names = sorted(os.listdir(first))
    assert names == sorted(os.listdir(again)) and len(names) == 2
    assert {n: (first / n).read_bytes() for n in names} == {n: (again / n).read_bytes() for n in names}
    assert not set(names) & set(os.listdir(a))
    with xr.open_dataset(first / names[0]) as ds:
        assert ds.attrs["sample_family"] == "B" and {"sic_truth", "sod_truth", "floe_truth"} <= set(ds.variables)
    bad = run_cli(f"--out_dir={tmp_path / 'c'}", "--family=C")
    assert bad.returncode != 0
