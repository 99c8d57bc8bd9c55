"""Ice-chart models (SIC + SOD + FLOE) in serving and evaluation: tiled inference, products, AutoICE, export, F1."""

import json
import os

import keras
import netCDF4
import numpy as np
import pytest
import tensorflow as tf
import xarray as xr
from sklearn.metrics import f1_score

from tfseaice.data import ai4arctic, autoice
from tfseaice.data.egg_codes import FLOE_CLASSES, SOD_CLASSES
from tfseaice.evaluation import sic as ev
from tfseaice.serving.autoice_submission import write_upload_package
from tfseaice.serving.export_module_factory import EXPORTERS
from tfseaice.serving.scene_inference import axis_tiles, predict_scene, predict_scene_charts
from tfseaice.serving.sic_export import export_sic
from tfseaice.serving.sic_scene import predict_scene_file
from tfseaice.simulate.scenes import make_scene, raw_file_name
from tfseaice.simulate.writers import write_scene

from icechart_fixtures import icechart_standin_model, truth_passthrough
from sic_fixtures import write_scenes

INFO = {"channels": ["hh", "hv"], "downsample": 2, "source": "test model"}


@pytest.fixture(scope="module")
def model():
    return icechart_standin_model()


def random_sar(shape, seed=0):
    sar = np.random.default_rng(seed).normal([-14.5, -24.7], [5.7, 4.8], size=(*shape, 2)).astype(np.float32)
    sar[3:9, 5:20] = np.nan
    sar[shape[0] // 2, shape[1] // 3, 1] = np.nan   # one channel only
    return sar


def test_class_maps_shape_dtype_fill_and_sic_unchanged(model):
    sar = random_sar((50, 70))
    out = predict_scene_charts(model, sar, tile=48, overlap=24, batch_size=3, probabilities=True)
    nodata = ~np.isfinite(sar).all(-1)
    for head, n in (("sod", 6), ("floe", 7)):
        classes = out[head]
        assert classes.shape == (50, 70) and classes.dtype == np.uint8
        assert (classes[nodata] == 255).all() and (classes[~nodata] < n).all()
        assert len(np.unique(classes[~nodata])) > 1                   # the stand-in is not constant
        probs = out[f"{head}_probability"]
        assert probs.shape == (50, 70, n) and np.isnan(probs[nodata]).all()
        np.testing.assert_allclose(probs[~nodata].sum(-1), 1.0, atol=1e-5)   # a blend of distributions is one
        np.testing.assert_array_equal(classes[~nodata], probs[~nodata].argmax(-1))
    np.testing.assert_array_equal(out["sic"], predict_scene(model, sar, tile=48, overlap=24, batch_size=3))
    unmasked = predict_scene_charts(model, sar, tile=48, overlap=24, mask_nodata=False)
    assert (unmasked["sod"] < 6).all() and (unmasked["floe"] < 7).all()   # a class for every pixel


def test_tiled_probabilities_equal_a_whole_image_call(model):
    sar = random_sar((101, 157), seed=1)
    tiled = predict_scene_charts(model, sar, tile=48, overlap=32, batch_size=2, probabilities=True)
    assert len(axis_tiles(101, 48, 32).origins) > 2 and len(axis_tiles(157, 48, 32).origins) > 2
    # The whole image in one model call (padded to a multiple of 16 by reflection, as inference pads).
    padded = np.pad(sar, ((0, 11), (0, 3), (0, 0)), mode="reflect")
    whole = {k: v.numpy()[0, :101, :157] for k, v in model(padded[None], training=False).items()}
    finite = np.isfinite(sar).all(-1)
    for head in ("sod", "floe"):
        np.testing.assert_allclose(tiled[f"{head}_probability"][finite], whole[head][finite], atol=1e-5)
        top2 = np.sort(whole[head], -1)[..., -2:]
        clear = finite & (top2[..., 1] - top2[..., 0] > 1e-4)
        assert clear.mean() > 0.99
        np.testing.assert_array_equal(tiled[head][clear], whole[head].argmax(-1)[clear])


@pytest.fixture(scope="module")
def scene_with_truth(tmp_path_factory):
    ds = make_scene(seed=5, size=136)
    rng = np.random.default_rng(0)
    dims = ("sar_lines", "sar_samples")
    ds["sod_truth"] = (dims, rng.integers(0, 6, (136, 136)).astype(np.uint8))
    ds["floe_truth"] = (dims, np.where(rng.random((136, 136)) < 0.2, 255, rng.integers(0, 7, (136, 136))).astype(np.uint8))
    path = tmp_path_factory.mktemp("scenes") / raw_file_name(ds)
    write_scene(ds, path)
    return str(path)


def test_products_netcdf_flags_round_trip_geotiff_and_panel(scene_with_truth, model, tmp_path):
    out = str(tmp_path / "OUT.nc")
    predict_scene_file(model, INFO, scene_with_truth, out, tile=32, overlap=8, formats=("netcdf", "geotiff"))
    scene = ai4arctic.read_scene(scene_with_truth, ("hh", "hv"), 2)
    expected = predict_scene_charts(model, scene.sar, tile=32, overlap=8)
    with netCDF4.Dataset(out) as nc:
        for name, classes in (("sod", SOD_CLASSES), ("floe", FLOE_CLASSES),
                              ("sod_truth", SOD_CLASSES), ("floe_truth", FLOE_CLASSES)):
            var = nc[name]
            assert var.dtype == np.uint8 and var._FillValue == 255, name
            assert list(var.flag_values) == list(range(len(classes)))
            assert var.flag_meanings.split() == list(classes)
        raw = np.ma.filled(nc["sod"][:], 255)
        np.testing.assert_array_equal(raw, expected["sod"])
    with xr.open_dataset(out) as ds:      # decoded: the 255 fill is missing, every class comes back
        for head in ("sod", "floe"):
            decoded = ds[head].values
            assert np.isnan(decoded[expected[head] == 255]).all()
            np.testing.assert_array_equal(decoded[expected[head] != 255], expected[head][expected[head] != 255])
        np.testing.assert_array_equal(np.nan_to_num(ds["floe_truth"].values, nan=255), scene.floe_truth)
    import rasterio
    with rasterio.open(str(tmp_path / "OUT_sod.tif")) as tif:
        assert tif.nodata == 255 and tif.dtypes[0] == "uint8"
        np.testing.assert_array_equal(tif.read(1), expected["sod"])
    with open(tmp_path / "OUT.png", "rb") as f:
        head = f.read(24)
    assert int.from_bytes(head[16:20], "big") == 2500     # 3 SIC columns + predicted + truth class columns


@pytest.fixture(scope="module")
def challenge(tmp_path_factory):
    """2 ready-to-train sample scenes split into test files + reference files (SIC, SOD, FLOE)."""
    root = tmp_path_factory.mktemp("autoice")
    _, prep = write_scenes(str(root / "raw"), 2, size=128, seed=21, ready_to_train=True)
    tests = []
    for p in prep:
        tests.append(str(root / "test" / os.path.basename(p)))
        autoice.split_reference(p, tests[-1], str(root / "ref" / autoice.reference_file_name(p)))
    return tests, str(root / "ref" / "*.nc")


def test_upload_package_holds_sod_and_floe(challenge, model, tmp_path):
    tests, _ = challenge
    out = str(tmp_path / "upload_package.nc")
    written = write_upload_package(model, INFO, tests, out, tile=32, overlap=8)
    with netCDF4.Dataset(out) as nc:
        assert sorted(nc.variables) == sorted(written) and len(written) == 6
        for path in tests:
            name = os.path.basename(path)[:19]
            scene = ai4arctic.read_scene(path, ("hh", "hv"), 2, truth_variable=None, land_mask="none")
            expected = predict_scene_charts(model, scene.sar, tile=32, overlap=8, mask_nodata=False)
            for chart, n in (("SOD", 6), ("FLOE", 7)):
                var = nc.variables[f"{name}_{chart}"]
                assert var.dtype == np.uint8 and var.dimensions == (f"{name}_{chart}_dim0", f"{name}_{chart}_dim1")
                assert var.filters()["zlib"] and var.filters()["complevel"] == 1 and "_FillValue" not in var.ncattrs()
                assert var.shape == nc.variables[f"{name}_SIC"].shape
                values = var[:]
                assert (values < n).all()
                np.testing.assert_array_equal(values, expected[chart.lower()])


def test_autoice_sod_floe_f1_and_score_against_reference_files(challenge, model, tmp_path):
    tests, ref_glob = challenge
    result = ev.evaluate_scenes(model, tests, ("hh", "hv"), downsample=2, tile=32, overlap=8,
                                reference_glob=ref_glob)
    a = result["autoice"]
    refs, preds = {"SOD": [], "FLOE": []}, {"SOD": [], "FLOE": []}
    for path in tests:
        reference = autoice.read_reference(autoice.find_reference_for(path, ref_glob))
        scene = ai4arctic.read_scene(path, ("hh", "hv"), 2)
        heads = predict_scene_charts(model, scene.sar, tile=32, overlap=8, mask_nodata=False)
        for chart in refs:
            keep = reference[chart] != 255
            refs[chart].append(reference[chart][keep])
            preds[chart].append(heads[chart.lower()][keep])
    for chart, key in (("SOD", "sod_f1"), ("FLOE", "floe_f1")):
        y, p = np.concatenate(refs[chart]), np.concatenate(preds[chart])
        assert y.size > 0 and a[f"{chart.lower()}_pixel_count"] == y.size
        assert a[key] == pytest.approx(100 * f1_score(y, p, average="weighted"), abs=1e-9)
        assert np.array(a["confusion"][chart]["counts"]).sum() == y.size
    assert a["score"] == pytest.approx((2 * a["sic_r2"] + 2 * a["sod_f1"] + a["floe_f1"]) / 5)


def test_exported_savedmodel_returns_the_keras_argmax(model, tmp_path):
    assert EXPORTERS["icechart"] is EXPORTERS["sic"]   # the ice-chart tasks share the SIC export
    path = str(tmp_path / "sm")
    export_sic(model, path, INFO)
    meta = json.load(open(os.path.join(path, "assets.extra", "tfseaice.json")))
    assert meta["outputs"]["sod"]["classes"] == list(SOD_CLASSES) and "floe_probability" in meta["outputs"]
    sig = tf.saved_model.load(path).signatures["serving_default"]
    x = random_sar((32, 48), seed=3)[None].repeat(2, 0)
    out = sig(sar=tf.constant(x))
    nodata = ~np.isfinite(x).all(-1)
    for head in ("sod", "floe"):
        assert out[head].dtype == tf.uint8 and out[head].shape == (2, 32, 48)
        classes = out[head].numpy()
        assert (classes[nodata] == 255).all()
        model_classes = model(x, training=False)[head].numpy().argmax(-1)
        np.testing.assert_array_equal(classes[~nodata], model_classes[~nodata])
        assert out[f"{head}_probability"].shape == (2, 32, 48, 6 if head == "sod" else 7)
    layer = keras.layers.TFSMLayer(path, call_endpoint="serving_default")
    scene = random_sar((70, 90), seed=4)
    served = predict_scene_charts(layer, scene, tile=48, overlap=32)
    direct = predict_scene_charts(model, scene, tile=48, overlap=32)
    for head in ("sic", "sod", "floe"):
        np.testing.assert_allclose(served[head].astype(np.float32), direct[head].astype(np.float32), atol=1e-5)


# ------------------------------------------------------------------ truth F1
HEADER = "poly_id;CT;CA;SA;FA;CB;SB;FB;CC;SC;FC;CN;CD;CF;POLY_TYPE"


def write_truth_scene(path, sod, floe, seed):
    """A raw-layout scene whose HH/HV hold the SOD/FLOE truth classes (for `truth_passthrough`)."""
    rng = np.random.default_rng(seed)
    hh, hv = sod.astype(np.float32), floe.astype(np.float32)
    hh[np.where(sod == 255, True, rng.random(sod.shape) < 0.05)] = np.nan   # no-data pixels
    dims = ("sar_lines", "sar_samples")
    ds = xr.Dataset({"nersc_sar_primary": (dims, hh), "nersc_sar_secondary": (dims, hv),
                     "polygon_icechart": (dims, np.ones(sod.shape, np.float32)),
                     "sod_truth": (dims, sod), "floe_truth": (dims, floe)},
                    coords={"polygon_codes": [HEADER, "1;50;-9;-9;-9;-9;-9;-9;-9;-9;-9;-9;-9;-9;I"]})
    ds.to_netcdf(path, engine="netcdf4")
    return str(path), np.isfinite(hh) & np.isfinite(hv)


@pytest.fixture
def truth_scenes(tmp_path):
    out = []
    for k, name in enumerate(("S1A_20200101T000000_dmi.nc", "S1A_20200202T000000_cis.nc")):
        rng = np.random.default_rng(k)
        sod = rng.integers(0, 6, (20, 24)).astype(np.uint8)
        floe = rng.integers(0, 7, (20, 24)).astype(np.uint8)
        floe[:3] = 255                         # no floe truth there
        out.append((*write_truth_scene(tmp_path / name, sod, floe, k), sod, floe))
    return out


def test_truth_f1_is_sklearns_weighted_f1_and_one_for_a_perfect_model(truth_scenes, tmp_path):
    paths = [t[0] for t in truth_scenes]
    perfect = ev.evaluate_scenes(truth_passthrough(), paths, downsample=1, tile=32, overlap=8)
    assert perfect["truth_sod_f1"] == 1.0 and perfect["truth_floe_f1"] == 1.0
    wrong_map = [0, 1, 2, 2, 0, 5]                 # thin FYI read as young, thick FYI as water
    result = ev.evaluate_scenes(truth_passthrough(wrong_map), paths, downsample=1, tile=32, overlap=8)
    y_sod, p_sod, y_floe = [], [], []
    for _, finite, sod, floe in truth_scenes:
        y_sod.append(sod[finite & (sod != 255)])
        p_sod.append(np.array(wrong_map)[sod[finite & (sod != 255)]])
        y_floe.append(floe[finite & (floe != 255)])
    y, p = np.concatenate(y_sod), np.concatenate(p_sod)
    assert result["truth_sod_pixel_count"] == y.size
    assert result["truth_sod_f1"] == pytest.approx(f1_score(y, p, average="weighted"), abs=1e-12)
    assert 0 < result["truth_sod_f1"] < 1 and result["truth_floe_f1"] == 1.0
    assert result["truth_floe_pixel_count"] == np.concatenate(y_floe).size
    first = result["scenes"]["20200101T000000_dmi"]
    keep = truth_scenes[0][1] & (truth_scenes[0][2] != 255)
    assert first["truth_sod_f1"] == pytest.approx(
        f1_score(truth_scenes[0][2][keep], np.array(wrong_map)[truth_scenes[0][2][keep]], average="weighted"))
    # The report: JSON, a truth column in the Markdown, the confusion PNGs beside the JSON.
    out = str(tmp_path / "rep" / "metrics.json")
    text = ev.write_report(result, out)
    assert "truth SOD F1" in text and "truth FLOE F1" in text
    counts = np.array(json.load(open(out))["truth_confusion"]["SOD"]["counts"])
    assert counts.sum() == y.size and counts[3, 2] == np.sum(y == 3)     # rows: truth class
    assert os.path.getsize(tmp_path / "rep" / "metrics_confusion_truth_SOD.png") > 5000
    assert os.path.exists(tmp_path / "rep" / "metrics_confusion_truth_FLOE.png")
    with pytest.raises(Exception, match="--overwrite"):
        ev.check_outputs(str(tmp_path / "rep" / "metrics.json"), overwrite=False)


def test_sic_only_model_has_no_class_keys_or_pictures(truth_scenes, tmp_path):
    def sic_only(sar):
        return tf.where(tf.math.is_finite(sar[..., :1]), sar[..., :1] / 5.0, 0.0)

    result = ev.evaluate_scenes(sic_only, [t[0] for t in truth_scenes], downsample=1, tile=32, overlap=8)
    assert not {k for k in result if "sod" in k or "floe" in k} and "truth_confusion" not in result
    assert set(result["autoice"]) == {"sic_r2", "sic_pixel_count", "sic_unpredicted_pixel_count",
                                      "reference", "definition"}
    out = str(tmp_path / "rep" / "metrics.json")
    ev.write_report(result, out)
    assert sorted(os.listdir(tmp_path / "rep")) == ["metrics.json", "metrics.md"]


def test_autoice_from_the_charts_dominant_rasters(scene_with_truth, model):
    """Without reference files, SOD/FLOE are scored against the polygons' dominant classes."""
    from tfseaice.evaluation.autoice import AutoiceEvaluation

    scene = ai4arctic.read_scene(scene_with_truth, ("hh", "hv"), 2)
    heads = predict_scene_charts(model, scene.sar, tile=32, overlap=8, mask_nodata=False)
    evaluation = AutoiceEvaluation()
    own = evaluation.add(scene, heads)
    for chart in ("SOD", "FLOE"):
        # the polygons' dominant classes, looked up by hand from the table's rows
        by_id = dict(zip(scene.table.ids.tolist(), getattr(scene.table, f"{chart.lower()}_class").tolist()))
        ref = np.vectorize(lambda i: by_id.get(int(i), 255))(scene.chart_ids).astype(np.uint8)
        keep = ref != 255
        assert own[f"{chart.lower()}_pixel_count"] == keep.sum() > 0
        assert own[f"{chart.lower()}_f1"] == pytest.approx(
            100 * f1_score(ref[keep], heads[chart.lower()][keep], average="weighted"))
    assert evaluation.result()["score"] == pytest.approx((2 * own["sic_r2"] + 2 * own["sod_f1"] + own["floe_f1"]) / 5)


def test_sic_read_off_the_sod_head_against_the_sic_head_and_the_truth(scene_with_truth, model):
    """1 - P(open water) of the SOD head: its gap to the SIC head and its R² against the SIC truth."""
    result = ev.evaluate_scenes(model, [scene_with_truth], ("hh", "hv"), downsample=2, tile=32, overlap=8)
    scene = ai4arctic.read_scene(scene_with_truth, ("hh", "hv"), 2)
    heads = predict_scene_charts(model, scene.sar, tile=32, overlap=8, mask_nodata=False, probabilities=True)
    from_sod = 1.0 - heads["sod_probability"][..., 0].astype(np.float64)
    finite = np.isfinite(scene.sar).all(-1)
    gap = np.sqrt(np.mean((from_sod[finite] - heads["sic"][finite]) ** 2))
    assert result["sic_sod_gap_rmse"] == pytest.approx(gap, rel=1e-6) and gap > 0.01
    inside = finite & (scene.chart_ids >= 0) & np.isfinite(scene.sic_truth)
    t, p = scene.sic_truth[inside].astype(np.float64), from_sod[inside]
    r2 = 1 - np.sum((t - p) ** 2) / np.sum((t - t.mean()) ** 2)
    assert result["truth_sic_from_sod_r2"] == pytest.approx(r2, rel=1e-6, abs=1e-9)
    # a SIC-only model has no SOD head: no such keys
    sic_only = ev.evaluate_scenes(lambda sar: tf.zeros_like(sar[..., :1]), [scene_with_truth], ("hh", "hv"),
                                  downsample=2, tile=32, overlap=8)
    assert "sic_sod_gap_rmse" not in sic_only and "truth_sic_from_sod_r2" not in sic_only
