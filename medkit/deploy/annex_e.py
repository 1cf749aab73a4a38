"""DICOM PS3.15 Annex E, Table E.1-1: the Basic Application Level Confidentiality Profile, attribute by attribute.

Each row is (tag, keyword, action) with the standard's action code, from the 2024b edition of the table
(617 attributes; the repeating groups it also lists, curves 50xx and overlays 60xx, are removed whole by
`medkit.deploy.deid`). Codes: X remove; Z empty (or a dummy); D replace with a dummy; U replace a UID
consistently; compound codes (X/Z, X/D, Z/D, X/Z/D, X/Z/U*) let an implementation choose, and
`RESOLVE` says what medkit does for each. The table is read from KitwareMedical/dicom-anonymizer's
tabulation of the standard (`dicomanonymizer`, BSD-3-Clause; its 2024b database), keywords from pydicom's
data dictionary; medkit kept a 617-row copy of the same table until that package was a dependency (the rows
were identical, tag for tag and code for code).
"""

from dicomanonymizer.dicomfields_selector import dicom_anonymization_database_selector
from pydicom.datadict import keyword_for_tag

__all__ = ["TABLE_E1_1", "RESOLVE", "EDITION"]

EDITION = "DICOM PS3.15 2024b, Table E.1-1"
_DATABASE = "dicomfields_2024b"  # dicom-anonymizer's name for that edition (it also ships later ones)
# dicom-anonymizer's list of each action code -> the code as the standard writes it
_CODES = {"X_TAGS": "X", "Z_TAGS": "Z", "D_TAGS": "D", "U_TAGS": "U", "X_Z_TAGS": "X/Z", "X_D_TAGS": "X/D",
          "Z_D_TAGS": "Z/D", "X_Z_D_TAGS": "X/Z/D", "X_Z_U_STAR_TAGS": "X/Z/U*"}

# How a compound code is applied. Z keeps the attribute present but empty, so attributes that an IOD
# requires (Type 2) stay valid; X/D removes (nothing needs a dummy date); X/Z/U* keeps the sequence and
# replaces the UIDs inside it (its items are walked like the rest of the file).
RESOLVE = {"X": "X", "Z": "Z", "D": "D", "U": "U", "X/Z": "Z", "X/D": "X", "Z/D": "Z", "X/Z/D": "Z", "X/Z/U*": "U"}


def _table() -> tuple:
    """Return the table's (tag, keyword, code) rows in tag order, single attributes only."""
    database = dicom_anonymization_database_selector(_DATABASE)
    # a 4-number entry is a repeating group with its mask (50xx curves, 60xx overlays): deid removes those whole
    rows = [((group << 16) | element, keyword_for_tag((group << 16) | element), code)
            for name, code in _CODES.items() for group, element, *mask in database[name] if not mask]
    return tuple(sorted(rows))


TABLE_E1_1 = _table()
