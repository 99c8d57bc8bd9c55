"""The 80 m ready-to-train version of a sample scene, as the real `*_prep.nc` files are.

Why: training reads ready-to-train files; making them from the raw sample with
the same rules as the real preparation (2 x 2 mean in linear power, fixed
global scaling, class rasters from the chart) lets the quickstart run on both.
"""

import numpy as np
import xarray as xr

from tfseaice.data import codes
from tfseaice.data.downsampling import block_majority, block_mean
from tfseaice.data.scene_grids import incidence_angle
from tfseaice.simulate.charts import CHART_FILL

RTT_PIXEL_SPACING_M = 80
HH_STATS = (-14.5, 5.7)  # dB mean, std of the real raw files (ready-to-train scaling)
HV_STATS = (-24.7, 4.8)
INCIDENCE_STATS = (34.0, 8.0)  # degrees mean, std (the dataset's incidence angles)
SAR_SCALING = {"nersc_sar_primary": HH_STATS, "nersc_sar_secondary": HV_STATS}
TYPE_TRUTH = ("sod_truth", "floe_truth")  # class rasters: 2 x 2 majority, never averaged
TRAIN_FILL_VALUE = 0.0          # what NaN became in the real files' SAR (the starter pack's train_fill_value)


def make_ready_to_train(raw_ds):
    """The 80 m ready-to-train version of a raw scene.

    SAR: 2 x 2 mean in linear power, back to dB, then standard-scaled with the
    fixed global statistics (HH -14.5 +- 5.7, HV -24.7 +- 4.8 dB), no data
    (NaN in either channel) written as 0; `sar_incidenceangle` likewise
    (34 +- 8 degrees). SIC/SOD/FLOE:
    uint8 classes rasterised from the chart (majority id per 2 x 2 block; SOD/FLOE
    the AutoICE dominant class, parsed by tfseaice.data.codes), 255
    where unknown, on land or where the SAR is NaN. No polygon ids: regional
    training needs the matching raw file. `sic_truth` is the 2 x 2 mean truth,
    `sod_truth`/`floe_truth` the 2 x 2 majority class (never averaged).
    """
    return _dataset(raw_ds, _downsample(raw_ds))


