"""Ice-type truth of the sample scenes: `sod_truth`, `floe_truth`, egg codes, unchanged SIC data.

What must hold: each pixel's SOD / FLOE truth is the class of what the
simulator put there (hand-written expectations per surface type and floe
form, not the module's own tables); the charts' egg codes name several
learnable FLOE classes; and adding all this moved no byte of the SAR, the
polygon raster, CT or `sic_truth` (the SIC quickstart's figures stand).

The fingerprints are byte hashes made with numpy's AVX2 kernels (they were
recorded on an AVX2 CPU): numpy's AVX-512 log10 rounds about half the SAR
pixels differently (by up to 8e-6 dB), so the hashes are taken in a subprocess
with numpy held to X86_V3 (AVX2) on every CPU, and this CPU's own kernels are
held to that rounding.
"""

import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import xarray as xr

from tfseaice.data import codes, egg_codes
from tfseaice.simulate import charts, floes, render, writers
from tfseaice.simulate.backscatter import BRASH, FAST, LAND, NEW, OLD, THICK_FYI, THIN_FYI, WATER, YOUNG
from tfseaice.simulate.ready_to_train import make_ready_to_train
from tfseaice.simulate.scenes import make_scene

SIZE = 256
# numpy's dispatch held to AVX2 (a feature every x86 CI machine has; NPY_ENABLE_CPU_FEATURES lists
# the only dispatched features numpy may use).
AVX2_ONLY = {"NPY_ENABLE_CPU_FEATURES": "X86_V3"}
# Recorded with main's code before sod_truth/floe_truth existed (commit 50e46d8), make_scene(seed, 256).
# A change here means the SIC sample data moved: the quickstart's figures would move with it.
FINGERPRINTS = {
    5: {"sar": "613b3db2bcc38d74", "polygon_icechart": "c4e8cd0287a2c1f5", "sic_truth": "76dd431e9cfec252",
        "ct": "2ccbbb4eb202a925", "other": "a06d5ac7eed69cf5", "rtt": "ef736b2c20a1a53a"},
    8: {"sar": "d1409f43582f2e59", "polygon_icechart": "a34077d1c4be2c30", "sic_truth": "5046b2027c7f040e",
        "ct": "0204be29a0b5f99f", "other": "95d888855c1dbe7f", "rtt": "db0e9484019676dc"},
}
NEW_VARS = {"sod_truth", "floe_truth"}
PROTECTED = ("nersc_sar_primary", "nersc_sar_secondary", "polygon_icechart", "sic_truth")
# What is physically there -> class, written out by hand from the starter pack's tables.
SOD_OF = {NEW: 1, YOUNG: 2, BRASH: 2, THIN_FYI: 3, THICK_FYI: 4, FAST: 4, OLD: 5}
FLOE_OF = {floes.FORM_CAKE: 1, floes.FORM_SMALL: 2, floes.FORM_MEDIUM: 3, floes.FORM_BIG: 4, floes.FORM_VAST: 5,
           floes.FORM_FAST: 255, floes.FORM_LEVEL: 255}


def _hash(*arrays):
    d = hashlib.sha256()
    for a in arrays:
        d.update(np.ascontiguousarray(a).tobytes())
    return d.hexdigest()[:16]


def fingerprint(ds):
    rows = [str(r).split(";") for r in ds["polygon_codes"].values]
    rtt = make_ready_to_train(ds)
    return {
        "sar": _hash(ds["nersc_sar_primary"].values, ds["nersc_sar_secondary"].values),
        "polygon_icechart": _hash(ds["polygon_icechart"].values),
        "sic_truth": _hash(ds["sic_truth"].values),
        "ct": _hash(np.array([";".join((r[0], r[1], r[-1])) for r in rows], "U")),  # poly_id;CT;POLY_TYPE
        "other": _hash(*[ds[k].values for k in sorted(ds.data_vars) if k not in NEW_VARS and k not in PROTECTED]),
        "rtt": _hash(rtt["SIC"].values, rtt["nersc_sar_primary"].values, rtt["nersc_sar_secondary"].values),
    }


@pytest.fixture(scope="module")
def scenes():
    return {seed: make_scene(seed, SIZE) for seed in sorted(FINGERPRINTS)}


