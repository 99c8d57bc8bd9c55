"""CaFFe zone metrics (tfseaice.evaluation.caffe_metrics) against independent computations."""

import numpy as np
import pytest
import skimage.measure
from scipy import ndimage
from scipy.spatial import distance
from sklearn.metrics import jaccard_score

from tfseaice.evaluation import caffe_metrics as cm
from tfseaice.data import glacier
from tfseaice.errors import InputError
from tfseaice.serving.glacier_images import tiled_apply
from tfseaice.data import glacier_masks

NO, ROCK, GLACIER, OCEAN = 0, 1, 2, 3


def straight_front(h=60, w=120, row=30, rock_cols=10):
    """Glacier above `row`, ocean from `row` down, a rock strip on the left, a no-data corner."""
    c = np.full((h, w), GLACIER, np.uint8)
    c[row:] = OCEAN
    c[:, :rock_cols] = ROCK
    c[:3, -3:] = NO
    return c


def test_names_give_the_pixel_size_and_bad_names_are_named():
    assert cm.pixel_size_m("SI_2020-06-26_TDX_7_2_12473") == 7.0
    assert cm.pixel_size_m("/d/zones/test/Mapple_2010-01-07_PALSAR_17_5_1395_zones.png") == 17.0
    info = cm.parse_name("COL_2011-01-04_ERS_20_3_0_front.png")
    assert (info["glacier"], info["satellite"], info["resolution"], info["orbit"]) == ("COL", "ERS", 20.0, "0")
    with pytest.raises(InputError, match="Glacier_Date_Satellite_Resolution") as e:
        cm.parse_name("scene_12.png")
    assert e.value.path == "scene_12.png"
    with pytest.raises(InputError, match="'x7'.*not a positive number"):
        cm.parse_name("SI_2020-06-26_TDX_x7_2_12473.png")
    with pytest.raises(InputError, match="not a positive number"):
        cm.parse_name("SYN_random-1_GAN_0_0_00001")


def test_ground_truth_as_prediction_scores_miou_1_and_mde_0():
    rows = []
    for i, res in enumerate((20, 17)):   # fronts of these small masks are longer than 750 m
        classes = glacier_masks.random_fjord_mask(200 + 30 * i, 240, np.random.default_rng(i))
        assert cm.front_from_zones(classes, res).any()
        rows.append(cm.score_image(classes, classes, None, f"G{i}_2020-01-01_S1_{res}_1_1"))
    s = cm.summarize(rows)
    assert s["miou"] == 1.0 and s["iou"] == {"rock": 1.0, "glacier": 1.0, "ocean": 1.0}
    assert s["mde_m"] == 0.0 and s["images_without_front"] == 0 and s["num_images"] == 2
    assert s["glaciers"]["G1"] == {"miou": 1.0, "mde_m": 0.0, "n": 1, "images_without_front": 0}


@pytest.mark.parametrize("k,res", [(1, 7.0), (4, 20.0), (-3, 6.0)])
def test_a_front_shifted_by_k_pixels_gives_mde_k_times_the_pixel_size(k, res):
    true, pred = straight_front(w=300, row=30), straight_front(w=300, row=30 + k)   # fronts > 750 m
    row = cm.score_image(pred, true, None, f"JAC_2001-05-16_RSAT_{res:g}_5_10280")
    # Straight horizontal fronts k rows apart: every front pixel is |k| pixels from the other front.
    assert cm.summarize([row])["mde_m"] == pytest.approx(abs(k) * res)
    # IoU: glacier/ocean lose |k| rows of the non-rock columns.
    valid = (true != NO)
    moved = abs(k) * (300 - 10)
    g_true, g_pred = ((true == GLACIER) & valid).sum(), ((pred == GLACIER) & valid).sum()
    assert row["iou"]["glacier"] == pytest.approx((min(g_true, g_pred)) / (min(g_true, g_pred) + moved))
    assert row["iou"]["rock"] == 1.0


def test_front_extraction_follows_caffe_post_processing():
    c = straight_front(h=40, w=60, row=20, rock_cols=10)
    c[4:10, 15:55] = OCEAN         # an ocean pond inside the glacier: not the largest ocean -> glacier
    c[26:34, 15:50] = GLACIER      # an iceberg inside the ocean: a hole -> filled with ocean
    assert cm.front_pixels(c).sum() > 3 * 50   # both would give long (kept) fronts without the post-processing
    post = cm.postprocess_zones(c)
    assert (post[4:10, 15:55] == GLACIER).all() and (post[26:34, 15:50] == OCEAN).all()
    front = cm.front_from_zones(c, resolution_m=20.0)
    expect = np.zeros_like(front)
    expect[20, 10:] = True         # ocean pixels under the glacier; ocean next to rock is coast, not front
    assert np.array_equal(front, expect)
    # Pieces of at most 750 m / resolution pixels are dropped: 50 pixels survive at 20 m (37.5), not at 10 m (75).
    assert cm.front_from_zones(c, 10.0).sum() == 0
    assert cm.drop_short_pieces(expect, 49).sum() == 50 and cm.drop_short_pieces(expect, 50).sum() == 0


