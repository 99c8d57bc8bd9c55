"""polygon_codes parsing and the CT -> SIC rule (DESIGN.md §3)."""

import math

import numpy as np
import pytest

from tfseaice.data.codes import HEADER, ct_to_sic, parse_polygon_codes, sic_classes
from tfseaice.errors import InputError


def row(poly_id, ct, ptype="I", cf="-9"):
    fields = [str(poly_id), str(ct)] + ["-9"] * 11 + [cf, ptype]
    return ";".join(fields)


@pytest.mark.parametrize("ct,sic", [(0, 0.0), (1, 0.0), (2, 0.0), (55, 0.0), (10, 0.1), (20, 0.2),
                                    (50, 0.5), (90, 0.9), (91, 1.0), (92, 1.0)])
def test_labelled_codes(ct, sic):
    assert ct_to_sic(ct) == pytest.approx(sic)


@pytest.mark.parametrize("ct", [98, 99, -9, 13, 46, 81, 100, 5, 95])
def test_codes_without_label_are_nan(ct):
    assert math.isnan(ct_to_sic(ct))


def test_table_parses_every_special_case():
    entries = [HEADER, row(29, 92, cf="08-9"), row(3, 50), row(7, 99), row(8, 98), row(11, -9),
               row(12, 80, "W"), row(13, 55), row(14, 91)]
    t = parse_polygon_codes(np.array(entries, dtype=object), "scene.nc")
    assert t.ids.tolist() == [29, 3, 7, 8, 11, 12, 13, 14]
    expected = [1.0, 0.5, np.nan, np.nan, np.nan, 0.0, 0.0, 1.0]  # W is water whatever CT says
    np.testing.assert_allclose(t.sic, expected)
    assert t.poly_type.tolist() == ["I", "I", "I", "I", "I", "W", "I", "I"]
    assert t.labelled_ids().tolist() == [29, 3, 12, 13, 14]
    np.testing.assert_allclose(t.lookup(np.array([[3, -1], [12, 999]])), [[0.5, np.nan], [0.0, np.nan]])


def test_bytes_entries_and_blank_rows():
    t = parse_polygon_codes([HEADER.encode(), row(1, 30).encode(), b""], "x.nc")
    assert t.sic.tolist() == pytest.approx([0.3])


@pytest.mark.parametrize("entries,message", [
    ([], "empty"),
    (["poly_id;CA;POLY_TYPE", row(1, 30)], "lacks column(s) CT"),
    ([HEADER, "1;30;I"], "row 1 has 3 fields"),
    ([HEADER, row("x", 30)], "poly_id 'x' is not an integer"),
    ([HEADER, row(1, "9+")], "CT '9+' is not an integer code"),
    ([HEADER, row(1, 30, "7")], "POLY_TYPE '7' is not a SIGRID-3 type letter"),
    ([HEADER, row(1, 30), row(1, 40)], "duplicate poly_id(s) [1]"),
])
def test_malformed_tables_name_the_file_and_the_problem(entries, message):
    with pytest.raises(InputError) as err:
        parse_polygon_codes(entries, "/data/S1_scene.nc")
    assert err.value.path == "/data/S1_scene.nc"
    assert message in err.value.what
    assert "\n" not in str(err.value)


def test_other_sigrid_polygon_types_are_unlabelled_not_errors(caplog):
    t = parse_polygon_codes([HEADER, row(1, 30), row(2, 92, "L"), row(3, 40, "N"), row(4, 10, "W"), row(5, 60, "s")],
                            "/data/S1_scene.nc")
    assert t.ids.tolist() == [1, 2, 3, 4, 5]
    np.testing.assert_allclose(t.sic, [0.3, np.nan, np.nan, 0.0, np.nan])
    assert t.odd_type_ids().tolist() == [2, 3, 5]
    assert any("/data/S1_scene.nc" in r.getMessage() and "[2, 3, 5]" in r.getMessage() for r in caplog.records)


def test_older_id_header_reads_like_poly_id():
    old = HEADER.replace("poly_id", "id", 1)
    assert old.startswith("id;CT;")
    t = parse_polygon_codes([old, row(7, 50), row(8, 91)], "old.nc")
    assert t.ids.tolist() == [7, 8] and t.sic.tolist() == pytest.approx([0.5, 1.0])


def test_sic_classes_are_tenths_rounded_and_masked():
    sic = np.array([0.0, 0.04, 0.05, 0.26, 0.7, 0.95, 1.0, 1.3, -0.2, np.nan], np.float32)
    assert sic_classes(sic).tolist() == [0, 0, 0, 3, 7, 10, 10, 10, 0, 255]
    assert sic_classes(sic).dtype == np.uint8
