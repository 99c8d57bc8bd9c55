"""Synthetic glacier fjord scenes in the CaFFe layout, with known zone masks.

The geometry comes from tfseaice.data.glacier_masks; here each acquisition gets its
backscatter, optional elevation channel, name and file:

* **backscatter** (dB, then multiplicative Gamma speckle with L looks):
  rock bright and textured from a random DEM, with layover (very bright,
  slopes facing the sensor) and radar shadow; glacier medium with flow-parallel
  streaks and crevasse bands near the front; ice melange in front of the
  calving front as a dense field of ice blocks whose brightness and texture
  resemble the crevassed glacier (the hard case for segmentation), thinning
  out seawards; open water dark with wind patches and scattered icebergs;
  an incidence-angle ramp in range and a per-acquisition calibration offset.
* The front position, melange and acquisition change per image; the layout
  stays per glacier. No data (0 in image and mask) as in the mask.

Images are 8-bit: dB in [-25, +7] maps to 1..255; 0 is reserved for no data.
Sizes are drawn in [min_size, max_size] per side (defaults 300..700, so never a
multiple of 256). Names follow ``Glacier_Date_Sensor_Resolution_Quality_Orbit``.
"""

import datetime
import os

import numpy as np
from scipy import ndimage
from scipy.special import ndtri

from tfseaice import io_utils
from tfseaice.data import glacier
from tfseaice.data.glacier_speckle import DB_MAX, DB_MIN
from tfseaice.errors import InputError
from tfseaice.data.glacier_masks import (GLACIER, OCEAN, ROCK, fjord_classes, fractal_noise, front_line,
                                             glacier_layout, orient, smooth_noise)

GLACIERS = ("SI", "DBE", "Mapple", "COL", "JAC")
# sensor: (first year, last year, resolution m, looks L for the speckle)
SENSORS = {
    "ERS": (1995, 2010, 20, 5.0),
    "ENVISAT": (2003, 2011, 20, 5.0),
    "RSAT": (1997, 2012, 20, 4.0),
    "PALSAR": (2007, 2010, 17, 4.5),
    "TSX": (2008, 2020, 7, 3.5),
    "TDX": (2011, 2020, 7, 3.5),
    "S1": (2015, 2021, 20, 4.5),
}


# ---------------------------------------------------------------- backscatter

