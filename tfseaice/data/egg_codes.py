"""Egg-code stages and floe forms -> the AutoICE SOD and FLOE classes.

The class tables are the AI4Arctic starter pack's (`utils.py`, `SOD_LOOKUP`
and `FLOE_LOOKUP`; docs/ai4arctic.md): stages of development (SA, SB, SC)
map to 6 SOD classes, floe forms (FA, FB, FC) to 7 FLOE classes. Glacier ice
(98), unknown (99), and the forms the challenge leaves out (pancake 22,
shuga / small cake 01, fast ice 08, level ice 21) are unlabelled (255), as is
every code the table does not list.
"""

import numpy as np

UNLABELLED = 255
SOD_CLASSES = ("open_water", "new_ice", "young_ice", "thin_first_year_ice", "thick_first_year_ice", "old_ice")
FLOE_CLASSES = ("open_water", "cake_ice", "small_floe", "medium_floe", "big_floe", "vast_floe", "bergs")
NUM_SOD = len(SOD_CLASSES)
NUM_FLOE = len(FLOE_CLASSES)

# SIGRID-3 stage of development (SA/SB/SC) -> SOD class.
SOD_OF_STAGE = {0: 0, 80: 0, 81: 1, 82: 1, 83: 2, 84: 2, 85: 2, 86: 4, 87: 3, 88: 3, 89: 3,
                91: 4, 93: 4, 95: 5, 96: 5, 97: 5, 98: UNLABELLED, 99: UNLABELLED}
# SIGRID-3 form of ice (FA/FB/FC) -> FLOE class.
FLOE_OF_FORM = {0: 0, 22: UNLABELLED, 1: UNLABELLED, 2: 1, 3: 2, 4: 3, 5: 4, 6: 5, 7: 5,
                8: UNLABELLED, 9: 6, 10: 6, 21: UNLABELLED}


def sod_class(stage_code):
    """SOD class 0..5 of one SIGRID-3 stage code; UNLABELLED for 98, 99, -9 and unknown codes."""
    return SOD_OF_STAGE.get(int(stage_code), UNLABELLED)


def floe_class(form_code):
    """FLOE class 0..6 of one SIGRID-3 form code; UNLABELLED for fast ice, pancake, level ice, -9, unknown."""
    return FLOE_OF_FORM.get(int(form_code), UNLABELLED)


def class_lut(table, size=256):
    """A uint8 lookup array [size]: code -> class (UNLABELLED where the table has no entry)."""
    lut = np.full(size, UNLABELLED, np.uint8)
    for code, cls in table.items():
        if 0 <= code < size:
            lut[code] = cls
    return lut