@pytest.fixture(scope="module")
def avx2(tmp_path_factory):
    """({seed: fingerprint}, {seed: SAR [2, H, W]}) of make_scene under numpy's AVX2 kernels (a subprocess)."""
    out = tmp_path_factory.mktemp("avx2") / "sar.npz"
    env = {k: v for k, v in os.environ.items() if k != "NPY_DISABLE_CPU_FEATURES"}
    res = subprocess.run([sys.executable, __file__, str(out)], capture_output=True, text=True, timeout=300,
                         env={**env, **AVX2_ONLY, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert res.returncode == 0, res.stderr[-2000:]
    prints = {int(k): v for k, v in json.loads(res.stdout.strip().splitlines()[-1]).items()}
    with np.load(out) as z:
        return prints, {int(k): z[k] for k in z.files}


def _sar(ds):
    return np.stack([ds["nersc_sar_primary"].values, ds["nersc_sar_secondary"].values])


@pytest.fixture(scope="module")
def captured():
    """Scene 10 (has old ice) and the surface type / form / ice fraction render passed to pixel_classes."""
    seen = []
    original = render.pixel_classes

    def spy(typ, form, truth):
        seen.append((typ.copy(), form.copy(), truth.copy()))
        return original(typ, form, truth)

    mp = pytest.MonkeyPatch()
    mp.setattr(render, "pixel_classes", spy)
    try:
        ds = make_scene(10, SIZE)
    finally:
        mp.undo()
    typ, form, truth = (np.concatenate([s[k] for s in seen]) for k in range(3))
    return ds, typ, form, truth


@pytest.mark.parametrize("seed", sorted(FINGERPRINTS))
def test_sic_data_byte_identical_to_before(avx2, seed):
    assert avx2[0][seed] == FINGERPRINTS[seed]


@pytest.mark.parametrize("seed", sorted(FINGERPRINTS))
def test_this_cpus_kernels_move_the_sar_by_rounding_only(scenes, avx2, seed):
    """What differs between CPUs is float rounding of the SAR (measured: at most 8e-6 dB, on about
    half the pixels, AVX-512 vs AVX2), nothing else of the scene."""
    native, pinned = _sar(scenes[seed]), avx2[1][seed]
    assert native.dtype == pinned.dtype == np.float32
    np.testing.assert_allclose(native, pinned, rtol=0, atol=2e-5)  # dB; NaN where the other has NaN
    prints, same = fingerprint(scenes[seed]), FINGERPRINTS[seed].keys() - {"sar", "rtt"}
    assert {k: prints[k] for k in same} == {k: FINGERPRINTS[seed][k] for k in same}


def test_fingerprint_sees_a_sar_change(scenes):
    ds = scenes[5].copy(deep=True)
    ds["nersc_sar_secondary"].values[100, 100] += np.float32(0.01)
    assert fingerprint(ds)["sar"] != FINGERPRINTS[5]["sar"]


def test_sod_truth_is_the_class_of_the_surface_type(captured):
    ds, typ, _, truth = captured
    sod = ds["sod_truth"].values
    assert typ.shape == sod.shape == ds["sic_truth"].shape
    ice = truth >= 0.5
    for t, cls in SOD_OF.items():
        m = ice & (typ == t)
        if t in (OLD, NEW, THICK_FYI, BRASH):
            assert m.sum() > 20, f"scene 10 lost its type {t}"
        np.testing.assert_array_equal(sod[m], cls, err_msg=f"surface type {t}")
    assert (sod[(typ == WATER) & np.isfinite(truth)] == 0).all()
    assert (sod[np.isnan(truth)] == 255).all() and (sod[typ == LAND] == 255).all()
    assert (sod[~ice & np.isfinite(truth)] == 0).all()  # less than half ice: open water
    assert set(np.unique(sod)) == {0, 1, 2, 3, 4, 5, 255}


def test_floe_truth_is_the_class_of_the_floe_form(captured):
    ds, typ, form, truth = captured
    floe = ds["floe_truth"].values
    ice = truth >= 0.5
    assert not (ice & (form == floes.FORM_NONE)).any()  # every ice pixel has a form
    for f, cls in FLOE_OF.items():
        m = ice & (form == f)
        np.testing.assert_array_equal(floe[m], cls, err_msg=f"form {f}")
    assert (floe[ice & (typ == FAST)] == 255).all()
    assert (floe[ice & (typ == BRASH)] == 1).all()  # ice cakes between floes
    assert (floe[((typ == WATER) | ~ice) & np.isfinite(truth)] == 0).all()
    assert (floe[np.isnan(truth)] == 255).all()
    assert {1, 3, 4, 5} <= set(np.unique(floe))
    # Fractional brash pixels on both sides of one half: both outcomes occur.
    brash = (typ == BRASH) & np.isfinite(truth)
    assert (brash & (truth < 0.5)).any() and (brash & (truth >= 0.5)).any()


def test_pixel_classes_majority_and_no_truth():
    typ = np.array([OLD, BRASH, BRASH, FAST, NEW, LAND, THIN_FYI], np.int8)
    form = np.array([floes.FORM_VAST, floes.FORM_CAKE, floes.FORM_CAKE, floes.FORM_FAST, floes.FORM_LEVEL,
                     floes.FORM_NONE, floes.FORM_MEDIUM], np.int8)
    truth = np.array([1.0, 0.49, 0.5, 1.0, 1.0, np.nan, np.nan], np.float32)
    sod, floe = charts.pixel_classes(typ, form, truth)
    assert sod.dtype == floe.dtype == np.uint8
    assert sod.tolist() == [5, 0, 2, 4, 1, 255, 255]
    assert floe.tolist() == [5, 0, 1, 255, 255, 255, 255]


def test_flag_attributes_survive_writing(captured, tmp_path):
    ds = captured[0]
    path = tmp_path / "scene.nc"
    writers.write_scene(ds, str(path))
    with xr.open_dataset(path, engine="netcdf4", mask_and_scale=True) as back:
        for name, classes in (("sod_truth", egg_codes.SOD_CLASSES), ("floe_truth", egg_codes.FLOE_CLASSES)):
            var = back[name]
            assert var.dtype == np.uint8 and var.dims == back["sic_truth"].dims
            np.testing.assert_array_equal(var.values, ds[name].values)
            np.testing.assert_array_equal(var.attrs["flag_values"], np.arange(len(classes)))
            assert var.attrs["flag_meanings"].split() == list(classes)
            assert int(var.attrs["no_truth_value"]) == 255


def test_charts_name_several_learnable_floe_classes(scenes, captured):
    """Egg-code forms are ones the starter pack labels; >= 3 labelled FLOE classes across 3 scenes."""
    chart_floe, chart_sod = set(), set()
    for ds in (*scenes.values(), captured[0]):
        entries = [str(e) for e in ds["polygon_codes"].values]
        header = entries[0].split(";")
        for row in entries[1:]:
            fields = dict(zip(header, row.split(";")))
            for col in ("FA", "FB", "FC"):
                code = int(fields[col])
                assert code == -9 or code in egg_codes.FLOE_OF_FORM, row
            assert int(fields["FA"]) != 1  # brash (01) is unlabelled in the challenge: not used
        table = codes.parse_polygon_codes(ds["polygon_codes"].values)
        chart_sod.update(table.sod_class.tolist())
        chart_floe.update(table.floe_class.tolist())
    assert len(chart_floe - {0, 255}) >= 3, chart_floe
    assert len(chart_sod - {0, 255}) >= 3, chart_sod


def test_sample_rows_get_the_starter_pack_labels():
    def labels(**kw):
        base = dict.fromkeys(codes.HEADER.split(";"), "-9")
        base.update(POLY_TYPE="I", poly_id="1", **kw)
        table = codes.parse_polygon_codes([codes.HEADER, ";".join(base[c] for c in codes.HEADER.split(";"))])
        return int(codes.sic_classes(table.sic)[0]), int(table.sod_class[0]), int(table.floe_class[0])

    assert labels(CT="90", SA="95", FA="02") == (9, 5, 1)
    assert labels(CT="92", SA="93", FA="08") == (10, 4, 255)  # fast ice: unlabelled
    assert labels(CT="30", SA="83", FA="01") == (3, 2, 255)   # brash 01: unlabelled
    assert labels(CT="80", CA="50", SA="87", FA="04", CB="30", SB="95", FB="06") == (8, 255, 3)


def test_ready_to_train_truth_is_the_2x2_majority(captured):
    ds = captured[0]
    rtt = make_ready_to_train(ds)
    for name in ("sod_truth", "floe_truth"):
        full = ds[name].values
        b = full.reshape(SIZE // 2, 2, SIZE // 2, 2).swapaxes(1, 2).reshape(SIZE // 2, SIZE // 2, 4)
        same = (b == b[..., :1]).all(-1)
        out = rtt[name].values
        assert out.dtype == np.uint8 and out.shape == (SIZE // 2, SIZE // 2)
        np.testing.assert_array_equal(out[same], b[..., 0][same])
        held = lambda v: (b == v[..., None]).sum(-1)  # noqa: E731 (pixels of each block with class v)
        assert (held(out) == np.max([held(b[..., k]) for k in range(4)], axis=0)).all()  # the most frequent
        assert rtt[name].attrs["flag_meanings"] == ds[name].attrs["flag_meanings"]


if __name__ == "__main__":  # the `avx2` fixture's subprocess: fingerprints to stdout, SAR to argv[1]
    made = {seed: make_scene(seed, SIZE) for seed in sorted(FINGERPRINTS)}
    np.savez(sys.argv[1], **{str(seed): _sar(ds) for seed, ds in made.items()})
    print(json.dumps({seed: fingerprint(ds) for seed, ds in made.items()}))
