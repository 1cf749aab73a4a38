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

The file meta (group 0002, outside the dataset the table covers) loses the AE titles and addresses of the
systems that sent and received the file and any PrivateInformation; its SOP Instance UID follows the new one.
Elements stored as UN (unknown VR: pydicom writes any value over 64 KiB so) are read by their dictionary VR
before the table is applied; a UN element whose tag the dictionary does not know is removed, as nobody can
say what it holds.

The pseudonym (PatientName and PatientID) is derived, with HMAC-SHA256 under the salt, from the pair
(IssuerOfPatientID, PatientID), so the same number from two hospitals stays two patients. A file with no
usable PatientID (empty, or a placeholder such as "0" or "UNKNOWN") is keyed by its StudyInstanceUID (a
study belongs to one patient, so its files stay together), else by its SOPInstanceUID: two unknown patients
never share a pseudonym (the price: one unknown patient's two studies get two pseudonyms).

The pixels are kept byte for byte. A file whose BurnedInAnnotation is YES is refused by default
(`burned_in="refuse"`): its pixels carry text that may name the patient. So is a file of a modality that
usually carries burned-in text (ultrasound, secondary capture, photographs, endoscopy, fluoroscopy...:
`BURNED_IN_MODALITIES`) when BurnedInAnnotation is absent, since nobody has said its pixels are clean: refused
rather than flagged, because a flag in a list of changes is easy to miss and the text is the patient's name.
Pass `burned_in="warn"` once a person has checked or masked the pixels (or set BurnedInAnnotation NO after
checking). Not handled, and to be checked by a person before sharing: faces in head CT/MR volumes, and
identifying text in attributes the profile keeps.
"""

import copy
import hashlib
import hmac
import os
import secrets
import warnings

from ..base.atomic import atomic_path, write_text
from ..base.cache import cache_dir
from ..base.errors import ConfigError, DataError
from ..base.paths import check_file, check_output_file
from ..data.dicom import open_dicom
from .annex_e import EDITION, RESOLVE, TABLE_E1_1

__all__ = ["BASIC_PROFILE", "ACTIONS", "PROFILE", "deidentify", "deidentify_file", "default_salt", "PROFILE_NAME",
           "BURNED_IN_MODALITIES", "FILE_META_REMOVED", "MIN_SALT_LENGTH", "pseudonym_key"]

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

# Modalities whose pixels often carry the patient's name, date or ID as burned-in text (ultrasound and IVUS
# screens, secondary captures and scanned documents, photographs, endoscopy, microscopy and slide labels,
# fluoroscopy and angiography overlays, dental panoramics): without a BurnedInAnnotation NO they are suspect.
BURNED_IN_MODALITIES = frozenset({"US", "IVUS", "SC", "OT", "DOC", "XC", "ES", "GM", "OP", "SM", "XA", "RF", "PX",
                                  "IO", "OSS", "DMS"})
_SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"  # SC image storage (.7) and its multi-frame kin (.7.1 to .7.4)

# File meta elements (PS3.10 7.1) that name the systems a file passed through, or carry private data.
FILE_META_REMOVED = {0x00020016: "SourceApplicationEntityTitle", 0x00020017: "SendingApplicationEntityTitle",
                     0x00020018: "ReceivingApplicationEntityTitle", 0x00020026: "SourcePresentationAddress",
                     0x00020027: "SendingPresentationAddress", 0x00020028: "ReceivingPresentationAddress",
                     0x00020100: "PrivateInformationCreatorUID", 0x00020102: "PrivateInformation"}

# Below this a salt can be guessed: with it, anyone holding a list of patient IDs recomputes the pseudonyms.
MIN_SALT_LENGTH = 16
# PatientIDs that identify nobody: treated as missing, so that such patients are not merged into one.
_PLACEHOLDER_IDS = frozenset({"", "0", "NONE", "NULL", "UNKNOWN", "N/A", "NA", "ANONYMOUS", "ANON", "ANONYMIZED"})


def default_salt() -> str:
    """Return this installation's private de-identification salt, created once in medkit's cache.

    The same salt on every call is what keeps the UIDs and pseudonyms of one study consistent across
    files and sessions; it is private (0600) so nobody else can link new UIDs to old ones. If the cache
    cannot be written, a salt for this process only is used, with a warning.
    """
    path = cache_dir() / "deid_salt"
    try:
        if path.is_file():
            salt = path.read_text().strip()
            if len(salt) < MIN_SALT_LENGTH:  # never fall back to a new salt silently: old files would not link
                raise ConfigError(f"The de-identification salt in {path} is {len(salt)} characters long, under "
                                  f"{MIN_SALT_LENGTH}: the file was truncated or edited. Restore it from a backup "
                                  "(files already de-identified link only through the old salt) or delete it.")
            return salt
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


def _check_salt(salt) -> str:
    """Return `salt` if it is a string of at least MIN_SALT_LENGTH characters, else raise ConfigError."""
    if not isinstance(salt, str):
        raise ConfigError(f"salt must be a string, got {type(salt).__name__}. Pass a private text of at least "
                          f"{MIN_SALT_LENGTH} characters, or leave it out to use medkit.deploy.default_salt().")
    if len(salt.strip()) < MIN_SALT_LENGTH:
        raise ConfigError(f"salt {'is empty' if not salt.strip() else f'has {len(salt.strip())} characters'}; it "
                          f"needs at least {MIN_SALT_LENGTH}: anyone who guesses a short salt can recompute every "
                          "pseudonym and UID from a list of patient IDs. Use e.g. secrets.token_hex(16), or leave "
                          "salt out to use this installation's private salt (default_salt()).")
    return salt


def pseudonym_key(ds) -> str:
    """Return what a dataset's pseudonym is derived from: issuer + PatientID, else its study, else its instance.

    An empty or placeholder PatientID identifies nobody, so such files are keyed by StudyInstanceUID (one study,
    one patient), else by SOPInstanceUID, else by a random token: two unknown patients never share a pseudonym.
    """
    patient = str(ds.get("PatientID", "") or "").strip()
    if patient.upper() not in _PLACEHOLDER_IDS:
        issuer = str(ds.get("IssuerOfPatientID", "") or "").strip()
        qualifiers = ds.get("IssuerOfPatientIDQualifiersSequence") or []
        universal = str(qualifiers[0].get("UniversalEntityID", "") or "").strip() if len(qualifiers) else ""
        return f"patient\x00{issuer}\x00{universal}\x00{patient}"
    for keyword in ("StudyInstanceUID", "SOPInstanceUID"):
        uid = str(ds.get(keyword, "") or "").strip()
        if uid:
            return f"{keyword}\x00{uid}"
    return f"random\x00{secrets.token_hex(16)}"


def _pseudonym(ds, salt: str) -> str:
    digest = hmac.new(salt.encode(), pseudonym_key(ds).encode(), hashlib.sha256).hexdigest()
    return f"ANON-{digest[:12].upper()}"  # 48 bits: a collision is unlikely below millions of patients


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
    if elem.VR == "UN":  # a public tag the dictionary does not know: nobody can say what it holds
        return "X"
    if elem.VR == "PN":
        return "D"
    if elem.VR in ("DA", "DT"):
        return "D"
    if elem.VR == "UI" and not _is_class_uid(elem.keyword) and elem.value:
        values = elem.value if elem.VM > 1 else [elem.value]
        if any(not str(v).startswith(_DICOM_ROOT) for v in values):
            return "U"
    return None


def _burned_in_reason(ds) -> str | None:
    """Return why the pixels may hold burned-in text (declared, or a suspect modality undeclared), or None."""
    declared = str(ds.get("BurnedInAnnotation", "") or "").strip().upper()
    if declared == "YES":
        return "has BurnedInAnnotation YES"
    if declared == "NO":
        return None
    modality = str(ds.get("Modality", "") or "").strip().upper()
    sop_class = str(ds.get("SOPClassUID", "") or "")
    has_pixels = any(k in ds for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData"))
    if has_pixels and (modality in BURNED_IN_MODALITIES or sop_class == _SECONDARY_CAPTURE or sop_class.startswith(_SECONDARY_CAPTURE + ".")):
        kind = f"Modality {modality}" if modality in BURNED_IN_MODALITIES else "a secondary capture"
        return f"has no BurnedInAnnotation attribute, and its kind ({kind}) usually carries burned-in text"
    return None


def _check_burned_in(ds, burned_in: str, where: str) -> None:
    if burned_in not in _BURNED_IN:
        raise DataError(f"burned_in must be one of {_BURNED_IN}, got {burned_in!r}.")
    reason = _burned_in_reason(ds)
    if reason is None:
        return
    message = (f"{where} {reason}: text in its pixels may identify the patient, and "
               "de-identifying the header does not remove it.")
    if burned_in == "refuse":
        raise DataError(f"{message} Look at the image and mask the text, then pass burned_in='warn' "
                        "(or set BurnedInAnnotation NO once a person has checked it, or leave the file out).")
    warnings.warn(f"{message} Check the pixels before sharing.", stacklevel=3)


def deidentify(ds, *, salt: str | None = None, pseudonym: str | None = None, burned_in: str = "refuse",
               source: str = "This dataset"):
    """Return (a de-identified copy of the pydicom Dataset `ds`, the list of changes made).

    Args:
        ds: a pydicom Dataset (left unchanged).
        salt: secret that makes replaced UIDs and the default pseudonym reproducible: the same old UID and
            salt always give the same new UID, so all files of a study stay linked. Keep it private (anyone
            with it can link new UIDs to old ones). Default: this installation's salt (`default_salt()`).
        pseudonym: the new PatientName/PatientID; default "ANON-" + 12 hex digits, an HMAC under the salt of
            `pseudonym_key(ds)` (IssuerOfPatientID + PatientID; a file without an ID is keyed by its study).
        burned_in: "refuse" (default) raises DataError for BurnedInAnnotation YES, or for a modality that usually
            carries burned-in text (`BURNED_IN_MODALITIES`) without the attribute; "warn" warns and goes on.
        source: how messages name the dataset (deidentify_file passes the file's path).
    """
    from pydicom.dataset import Dataset
    from pydicom.uid import generate_uid

    if not isinstance(ds, Dataset):
        raise DataError(f"deidentify expects a pydicom Dataset, got {type(ds).__name__}; read the file with "
                        "pydicom.dcmread or call deidentify_file(path, out).")
    _check_burned_in(ds, burned_in, source)
    salt = _check_salt(salt if salt is not None else default_salt())
    out = copy.deepcopy(ds)
    if pseudonym is None:
        pseudonym = _pseudonym(ds, salt)
    changes = []

    def new_uid(old) -> str:
        return generate_uid(entropy_srcs=[salt, str(old)])

    def apply(dataset, elem):
        elem = _known_vr(dataset, elem)
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
    changes += _clean_file_meta(out, new_uid)
    out.PatientIdentityRemoved = "YES"
    out.DeidentificationMethod = f"{PROFILE_NAME}; {EDITION}"[:64]
    return out, changes


def _known_vr(dataset, elem):
    """Return `elem`, re-read with its dictionary VR when it was stored as UN (so the table's rule fits its type)."""
    from pydicom.datadict import dictionary_VR
    from pydicom.dataelem import DataElement, RawDataElement, convert_raw_data_element

    if elem.VR != "UN" or elem.tag.is_private or elem.tag not in dataset:
        return elem
    try:
        vr = dictionary_VR(elem.tag).split(" or ")[0]
    except KeyError:
        return elem  # unknown to the dictionary: _rule removes it
    raw = RawDataElement(elem.tag, vr, len(elem.value or b""), elem.value or b"", 0, True, True)
    try:
        known = convert_raw_data_element(raw, ds=dataset)
    except Exception:  # noqa: BLE001 - undecodable bytes: keep the tag with an empty value of the right VR
        known = DataElement(elem.tag, vr, None)
    dataset[elem.tag] = known
    return known


def _clean_file_meta(out, new_uid) -> list[dict]:
    """Remove the file meta's AE titles, addresses and private information; give it the new instance UID."""
    meta = getattr(out, "file_meta", None)
    if meta is None:
        return []
    changes = []
    for tag, keyword in FILE_META_REMOVED.items():
        if tag in meta:
            changes.append({"tag": str(meta[tag].tag), "keyword": keyword, "action": "X",
                            "old": "<binary>" if meta[tag].VR == "OB" else _short(meta[tag].value), "new": ""})
            del meta[tag]
    old = meta.get("MediaStorageSOPInstanceUID")
    if old is not None:  # the file header must name the same instance as the dataset, and never the old one
        meta.MediaStorageSOPInstanceUID = out.SOPInstanceUID if "SOPInstanceUID" in out else new_uid(old)
        changes.append({"tag": "(0002,0003)", "keyword": "MediaStorageSOPInstanceUID", "action": "U",
                        "old": _short(old), "new": _short(meta.MediaStorageSOPInstanceUID)})
    return changes


def _complete_file_meta(clean, source) -> None:
    """Fill the file meta a Part 10 file needs from the dataset itself, or raise DataError naming what is missing."""
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

    meta = getattr(clean, "file_meta", None)
    if meta is None:
        meta = clean.file_meta = FileMetaDataset()
    sop_class = clean.get("SOPClassUID") or meta.get("MediaStorageSOPClassUID")
    if not sop_class:
        raise DataError(f"{source} names no SOP Class (no SOPClassUID, nor a MediaStorageSOPClassUID in its file "
                        "meta), so it cannot be written as a DICOM file: it is not a complete instance. Re-export "
                        "it from the system that made it.")
    meta.MediaStorageSOPClassUID = sop_class
    if not meta.get("MediaStorageSOPInstanceUID"):
        if "SOPInstanceUID" not in clean:
            raise DataError(f"{source} has no SOPInstanceUID, so its de-identified copy would name no instance. "
                            "Re-export it from the system that made it.")
        meta.MediaStorageSOPInstanceUID = clean.SOPInstanceUID
    if not meta.get("TransferSyntaxUID"):
        implicit, little = getattr(clean, "original_encoding", (None, None))
        encapsulated = "PixelData" in clean and clean["PixelData"].is_undefined_length
        if implicit is None or encapsulated:
            raise DataError(f"{source}: its file meta names no Transfer Syntax UID and its pixel data is "
                            "compressed, so the encoding is unknown. Re-export it with a complete header.")
        meta.TransferSyntaxUID = (ImplicitVRLittleEndian if implicit else
                                  ExplicitVRLittleEndian if little else ExplicitVRBigEndian)


def deidentify_file(path, out, *, salt: str | None = None, pseudonym: str | None = None,
                    burned_in: str = "refuse") -> list[dict]:
    """De-identify the DICOM file `path` into `out` (pixels unchanged, written atomically); return the changes.

    A file whose file meta is incomplete (no Transfer Syntax or Media Storage UIDs, as older writers leave it)
    gets them from the dataset itself; one that names no SOP Class at all is refused with DataError.
    """
    path = check_file(path, "DICOM file")
    out = check_output_file(out, "De-identified output")
    if out.resolve() == path.resolve():
        raise DataError(f"Refusing to overwrite the original {path}; write the de-identified copy elsewhere.")
    ds = open_dicom(path)
    clean, changes = deidentify(ds, salt=salt, pseudonym=pseudonym, burned_in=burned_in, source=str(path))
    _complete_file_meta(clean, path)
    try:
        with atomic_path(out) as tmp:
            clean.save_as(tmp, enforce_file_format=True)
    except (ValueError, TypeError, AttributeError, OverflowError) as exc:  # pydicom refuses an element it cannot encode
        raise DataError(f"{path}: its de-identified copy cannot be written as DICOM ({type(exc).__name__}: "
                        f"{str(exc)[:160]}). The header is probably damaged; re-export the file.") from exc
    return changes
