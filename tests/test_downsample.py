"""Downsampling: SAR averaged in linear power, polygon ids voted, never averaged."""

import numpy as np

from tfseaice.data.downsampling import block_majority, block_mean, db_block_mean


def test_majority_only_returns_ids_present_in_the_block():
    rng = np.random.default_rng(0)
    ids = rng.choice(np.array([-1, 3, 17, 250]), size=(64, 66))
    for f in (2, 3, 4):
        out = block_majority(ids, f)
        assert out.shape == (64 // f, 66 // f)
        for i in range(out.shape[0]):
            for j in range(out.shape[1]):
                block = ids[i * f:(i + 1) * f, j * f:(j + 1) * f]
                values, counts = np.unique(block, return_counts=True)
                assert out[i, j] in block
                assert counts[values == out[i, j]][0] == counts.max()


def test_majority_never_invents_an_average_id():
    ids = np.array([[10, 10, 30, 30], [20, 20, 30, 40]])  # means would be 15 and 32.5
    out = block_majority(ids, 2)
    assert out.tolist() == [[10, 30]]


def test_majority_tie_takes_first_in_row_major_order():
    assert block_majority(np.array([[5, 9], [9, 5]]), 2).tolist() == [[5]]


def test_db_mean_is_mean_of_linear_power():
    a = np.array([[-10.0, -20.0], [-30.0, np.nan]], np.float32)
    expected = 10 * np.log10((0.1 + 0.01 + 0.001) / 3)
    np.testing.assert_allclose(db_block_mean(a, 2), [[expected]], rtol=1e-5)
    assert db_block_mean(a, 2)[0, 0] > np.nanmean(a)  # dB averaging would be biased low


def test_block_mean_ignores_nan_and_keeps_all_nan_blocks_nan():
    a = np.array([[1, np.nan, np.nan, np.nan], [3, np.nan, np.nan, np.nan]], np.float32)
    out = block_mean(a, 2)
    assert out[0, 0] == 2.0 and np.isnan(out[0, 1])


def _literal_majority(ids, f):
    """The vote by hand: per block, the most frequent id, ties to the first in row-major order."""
    out = np.empty((ids.shape[0] // f, ids.shape[1] // f), ids.dtype)
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            block = ids[i * f:(i + 1) * f, j * f:(j + 1) * f].ravel().tolist()
            out[i, j] = max(block, key=lambda v: (block.count(v), -block.index(v)))
    return out


def test_majority_equals_the_literal_vote_at_coarse_factors():
    rng = np.random.default_rng(3)
    for f in (2, 3, 5, 8, 10, 20):
        ids = rng.integers(-1, 4, size=(3 * f + 1, 4 * f + 3)).astype(np.int64)
        ids[:f, :f] = 2   # a block with a clear winner
        np.testing.assert_array_equal(block_majority(ids, f), _literal_majority(ids, f), err_msg=f"f={f}")


def test_majority_memory_stays_flat_in_the_factor():
    """The vote must not compare every pair of a block's pixels (O(f^4) per block): at f = 20
    that was 160000 comparisons per 400 pixels, ~40 GB for a 10000^2 scene."""
    import tracemalloc

    ids = np.random.default_rng(0).integers(0, 50, size=(800, 800)).astype(np.int64)
    peaks = {}
    for f in (2, 4, 10, 20):
        tracemalloc.start()
        block_majority(ids, f)
        peaks[f] = tracemalloc.get_traced_memory()[1] / ids.nbytes
        tracemalloc.stop()
    # Measured ~3x the input at f = 2 (pairwise, 4 pixels a block) and ~9x from f = 4 on;
    # the pairwise vote at f = 20 would need f^2 / 8 = 50x the input.
    assert all(peak < 12 for peak in peaks.values()), peaks
    assert peaks[20] < 1.1 * peaks[4], peaks
