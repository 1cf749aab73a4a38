"""De-identify DICOM files before sharing samples: the standard's Basic Profile applied with pydicom, pixels untouched.

The profile is DICOM PS3.15 Annex E's Basic Application Level Confidentiality Profile, Table E.1-1,
attribute by attribute (`medkit.deploy.annex_e.TABLE_E1_1`, 617 attributes, with its action codes):

- X: remove the attribute;
- Z: keep it, but empty (for attributes a valid file must carry);
- D: replace it with a dummy value (the patient's name and ID get a pseudonym, so one patient's files stay
  together); a D sequence (an SR's Content Sequence) is kept and its items cleaned like the rest;
- U: replace a UID by a new one: the same new UID for the same old UID under the same salt, so the slices
  of a study keep one Study/Series UID and their references still fit together.

Applied at every depth (inside sequences too), with these rules beyond the table: all private attributes,
curves (50xx) and overlays (60xx, which can hold burned-in text) are removed; any person name (PN) the
table does not list is replaced by a dummy; any date (DA/DT) it does not list is replaced by a dummy date;
any other UID outside the DICOM root (1.2.840.10008) that is not a class or transfer syntax UID is
replaced consistently (vendors' UIDs often embed the acquisition date); the text of SR content items is
replaced (the table's D for the Content Sequence).

The pixels are kept byte for byte. A file whose BurnedInAnnotation is YES is refused by default
(`burned_in="refuse"`): its pixels carry text that may name the patient. Pass `burned_in="warn"` once a
person has checked or masked the pixels. Not handled, and to be checked by a person before sharing:
faces in head CT/MR volumes, and identifying text in attributes the profile keeps.
"""

import copy
import hashlib
import os
import secrets
import warnings
from pathlib import Path

from ..atomic import atomic_path, write_text
from ..cache import cache_dir
from ..data.dicom import open_dicom
from ..errors import DataError
from .annex_e import EDITION, RESOLVE, TABLE_E1_1

__all__ = ["BASIC_PROFILE", "ACTIONS", "PROFILE", "deidentify", "deidentify_file", "default_salt", "PROFILE_NAME"]

PROFILE_NAME = "DICOM PS3.15 E.1-1 Basic Profile (medkit)"  # LO: <= 64 chars

ACTIONS = {"X": "removed", "Z": "emptied", "D": "replaced with a dummy", "U": "replaced UID"}

# The patient keeps one pseudonym across files (Z/D and Z both allow a dummy value), so files stay linked.
_OVERRIDES = {0x00100010: "D", 0x00100020: "D"}
# SR content items: the text of a report item may name anyone (the table's D for the Content Sequence).
_EXTRA = ((0x0040A160, "TextValue", "D"),)

# tag -> (keyword, the standard's code, what medkit applies)
PROFILE = {tag: (keyword, code, _OVERRIDES.get(tag, RESOLVE[code])) for tag, keyword, code in TABLE_E1_1 + _EXTRA}
BASIC_PROFILE = {keyword: applied for keyword, _, applied in PROFILE.values()}  # keyword -> action, for reading

_DICOM_ROOT = "1.2.840.10008."
_DUMMY = {"DA": "19000101", "DT": "19000101000000", "TM": "000000", "PN": "ANONYMOUS", "AS": "000Y",
          "AE": "ANONYMOUS", "CS": "ANONYMIZED", "IS": "0", "DS": "0"}
_TEXT_VRS = {"LO", "SH", "LT", "ST", "UT", "UC", "UR"}
_BURNED_IN = ("refuse", "warn")


def default_salt() -> str:
    """Return this installation's private de-identification salt, created once in medkit's cache.

    The same salt on every call is what keeps the UIDs and pseudonyms of one study consistent across
    files and sessions; it is private (0600) so nobody else can link new UIDs to old ones. If the cache
    cannot be written, a salt for this process only is used, with a warning.
    """
    path = cache_dir() / "deid_salt"
    try:
        if path.is_file():
            return path.read_text().strip()
        write_text(path, secrets.token_hex(32))
        os.chmod(path, 0o600)
        return path.read_text().strip()
    except (OSError, DataError):
        if "process" not in _SALT:
            warnings.warn(f"Cannot keep a de-identification salt in {path}; using one for this process only, so "
                          "files de-identified in another session will not link. Pass salt=... to control it.",
                          stacklevel=3)
            _SALT["process"] = secrets.token_hex(32)
        return _SALT["process"]


_SALT: dict = {}


def _short(value) -> str:
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _dummy(elem, pseudonym: str):
    """Return a dummy value fit for the element's VR (the pseudonym for the patient's name and ID)."""
    if elem.tag in (0x00100010, 0x00100020):
        return pseudonym
    if elem.VR in _DUMMY:
        return _DUMMY[elem.VR] if elem.VM <= 1 else [_DUMMY[elem.VR]]
    if elem.VR in _TEXT_VRS:
        return "ANONYMIZED"
    if elem.VR in ("US", "SS", "UL", "SL", "FL", "FD", "UV", "SV"):
        return 0
    return b"" if elem.VR in ("OB", "OW", "OF", "OD", "OL", "OV", "UN") else ""


def _is_class_uid(keyword: str) -> bool:
    return keyword.endswith("ClassUID") or keyword in ("TransferSyntaxUID", "CodingSchemeUID")