def _backscatter(classes, rng, looks, gain_db, range_axis, range_ramp_db):
    """Synthetic SAR (dB before speckle) for a class map in the final orientation."""
    shape = classes.shape
    rock, ice, sea = classes == ROCK, classes == GLACIER, classes == OCEAN
    front = front_line(classes)
    d_front = ndimage.distance_transform_edt(~front) if front.any() else np.full(shape, 1e4)
    db = np.zeros(shape)

    # rock: DEM slopes facing the sensor -> bright, layover; away -> shadow
    dem = fractal_noise(rng, shape, sigmas=(48, 16, 6, 2.5))
    grad = np.gradient(dem, axis=range_axis)
    s = grad / (grad.std() + 1e-9)
    rock_db = rng.uniform(-3.0, 0.5) + 3.0 * np.tanh(0.8 * s) + 0.8 * smooth_noise(rng, shape, 1.5)
    rock_db += np.where(s > rng.uniform(1.3, 1.8), rng.uniform(4.0, 7.0), 0.0)    # layover
    rock_db += np.where(s < -rng.uniform(1.8, 2.3), -rng.uniform(7.0, 11.0), 0.0)  # shadow
    db[rock] = rock_db[rock]

    # glacier: medium, flow streaks, crevasses near the front
    g0 = rng.uniform(-8.5, -5.0)
    streak_sigma = (8.0, 1.5) if range_axis == 1 else (1.5, 8.0)
    streaks = ndimage.gaussian_filter(rng.standard_normal(shape), streak_sigma)
    streaks /= streaks.std() + 1e-9
    glac_db = g0 + 1.2 * smooth_noise(rng, shape, 25) + 0.9 * streaks
    crev_reach = rng.uniform(25, 70)
    crev_strength = np.exp(-d_front / crev_reach)
    wavelength = rng.uniform(5.0, 10.0)
    flow_axis = 1 - range_axis
    coord = np.indices(shape)[flow_axis].astype(float)
    phase = coord / wavelength * 2 * np.pi + 4.0 * smooth_noise(rng, shape, 12)
    crest = np.cos(phase)
    broken = smooth_noise(rng, shape, 6) > -0.4
    crev = crev_strength * broken
    glac_db += crev * np.where(crest > 0.6, rng.uniform(3.0, 5.0), 0.0)
    glac_db += crev * np.where(crest < -0.75, -rng.uniform(3.0, 5.0), 0.0)
    db[ice] = glac_db[ice]

    # ocean: melange near the front, open water further out
    w0 = rng.uniform(-20.0, -15.0)
    water_db = w0 + rng.uniform(1.0, 3.0) * smooth_noise(rng, shape, 40) + 0.6 * smooth_noise(rng, shape, 3)
    mel_width = rng.uniform(30, 140) if rng.uniform() < 0.85 else 0.0
    if mel_width > 0:
        density = np.clip(1.15 - d_front / mel_width + 0.25 * smooth_noise(rng, shape, 15), 0, 1)
    else:
        density = np.zeros(shape)
    block_field = smooth_noise(rng, shape, rng.uniform(1.5, 3.0))
    # fraction `density` of pixels are ice: threshold at the matching normal quantile
    thr = ndtri(np.clip(density, 1e-4, 1 - 1e-4))
    blocks = (block_field < thr) & (density > 0.02)
    block_bright = g0 + rng.uniform(-0.5, 1.5) + 2.2 * smooth_noise(rng, shape, 2.5)
    matrix_db = np.maximum(water_db, rng.uniform(-14.0, -11.0)) * (density > 0.4) + water_db * (density <= 0.4)
    sea_db = np.where(blocks, block_bright, matrix_db)
    bergs = (smooth_noise(rng, shape, 1.5) > 3.0) & (density <= 0.02)
    sea_db = np.where(bergs, g0 + 2.0, sea_db)
    db[sea] = sea_db[sea]

    ramp = np.linspace(-0.5, 0.5, shape[range_axis]) * range_ramp_db
    db += ramp[None, :] if range_axis == 1 else ramp[:, None]
    db += gain_db
    # speckle: intensity x Gamma(L, 1/L)
    intensity = 10 ** (db / 10) * rng.gamma(looks, 1.0 / looks, size=shape)
    db = 10 * np.log10(np.maximum(intensity, 1e-6))
    gray = np.rint((db - DB_MIN) / (DB_MAX - DB_MIN) * 254 + 1)
    gray = np.clip(gray, 1, 255).astype(np.uint8)
    gray[classes == glacier.NO_DATA] = 0
    return gray, d_front


def _elevation(classes, rng, layout):
    """Plausible elevation in [0, 1] (PNG channel): rises inland, 0 at sea."""
    k90, flip = layout["k90"], layout["flip"]
    canon_shape = classes.shape if k90 % 2 == 0 else classes.shape[::-1]
    v = np.linspace(1.0, 0.0, canon_shape[0])[:, None] * np.ones(canon_shape)
    inland = orient(v, k90, flip)
    elev = np.clip(0.15 + 0.6 * inland + 0.08 * fractal_noise(rng, classes.shape, (40, 12, 4)), 0.02, 1.0)
    elev[classes == ROCK] = np.clip(elev[classes == ROCK] + 0.1, 0, 1)
    elev[classes == OCEAN] = 0.0
    elev[classes == glacier.NO_DATA] = 0.0
    return elev


# ---------------------------------------------------------------- scenes

