"""Sentinel-1 products + SIGRID-3 charts -> scenes (Beam) -> TFRecords -> train -> predict from a product (issue 23).

Tiny seeded sample products (160 x 160 px at 40 m) placed on open water:
- A (Greenland Sea) with its own chart, time-stamped 2 h before it: paired;
- B (Fram Strait) with a chart time-stamped for B but drawn over A's place: misses -> chart-less, with that reason;
- C (Greenland Sea, where A's chart lies) with no chart near its time: chart-less; paired with A's chart by --pairs_csv;
- a truncated .zip: failed_scenes.json, the others convert.
"""

import csv
import datetime
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import xarray as xr

from data_prep import make_sample_products, sentinel1_to_scenes
from data_prep.ai4arctic_to_tfrecord import convert as to_tfrecord
from tfseaice.data import ai4arctic, codes, scene_files, sentinel1_scenes, sigrid3
from tfseaice.errors import InputError
from tfseaice.simulate import sample_products, scenes, sigrid3_files

SIZE = 160


def _scene(seed, index, site):
    lat0, lon0, _ = make_sample_products.SITES[site]
    return make_sample_products.relocate(scenes.make_scene(scenes.scene_seed(seed, index), SIZE), lat0, lon0)


def _time(ds, hours=0.0):
    return datetime.datetime.strptime(ds.attrs["acquisition_time"], "%Y%m%dT%H%M%S") + datetime.timedelta(hours=hours)


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    root = tmp_path_factory.mktemp("s1")
    a, b, c = _scene(7, 0, 0), _scene(7, 1, 2), _scene(7, 2, 0)
    prod = str(root / "products")
    paths = {"A": sample_products.product_from_scene(a, prod),
             "B": sample_products.product_from_scene(b, prod, zip=True),
             "C": sample_products.product_from_scene(c, prod)}
    charts = str(root / "charts")
    chart_a = sigrid3_files.write_sigrid3(a, charts, fmt="shp", time=_time(a, -2))
    chart_b = sigrid3_files.write_sigrid3(a, charts, fmt="gpkg", service="cis", time=_time(b, +1))  # B's time, A's place
    broken = os.path.join(prod, "S1A_EW_GRDM_1SDH_20200101T000000_20200101T000100_000001_000001_0001.zip")
    data = open(paths["B"], "rb").read()
    with open(broken, "wb") as f:
        f.write(data[: len(data) // 2])
    # C again, as a SAFE folder and as a .zip elsewhere: the products mapped in the round trip.
    unseen = {"safe": sample_products.product_from_scene(c, str(root / "unseen_safe")),
              "zip": sample_products.product_from_scene(c, str(root / "unseen_zip"), zip=True)}
    out = str(root / "scenes")
    ok, failed = sentinel1_to_scenes.convert(out, safe_glob=os.path.join(prod, "S1*"),
                                             chart_glob=os.path.join(charts, "*"))
    return dict(root=root, a=a, c=c, paths=paths, chart_a=chart_a, chart_b=chart_b, broken=broken,
                unseen=unseen, out=out, ok={r["product"]: r for r in ok}, failed=failed)


def _report(samples, key):
    return samples["ok"][os.path.abspath(samples["paths"][key])]


def test_a_chart_pairs_by_time_and_coverage(samples):
    r = _report(samples, "A")
    assert r["chart"] == samples["chart_a"]
    assert r["chart_offset_hours"] == pytest.approx(2.0, abs=0.02) and r["chart_overlap"] > 0.5
    assert r["scene"] == f"{samples['a'].attrs['acquisition_time']}_s1_{sentinel1_scenes.product_name(samples['paths']['A'])}.nc"


def test_a_chart_in_time_that_misses_the_product_leaves_it_chartless_with_the_reason(samples):
    r = _report(samples, "B")
    assert r["chart"] is None and os.path.basename(samples["chart_b"]) in r["reason"] and "miss" in r["reason"]
    with xr.open_dataset(os.path.join(samples["out"], r["scene"])) as ds:
        assert "polygon_icechart" not in ds and "polygon_codes" not in ds.variables


def test_no_chart_near_the_acquisition_gives_a_chartless_scene(samples):
    r = _report(samples, "C")
    assert r["chart"] is None and "max_chart_offset_hours" in r["reason"]


def test_a_broken_product_is_listed_and_the_others_convert(samples):
    assert [f["path"] for f in samples["failed"]] == [os.path.normpath(samples["broken"])]
    assert "zip" in samples["failed"][0]["error"]
    with open(os.path.join(samples["out"], "failed_scenes.json")) as f:
        assert json.load(f) == samples["failed"]
    with open(os.path.join(samples["out"], "scenes.json")) as f:
        assert len(json.load(f)) == 3
    assert len([n for n in os.listdir(samples["out"]) if n.endswith(".nc")]) == 3


def test_the_written_scene_reads_back_with_the_chart_ids_codes_and_land(samples):
    r = _report(samples, "A")
    path = os.path.join(samples["out"], r["scene"])
    assert ai4arctic.scene_id_of(path) == samples["a"].attrs["acquisition_time"]
    scene = ai4arctic.read_scene(path, ("hh", "hv"), 1)
    chart = sigrid3.read_chart(samples["chart_a"])
    assert scene.has_chart and set(scene.table.ids.tolist()) <= set(chart.ids.tolist())
    with xr.open_dataset(path) as ds:
        assert str(ds["polygon_codes"].values[0]) == codes.HEADER
        assert (ds["distance_map"].values == 41).all()   # the Greenland Sea: over 300 km from any coast
        assert ds["nersc_sar_primary"].attrs["units"] == "dB"
        # The product's SAR is the sample scene's (known sigma0), where both are finite.
        src = samples["a"]["nersc_sar_primary"].values
        got = ds["nersc_sar_primary"].values
        both = np.isfinite(src) & np.isfinite(got)
        assert both.mean() > 0.5 and np.median(np.abs(got[both] - src[both])) < 0.2
    # The chart's SIC on the pixels is the sample scene's chart SIC (rasterised back through the geolocation).
    truth = ai4arctic.read_raw_dataset(samples["a"], f"{samples['a'].attrs['acquisition_time']}_sample.nc", ("hh",), 1,
                                      land_mask="none").chart_sic()
    got = scene.chart_sic()
    both = np.isfinite(truth) & np.isfinite(got)
    assert both.mean() > 0.5 and (np.abs(truth[both] - got[both]) < 1e-6).mean() > 0.95


def test_a_later_run_is_refused_without_overwrite(samples):
    with pytest.raises(InputError, match="overwrite"):
        sentinel1_to_scenes.convert(samples["out"], safe_glob=os.path.join(str(samples["root"]), "products", "S1*"))


def test_pairs_csv_pairs_a_chart_whatever_its_time(samples, tmp_path):
    csv_path = tmp_path / "pairs.csv"
    with open(csv_path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["safe", "chart"])
        w.writerow([samples["paths"]["C"], samples["chart_a"]])
    elements = sentinel1_to_scenes.plan(pairs_csv=str(csv_path))
    assert elements == [(os.path.normpath(samples["paths"]["C"]), [(os.path.normpath(samples["chart_a"]), None)])]
    ok, failed = sentinel1_to_scenes.convert(str(tmp_path / "out"), pairs_csv=str(csv_path))
    assert failed == [] and ok[0]["chart"] == os.path.normpath(samples["chart_a"]) and ok[0]["polygons"] > 0
    # By time alone C has no chart (its acquisition is far from chart A's time stamp).
    assert sentinel1_scenes.chart_candidates(samples["paths"]["C"], [samples["chart_a"]], 24) == []
    # --overwrite replaces the conversion as a whole: only the new run's scene is left.
    with open(csv_path, "w", newline="") as f:
        f.write(f"safe,chart\n{samples['paths']['B']},\n")
    ok, _ = sentinel1_to_scenes.convert(str(tmp_path / "out"), pairs_csv=str(csv_path), overwrite=True)
    assert ok[0]["chart"] is None
    assert sorted(n for n in os.listdir(tmp_path / "out") if n.endswith(".nc")) == [ok[0]["scene"]]


def test_an_unreadable_candidate_chart_fails_the_product_naming_the_chart(samples, tmp_path):
    stem = os.path.splitext(samples["chart_a"])[0]
    for ext in (".shp", ".shx", ".dbf"):   # no .prj
        with open(stem + ext, "rb") as src, open(tmp_path / ("noprj" + ext), "wb") as dst:
            dst.write(src.read())
    with pytest.raises(InputError) as err:
        sentinel1_scenes.write_product_scene(samples["paths"]["A"], str(tmp_path / "out"),
                                             [(str(tmp_path / "noprj.shp"), 1.0)])
    assert "noprj" in str(err.value) and not os.path.exists(tmp_path / "out" / _report(samples, "A")["scene"])


def test_the_time_window_is_the_flag(samples):
    a = samples["paths"]["A"]
    (chart, hours), = sentinel1_scenes.chart_candidates(a, [samples["chart_a"]], 24)
    assert chart == samples["chart_a"] and hours == pytest.approx(2.0, abs=0.02)   # the name holds minutes
    assert sentinel1_scenes.chart_candidates(a, [samples["chart_a"]], 1.5) == []


@pytest.fixture(scope="module")
def records(samples, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("records"))
    info, failed = to_tfrecord(os.path.join(samples["out"], "*.nc"), out, channels=("hh", "hv"), patch_size=32,
                               stride=32, downsample=2, val_fraction=0.0, seed=1, num_shards=1)
    return out, info, failed


def test_ai4arctic_to_tfrecord_converts_the_scenes(records, samples):
    _, info, failed = records
    assert info["splits"]["train"]["num_examples"] > 0
    assert info["splits"]["train"]["scenes"] == [samples["a"].attrs["acquisition_time"]]
    assert sorted("no ice chart" in f["error"] for f in failed) == [True, True]   # B and C: chart-less


def test_round_trip_predicts_straight_from_another_products_safe_and_zip(records, samples, tmp_path):
    from tfseaice.serving.loading import load_trained
    from tfseaice.serving.sic_scene import predict_scene_file
    from tfseaice.training.config import TrainConfig
    from tfseaice.train_lib import run_training

    data_dir, _, _ = records
    model_dir = str(tmp_path / "model")
    run_training(TrainConfig(task="sic_regional", data_dir=data_dir, model_dir=model_dir, epochs=1, steps_per_epoch=2,
                             batch_size=2, learning_rate=3e-3, seed=1, image_every=0, precision="fp32",
                             extra={"filters": [4, 8, 8, 8]}))
    model, info = load_trained(model_dir)
    outs = {}
    for kind, product in samples["unseen"].items():
        out = str(tmp_path / kind / "map.nc")
        predict_scene_file(model, info, product, out, tile=32, overlap=8, formats=("netcdf", "geotiff"))
        with xr.open_dataset(out) as ds:
            assert dict(ds.sizes) == {"sar_lines": SIZE // 2, "sar_samples": SIZE // 2}
            assert {"sic", "ice_water", "lat", "lon"} <= set(ds.variables)
            assert abs(float(ds["lat"].mean()) - make_sample_products.SITES[0][0]) < 0.2   # the product's own GCPs
            outs[kind] = ds["sic"].values
        assert os.path.exists(str(tmp_path / kind / "map.png"))
        assert os.path.exists(str(tmp_path / kind / "map_sic.tif"))
    assert np.isfinite(outs["safe"]).mean() > 0.5
    np.testing.assert_array_equal(outs["safe"], outs["zip"])
    # The product read directly gives the products of its converted scene (one code path).
    scene_nc = os.path.join(samples["out"], _report(samples, "C")["scene"])
    out = str(tmp_path / "nc" / "map.nc")
    predict_scene_file(model, info, scene_nc, out, tile=32, overlap=8)
    with xr.open_dataset(out) as ds:
        np.testing.assert_allclose(ds["sic"].values, outs["safe"], atol=1e-5)
    # The entry point takes the .SAFE folder as --scene.
    cli_out = tmp_path / "cli" / "map.nc"
    res = subprocess.run([sys.executable, "-m", "tfseaice.predict", f"--model_dir={model_dir}",
                          f"--scene={samples['unseen']['safe']}", f"--out={cli_out}", "--format=netcdf,geotiff",
                          "--tile=32", "--overlap=8", "--precision=fp32"], capture_output=True, text=True,
                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    with xr.open_dataset(cli_out) as ds:
        np.testing.assert_allclose(ds["sic"].values, outs["safe"], atol=1e-5)
    assert os.path.exists(tmp_path / "cli" / "map.png") and os.path.exists(tmp_path / "cli" / "map_sic.tif")
    # autoice takes the product too: the upload package's variable is named by its start time.
    from tfseaice.serving.autoice_submission import write_upload_package

    written = write_upload_package(model, info, [samples["unseen"]["zip"]], str(tmp_path / "upload.nc"), tile=32,
                                   overlap=8)
    assert written == {f"{samples['c'].attrs['acquisition_time']}_SIC": (SIZE // 2, SIZE // 2)}
    assert scene_files.is_scene_path(samples["unseen"]["safe"]) and scene_files.is_scene_path(samples["unseen"]["zip"])
    # The georeference comes from the product's own GCPs.
    latlon, gcps = scene_files.georeference(samples["unseen"]["zip"], None, (SIZE // 2, SIZE // 2), 2)
    assert latlon is not None and gcps is not None and abs(float(np.mean(latlon[0])) - 75.0) < 0.2


def test_pairs_csv_paths_are_relative_to_the_csv_and_a_bad_header_is_refused(tmp_path):
    (tmp_path / "lists").mkdir()
    good = tmp_path / "lists" / "pairs.csv"
    good.write_text("SAFE, Chart\n../p/S1A_X.SAFE,../c/chart_20210101T1200Z.shp\n../p/S1A_Y.zip,\n")
    assert sentinel1_to_scenes.read_pairs(str(good)) == {
        str(tmp_path / "p" / "S1A_X.SAFE"): str(tmp_path / "c" / "chart_20210101T1200Z.shp"),
        str(tmp_path / "p" / "S1A_Y.zip"): None}
    bad = tmp_path / "bad.csv"
    bad.write_text("product,chart\nS1A_X.SAFE,c.shp\n")
    with pytest.raises(InputError, match="safe,chart"):
        sentinel1_to_scenes.read_pairs(str(bad))
