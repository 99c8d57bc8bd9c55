"""Egg codes -> SOD/FLOE compositions and AutoICE dominant classes (data.egg_codes, codes.PolygonTable).

The egg codes are written by hand after the starter pack's own tables and
comments (utils.py SOD_LOOKUP / FLOE_LOOKUP) and the rules of its
convert_raw_icechart.py (docs/ai4arctic.md, "Charts to classes").
"""

import numpy as np
import pytest

from tfseaice.data import egg_codes
from tfseaice.data.codes import HEADER, parse_polygon_codes

NF = (-9, -9, -9)
U = egg_codes.UNLABELLED
NAN6, NAN7 = [np.nan] * 6, [np.nan] * 7


def row(pid, ct, a=NF, b=NF, c=NF, ptype="I"):
    """One polygon_codes row: layers are (concentration, stage, form) codes; CN, CD, CF not filled."""
    return ";".join(str(v) for v in (pid, ct, *a, *b, *c, -9, -9, -9, ptype))


def labels(ct, a=NF, b=NF, c=NF, ptype="I"):
    """(SOD composition, FLOE composition, SOD class, FLOE class) of one polygon, through the table parser."""
    t = parse_polygon_codes([HEADER, row(1, ct, a, b, c, ptype)], "egg.nc")
    return t.sod_composition[0], t.floe_composition[0], int(t.sod_class[0]), int(t.floe_class[0])


@pytest.mark.parametrize("stage,cls", [(81, 1), (82, 1), (83, 2), (84, 2), (85, 2), (86, 4), (87, 3), (88, 3),
                                       (89, 3), (91, 4), (93, 4), (95, 5), (96, 5), (97, 5), (80, 0), (0, 0),
                                       (98, U), (99, U), (-9, U), (90, U), (92, U)])
def test_stage_table_is_the_starter_packs(stage, cls):
    assert egg_codes.sod_class(stage) == cls


@pytest.mark.parametrize("form,cls", [(2, 1), (3, 2), (4, 3), (5, 4), (6, 5), (7, 5), (9, 6), (10, 6), (0, 0),
                                      (1, U), (8, U), (21, U), (22, U), (-9, U), (11, U)])
def test_form_table_is_the_starter_packs(form, cls):
    assert egg_codes.floe_class(form) == cls


@pytest.mark.parametrize("code,tenths", [(0, 0), (1, 0), (2, 0), (55, 0), (10, 1), (70, 7), (90, 9), (91, 10),
                                         (92, 10), (98, None), (99, None), (-9, None), (15, None)])
def test_concentration_codes_in_tenths(code, tenths):
    assert egg_codes.concentration_tenths(code) == tenths


