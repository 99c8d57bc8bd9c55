"""Whole-scene tiled inference: equals one-shot inference, odd sizes, NaN, batches, polygon maps."""

import keras
import numpy as np
import pytest

from tfseaice.precision import cpu_flags
from tfseaice.serving import scene_inference
from tfseaice.serving.scene_inference import axis_tiles, predict_scene
from tfseaice.serving.sic_products import ice_water, polygon_map
from tfseaice.models.unet import SarStandardize, build_sic_unet


def small_rf_model(channels=2, seed=0):
    """Fully convolutional stand-in with one 2x pooling level; receptive-field radius <= 6.

    NaN-safe like the SIC U-Net (SarStandardize zeroes non-finite input).
    """
    keras.utils.set_random_seed(seed)
    x_in = keras.Input((None, None, channels), name="sar")
    x = SarStandardize([-14.5] * channels, [5.7] * channels)(x_in)
    a = keras.layers.Conv2D(6, 3, padding="same", activation="tanh")(x)          # r = 1
    b = keras.layers.MaxPooling2D(2)(a)                                           # r = 2
    b = keras.layers.Conv2D(6, 3, padding="same", activation="tanh")(b)          # r = 4
    b = keras.layers.UpSampling2D(2)(b)                                           # r = 6
    x = keras.layers.Concatenate()([a, b])
    x = keras.layers.Conv2D(1, 1, activation="sigmoid")(x)
    return keras.Model(x_in, x)


