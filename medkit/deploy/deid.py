"""De-identify DICOM files before sharing samples: a documented profile applied with pydicom, pixels untouched.

The profile follows the Basic Application Level Confidentiality Profile of DICOM PS3.15 Annex E
(Table E.1-1), restricted to the attributes listed in `BASIC_PROFILE` below, with its action codes:

- X: remove the attribute;
- Z: keep it, but empty (for attributes a valid file must carry);
- D: replace it with a dummy value (a pseudonym for the patient, so one patient's files stay together);
- U: replace a UID by a new one, the same new UID for the same old UID under the same `salt`, so a
  study's series and references still fit together.

All private attributes and overlays (groups 60xx, which can hold burned-in text) are removed too.
The pixels are kept byte for byte. What is NOT handled, and must be checked by a person before
sharing: text burned into the pixels (`BurnedInAnnotation`), faces in head CT/MR volumes, and
identifying text hidden in attributes outside the profile. Lesson 06 shows the report.
"""

import copy
import hashlib
import secrets
from pathlib import Path

from ..data.dicom import open_dicom
from ..errors import DataError

__all__ = ["BASIC_PROFILE", "ACTIONS", "deidentify", "deidentify_file", "PROFILE_NAME"]

PROFILE_NAME = "medkit basic profile (subset of DICOM PS3.15 E.1-1)"  # LO: <= 64 chars

ACTIONS = {"X": "removed", "Z": "emptied", "D": "replaced with a dummy", "U": "replaced UID"}

BASIC_PROFILE = {
    # patient
    "PatientName": "D", "PatientID": "D", "PatientBirthDate": "Z", "PatientBirthTime": "X", "PatientSex": "Z",
    "PatientAge": "X", "PatientSize": "X", "PatientWeight": "X", "PatientAddress": "X",
    "PatientTelephoneNumbers": "X", "PatientMotherBirthName": "X", "OtherPatientIDs": "X",
    "OtherPatientNames": "X", "OtherPatientIDsSequence": "X", "IssuerOfPatientID": "X", "EthnicGroup": "X",
    "Occupation": "X", "MilitaryRank": "X", "AdditionalPatientHistory": "X", "PatientComments": "X",
    "MedicalRecordLocator": "X", "PatientInsurancePlanCodeSequence": "X", "PregnancyStatus": "X",
    # people and places
    "ReferringPhysicianName": "Z", "PerformingPhysicianName": "X", "NameOfPhysiciansReadingStudy": "X",
    "PhysiciansOfRecord": "X", "RequestingPhysician": "X", "OperatorsName": "X", "InstitutionName": "X",
    "InstitutionAddress": "X", "InstitutionalDepartmentName": "X", "StationName": "X",
    "DeviceSerialNumber": "X",
    # the visit: identifiers, dates and times, free text
    "AccessionNumber": "Z", "StudyID": "Z", "StudyDate": "Z", "StudyTime": "Z", "SeriesDate": "X",
    "SeriesTime": "X", "AcquisitionDate": "X", "AcquisitionTime": "X", "AcquisitionDateTime": "X",
    "ContentDate": "Z", "ContentTime": "Z", "InstanceCreationDate": "X", "InstanceCreationTime": "X",
    "StudyDescription": "X", "SeriesDescription": "X", "ProtocolName": "X", "ImageComments": "X",
    "RequestAttributesSequence": "X", "RequestedProcedureDescription": "X",
    "PerformedProcedureStepDescription": "X", "PerformedProcedureStepStartDate": "X",
    "PerformedProcedureStepStartTime": "X", "PerformedProcedureStepID": "X",
    # identifiers that link files to a hospital's archive
    "StudyInstanceUID": "U", "SeriesInstanceUID": "U", "SOPInstanceUID": "U", "FrameOfReferenceUID": "U",
    "ReferencedSOPInstanceUID": "U", "ReferencedFrameOfReferenceUID": "U", "InstanceCreatorUID": "U",
    "StorageMediaFileSetUID": "U", "IrradiationEventUID": "U",
}


def _short(value) -> str:
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def deidentify(ds, *, salt: str | None = None, pseudonym: str | None = None):
    """Return (a de-identified copy of the pydicom Dataset `ds`, the list of changes made).

    Args:
        ds: a pydicom Dataset (left unchanged).
        salt: secret that makes replaced UIDs and the default pseudonym reproducible across files of one
            export; keep it private (anyone with it can link new UIDs to old ones). Default: a fresh random one.
        pseudonym: the new PatientName/PatientID; default "ANON-" + 8 hex digits derived from PatientID and salt.
    """
    from pydicom.dataset import Dataset
    from pydicom.uid import generate_uid

    if not isinstance(ds, Dataset):
        raise DataError(f"deidentify expects a pydicom Dataset, got {type(ds).__name__}; read the file with "
                        "pydicom.dcmread or call deidentify_file(path, out).")
    salt = salt if salt is not None else secrets.token_hex(16)
    out = copy.deepcopy(ds)
    if pseudonym is None:
        digest = hashlib.sha256(f"{salt}:{ds.get('PatientID', '')}".encode()).hexdigest()[:8].upper()
        pseudonym = f"ANON-{digest}"
    changes = []

    def new_uid(old: str) -> str:
        return generate_uid(entropy_srcs=[salt, str(old)])

    def apply(dataset, elem):
        if elem.tag.is_private:
            changes.append({"tag": str(elem.tag), "keyword": "(private)", "action": "X", "old": _short(elem.value),
                            "new": ""})
            del dataset[elem.tag]
            return
        if 0x6000 <= elem.tag.group <= 0x601E and elem.tag.group % 2 == 0:
            changes.append({"tag": str(elem.tag), "keyword": elem.keyword or "(overlay)", "action": "X",
                            "old": _short(elem.value) if elem.VR != "OW" else "<overlay data>", "new": ""})
            del dataset[elem.tag]
            return
        action = BASIC_PROFILE.get(elem.keyword)
        if action is None:
            return
        old = "<sequence>" if elem.VR == "SQ" else _short(elem.value)
        if action == "X":
            del dataset[elem.tag]
            new = ""
        elif action == "Z":
            elem.value = [] if elem.VR == "SQ" else ""
            new = ""
        elif action == "D":
            elem.value = pseudonym
            new = pseudonym
        else:  # "U"
            elem.value = [new_uid(v) for v in elem.value] if elem.VM > 1 else new_uid(elem.value)
            new = _short(elem.value)
        changes.append({"tag": str(elem.tag), "keyword": elem.keyword, "action": action, "old": old, "new": new})

    out.walk(apply, recursive=True)
    meta = getattr(out, "file_meta", None)
    if meta is not None and "MediaStorageSOPInstanceUID" in meta and "SOPInstanceUID" in out:
        meta.MediaStorageSOPInstanceUID = out.SOPInstanceUID  # the file header must name the same instance
    out.PatientIdentityRemoved = "YES"
    out.DeidentificationMethod = PROFILE_NAME
    return out, changes


def deidentify_file(path, out, *, salt: str | None = None, pseudonym: str | None = None) -> list[dict]:
    """De-identify the DICOM file `path` into `out` (pixels unchanged) and return the list of changes."""
    path, out = Path(path), Path(out)
    ds = open_dicom(path)
    if out.resolve() == path.resolve():
        raise DataError(f"Refusing to overwrite the original {path}; write the de-identified copy elsewhere.")
    clean, changes = deidentify(ds, salt=salt, pseudonym=pseudonym)
    out.parent.mkdir(parents=True, exist_ok=True)
    clean.save_as(out, enforce_file_format=True)
    return changes