def _name(rng, glacier_name, used):
    while True:
        sensor = str(rng.choice(list(SENSORS)))
        y0, y1, res, _ = SENSORS[sensor]
        start = datetime.date(y0, 1, 1).toordinal()
        day = datetime.date.fromordinal(int(rng.integers(start, datetime.date(y1, 12, 31).toordinal())))
        name = (f"{glacier_name}_{day.isoformat()}_{sensor}_{res}_{int(rng.integers(1, 6))}_"
                f"{int(rng.integers(1, 40000))}")
        if name not in used:
            used.add(name)
            return name, sensor


def make_scene(rng, glacier_name="SI", sensor="TSX", size=None, seed=0,
               min_size=300, max_size=700, with_elevation=False):
    """One synthetic acquisition -> dict(sar, classes, front, elevation|None, layout)."""
    layout = glacier_layout(glacier_name, seed)
    if size is None:
        size = tuple(int(rng.integers(min_size, max_size + 1)) for _ in range(2))
        size = tuple(s + 1 if s % 256 == 0 else s for s in size)
    h, w = size
    classes, _ = fjord_classes(h, w, rng, layout=layout)
    _, _, _, looks = SENSORS[sensor]
    range_axis = 1 if layout["k90"] % 2 == 0 else 0
    sar, _ = _backscatter(classes, rng, looks=looks * rng.uniform(0.8, 1.3),
                          gain_db=rng.uniform(-1.5, 1.5), range_axis=range_axis,
                          range_ramp_db=rng.uniform(0.5, 3.0))
    front = np.where(front_line(classes, thickness=2), 255, 0).astype(np.uint8)
    elev = _elevation(classes, rng, layout) if with_elevation else None
    return {"sar": sar, "classes": classes, "front": front, "elevation": elev, "layout": layout}


def make_sample_dataset(out_dir, num_images, seed=0, test_fraction=0.2, with_elevation=False,
                        overwrite=False, min_size=300, max_size=700):
    """Write `num_images` synthetic scenes in the CaFFe layout under `out_dir`.

    Splits by image: about `test_fraction` go to `test` (at least one when
    num_images >= 2 and test_fraction > 0), the rest to `train`. Written into a
    temporary folder and renamed at the end. Returns {split: [names]}.
    """
    if num_images < 1:
        raise InputError("--num_images", f"must be >= 1, got {num_images}")
    if not 300 <= min_size <= max_size:
        raise InputError("--min_size/--max_size", f"need 300 <= min_size <= max_size, got {min_size}, {max_size}")
    io_utils.refuse_existing(out_dir, overwrite)
    master = np.random.default_rng(seed)
    used = set()
    plan = []
    for i in range(num_images):
        g = str(master.choice(GLACIERS))
        name, sensor = _name(master, g, used)
        plan.append((i, g, name, sensor))
    n_test = int(round(num_images * test_fraction))
    if test_fraction > 0 and num_images >= 2:
        n_test = min(max(n_test, 1), num_images - 1)
    test_idx = set(master.permutation(num_images)[:n_test].tolist())
    written = {"train": [], "test": []}
    with io_utils.atomic_path(out_dir) as tmp:
        for i, g, name, sensor in plan:
            split = "test" if i in test_idx else "train"
            rng = np.random.default_rng([seed, i])
            scene = make_scene(rng, g, sensor, seed=seed, min_size=min_size, max_size=max_size,
                               with_elevation=with_elevation)
            files = {
                ("sar_images", f"{name}.png"): scene["sar"],
                ("zones", f"{name}_zones.png"): glacier.classes_to_zones(scene["classes"]),
                ("fronts", f"{name}_front.png"): scene["front"],
            }
            if with_elevation:
                files[("elevation", f"{name}_elevation.png")] = np.rint(
                    scene["elevation"] * 255).astype(np.uint8)
            for (folder, fname), arr in files.items():
                d = os.path.join(tmp, folder, split)
                os.makedirs(d, exist_ok=True)
                glacier.write_png(os.path.join(d, fname), arr)
            written[split].append(name)
    return {k: sorted(v) for k, v in written.items()}
