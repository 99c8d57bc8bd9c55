"""Reducing a 40 m raster by f x f blocks: means for measurements, majority votes for labels.

Every function works in bounded, O(pixels) memory whatever the factor: the
800 m grid of MMSeaIce (f = 20) costs what the 80 m grid (f = 2) costs.
"""

import numpy as np

CHUNK_PIXELS = 1 << 22   # input pixels per chunk of the majority vote (~4 M: tens of MB of temporaries)
PAIRWISE_MAX_FACTOR = 3  # up to 3 x 3 blocks the pairwise vote is faster (measured: 2.2 s vs 4.5 s, 16 Mpx, f=2)


def blocks(a, f):
    """View of `a` [H, W, ...] as [H // f, W // f, f, f, ...] (edges cropped to a multiple of f)."""
    h, w = a.shape[0] // f * f, a.shape[1] // f * f
    a = a[:h, :w]
    return a.reshape(h // f, f, w // f, f, *a.shape[2:]).swapaxes(1, 2)


def block_mean(a, f):
    """NaN-aware mean over f x f blocks (edges cropped to a multiple of f)."""
    if f == 1:
        return a.astype(np.float32, copy=False)
    b = blocks(a.astype(np.float32, copy=False), f)
    b = b.reshape(b.shape[0], b.shape[1], f * f, *b.shape[4:])
    finite = np.isfinite(b)
    total = np.where(finite, b, 0).sum(axis=2, dtype=np.float64)
    count = finite.sum(axis=2)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan).astype(np.float32)


def db_block_mean(a_db, f):
    """Average dB backscatter over f x f blocks in linear power, back to dB."""
    if f == 1:
        return a_db.astype(np.float32, copy=False)
    with np.errstate(invalid="ignore"):
        power = np.power(np.float32(10.0), a_db.astype(np.float32) / np.float32(10.0))
    mean = block_mean(power, f)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (np.float32(10.0) * np.log10(mean)).astype(np.float32)


def _block_mode_pairwise(flat):
    """`_block_mode` by comparing every pair of a row: O(N F^2), the fastest for F <= 9."""
    counts = (flat[:, :, None] == flat[:, None, :]).sum(axis=2)
    return flat[np.arange(len(flat)), np.argmax(counts, axis=1)]


def _block_mode(flat):
    """Most frequent value of each row of `flat` [N, F]; ties: the value seen first in the row.

    A stable sort per row puts equal values in runs whose first element is
    their first occurrence; each run scores count * F - first position, so the
    largest count wins and, among equal counts, the earliest value. O(N F log F)
    time and O(N F) memory (the pairwise comparison this replaces was O(N F^2)).
    """
    n, size = flat.shape
    order = np.argsort(flat, axis=1, kind="stable")
    values = np.take_along_axis(flat, order, axis=1)
    starts = np.ones_like(values, dtype=bool)
    starts[:, 1:] = values[:, 1:] != values[:, :-1]
    run = np.cumsum(starts, axis=1) - 1                                   # run number within the row
    counts = np.bincount((run + np.arange(n)[:, None] * size).ravel(), minlength=n * size).reshape(n, size)
    run_count = np.take_along_axis(counts, run, axis=1)
    start_index = np.maximum.accumulate(np.where(starts, np.arange(size), 0), axis=1)
    first_position = np.take_along_axis(order, start_index, axis=1)
    pick = np.argmax(run_count * size - first_position, axis=1)
    return values[np.arange(n), pick]


def block_majority(ids, f):
    """Most frequent id in each f x f block (ties: the first in row-major order).

    Ids are labels: they are voted on, never averaged, so no id that is absent
    from a block (or from the scene) can appear.
    """
    ids = np.asarray(ids)
    if f == 1:
        return ids.copy()
    b = blocks(ids, f)
    out = np.empty(b.shape[:2], ids.dtype)
    rows = max(1, CHUNK_PIXELS // max(1, b.shape[1] * f * f))
    for r0 in range(0, b.shape[0], rows):
        chunk = b[r0:r0 + rows].reshape(-1, f * f)
        mode = _block_mode_pairwise(chunk) if f <= PAIRWISE_MAX_FACTOR else _block_mode(chunk)
        out[r0:r0 + rows] = mode.reshape(-1, b.shape[1])
    return out


def block_fraction(mask, f):
    """Fraction of True pixels in each f x f block, float32."""
    if f == 1:
        return np.asarray(mask, np.float32)
    return blocks(np.asarray(mask, bool), f).mean(axis=(2, 3), dtype=np.float32)
