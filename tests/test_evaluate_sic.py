"""Whole-scene SIC evaluation (paper Table 1): metrics against hand-computed values, report files."""

import json
import math
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import xarray as xr

from tfseaice.errors import InputError
from tfseaice.evaluation import sic as ev

N = np.nan
HEADER = "poly_id;CT;CA;SA;FA;CB;SB;FB;CC;SC;FC;CN;CD;CF;POLY_TYPE"


def _row(pid, ct, ptype):
    return f"{pid};{ct};-9;-9;-9;-9;-9;-9;-9;-9;-9;-9;-9;-9;{ptype}"


def write_raw_scene(path, hh, hv, ids, rows, truth=None):
    """A minimal raw-layout AI4Arctic file (what read_scene needs). ids: -1 -> NaN (land)."""
    ids = np.asarray(ids, np.float32)
    ids[ids < 0] = np.nan
    dims = ("sar_lines", "sar_samples")
    data = {"nersc_sar_primary": (dims, np.asarray(hh, np.float32)),
            "nersc_sar_secondary": (dims, np.asarray(hv, np.float32)),
            "polygon_icechart": (dims, ids)}
    if truth is not None:
        data["sic_truth"] = (dims, np.asarray(truth, np.float32))
    ds = xr.Dataset(data, coords={"polygon_codes": [HEADER] + rows})
    ds.to_netcdf(path, engine="netcdf4")
    return str(path)


def channel0_model():
    """Stand-in SIC model whose prediction is the HH channel itself (1x1 conv, weights [1, 0])."""
    x_in = keras.Input((None, None, 2), name="sar")
    conv = keras.layers.Conv2D(1, 1, use_bias=False)
    model = keras.Model(x_in, conv(x_in))
    conv.set_weights([np.array([1.0, 0.0], np.float32).reshape(1, 1, 2, 1)])
    return model


# Scene A: polygons 1 (CT 20 -> 0.2), 2 (CT 92 -> 1.0), 3 (water -> 0.0), 9 (CT 99, unlabelled), land.
HH_A = [[0.1, 0.3, 0.2, 0.9, 0.8, 1.0],
        [0.2, 0.0, 0.4, 0.7, N, 1.0],
        [0.0, 0.1, 0.0, 0.9, 0.9, 0.8],
        [0.3, 0.3, 0.2, 0.2, 0.5, 0.6]]
HV_A = [[-20.0] * 6, [N] + [-20.0] * 5, [-20.0] * 6, [-20.0] * 6]   # (1, 0): HV missing only
IDS_A = [[1, 1, 1, 2, 2, 2],
         [1, 1, 1, 2, 2, 2],
         [3, 3, 3, 2, 2, 2],
         [-1, -1, 3, 3, 9, 9]]
ROWS_A = [_row(1, 20, "I"), _row(2, 92, "I"), _row(3, 80, "W"), _row(9, 99, "I")]
TRUTH_A = [[0.0, 0.5, 0.2, 1.0, 1.0, 1.0],
           [0.2, 0.0, 0.6, 0.6, 1.0, 1.0],
           [0.0, 0.0, 0.0, 1.0, 0.8, 0.8],
           [N, N, 0.3, 0.2, 0.4, 0.7]]
# Scene B (no truth variable): polygon 5 (CT 50 -> 0.5), polygon 6 (water).
HH_B = [[0.4, 0.6, 0.8], [0.1, 0.0, 0.2]]
IDS_B = [[5, 5, 5], [6, 6, 6]]
ROWS_B = [_row(5, 50, "I"), _row(6, 0, "W")]


def _rmse_r2(y, yhat):
    y, yhat = np.asarray(y, float), np.asarray(yhat, float)
    sse = np.sum((y - yhat) ** 2)
    return math.sqrt(sse / y.size), 1 - sse / np.sum((y - y.mean()) ** 2)


@pytest.fixture
def scenes(tmp_path):
    a = write_raw_scene(tmp_path / "S1A_20200101T000000_dmi_a.nc", HH_A, HV_A, IDS_A, ROWS_A, TRUTH_A)
    b = write_raw_scene(tmp_path / "S1A_20200202T000000_cis_b.nc", HH_B, np.full((2, 3), -20.0), IDS_B, ROWS_B)
    return a, b


