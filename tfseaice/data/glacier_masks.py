"""Plausible glacier fjord zone masks (CaFFe classes), drawn at random: the scenes' geometry.

Why: `generate --random_masks` and the sample glacier scenes need many masks
that look like real fjords, each reproducible from a seed. A mask is drawn in a
canonical frame (inland at the top, sea at the bottom) and then rotated /
flipped into the glacier's own orientation: a meandering fjord that widens
seawards and is walled by rock; inside it the glacier reaches down to a wiggly
calving front, the ocean lies below it; upland ice above a ragged line, the
open sea beyond a coast line, an optional tributary glacier, nunataks (rock
islands in the ice). Each named glacier keeps its layout (orientation, fjord
shape) over its time series. No data: a wedge or strip outside the footprint.
"""

import hashlib

import numpy as np
from scipy import ndimage

from tfseaice.data import glacier

ROCK, GLACIER, OCEAN = (glacier.CLASS_NAMES.index(c) for c in ("rock", "glacier", "ocean"))


# ---------------------------------------------------------------- noise helpers

def smooth_noise(rng, shape, sigma):
    """Gaussian-smoothed white noise, zero mean, unit std (sigma in pixels)."""
    h, w = shape
    f = max(1, int(sigma // 3))
    small = rng.standard_normal((h // f + 4, w // f + 4))
    if sigma / f > 0.3:
        small = ndimage.gaussian_filter(small, sigma / f, mode="wrap")
    if f > 1:
        small = ndimage.zoom(small, f, order=1)
    out = small[:h, :w]
    return (out - out.mean()) / (out.std() + 1e-9)


def fractal_noise(rng, shape, sigmas=(64, 24, 8, 3), decay=0.55):
    """Sum of smooth fields at `sigmas` (pixels), amplitude times `decay` per step; unit std."""
    out = np.zeros(shape)
    amp = 1.0
    for s in sigmas:
        out += amp * smooth_noise(rng, shape, s)
        amp *= decay
    return out / out.std()


def smooth_noise_1d(rng, n, sigma):
    """1-D `smooth_noise` of length n (wiggly lines: front, ice line, coast)."""
    x = ndimage.gaussian_filter1d(rng.standard_normal(n + 8), sigma, mode="wrap")[:n]
    return (x - x.mean()) / (x.std() + 1e-9)


# ---------------------------------------------------------------- geometry

def glacier_layout(name, seed):
    """Per-glacier constants (stable over its time series)."""
    digest = hashlib.sha256(f"{name}/{seed}".encode()).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
    return {
        "cx0": rng.uniform(0.38, 0.62),
        "meander": rng.uniform(0.02, 0.10),
        "period": rng.uniform(0.9, 2.2),
        "phase": rng.uniform(0, 2 * np.pi),
        "half_width": rng.uniform(0.13, 0.22),
        "widen": rng.uniform(0.2, 0.9),
        "ice_line": rng.uniform(0.02, 0.22),
        "coast": rng.uniform(0.82, 1.25),
        "tributary": rng.uniform() < 0.6,
        "trib_v": rng.uniform(0.12, 0.32),
        "trib_side": rng.choice([-1.0, 1.0]),
        "trib_slope": rng.uniform(-0.6, 0.3),
        "trib_width": rng.uniform(0.04, 0.08),
        "nunatak_level": rng.uniform(1.6, 2.4),
        "k90": int(rng.integers(0, 4)),
        "flip": bool(rng.integers(0, 2)),
    }


def _random_layout(rng):
    """A layout for an arbitrary (not named) glacier."""
    return glacier_layout(f"random-{rng.integers(1 << 62)}", 0)


def _canonical_classes(shape, layout, rng, front_v=None, front_wiggle=None):
    """Zone classes in the canonical frame (inland top, sea bottom) + front row per column."""
    h, w = shape
    v = (np.arange(h)[:, None] + 0.5) / h
    u = (np.arange(w)[None, :] + 0.5) / w
    lay = layout
    edge = 0.018 * smooth_noise(rng, shape, max(h, w) * 0.02) + 0.008 * smooth_noise(rng, shape, 4)
    center = lay["cx0"] + lay["meander"] * np.sin(2 * np.pi * v / lay["period"] + lay["phase"])
    half = lay["half_width"] * (1 + lay["widen"] * v)
    dist = np.abs(u - center) / half + edge / half
    in_fjord = dist < 1.0
    if front_v is None:
        front_v = rng.uniform(0.32, 0.62)
    if front_wiggle is None:
        front_wiggle = rng.uniform(0.008, 0.035)
    front_row = front_v + front_wiggle * smooth_noise_1d(rng, w, w * rng.uniform(0.02, 0.08))
    front_row = front_row[None, :]
    classes = np.full(shape, ROCK, np.uint8)
    ice_line = lay["ice_line"] + 0.05 * smooth_noise_1d(rng, w, w * 0.05)[None, :]
    classes[v < ice_line] = GLACIER
    coast = lay["coast"] + 0.04 * smooth_noise_1d(rng, w, w * 0.06)[None, :]
    classes[v > coast] = OCEAN
    if lay["tributary"]:
        line_v = lay["trib_v"] + lay["trib_slope"] * np.abs(u - center)
        on_side = np.sign(u - center) == lay["trib_side"]
        # ends (raggedly) upstream of the calving front, never below it
        trib = on_side & (np.abs(v - line_v) + edge < lay["trib_width"]) & (v + 3 * edge < front_row - 0.05)
        classes[trib] = GLACIER
    classes[in_fjord & (v < front_row)] = GLACIER
    classes[in_fjord & (v >= front_row)] = OCEAN
    # nunataks: rock islands in the ice, away from the front
    nun = smooth_noise(rng, shape, max(h, w) * 0.018) > lay["nunatak_level"]
    classes[nun & (classes == GLACIER) & (v < front_row - 0.08)] = ROCK
    # a few rock islands in the sea
    isl = smooth_noise(rng, shape, max(h, w) * 0.012) > 2.6
    classes[isl & (classes == OCEAN) & (v > front_row + 0.15)] = ROCK
    return classes


def _nodata_mask(shape, rng, probability=0.5):
    """A wedge or strip outside the footprint (True = no data)."""
    h, w = shape
    if rng.uniform() >= probability:
        return np.zeros(shape, bool)
    yy, xx = np.mgrid[0:h, 0:w]
    kind = rng.integers(0, 2)
    if kind == 0:  # corner wedge
        cy, cx = rng.choice([0, h]), rng.choice([0, w])
        a, b = rng.uniform(0.2, 0.55) * h, rng.uniform(0.2, 0.55) * w
        return (np.abs(yy - cy) / a + np.abs(xx - cx) / b) < 1.0
    # slanted strip along one side
    side = rng.integers(0, 4)
    width = rng.uniform(0.05, 0.18)
    slope = rng.uniform(-0.08, 0.08)
    if side < 2:
        t, s = xx / w, yy / h
    else:
        t, s = yy / h, xx / w
    line = width + slope * (s - 0.5)
    return (t < line) if side % 2 == 0 else (t > 1 - line)


def orient(arr, k90, flip):
    """Canonical frame -> the glacier's orientation: k90 quarter turns, then a left-right flip."""
    arr = np.rot90(arr, k90)
    return np.ascontiguousarray(arr[:, ::-1] if flip else arr)


def fjord_classes(height, width, rng, layout=None, nodata_probability=0.5, **kw):
    """Random plausible fjord zone mask (class indices 0..3) of the given size.

    Returns (classes uint8 [height, width], layout dict). Used by the sample maker
    and by `generate --random_masks`.
    """
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    layout = layout or _random_layout(rng)
    k90, flip = layout["k90"], layout["flip"]
    canon = (height, width) if k90 % 2 == 0 else (width, height)
    classes = orient(_canonical_classes(canon, layout, rng, **kw), k90, flip)
    nodata = _nodata_mask(classes.shape, rng, nodata_probability)
    classes[nodata] = glacier.NO_DATA
    return classes, layout


def random_fjord_mask(height, width, seed_or_rng, nodata_probability=0.3):
    """Draw a new plausible fjord mask: class indices uint8 [height, width]."""
    classes, _ = fjord_classes(height, width, seed_or_rng, nodata_probability=nodata_probability)
    return classes


def front_line(classes, thickness=1):
    """Calving front: glacier pixels 4-adjacent to ocean (dilated), bool [H, W]."""
    g = classes == GLACIER
    o = classes == OCEAN
    near_ocean = ndimage.binary_dilation(o, structure=ndimage.generate_binary_structure(2, 1))
    line = g & near_ocean
    if thickness > 1:
        line = ndimage.binary_dilation(line, iterations=thickness - 1) & (classes != glacier.NO_DATA)
    return line

