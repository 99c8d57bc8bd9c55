"""AutoICE: scores against reference files (or a scene's own chart) and the upload package."""

import os
import subprocess
import sys

import keras
import netCDF4
import numpy as np
import pytest
import xarray as xr

from tfseaice.data import ai4arctic, autoice
from tfseaice.errors import InputError
from tfseaice.evaluation.sic import evaluate_scenes
from tfseaice.models.unet import build_sic_unet
from tfseaice.serving.autoice_submission import to_grid, write_upload_package
from tfseaice.serving.scene_inference import predict_scene

from sic_fixtures import write_scenes

CHANNELS = ("hh", "hv")
INFO = {"channels": list(CHANNELS), "downsample": 2}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """2 raw scenes with charts; their ready-to-train twins split as the challenge released its test set
    (chart-less test files + `*_reference.nc`), the references with a masked band."""
    root = tmp_path_factory.mktemp("autoice")
    raw, prep = write_scenes(str(root / "raw"), 2, size=128, seed=21, ready_to_train=True)
    tests, refs = [], []
    for p in prep:
        test, ref = str(root / "test" / os.path.basename(p)), str(root / "ref" / autoice.reference_file_name(p))
        autoice.split_reference(p, test, ref)
        with netCDF4.Dataset(ref, "a") as nc:
            nc["SIC"][:5] = 255                          # masked rows in the reference
        tests.append(test)
        refs.append(ref)
    return {"raw": raw, "prep": prep, "test": tests, "ref": refs, "root": root}


def test_split_keeps_the_charts_in_the_reference_only(files):
    for prep, test, ref in zip(files["prep"], files["test"], files["ref"]):
        assert os.path.basename(ref) == os.path.basename(prep)[:19] + "_reference.nc"
        with xr.open_dataset(prep) as p, xr.open_dataset(test) as t, xr.open_dataset(ref) as r:
            assert not {"SIC", "SOD", "FLOE"} & set(t.variables)
            np.testing.assert_array_equal(t["nersc_sar_primary"].values, p["nersc_sar_primary"].values)
            np.testing.assert_array_equal(r["SOD"].values, p["SOD"].values)
            np.testing.assert_array_equal(r["SIC"].values[5:], p["SIC"].values[5:])


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(0)
    return build_sic_unet(2, filters=(4, 8, 8, 8), norm_mean=[0.0, 0.0], norm_std=[1.0, 1.0])


def numpy_r2_percent(pairs):
    """R² x 100 of pooled (reference class, predicted class) arrays, by the textbook formula."""
    y = np.concatenate([r for r, _ in pairs]).astype(np.float64)
    yhat = np.concatenate([p for _, p in pairs]).astype(np.float64)
    return 100 * (1 - np.sum((y - yhat) ** 2) / np.sum((y - y.mean()) ** 2))


def predicted_classes(model, path, **read):
    scene = ai4arctic.read_scene(path, CHANNELS, 2, **read)
    pred = predict_scene(model, scene.sar, tile=32, overlap=8, mask_nodata=False)
    return np.clip(np.rint(pred * 10), 0, 10), scene


def test_sic_r2_against_reference_files_equals_numpy(files, model):
    result = evaluate_scenes(model, files["test"], CHANNELS, downsample=2, tile=32, overlap=8,
                             reference_glob=str(files["root"] / "ref" / "*_reference.nc"))
    pairs = []
    for test, ref in zip(files["test"], files["ref"]):
        pred, _ = predicted_classes(model, test)
        with xr.open_dataset(ref) as ds:
            y = ds["SIC"].values
        keep = y != 255
        assert (~keep[:5]).all() and keep.any()
        pairs.append((y[keep], pred[keep]))
    auto = result["autoice"]
    assert auto["reference"] == "reference files"
    assert auto["sic_pixel_count"] == sum(len(r) for r, _ in pairs)
    assert auto["sic_r2"] == pytest.approx(numpy_r2_percent(pairs), abs=1e-6)
    # The test files have no chart: no chart figures, but each scene has its own AutoICE figure.
    assert result["pixel_count"] == 0 and result["polygon_count"] == 0
    assert all(not s["has_chart"] and "autoice" in s for s in result["scenes"].values())


def test_autoice_from_the_scenes_own_charts(files, model):
    result = evaluate_scenes(model, files["raw"], CHANNELS, downsample=2, tile=32, overlap=8)
    pairs = []
    for raw in files["raw"]:
        pred, scene = predicted_classes(model, raw)
        chart = scene.chart_sic()
        y = np.where(np.isfinite(chart), np.rint(np.nan_to_num(chart) * 10), 255)
        keep = y != 255
        pairs.append((y[keep], pred[keep]))
    assert result["autoice"]["reference"] == "scene charts"
    assert result["autoice"]["sic_r2"] == pytest.approx(numpy_r2_percent(pairs), abs=1e-6)
    assert result["pixel_count"] > 0   # the chart figures are there too