def test_metrics_equal_hand_computed_values(scenes):
    result = ev.evaluate_scenes(channel0_model(), list(scenes), channels=("hh", "hv"), downsample=1,
                                truth_variable="sic_truth", tile=32, overlap=8)
    a, b = result["scenes"]["20200101T000000_dmi"], result["scenes"]["20200202T000000_cis"]

    # Scene A, pixel level: labelled pixels with finite HH and HV (not (1,0), (1,4), land, polygon 9).
    y_a = [0.2] * 5 + [1.0] * 8 + [0.0] * 5
    p_a = [0.1, 0.3, 0.2, 0.0, 0.4] + [0.9, 0.8, 1.0, 0.7, 1.0, 0.9, 0.9, 0.8] + [0.0, 0.1, 0.0, 0.2, 0.2]
    assert a["pixel_count"] == 18
    rmse, r2 = _rmse_r2(y_a, p_a)
    assert a["pixel_rmse"] == pytest.approx(rmse, abs=1e-6) and a["pixel_r2"] == pytest.approx(r2, abs=1e-6)
    # Polygon level: means 0.2 (of 5 px), 7.0/8 = 0.875, 0.5/5 = 0.1 vs 0.2, 1.0, 0.0.
    assert a["polygon_count"] == 3
    assert a["polygon_rmse"] == pytest.approx(math.sqrt((0.0 + 0.125 ** 2 + 0.1 ** 2) / 3), abs=1e-6)
    assert a["polygon_r2"] == pytest.approx(1 - 0.025625 / 0.56, abs=1e-6)
    # Truth: inside the chart (polygon 9 included, land not), finite prediction and truth: 20 pixels.
    hh, hv, t = np.array(HH_A), np.array(HV_A), np.array(TRUTH_A)
    keep = np.isfinite(hh) & np.isfinite(hv) & np.isfinite(t) & (np.array(IDS_A) >= 0)
    assert keep.sum() == 20 and a["truth_pixel_count"] == 20
    rmse, r2 = _rmse_r2(t[keep], hh[keep])
    assert a["truth_pixel_rmse"] == pytest.approx(rmse, abs=1e-6)
    assert a["truth_pixel_r2"] == pytest.approx(r2, abs=1e-6)
    ti, pi = t[keep] >= 0.5, hh[keep] >= 0.5
    tp, fp, fn = np.sum(ti & pi), np.sum(~ti & pi), np.sum(ti & ~pi)
    assert (tp, fp, fn) == (9, 1, 2)  # by hand: truth ice 11, predicted ice 10, both 9
    assert a["truth_ice_water_f1"] == pytest.approx(18 / 21)

    # Scene B: no truth -> null; pixel and polygon figures.
    assert b["truth_pixel_rmse"] is None and b["truth_ice_water_f1"] is None and b["truth_pixel_count"] is None
    y_b, p_b = [0.5, 0.5, 0.5, 0, 0, 0], [0.4, 0.6, 0.8, 0.1, 0.0, 0.2]
    assert b["pixel_rmse"] == pytest.approx(_rmse_r2(y_b, p_b)[0], abs=1e-6)
    assert b["polygon_rmse"] == pytest.approx(math.sqrt((0.1 ** 2 + 0.1 ** 2) / 2), abs=1e-6)

    # Pooled: sums over all pixels / polygons of both scenes, not a mean of per-scene figures.
    rmse, r2 = _rmse_r2(y_a + y_b, p_a + p_b)
    assert result["pixel_count"] == 24 and result["polygon_count"] == 5
    assert result["pixel_rmse"] == pytest.approx(rmse, abs=1e-6) and result["pixel_r2"] == pytest.approx(r2, abs=1e-6)
    assert result["pixel_rmse"] != pytest.approx((a["pixel_rmse"] + b["pixel_rmse"]) / 2, abs=1e-4)
    rmse, r2 = _rmse_r2([0.2, 1.0, 0.0, 0.5, 0.0], [0.2, 0.875, 0.1, 0.6, 0.1])
    assert result["polygon_rmse"] == pytest.approx(rmse, abs=1e-6) and result["polygon_r2"] == pytest.approx(r2, abs=1e-6)
    assert result["truth_pixel_rmse"] == pytest.approx(a["truth_pixel_rmse"])  # only A has truth
    assert result["truth_ice_water_f1"] == pytest.approx(a["truth_ice_water_f1"])
    assert result["ice_water_threshold"] == 0.5 and result["scene_count"] == 2