def test_mde_equals_brute_force_pairwise_distances_pooled_over_images():
    rows, pooled = [], []
    for i, res in enumerate((20.0, 17.0, 20.0)):
        true = glacier_masks.random_fjord_mask(150, 180, np.random.default_rng(10 + i))
        pred = glacier_masks.random_fjord_mask(150, 180, np.random.default_rng(20 + i))
        name = f"DBE_2015-0{i + 1}-01_S1_{res:g}_1_{i}"
        tf_, pf = cm.front_from_zones(true, res), cm.front_from_zones(pred, res)
        p, t = np.argwhere(pf), np.argwhere(tf_)
        assert len(p) and len(t)
        d = distance.cdist(p, t)
        pooled.append(np.concatenate([d.min(axis=1), d.min(axis=0)]) * res)
        rows.append(cm.score_image(pred, true, tf_, name))
    empty = np.zeros((150, 180), np.uint8)
    empty[:] = GLACIER     # no ocean: no predicted front -> counted, not scored
    rows.append(cm.score_image(empty, true, None, "DBE_2016-01-01_S1_20_1_9"))
    s = cm.summarize(rows)
    assert s["mde_m"] == pytest.approx(np.concatenate(pooled).mean(), rel=1e-12)
    assert s["images_without_front"] == 1 and s["num_images"] == 4
    assert s["glaciers"]["DBE"]["n"] == 4


def test_iou_matches_sklearn_on_valid_pixels_and_miou_averages_images():
    rng = np.random.default_rng(3)
    true = rng.integers(0, 4, (50, 70)).astype(np.uint8)
    pred = rng.integers(0, 4, (50, 70)).astype(np.uint8)
    valid = true != NO
    ref = jaccard_score(true[valid], pred[valid], labels=[1, 2, 3], average=None)
    ious = cm.zone_iou(pred, true)
    assert [ious[c] for c in ("rock", "glacier", "ocean")] == pytest.approx(ref)
    assert cm.macro_iou(ious) == pytest.approx(ref.mean())
    perfect = cm.score_image(true, true, None, "SI_2020-06-26_TDX_7_2_1")
    noisy = cm.score_image(pred, true, None, "SI_2020-06-26_TDX_7_2_2")
    assert cm.summarize([perfect, noisy])["miou"] == pytest.approx((1.0 + ref.mean()) / 2)


def test_two_zone_classes_merge_rock_into_glacier():
    true = straight_front()
    pred = true.copy()
    pred[pred == ROCK] = GLACIER                   # a 2-class model never says rock
    three, two = cm.zone_iou(pred, true, 3), cm.zone_iou(pred, true, 2)
    assert three["rock"] == 0.0 and three["glacier"] < 1.0
    assert two == {"glacier": 1.0, "ocean": 1.0}
    assert cm.summarize([cm.score_image(pred, true, None, "SI_2020-06-26_TDX_7_2_1", 2)], 2)["miou"] == 1.0
    assert cm.check_zone_classes(4) == 3
    with pytest.raises(InputError, match="must be 2 or 3"):
        cm.check_zone_classes(5, "task.json")


def test_an_absent_class_is_left_out_of_the_image_mean():
    true = np.full((10, 10), GLACIER, np.uint8)
    true[5:] = OCEAN
    ious = cm.zone_iou(true, true)
    assert np.isnan(ious["rock"]) and cm.macro_iou(ious) == 1.0


def test_tiled_apply_blends_to_the_untiled_result_for_any_size():
    x = np.random.default_rng(0).random((300, 517, 2))
    out = tiled_apply(lambda t: np.stack([t[..., 0] * 2, t[..., 1] + t[..., 0]], -1), x, tile=64, batch_size=5)
    assert out.shape == (300, 517, 2)
    assert np.allclose(out[..., 0], 2 * x[..., 0]) and np.allclose(out[..., 1], x.sum(-1))


def skimage_front(zones, res):
    """Reference: CaFFe's rules restated on zone values 0/64/127/254 with skimage's labelling."""
    z = zones.copy()

    def biggest(labels):
        return np.argmax(np.bincount(labels.ravel())[1:]) + 1 if labels.max() else 0

    lab = skimage.measure.label(z != 254, connectivity=2)
    z[(lab > 0) & (lab != biggest(lab))] = 254
    lab = skimage.measure.label(z == 254, connectivity=2)
    if lab.max():
        z[(z == 254) & (lab != biggest(lab))] = 127
    g = np.pad(z == 127, 1)
    f = (z == 254) & (g[:-2, 1:-1] | g[2:, 1:-1] | g[1:-1, :-2] | g[1:-1, 2:])
    lab = skimage.measure.label(f, connectivity=2)
    return f & (np.bincount(lab.ravel())[lab] > 750.0 / res)


@pytest.mark.parametrize("seed,res", [(0, 20.0), (1, 17.0), (8, 12.0), (3, 40.0)])
def test_front_extraction_equals_a_skimage_restatement_on_noisy_predictions(seed, res):
    rng = np.random.default_rng(seed)
    classes = glacier_masks.random_fjord_mask(160, 200, rng)
    blobs = ndimage.binary_dilation(rng.random(classes.shape) < 0.004, iterations=3)
    noisy = np.where(blobs | (rng.random(classes.shape) < 0.03),
                     rng.integers(0, 4, classes.shape), classes).astype(np.uint8)
    mine = cm.front_from_zones(noisy, res)
    assert np.array_equal(mine, skimage_front(glacier.classes_to_zones(noisy), res))
    assert mine.any()