def _downsample(raw_ds):
    """80 m arrays (name -> [h, w]) of a raw scene, in strips of rows to bound temporaries."""
    h, w = raw_ds.sizes["sar_lines"] // 2, raw_ds.sizes["sar_samples"] // 2
    src = {name: raw_ds[name].values for name in
           ("nersc_sar_primary", "nersc_sar_secondary", "polygon_icechart", "distance_map", "sic_truth")
           + TYPE_TRUTH if name in raw_ds}
    chart = codes.parse_polygon_codes(raw_ds["polygon_codes"].values, raw_ds.attrs.get("scene_id", "sample scene"))
    order = np.argsort(chart.ids)
    keys = chart.ids[order].astype(np.float32)  # poly_ids < 1000: exact in float32
    table = np.stack([codes.sic_classes(chart.sic), chart.sod_class, chart.floe_class], -1)[order].astype(np.uint8)
    table = np.concatenate([table, np.full((1, 3), CHART_FILL, np.uint8)])  # last row: not found
    classes = ("SIC", "SOD", "FLOE") + tuple(name for name in TYPE_TRUTH if name in src)
    res = {name: np.empty((h, w), np.float32) for name in src if name not in classes + ("polygon_icechart",)}
    res.update({name: np.empty((h, w), np.uint8) for name in classes})
    step = max(1, (1 << 21) // max(w, 1))  # output rows per strip: bounded temporaries
    for r0 in range(0, h, step):
        r1 = min(h, r0 + step)
        rows40 = slice(2 * r0, 2 * r1)
        for name, (mean, std) in SAR_SCALING.items():
            with np.errstate(invalid="ignore", divide="ignore"):
                lin = block_mean(np.power(np.float32(10), src[name][rows40] / np.float32(10)), 2)
                res[name][r0:r1] = (10 * np.log10(lin) - mean) / std
        for name in ("distance_map", "sic_truth"):
            if name in src:
                res[name][r0:r1] = block_mean(src[name][rows40], 2)
        for name in TYPE_TRUTH:
            if name in src:
                res[name][r0:r1] = block_majority(src[name][rows40], 2)
        ids = src["polygon_icechart"][rows40]
        ids80 = block_majority(np.where(np.isfinite(ids), ids, np.float32(-1)), 2)
        pos = np.clip(np.searchsorted(keys, ids80), 0, max(len(keys) - 1, 0))
        found = (keys[pos] == ids80) if len(keys) else np.zeros(ids80.shape, bool)
        found &= np.isfinite(res["nersc_sar_primary"][r0:r1]) & np.isfinite(res["nersc_sar_secondary"][r0:r1])
        pos = np.where(found, pos, len(table) - 1)
        for k, name in enumerate(("SIC", "SOD", "FLOE")):
            res[name][r0:r1] = table[pos, k]
    # Standard-scaled incidence angle on the 80 m grid; then the masks aligned, NaN SAR -> 0 as in the real files.
    res["sar_incidenceangle"] = (incidence_angle(raw_ds, "sample scene", (h, w), 2) - INCIDENCE_STATS[0]) \
        / np.float32(INCIDENCE_STATS[1])
    nodata = ~(np.isfinite(res["nersc_sar_primary"]) & np.isfinite(res["nersc_sar_secondary"]))
    for name in (*SAR_SCALING, "sar_incidenceangle"):
        res[name][nodata] = TRAIN_FILL_VALUE
    return res


def _dataset(raw_ds, res):
    """The ready-to-train Dataset: 80 m arrays with their attributes, tie points, 2 km grid."""
    dims = ("sar_lines", "sar_samples")
    out = {}
    for name, (mean, std) in SAR_SCALING.items():
        out[name] = (dims, res[name], {
            "long_name": raw_ds[name].attrs.get("long_name", name),
            "units": "1 (standard scaled dB)", "scaling_mean_db": mean, "scaling_std_db": std})
    out["sar_incidenceangle"] = (dims, res["sar_incidenceangle"], {
        "long_name": "incidence angle", "units": "1 (standard scaled degrees)",
        "scaling_mean_deg": INCIDENCE_STATS[0], "scaling_std_deg": INCIDENCE_STATS[1]})
    for name in ("SIC", "SOD", "FLOE"):
        out[name] = (dims, res[name], {"chart_fill_value": np.uint8(CHART_FILL)})
    out["SIC"][2]["long_name"] = "SIC class: CT x 10 (0-10), 255 = fill"
    out["SOD"][2]["long_name"] = "stage of development class (0 water, 1 new, 2 young, 3 thin FYI, 4 thick FYI, 5 old)"
    out["FLOE"][2]["long_name"] = "floe size class (0 water, 1 cake, 2 small, 3 medium, 4 big, 5 vast, 6 bergs)"
    for name in ("distance_map", "sic_truth") + TYPE_TRUTH:
        if name in res:
            out[name] = (dims, res[name], dict(raw_ds[name].attrs))
    for name in raw_ds.data_vars:
        dims = raw_ds[name].dims
        if dims == ("sar_grid_points",):
            vals = raw_ds[name].values
            attrs = dict(raw_ds[name].attrs)
            if name in ("sar_grid_line", "sar_grid_sample"):
                vals = ((vals - 0.5) / 2).astype(np.float32)  # 40 m pixel centre -> 80 m grid position
                attrs["long_name"] = attrs.get("long_name", name).replace("pixels", "pixels of this 80 m grid")
            out[name] = (dims, vals, attrs)
        elif dims == ("2km_grid_lines", "2km_grid_samples"):
            out[name] = (dims, raw_ds[name].values, dict(raw_ds[name].attrs))
    attrs = {k: v for k, v in raw_ds.attrs.items() if k != "distance_map_units"}
    attrs.update(pixel_spacing=np.int32(RTT_PIXEL_SPACING_M), chart_fill_value=np.uint8(CHART_FILL),
                 original_id=raw_ds.attrs.get("original_id", ""),
                 sar_scaling=f"(dB - mean) / std; HH {HH_STATS}, HV {HV_STATS}; 2x2 mean in linear power first")
    return xr.Dataset(out, attrs=attrs)

