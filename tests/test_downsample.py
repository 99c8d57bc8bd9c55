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
