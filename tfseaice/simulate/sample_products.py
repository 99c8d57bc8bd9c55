"""Sample Sentinel-1 products made from the sample AI4Arctic scenes, so that products and charts match.

Why: the pipeline (data_prep/sentinel1_to_scenes.py) and the chart reader
need products whose truth is known and whose charts exist. The sample scene
of a seed (scenes.make_scene) has SAR in dB, a 21 x 21 geolocation grid,
an acquisition time and charts; the product made here carries that SAR as its
sigma0 (`nersc_sar_primary` -> HH, `nersc_sar_secondary` -> HV, linear),
the scene's geolocation (re-sampled to integer grid points, exact for the
scenes' affine grids) and the scene's acquisition time as its start time, so a
chart written from the same scene pairs with it by time and footprint.
No-data (NaN) pixels of the scene become DN 0. IW products repeat each 40 m
pixel 4 x 4 at 10 m, so their 40 m multilook gives the scene back.

    python -m tfseaice.simulate.sample_products OUT_DIR [NUM [SIZE [SEED]]]

writes NUM products (every second one as a .zip) from the scenes of
data_prep/make_sample_scenes.py with the same --seed and --size.
"""

import datetime
import sys

import numpy as np

from tfseaice.data.scene_grids import gcp_grid
from tfseaice.simulate import scenes
from tfseaice.simulate.safe_products import MODES, write_safe_product


def _scene_start(ds):
    t = datetime.datetime.strptime(ds.attrs["acquisition_time"], "%Y%m%dT%H%M%S")
    return np.datetime64(t, "us")


def product_from_scene(ds, out_dir, *, mode="EW", seed=None, ipf="3.71", zip=False, overwrite=False,
                       polarisations=("HH", "HV")):
    """Write the product of a raw-layout sample scene `ds` (scenes.make_scene); return its path.

    `seed` (default: the scene's) draws the product's calibration and noise tables.
    """
    k = int(round(40 / MODES[mode]["spacing"]))
    sig = [10 ** (ds[v].values.astype(np.float64) / 10) for v in ("nersc_sar_primary", "nersc_sar_secondary")]
    if k > 1:
        sig = [np.repeat(np.repeat(s, k, axis=0), k, axis=1) for s in sig]
    height, width = sig[0].shape
    gl = np.linspace(0, height - 1, 21).round()
    gs = np.linspace(0, width - 1, 21).round()
    # Product pixel L sits at 40 m coordinate (L - (k - 1) / 2) / k (docs/sentinel1.md).
    shift = (k - 1) / 2.0
    lines40, samples40 = (gl - shift) / k, (gs - shift) / k
    fields = {}
    for name in ("sar_grid_latitude", "sar_grid_longitude", "sar_grid_incidenceangle", "sar_grid_height"):
        ul, us, grid = gcp_grid(ds, name, "sample scene")
        fields[name] = _bilinear(ul, us, grid, lines40, samples40)
    return write_safe_product(
        out_dir, sigma0_hh=sig[0], sigma0_hv=sig[1] if len(polarisations) > 1 else None,
        polarisations=polarisations, lat=fields["sar_grid_latitude"], lon=fields["sar_grid_longitude"],
        incidence=fields["sar_grid_incidenceangle"], height_m=fields["sar_grid_height"],
        grid_lines=gl, grid_samples=gs, start_time=_scene_start(ds),
        seed=int(ds.attrs.get("seed", 0)) if seed is None else seed, mode=mode, ipf=ipf, zip=zip,
        overwrite=overwrite)


def _bilinear(ul, us, grid, lines, samples):
    """`grid` on (ul, us) at the points lines x samples, linear and extrapolated (np.interp clamps)."""
    along = np.stack([_lin(samples, us, row) for row in grid])          # [len(ul), len(samples)]
    return np.stack([_lin(lines, ul, along[:, j]) for j in range(along.shape[1])], axis=1)


def _lin(x, xp, fp):
    """Linear interpolation that extrapolates with the end slopes (grid points may lie past the scene's)."""
    out = np.interp(x, xp, fp)
    lo, hi = x < xp[0], x > xp[-1]
    out[lo] = fp[0] + (x[lo] - xp[0]) * (fp[1] - fp[0]) / (xp[1] - xp[0])
    out[hi] = fp[-1] + (x[hi] - xp[-1]) * (fp[-1] - fp[-2]) / (xp[-1] - xp[-2])
    return out


def write_sample_products(out_dir, num_products=2, size=512, seed=0, *, mode="EW", zip_every=2,
                          overwrite=False):
    """Products of the sample scenes i = 0..num_products-1 of `seed` (scenes.scene_seed(seed, i), `size`).

    Every `zip_every`-th product (i % zip_every == zip_every - 1) is written as a .zip (0: none).
    Returns [{"product": path, "scene_seed": s, "acquisition_time": t, "ice_service": svc}].
    """
    out = []
    for i in range(int(num_products)):
        s = scenes.scene_seed(seed, i)
        ds = scenes.make_scene(s, size)
        as_zip = bool(zip_every) and i % zip_every == zip_every - 1
        path = product_from_scene(ds, out_dir, mode=mode, zip=as_zip, overwrite=overwrite)
        out.append({"product": path, "scene_seed": s, "acquisition_time": ds.attrs["acquisition_time"],
                    "ice_service": ds.attrs["ice_service"]})
    return out


def main(argv):
    if len(argv) < 2:
        print(__doc__)
        return 2
    args = [int(a) for a in argv[2:5]]
    for row in write_sample_products(argv[1], *args):
        print(row["product"])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