def random_sar(shape, seed=0, channels=2):
    rng = np.random.default_rng(seed)
    sar = rng.normal(-15, 5, size=(*shape, channels)).astype(np.float32)
    sar[3:9, 5:20] = np.nan                       # a no-data block
    sar[-1, -1] = np.nan                          # a corner
    sar[shape[0] // 2, shape[1] // 3, 1] = np.nan  # one channel only
    return sar


@pytest.mark.parametrize("shape,tile,overlap", [((101, 157), 48, 32), ((64, 97), 40, 32), ((37, 53), 512, 64)])
def test_tiled_equals_one_shot_everywhere_when_receptive_field_within_quarter_overlap(shape, tile, overlap):
    model = small_rf_model()
    sar = random_sar(shape)
    one_shot = predict_scene(model, sar, tile=None)
    tiled = predict_scene(model, sar, tile=tile, overlap=overlap, batch_size=3)
    assert tiled.shape == shape and tiled.dtype == np.float32
    rows, cols = axis_tiles(shape[0], tile, overlap), axis_tiles(shape[1], tile, overlap)
    if shape[0] > 100:
        assert len(rows.origins) > 2 and len(cols.origins) > 2  # really tiled
    np.testing.assert_array_equal(np.isnan(tiled), np.isnan(one_shot))
    np.testing.assert_allclose(tiled, one_shot, atol=1e-5, rtol=0)


def test_one_shot_matches_direct_model_call_on_aligned_scene():
    model = small_rf_model()
    sar = random_sar((48, 64))
    direct = model(sar[None], training=False).numpy()[0, ..., 0]
    out = predict_scene(model, sar, tile=None)
    finite = np.isfinite(sar).all(-1)
    np.testing.assert_allclose(out[finite], direct[finite], atol=1e-6)


def _far_mask(tiles, radius):
    """Pixels (1-D) where every tile with positive weight is >= radius from its interior edges."""
    far = np.ones(tiles.length, bool)
    for k, o in enumerate(tiles.origins):
        w = tiles.weights(k)
        left, right = tiles.interior(k)
        pos = np.arange(o, o + tiles.size)
        near = np.zeros(tiles.size, bool)
        if left:
            near |= pos - o < radius
        if right:
            near |= o + tiles.size - 1 - pos < radius
        bad = pos[(w > 0) & near]
        far[bad[bad < tiles.length]] = False
    return far


def test_unet_tiled_exact_away_from_tile_edges_and_close_at_edges():
    keras.utils.set_random_seed(3)
    model = build_sic_unet(2, filters=(4, 8, 8, 8), norm_mean=[-14.5, -24.7], norm_std=[5.7, 4.8])
    rng = np.random.default_rng(1)
    sar = rng.normal([-14.5, -24.7], [5.7, 4.8], size=(460, 470, 2)).astype(np.float32)
    # Smooth structure so that the model's output varies across the scene.
    yy, xx = np.mgrid[:460, :470]
    sar[..., 0] += 6 * np.sin(yy / 37.0) * np.cos(xx / 23.0)
    sar[100:110, 200:260] = np.nan
    tile, overlap = 224, 72  # step 152 -> 144: catches tile origins not aligned to 16
    one_shot = predict_scene(model, sar, tile=None)
    tiled = predict_scene(model, sar, tile=tile, overlap=overlap, batch_size=4)
    rows, cols = axis_tiles(460, tile, overlap), axis_tiles(470, tile, overlap)
    assert len(rows.origins) >= 2 and len(cols.origins) >= 2
    far = np.outer(_far_mask(rows, 110), _far_mask(cols, 110))  # 4-level U-Net radius < 110
    assert far.sum() > 5000
    diff = np.abs(tiled - one_shot)
    np.testing.assert_array_equal(np.isnan(tiled), np.isnan(one_shot))
    assert np.nanmax(diff[far]) < 1e-5
    spread = np.nanstd(one_shot)
    assert spread > 1e-3  # the comparison is not vacuous
    assert np.nanmax(diff) < 0.25 * spread + 1e-4
    assert np.nanmean(diff) < 0.02 * spread + 1e-6


def test_nan_pixels_are_nan_and_others_finite():
    model = small_rf_model()
    sar = random_sar((50, 70))
    out = predict_scene(model, sar, tile=32, overlap=16)
    np.testing.assert_array_equal(np.isnan(out), ~np.isfinite(sar).all(-1))
    assert np.isfinite(out[np.isfinite(sar).all(-1)]).all()
    assert ((out[np.isfinite(out)] >= 0) & (out[np.isfinite(out)] <= 1)).all()


def test_tiles_are_batched_aligned_and_bounded():
    calls = []

    def spy(x):  # a plain callable model: returns channel 0 as "SIC"
        calls.append(x.shape)
        return x.numpy()[..., :1]

    sar = np.random.default_rng(0).uniform(0, 1, (300, 250, 2)).astype(np.float32)
    out = predict_scene(spy, sar, tile=64, overlap=16, batch_size=5)
    assert all(s[0] <= 5 and s[1:] == (64, 64, 2) for s in calls)
    rows, cols = axis_tiles(300, 64, 16), axis_tiles(250, 64, 16)
    assert sum(s[0] for s in calls) == len(rows.origins) * len(cols.origins)
    assert all(o % 16 == 0 for o in rows.origins + cols.origins)
    # An identity-like model: blending a field with itself returns the field.
    np.testing.assert_allclose(out, sar[..., 0], atol=1e-6)


def test_axis_tiles_cover_with_required_overlap():
    for length in (1, 15, 16, 17, 100, 513, 1000):
        for tile, overlap in ((64, 16), (512, 64), (48, 32)):
            t = axis_tiles(length, tile, overlap)
            assert t.padded % 16 == 0 and t.padded >= length and t.size % 16 == 0
            assert t.origins[0] == 0 and t.origins[-1] + t.size == t.padded
            gaps = np.diff(t.origins)
            assert (t.size - gaps >= overlap).all()
            assert (t.weight_sum() > 0).all()
    with pytest.raises(ValueError):
        axis_tiles(100, 32, 24)  # tile must exceed overlap by 16


def test_single_pixel_and_thin_scenes():
    model = small_rf_model()
    for shape in ((1, 1), (1, 40), (33, 2)):
        sar = np.full((*shape, 2), -12.0, np.float32)
        out = predict_scene(model, sar, tile=32, overlap=16)
        assert out.shape == shape and np.isfinite(out).all()


def test_ice_water_threshold_and_fill():
    pred = np.array([[0.1, 0.5, 0.9, np.nan]], np.float32)
    assert ice_water(pred).tolist() == [[0, 1, 1, 255]]
    assert ice_water(pred).dtype == np.uint8


def test_polygon_map_hand_computed():
    pred = np.array([[0.2, 0.4, 0.9, np.nan],
                     [0.6, 0.8, 0.1, 0.5],
                     [np.nan, 1.0, 0.3, 0.7]], np.float32)
    ids = np.array([[1, 1, 2, 2],
                    [1, 1, 2, -1],
                    [7, 7, 2, -1]])
    pmap, stats = polygon_map(pred, ids, rows_per_chunk=2)  # chunks split polygon 1 and 2
    assert stats.ids.tolist() == [1, 2, 7]
    np.testing.assert_allclose(stats.mean, [0.5, (0.9 + 0.1 + 0.3) / 3, 1.0])
    assert stats.count.tolist() == [4, 3, 1]
    expected = np.array([[0.5, 0.5, 1.3 / 3, 1.3 / 3],
                         [0.5, 0.5, 1.3 / 3, np.nan],
                         [1.0, 1.0, 1.3 / 3, np.nan]])
    np.testing.assert_allclose(pmap, expected, rtol=1e-6)
    # `usable` removes pixels from the means (polygon 7 then has none).
    usable = np.ones_like(ids, bool)
    usable[2, 1] = False
    pmap2, stats2 = polygon_map(pred, ids, usable=usable)
    assert stats2.ids.tolist() == [1, 2] and np.isnan(pmap2[2, 0])
    assert stats.as_dict()["id"] == [1, 2, 7]


def test_reflect_index_folds_any_padding():
    idx = np.arange(0, 40)
    for length in (1, 2, 5, 17):
        j = scene_inference._reflect_index(idx, length)
        assert ((j >= 0) & (j < length)).all()
        assert (j[:length] == np.arange(length)).all()


def test_default_tiling_per_cpu_kind_computes_few_extra_pixels():
    """AVX-512 CPUs: one 1024 tile a call, AI4Arctic-sized scenes computing 1.11x (2500 x 2600) and 1.15x
    (5000 x 5200) their pixels against 1.32x with 512² tiles. AVX2 only: two 768 tiles a call (oneDNN's
    im2col convolution there), 1.19x and 1.22x. The module's defaults are this CPU's, and the default call
    is that tiling."""
    def factor(h, w, tile):
        rows, cols = axis_tiles(h, tile, 64), axis_tiles(w, tile, 64)
        return len(rows.origins) * len(cols.origins) * rows.size * cols.size / (h * w)

    avx512 = {"avx2", "fma", "avx512f", "avx512_bf16"}
    assert scene_inference.default_tiling(avx512) == (1024, 1)
    assert scene_inference.default_tiling({"avx2", "fma"}) == (768, 2)
    assert scene_inference.default_tiling(set()) == (768, 2)
    for flags, limit in [(avx512, 1.16), ({"avx2"}, 1.22)]:
        tile, _ = scene_inference.default_tiling(flags)
        for h, w in [(2500, 2600), (5000, 5200)]:
            assert factor(h, w, tile) <= min(limit, 0.93 * factor(h, w, 512)), (flags, h, w)
    assert (scene_inference.DEFAULT_TILE, scene_inference.DEFAULT_BATCH_SIZE) == \
        scene_inference.default_tiling(cpu_flags())
    model, sar = small_rf_model(), random_sar((1100, 70), seed=3)
    explicit = predict_scene(model, sar, tile=scene_inference.DEFAULT_TILE, overlap=64,
                             batch_size=scene_inference.DEFAULT_BATCH_SIZE)
    np.testing.assert_array_equal(predict_scene(model, sar), explicit)


def test_keras_model_traced_once_across_scenes_and_not_kept_alive():
    """The inference tf.function is cached per model (no retrace per scene) and holds the model weakly."""
    import gc
    import weakref

    model = small_rf_model()
    predict_scene(model, random_sar((40, 50)), tile=None)
    call = scene_inference._KERAS_CALLS[model][2]
    predict_scene(model, random_sar((40, 50), seed=1), tile=None)
    assert scene_inference._KERAS_CALLS[model][2] is call
    assert call.experimental_get_tracing_count() == 1
    ref = weakref.ref(model)
    del model, call
    gc.collect()
    assert ref() is None
