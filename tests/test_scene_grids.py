"""The scene's coarse grids on its pixels: the 2 km grid in 50-pixel cells from the origin, GCPs."""

import numpy as np

from tfseaice.data.ai4arctic import distance_classes
from tfseaice.data.scene_grids import GRID_2KM_RAW_PIXELS, grid_2km, interp_separable


def test_2km_cells_are_50_raw_pixels_from_the_origin_not_stretched():
    cells = np.array([[0.0, 10.0], [20.0, 30.0]], np.float32)    # covers 100 x 100 raw pixels
    out = grid_2km(cells, "scene.nc", "btemp_36_5h", (300, 300), 1)   # the scene is 3x larger
    centre = GRID_2KM_RAW_PIXELS // 2
    # A cell's value sits at its centre (raw pixels 24 and 25 straddle it) ...
    assert abs(out[24:26, 24:26].mean()) < 0.5
    np.testing.assert_allclose(out[centre - 1:centre + 1, 74:76].mean(), 10.0, atol=0.5)
    # ... and beyond the last cell the edge value is kept: stretching would still be changing there.
    assert (out[150:, 150:] == 30.0).all() and (out[150:, 0] == 20.0).all()


def test_2km_grid_at_80m_uses_the_same_cell_positions():
    cells = np.arange(12, dtype=np.float32).reshape(3, 4)
    full = grid_2km(cells, "scene.nc", "t2m", (150, 200), 1)
    half = grid_2km(cells, "scene.nc", "t2m", (75, 100), 2)
    # An 80 m pixel is the mean position of its 2 x 2 raw pixels: bilinear => their mean
    # (between the first and last cell centres, raw 24.5 .. 124.5 / 174.5, where nothing is clamped).
    expect = full.reshape(75, 2, 100, 2).mean(axis=(1, 3))
    np.testing.assert_allclose(half[13:62, 13:87], expect[13:62, 13:87], atol=1e-4)
    assert not np.allclose(half[13:62, 13:87], half[13, 13])


def test_separable_interpolation_is_bilinear():
    lines, samples = np.array([0.0, 10.0]), np.array([0.0, 20.0])
    grid = np.array([[0.0, 2.0], [10.0, 12.0]])     # value = line + sample / 10
    out = interp_separable(lines, samples, grid, (11, 21), 1)
    yy, xx = np.mgrid[0:11, 0:21]
    np.testing.assert_allclose(out, yy + xx / 10, atol=1e-5)


def test_distance_classes_follow_the_ai4arctic_table():
    km = np.array([0, 0.2, 0.5, 0.6, 1.5, 19.5, 20, 22, 49, 55, 99, 110, 290, 300, 301, 5000], np.float32)
    assert distance_classes(km).tolist() == [0, 1, 1, 2, 3, 21, 21, 22, 27, 28, 32, 33, 40, 40, 41, 41]