def _rule(elem) -> str | None:
    """Return the action for one element: the table's, else the extra rules', else None (kept)."""
    if elem.tag.is_private or (elem.tag.group & 0xFF00) in (0x5000, 0x6000):
        return "X"
    if elem.tag in PROFILE:
        return PROFILE[elem.tag][2]
    if elem.VR == "PN":
        return "D"
    if elem.VR in ("DA", "DT"):
        return "D"
    if elem.VR == "UI" and not _is_class_uid(elem.keyword) and elem.value:
        values = elem.value if elem.VM > 1 else [elem.value]
        if any(not str(v).startswith(_DICOM_ROOT) for v in values):
            return "U"
    return None


def _check_burned_in(ds, burned_in: str, where: str) -> None:
    if burned_in not in _BURNED_IN:
        raise DataError(f"burned_in must be one of {_BURNED_IN}, got {burned_in!r}.")
    if str(ds.get("BurnedInAnnotation", "")).strip().upper() != "YES":
        return
    message = (f"{where} has BurnedInAnnotation YES: text in its pixels may identify the patient, and "
               "de-identifying the header does not remove it.")
    if burned_in == "refuse":
        raise DataError(f"{message} Look at the image and mask the text, then pass burned_in='warn' "
                        "(or leave the file out).")
    warnings.warn(f"{message} Check the pixels before sharing.", stacklevel=3)


def deidentify(ds, *, salt: str | None = None, pseudonym: str | None = None, burned_in: str = "refuse",
               source: str = "This dataset"):
    """Return (a de-identified copy of the pydicom Dataset `ds`, the list of changes made).

    Args:
        ds: a pydicom Dataset (left unchanged).
        salt: secret that makes replaced UIDs and the default pseudonym reproducible: the same old UID and
            salt always give the same new UID, so all files of a study stay linked. Keep it private (anyone
            with it can link new UIDs to old ones). Default: this installation's salt (`default_salt()`).
        pseudonym: the new PatientName/PatientID; default "ANON-" + 8 hex digits derived from PatientID and salt.
        burned_in: "refuse" (default) raises DataError for BurnedInAnnotation YES; "warn" warns and goes on.
        source: how messages name the dataset (deidentify_file passes the file's path).
    """
    from pydicom.dataset import Dataset
    from pydicom.uid import generate_uid

    if not isinstance(ds, Dataset):
        raise DataError(f"deidentify expects a pydicom Dataset, got {type(ds).__name__}; read the file with "
                        "pydicom.dcmread or call deidentify_file(path, out).")
    _check_burned_in(ds, burned_in, source)
    salt = salt if salt is not None else default_salt()
    out = copy.deepcopy(ds)
    if pseudonym is None:
        digest = hashlib.sha256(f"{salt}:{ds.get('PatientID', '')}".encode()).hexdigest()[:8].upper()
        pseudonym = f"ANON-{digest}"
    changes = []

    def new_uid(old) -> str:
        return generate_uid(entropy_srcs=[salt, str(old)])

    def apply(dataset, elem):
        action = _rule(elem)
        if action is None:
            return
        keyword = elem.keyword or ("(private)" if elem.tag.is_private else "(curve/overlay)")
        old = "<sequence>" if elem.VR == "SQ" else "<binary>" if elem.VR in ("OB", "OW", "UN") else _short(elem.value)
        if action == "X":
            del dataset[elem.tag]
            new = ""
        elif elem.VR == "SQ":
            if action == "Z":
                elem.value = []
            # D / U on a sequence: keep it; its items are walked and cleaned like the rest of the file
            new = "<sequence>" if action != "Z" else ""
        elif action == "Z":
            elem.value = pseudonym if elem.tag in _OVERRIDES else ("" if elem.VR not in ("OB", "OW", "UN") else b"")
            new = _short(elem.value)
        elif action == "D":
            elem.value = _dummy(elem, pseudonym)
            new = _short(elem.value)
        else:  # "U"
            if elem.VR != "UI":
                elem.value = _dummy(elem, pseudonym)
            else:
                elem.value = [new_uid(v) for v in elem.value] if elem.VM > 1 else new_uid(elem.value)
            new = _short(elem.value)
        changes.append({"tag": str(elem.tag), "keyword": keyword, "action": action, "old": old, "new": new})

    out.walk(apply, recursive=True)
    meta = getattr(out, "file_meta", None)
    if meta is not None and "MediaStorageSOPInstanceUID" in meta and "SOPInstanceUID" in out:
        meta.MediaStorageSOPInstanceUID = out.SOPInstanceUID  # the file header must name the same instance
    out.PatientIdentityRemoved = "YES"
    out.DeidentificationMethod = f"{PROFILE_NAME}; {EDITION}"[:64]
    return out, changes


def deidentify_file(path, out, *, salt: str | None = None, pseudonym: str | None = None,
                    burned_in: str = "refuse") -> list[dict]:
    """De-identify the DICOM file `path` into `out` (pixels unchanged, written atomically); return the changes."""
    path, out = Path(path), Path(out)
    ds = open_dicom(path)
    if out.resolve() == path.resolve():
        raise DataError(f"Refusing to overwrite the original {path}; write the de-identified copy elsewhere.")
    clean, changes = deidentify(ds, salt=salt, pseudonym=pseudonym, burned_in=burned_in, source=str(path))
    with atomic_path(out) as tmp:
        clean.save_as(tmp, enforce_file_format=True)
    return changes