# (CT, layer A, layer B, layer C) -> SOD composition, FLOE composition, SOD class, FLOE class
CASES = {
    # One ice type: CA is not filled, so CA = CT.
    "single_type_ca_not_filled": ((92, (-9, 95, 6)), [0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 0, 1, 0], 5, 5),
    "ca_not_filled_water_share": ((90, (-9, 87, 4)), [.1, 0, 0, .9, 0, 0], [.1, 0, 0, .9, 0, 0, 0], 3, 3),
    # 93 and 91 are both thick first-year ice: 5/8 and 3/8 alone stay under 70 %, together 100 %.
    "same_class_partials_add": ((80, (50, 93, 5), (30, 91, 5)), [.2, 0, 0, 0, .8, 0], [.2, 0, 0, 0, .8, 0, 0], 4, 4),
    # CT 92 (10/10) split 50/50: no SOD reaches 70 %; FLOE ties at 50 %: the earlier layer's form wins.
    "ct92_ca_equals_cb": ((92, (50, 87, 4), (50, 83, 3)), [0, 0, .5, .5, 0, 0], [0, 0, .5, .5, 0, 0, 0], U, 3),
    # Glacier ice (98) has no SOD class: SOD unlabelled, FLOE (bergs) still labelled.
    "stage_98_unlabels_sod_only": ((90, (-9, 98, 9)), NAN6, [.1, 0, 0, 0, 0, 0, .9], U, 6),
    "stage_99_unlabels_sod_only": ((92, (-9, 99, 5)), NAN6, [0, 0, 0, 0, 1, 0, 0], U, 4),
    # Fast ice (form 08) has no FLOE class; in any layer it masks the polygon's FLOE (the starter pack's
    # `fastice_class` rule), even where another form has 8/9 of the ice.
    "fast_ice_form_08": ((92, (-9, 93, 8)), [0, 0, 0, 0, 1, 0], NAN7, 4, U),
    "fast_ice_in_a_minor_layer": ((90, (80, 93, 6), (10, 87, 8)), [.1, 0, 0, 1 / 9 * .9, 8 / 9 * .9, 0], NAN7, 4, U),
    # Ice free: CT 55 and any W polygon are pure open water, whatever the layers say.
    "ice_free_ct_55": ((55,), [1, 0, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0, 0], 0, 0),
    "unknown_ct_is_unlabelled": ((99, (-9, 87, 4)), NAN6, NAN7, U, U),
    # Partials short of CT by more than a tenth: the rest has no charted type -> composition NaN; the
    # dominant rule still compares CA with CT (5/8 = 62 %: SOD masked, FLOE medium floe).
    "partials_short_of_ct": ((80, (50, 87, 4)), NAN6, NAN7, U, 3),
    # Within a tenth (9+/10 = 1.0 with 9 tenths of partials): scaled to CT.
    "partials_scaled_to_ct": ((91, (60, 87, 4), (30, 83, 4)), [0, 0, 1 / 3, 2 / 3, 0, 0], [0, 0, 0, 1, 0, 0, 0], U, 3),
    # CA filled with CT while CB is given too: over CT, composition NaN; CA/CT = 100 % still dominant.
    "partials_over_ct": ((50, (-9, 87, 4), (30, 83, 3)), NAN6, NAN7, 3, 3),
    # A layer with a concentration but no stage: SOD cannot be mapped; FLOE can.
    # (Dominant: 5/8 = 62 % is under 70 % for SOD; both layers are medium floe.)
    "stage_not_filled": ((80, (50, 87, 4), (30, -9, 4)), NAN6, [.2, 0, 0, .8, 0, 0, 0], U, 3),
    # The code's 70 %, not the notebook's 65 %: 2/3 = 67 % of CT is masked, 7/10 exactly is dominant.
    "two_thirds_is_below_threshold": ((30, (20, 87, 4), (10, 83, 3)), [.7, 0, .1, .2, 0, 0], [.7, 0, .1, .2, 0, 0, 0], U, 3),
    "seventy_percent_is_dominant": ((92, (70, 87, 4), (30, 83, 3)), [0, 0, .3, .7, 0, 0], [0, 0, .3, .7, 0, 0, 0], 3, 3),
    # Three layers in one class: A + B + C (the starter pack's pairwise sums give A + C = 67 % here).
    "three_layers_one_class": ((90, (30, 93, 5), (30, 91, 5), (30, 86, 5)), [.1, 0, 0, 0, .9, 0], [.1, 0, 0, 0, .9, 0, 0], 4, 4),
    # Stage 80 (no stage of development) and form 00 count as open water (4/6 = 67 %: SOD masked).
    "stage_80_is_water": ((60, (40, 87, 4), (20, 80, 0)), [.6, 0, 0, .4, 0, 0], [.6, 0, 0, .4, 0, 0, 0], U, 3),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_hand_written_egg_codes(name):
    (ct, *layers), sod, floe, sod_cls, floe_cls = CASES[name]
    got = labels(ct, *layers)
    np.testing.assert_allclose(got[0], sod, atol=1e-6)
    np.testing.assert_allclose(got[1], floe, atol=1e-6)
    assert got[2:] == (sod_cls, floe_cls)
    for comp in got[:2]:
        assert comp.dtype == np.float32
        if np.isfinite(comp).all():
            assert comp.sum() == pytest.approx(1.0, abs=1e-6) and (comp >= 0).all()


def test_water_and_odd_polygon_types():
    t = parse_polygon_codes([HEADER, row(1, -9, (-9, 87, 4), ptype="W"), row(2, 92, (-9, 93, 5), ptype="L"),
                             row(3, 92, (-9, 93, 5))], "egg.nc")
    np.testing.assert_array_equal(t.sod_composition[0], [1, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(t.floe_composition[0], [1, 0, 0, 0, 0, 0, 0])
    assert np.isnan(t.sod_composition[1]).all() and np.isnan(t.floe_composition[1]).all()  # land: unlabelled
    assert t.sod_class.tolist() == [0, U, 4] and t.floe_class.tolist() == [0, U, 4]
    assert t.sod_class.dtype == np.uint8 and t.sod_composition.shape == (3, 6) and t.floe_composition.shape == (3, 7)


def test_lookup_class_rasterises_the_dominant_classes():
    t = parse_polygon_codes([HEADER, row(7, 92, (-9, 95, 6)), row(3, 0, ptype="W"), row(5, 99)], "egg.nc")
    ids = np.array([[7, 3], [5, -1], [42, 7]])
    assert t.lookup_class(ids, "SOD").tolist() == [[5, 0], [U, U], [U, 5]]
    assert t.lookup_class(ids, "FLOE").tolist() == [[5, 0], [U, U], [U, 5]]
    assert t.lookup_class(ids, "SOD").dtype == np.uint8
    assert t.rows(ids).tolist() == [[0, 1], [2, -1], [-1, 0]]


def test_table_without_egg_columns_is_unlabelled_for_sod_and_floe():
    t = parse_polygon_codes(["poly_id;CT;POLY_TYPE", "1;90;I", "2;0;W"], "short.nc")
    np.testing.assert_allclose(t.sic, [0.9, 0.0])
    assert np.isnan(t.sod_composition).all() and np.isnan(t.floe_composition).all()
    assert t.sod_class.tolist() == [U, U] and t.floe_class.tolist() == [U, U]


def test_non_integer_egg_field_unlabels_that_polygon_only(caplog):
    bad = row(1, 92, (-9, 93, 5)).replace(";93;", ";9x;")
    t = parse_polygon_codes([HEADER, bad, row(2, 92, (-9, 93, 5))], "/data/scene.nc")
    assert t.sic.tolist() == [1.0, 1.0]
    assert t.sod_class.tolist() == [U, 4] and t.floe_class.tolist() == [U, 4]
    assert np.isnan(t.floe_composition[0]).all() and np.isfinite(t.floe_composition[1]).all()
    assert any("/data/scene.nc" in r.getMessage() and "[1]" in r.getMessage() for r in caplog.records)


def test_class_counts_list_every_class():
    counts = egg_codes.class_counts(np.array([0, 3, 3, 255, 6], np.uint8), "FLOE")
    assert counts == {"open_water": 1, "cake_ice": 0, "small_floe": 0, "medium_floe": 2, "big_floe": 0,
                      "vast_floe": 0, "bergs": 1, "unlabelled": 1}
