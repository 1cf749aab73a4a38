"""DICOM de-identification on pydicom's sample files: identifiers gone, pixels kept byte for byte."""

import pydicom
import pytest
from pydicom.data import get_testdata_file

from medkit.deploy import BASIC_PROFILE, deidentify, deidentify_file
from medkit.errors import DataError

SAMPLES = ["CT_small.dcm", "MR_small.dcm", "JPEG2000.dcm"]


def _all_text(ds) -> str:
    parts = []
    ds.walk(lambda _, elem: parts.append(str(elem.value)) if elem.VR != "SQ" and elem.tag != 0x7FE00010 else None)
    return "\n".join(parts)


@pytest.mark.parametrize("name", SAMPLES)
def test_identifiers_removed_pixels_kept(name, tmp_path):
    src = get_testdata_file(name)
    original = pydicom.dcmread(src)
    changes = deidentify_file(src, tmp_path / "out.dcm", salt="s3cret")
    clean = pydicom.dcmread(tmp_path / "out.dcm")
    assert clean.PixelData == original.PixelData  # pixels untouched
    text = _all_text(clean)
    for keyword in ("PatientName", "PatientID"):  # nowhere in the file, not even inside sequences
        assert str(original[keyword].value) not in text, f"{keyword} {original[keyword].value!r} survived"
    for keyword in ("InstitutionName", "StudyDate", "ReferringPhysicianName", "OperatorsName", "AccessionNumber"):
        if original.get(keyword):  # removed or emptied (Manufacturer, which the profile keeps, may repeat a name)
            assert not clean.get(keyword), f"{keyword} {original.get(keyword)!r} survived"
    assert str(clean.PatientName).startswith("ANON-") and clean.PatientIdentityRemoved == "YES"
    assert not any(elem.tag.is_private for elem in clean)
    for uid in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
        assert clean[uid].value != original[uid].value
    assert clean.file_meta.MediaStorageSOPInstanceUID == clean.SOPInstanceUID
    assert {c["keyword"] for c in changes} >= {"PatientName", "PatientID", "StudyInstanceUID"}
    assert all(c["action"] in "XZDU" for c in changes)
    assert clean.Modality == original.Modality and clean.Rows == original.Rows  # what a model needs stays


def test_same_salt_links_files_and_original_is_untouched():
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    name = str(ds.PatientName)
    a, _ = deidentify(ds, salt="x")
    b, _ = deidentify(ds, salt="x")
    c, _ = deidentify(ds, salt="y")
    assert a.StudyInstanceUID == b.StudyInstanceUID != c.StudyInstanceUID
    assert a.PatientID == b.PatientID != c.PatientID
    assert str(ds.PatientName) == name  # the input dataset is not modified


def test_profile_actions_are_documented():
    assert set(BASIC_PROFILE.values()) <= set("XZDU")
    assert BASIC_PROFILE["PatientName"] == "D" and BASIC_PROFILE["StudyInstanceUID"] == "U"


def test_bad_inputs(tmp_path):
    src = get_testdata_file("CT_small.dcm")
    with pytest.raises(DataError, match="does not exist"):
        deidentify_file(tmp_path / "missing.dcm", tmp_path / "out.dcm")
    (tmp_path / "note.dcm").write_text("not dicom")
    with pytest.raises(DataError, match="not a DICOM file"):
        deidentify_file(tmp_path / "note.dcm", tmp_path / "out.dcm")
    with pytest.raises(DataError, match="Refusing to overwrite"):
        deidentify_file(src, src)
    with pytest.raises(DataError, match="pydicom Dataset"):
        deidentify({"PatientName": "x"})
