"""Large-scale layout of a sample scene: ice regime, land, fast ice, leads, wind, no data.

Why coarse: these vary over kilometres, so they are drawn on a grid of at most
512 x 512 and resampled per row block. The ice regime is a wavy ice edge in a
random direction: open water, a marginal ice zone (MIZ) where the target
concentration ramps down, and pack ice; land with a fractal coastline and
islands lies on the pack side, fast ice along it.
"""

import numpy as np
from scipy import ndimage, special

from tfseaice.simulate.grid import fractal_noise, smooth_noise

# Rows of Layout["fields"] (coarse float32 fields resampled per row block).
(F_CONC, F_LAND, F_FAST, F_LEAD1, F_LEAD2, F_LEAD_GATE, F_REFROZEN, F_WIND, F_ICE_VAR,
 F_STREAK, F_LAND_TEX, F_WARP_SMALL_Y, F_WARP_SMALL_X, F_WARP_BIG_Y, F_WARP_BIG_X,
 F_LEAD_WIDTH) = range(16)


def draw_layout(rng, size):
    """Large-scale scene layout on a coarse grid: ice regime, land, wind, leads."""
    n = min(size, 512)
    v, u = (np.mgrid[0:n, 0:n].astype(np.float32) + 0.5) / n
    lay = {"n": n}

    # Ice regime: a wavy ice edge in a random direction; water, MIZ, pack.
    a = rng.uniform(0, 2 * np.pi)
    s = (u - 0.5) * np.cos(a) + (v - 0.5) * np.sin(a)
    s = s + 0.07 * fractal_noise(rng, n, 0.25, 3) + 0.02 * smooth_noise(rng, n, 0.04)
    water_frac = rng.uniform(0.22, 0.5)
    miz_frac = rng.uniform(0.2, 0.35)
    e0, e1 = np.quantile(s, [water_frac, min(water_frac + miz_frac, 0.95)])
    t = np.clip((s - e0) / (e1 - e0), 0, 1)
    c = t + 0.5 * smooth_noise(rng, n, 0.06) * t * (1 - t)   # bands and patches in the MIZ
    c = np.clip(c, 0, 1)
    c[t <= 0] = 0
    c[t >= 1] = 1

    # Land on the pack side: fractal coastline plus islands near it.
    b = a + rng.uniform(-0.7, 0.7)
    lcoord = (u - 0.5) * np.cos(b) + (v - 0.5) * np.sin(b) + 0.08 * fractal_noise(rng, n, 0.2, 4)
    thr = np.quantile(lcoord, 1 - rng.uniform(0.04, 0.13))
    islands = fractal_noise(rng, n, 0.03, 2)
    land = np.maximum(lcoord - thr, 0.02 * (islands - 2.0) - 0.5 * np.maximum(0, thr - lcoord - 0.1))
    land_mask = land > 0

    # Fast ice: a band along the coast where the sea is ice covered.
    has_fast = rng.random() < 0.7
    d_land = ndimage.distance_transform_edt(~land_mask).astype(np.float32) / n
    w_fast = rng.uniform(0.015, 0.06)
    fast = w_fast * (1 + 0.5 * smooth_noise(rng, n, 0.05)) - d_land
    if not has_fast:
        fast[:] = -1
    fast = np.where(c > 0.6, fast, -1).astype(np.float32)
    c = np.where(fast > 0, 1.0, c).astype(np.float32)

    # Leads: thin zero-crossings of smooth fields, gated into segments.
    n1 = smooth_noise(rng, n, 0.1)
    n2 = smooth_noise(rng, n, 0.04)
    gate = smooth_noise(rng, n, 0.15) - rng.uniform(-0.4, 0.3)
    refrozen = smooth_noise(rng, n, 0.04) + rng.uniform(-0.3, 0.5)  # varies along each lead
    grad = lambda f: float(np.mean(np.hypot(*np.gradient(f)))) * n / size  # noqa: E731 (per full-res px)
    # Lead widths in pixels: a base width times a factor 0.3..3 that varies along the lead.
    lay["lead_w"] = (0.5 * rng.uniform(1.5, 3.5) * grad(n1), 0.5 * rng.uniform(1.0, 2.5) * grad(n2))
    lead_width = 0.3 + 2.7 * special.ndtr(smooth_noise(rng, n, 0.05) - 0.5)

    # Wind: ramps along the ice edge from calm to windy so both exist over water.
    along = (u - 0.5) * np.cos(a + np.pi / 2) + (v - 0.5) * np.sin(a + np.pi / 2)
    along = along / np.abs(along).max()
    u_lo, u_hi = rng.uniform(1.5, 4.0), rng.uniform(11.0, 16.0)
    wind = u_lo + (u_hi - u_lo) * np.clip(0.5 + 0.6 * along + 0.12 * smooth_noise(rng, n, 0.2), 0, 1) ** 1.5
    wind_dir = rng.uniform(0, 2 * np.pi) + 0.3 * smooth_noise(rng, n, 0.3)
    streak_aniso = (1.0, 0.1) if rng.random() < 0.5 else (0.1, 1.0)

    lay.update(
        angle=a, c=c.astype(np.float32), land=land.astype(np.float32), fast=fast, has_fast=has_fast,
        wind=wind.astype(np.float32), wind_dir=wind_dir.astype(np.float32),
        type_field=smooth_noise(rng, n, 0.12),
        fields=np.stack([  # row order: the F_* constants above
            c, land, fast, n1, n2, gate, refrozen, wind,
            smooth_noise(rng, n, 0.05),                         # ice large-scale variation
            smooth_noise(rng, n, 0.02, streak_aniso),           # wind streaks on water
            fractal_noise(rng, n, 0.05, 4),                     # land texture
            smooth_noise(rng, n, 0.03), smooth_noise(rng, n, 0.03),  # small-floe warp
            smooth_noise(rng, n, 0.08), smooth_noise(rng, n, 0.08),  # big-floe warp
            lead_width,                                         # lead width factor
        ]).astype(np.float32),
    )
    return lay


def draw_nodata_stripes(rng, size):
    """Ragged no-data stripes at a range edge (always) and an azimuth edge (sometimes)."""
    edges = [("left", "right")[int(rng.integers(0, 2))]]
    if rng.random() < 0.5:
        edges.append(("top", "bottom")[int(rng.integers(0, 2))])
    params = []
    for e in edges:
        w0 = max(2.0, rng.uniform(0.01, 0.04) * size)
        waves = [(rng.uniform(0.05, 0.15), rng.uniform(0.5, 3), rng.uniform(0, 2 * np.pi)) for _ in range(3)]
        params.append((e, w0, rng.uniform(-0.02, 0.02), waves))
    return params


def nodata_mask(params, size, y, x):
    """Mask of no-data pixels at full-resolution positions y [h,1], x [1,w]."""
    mask = np.zeros(np.broadcast_shapes(y.shape, x.shape), bool)
    for edge, w0, slope, waves in params:
        along, across = (y, x) if edge in ("left", "right") else (x, y)
        width = w0 + abs(slope) * (along if slope >= 0 else size - 1 - along)  # a thin wedge
        for amp, freq, phase in waves:
            width = width + amp * w0 * np.sin(2 * np.pi * freq * along / size + phase)
        if edge in ("right", "bottom"):
            across = size - 1 - across
        mask |= across < width
    return mask