def test_a_scene_without_chart_or_reference_is_refused(files, model):
    with pytest.raises(InputError, match="no ice chart and no reference"):
        evaluate_scenes(model, files["test"][:1], CHANNELS, downsample=2, tile=32, overlap=8)


def test_reference_file_missing_names_the_scene(files, model):
    with pytest.raises(InputError, match="no reference file"):
        evaluate_scenes(model, files["test"][:1], CHANNELS, downsample=2, tile=32, overlap=8,
                        reference_glob=str(files["root"] / "nothing" / "*.nc"))


def test_coarse_predictions_are_interpolated_to_the_80m_grid():
    coarse = np.array([[0.0, 1.0], [1.0, 1.0]], np.float32)
    fine = to_grid(coarse, (5, 5), 2, "x.nc")     # 2 x 2 of 160 m -> 4 x 4 of 80 m, padded to 5 x 5
    assert fine.shape == (5, 5)
    assert fine[0, 0] == 0.0 and fine[3, 3] == 1.0 and 0 < fine[1, 1] < 1   # bilinear, not nearest
    np.testing.assert_array_equal(fine[4], fine[3])                          # edge kept
    with pytest.raises(InputError, match="does not cover"):
        to_grid(coarse, (20, 20), 2, "x.nc")


def test_upload_package_has_the_challenges_names_dtypes_and_shapes(files, model, tmp_path):
    out = str(tmp_path / "upload_package.nc")
    written = write_upload_package(model, INFO, files["test"], out, tile=32, overlap=8)
    assert sorted(os.listdir(tmp_path)) == ["upload_package.nc"]
    with netCDF4.Dataset(out) as nc:
        assert sorted(nc.variables) == sorted(written)
        for path in files["test"]:
            name = os.path.basename(path)[:19]
            var = nc.variables[f"{name}_SIC"]
            assert var.dtype == np.uint8 and var.dimensions == (f"{name}_SIC_dim0", f"{name}_SIC_dim1")
            assert var.filters()["zlib"] and var.filters()["complevel"] == 1
            assert "_FillValue" not in var.ncattrs()
            with xr.open_dataset(path) as ds:
                assert var.shape == (ds.sizes["sar_lines"], ds.sizes["sar_samples"])
            expected, _ = predicted_classes(model, path)
            np.testing.assert_array_equal(var[:], expected.astype(np.uint8))   # every pixel has a class
    with pytest.raises(InputError, match="overwrite"):
        write_upload_package(model, INFO, files["test"], out)


def test_autoice_cli_writes_the_package_with_a_line_per_scene(files, model, tmp_path):
    from tfseaice.serving.sic_export import export_sic

    exported = str(tmp_path / "sm")
    export_sic(model, exported, INFO)
    out = str(tmp_path / "upload_package.nc")
    res = subprocess.run([sys.executable, "-m", "tfseaice.autoice", f"--saved_model={exported}",
                          f"--scenes_glob={files['root'] / 'test' / '*_prep.nc'}", f"--out={out}",
                          "--tile=32", "--overlap=8"], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert res.returncode == 0, res.stderr[-2000:]
    assert sum("[1/2]" in line or "[2/2]" in line for line in res.stderr.splitlines()) == 2
    with netCDF4.Dataset(out) as nc:
        assert len(nc.variables) == 2


def test_raw_test_files_against_split_references_score_as_the_charted_scenes(files, model, tmp_path):
    """Splitting raw scenes into chart-less files + references, then scoring against the references,
    gives the AutoICE figure of the scenes scored against their own charts."""
    for raw in files["raw"]:
        autoice.split_reference(raw, str(tmp_path / "test" / os.path.basename(raw)),
                                str(tmp_path / "ref" / autoice.reference_file_name(raw)))
    charted = evaluate_scenes(model, files["raw"], CHANNELS, downsample=2, tile=32, overlap=8)["autoice"]
    split = evaluate_scenes(model, sorted(str(p) for p in (tmp_path / "test").iterdir()), CHANNELS, downsample=2,
                            tile=32, overlap=8, reference_glob=str(tmp_path / "ref" / "*.nc"))["autoice"]
    assert split["sic_pixel_count"] == charted["sic_pixel_count"] > 0
    assert split["sic_r2"] == pytest.approx(charted["sic_r2"], abs=1e-9)
    with pytest.raises(InputError, match="no chart to split off"):
        autoice.split_reference(str(tmp_path / "test" / os.path.basename(files["raw"][0])),
                                str(tmp_path / "x.nc"), str(tmp_path / "y.nc"))