def test_json_layout_and_markdown(scenes, tmp_path):
    result = ev.evaluate_scenes(channel0_model(), list(scenes), downsample=1, tile=32, overlap=8)
    out = str(tmp_path / "out" / "regional.json")
    text = ev.write_report(result, out, title="test")
    data = json.load(open(out))  # strict JSON: no NaN tokens
    keys = list(data)
    assert keys[:7] == list(ev.METRIC_KEYS)
    assert set(ev.COUNT_KEYS) <= set(keys) and keys.index("scenes") > keys.index("truth_ice_water_f1")
    for scene in data["scenes"].values():
        assert set(ev.METRIC_KEYS) | set(ev.COUNT_KEYS) <= set(scene)
    md = open(tmp_path / "out" / "regional.md").read()
    assert md == text and "| 20200101T000000_dmi |" in md and "pooled (2 scenes)" in md
    assert "pixel RMSE" in md and "polygon R²" in md and "ice/water F1" in md and "ice = SIC ≥ 0.5" in md
    with pytest.raises(InputError, match="--overwrite"):
        ev.write_report(result, out)
    ev.write_report(result, out, overwrite=True)


def test_all_nan_scene_parts_and_channel_mismatch(scenes, tmp_path):
    x_in = keras.Input((None, None, 3))
    with pytest.raises(InputError, match="3 channel"):
        ev.evaluate_scenes(keras.Model(x_in, keras.layers.Conv2D(1, 1)(x_in)), list(scenes), downsample=1)
    with pytest.raises(InputError, match="no scene"):
        ev.evaluate_scenes(channel0_model(), [], downsample=1)
    # A scene whose only labelled polygon has no valid SAR: counts 0, figures null (not NaN).
    hh = np.array([[N, N], [0.5, 0.5]], np.float32)
    p = write_raw_scene(tmp_path / "20200303T000000_dmi.nc", hh, np.full((2, 2), -20.0),
                        [[1, 1], [2, 2]], [_row(1, 50, "I"), _row(2, 99, "I")])
    result = ev.evaluate_scenes(channel0_model(), [p], downsample=1, tile=32, overlap=8)
    assert result["pixel_count"] == 0 and result["pixel_rmse"] is None and result["polygon_r2"] is None


def test_evaluate_cli_on_sample_scenes(tmp_path):
    from tfseaice.training.config import TrainConfig
    from tfseaice.training.model_dir import save_weights_atomic, write_task_file
    from tfseaice.simulate.scenes import make_scene, raw_file_name
    from tfseaice.simulate.writers import write_scene
    from tfseaice.tasks import get_task

    paths = []
    for seed in (11, 12):
        ds = make_scene(seed=seed, size=96)
        paths.append(str(tmp_path / "scenes" / raw_file_name(ds)))
        write_scene(ds, paths[-1])
    info = {"kind": "sic", "channels": ["hh", "hv"], "num_channels": 2, "downsample": 2,
            "normalization": {"mean": [-14.5, -24.7], "std": [5.7, 4.8]}}
    cfg = TrainConfig(task="sic_regional", data_dir=str(tmp_path), model_dir=str(tmp_path / "m"),
                               extra={"filters": [4, 8, 8, 8]})
    model = get_task("sic_regional").build_model(cfg, info)
    os.makedirs(tmp_path / "m" / "checkpoints")
    save_weights_atomic(model, str(tmp_path / "m" / "checkpoints" / "best.weights.h5"))
    write_task_file(cfg, info, "complete")
    out = tmp_path / "metrics.json"
    cmd = [sys.executable, "-m", "tfseaice.evaluate", "--task=sic", f"--model_dir={tmp_path / 'm'}",
           f"--scenes_glob={tmp_path / 'scenes' / '*.nc'}", "--tile=32", "--overlap=8", f"--output={out}"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    data = json.load(open(out))
    assert len(data["scenes"]) == 2 and data["settings"]["downsample"] == 2
    assert data["truth_pixel_count"] > 0 and data["truth_pixel_r2"] is not None
    assert (tmp_path / "metrics.md").exists() and "| **pooled (2 scenes)** |" in res.stdout
    again = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert again.returncode == 1 and "--overwrite" in again.stderr and "Traceback" not in again.stderr
