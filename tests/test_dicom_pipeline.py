"""The DICOM display pipeline against an independent one written here from PS3.3 C.11's formulas (numpy only), on
every single-frame grey image of pydicom's corpus that medkit accepts and on LUT / VOI variants of corpus files; and
each degenerate or inconsistent header, made by editing a corpus file, refused by name."""

import importlib.util
import warnings

import numpy as np
import pydicom
import pytest
from conftest import ROOT
from pydicom.data import get_testdata_file, get_testdata_files
from pydicom.dataset import Dataset

from medkit.base.errors import DataError, MedkitError
from medkit.data.dicom import dicom_to_uint8, read_dicom
from medkit.deploy import OnnxPredictor, deidentify
from medkit.deploy.files import dicom_modality

_spec = importlib.util.spec_from_file_location("dicom_corpus", ROOT / "benchmarks" / "dicom_corpus.py")
corpus = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(corpus)

CT, MR = get_testdata_file("CT_small.dcm"), get_testdata_file("MR_small.dcm")


def _lut(item):
    """Return (entries, first mapped value, bits) of a LUT item (C.11.1.1.1: 0 entries means 65536)."""
    n, first, bits = (int(v) for v in item.LUTDescriptor)
    return np.asarray(item.LUTData, dtype=np.float64)[: n or 65536], first, bits


def _through(lut, first, x):
    return lut[np.clip(np.floor(x) - first, 0, len(lut) - 1).astype(int)]


def reference_uint8(path) -> np.ndarray:
    """PS3.3 C.11 written out: modality LUT, VOI (LUT, window by VOILUTFunction, or the declared range), inversion."""
    ds = pydicom.dcmread(path)
    stored = ds.pixel_array.astype(np.float64)
    bits, signed = int(ds.BitsStored), int(ds.get("PixelRepresentation", 0)) == 1
    low, high = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2 ** bits - 1)
    if "ModalityLUTSequence" in ds:  # C.11.1: values below the first mapped one take the first entry, above the last
        lut, first, _ = _lut(ds.ModalityLUTSequence[0])
        x, ends = _through(lut, first, stored), _through(lut, first, np.arange(low, high + 1))
    else:
        slope, intercept = float(ds.get("RescaleSlope", 1)), float(ds.get("RescaleIntercept", 0))
        scale = float(ds.get("DoseGridScaling", 1)) if ds.get("Modality") == "RTDOSE" and "RescaleSlope" not in ds \
            else 1.0
        x, ends = (stored * slope + intercept) * scale, np.array([low, high]) * slope * scale + intercept * scale
    if "VOILUTSequence" in ds:
        lut, first, lut_bits = _lut(ds.VOILUTSequence[0])
        y = _through(lut, first, x) / (2 ** lut_bits - 1)
    elif "WindowCenter" in ds:
        c, w = (float(v[0] if isinstance(v, pydicom.multival.MultiValue) else v)
                for v in (ds.WindowCenter, ds.WindowWidth))
        function = str(ds.get("VOILUTFunction", "LINEAR")).upper()
        with np.errstate(divide="ignore", invalid="ignore"):
            if function == "LINEAR":  # C.11.2.1.2.1
                y = np.where(x <= c - 0.5 - (w - 1) / 2, 0.0,
                             np.where(x > c - 0.5 + (w - 1) / 2, 1.0, (x - (c - 0.5)) / (w - 1) + 0.5))
            elif function == "LINEAR_EXACT":  # C.11.2.1.3.2
                y = np.where(x <= c - w / 2, 0.0, np.where(x > c + w / 2, 1.0, (x - c) / w + 0.5))
            else:  # SIGMOID, C.11.2.1.3.1
                y = 1.0 / (1.0 + np.exp(-4.0 * (x - c) / w))
    else:
        y = (x - ends.min()) / (ends.max() - ends.min())
    if ds.PhotometricInterpretation == "MONOCHROME1" or ds.get("PresentationLUTShape") == "INVERSE":
        y = 1.0 - y
    return np.floor(np.clip(y, 0, 1) * 255 + 0.5).astype(np.uint8)


def _accepted(path):
    """Return medkit's image of a single-frame grey corpus file, or None when medkit refuses it or it is not one."""
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        if ds.get("PhotometricInterpretation") not in ("MONOCHROME1", "MONOCHROME2") or int(
                ds.get("NumberOfFrames") or 1) > 1:
            return None
    except Exception:  # noqa: BLE001 - not DICOM, or a damaged header medkit refuses: not this test's business
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return dicom_to_uint8(path)
    except MedkitError:
        return None


def test_corpus_matches_the_independent_pipeline_pixel_for_pixel():
    matched, tried = [], 0
    for path in sorted(get_testdata_files()):
        image = _accepted(path)
        if image is None:
            continue
        tried += 1
        expected = reference_uint8(path)
        assert image.shape == expected.shape, path
        assert np.array_equal(image, expected), (path, int(np.abs(image.astype(int) - expected).max()))
        matched.append(path)
    print(f"{len(matched)} of {tried} single-frame grey corpus images identical to the C.11 reference")
    assert tried >= 40  # pydicom 3.0.2: 49 (MR, CT, CR MONOCHROME1, SEG, JPEG 2000...)


def _edit(tmp_path, source, name, **changes) -> str:
    ds = pydicom.dcmread(source)
    for key, value in changes.items():
        if value is None:
            delattr(ds, key)
        else:
            setattr(ds, key, value)
    out = tmp_path / f"{name}.dcm"
    ds.save_as(out)
    return str(out)


def _lut_item(entries, first, bits):
    item = Dataset()
    item.add_new(0x00283002, "US", [len(entries), first, bits])  # LUTDescriptor
    item.add_new(0x00283006, "US", [int(v) for v in entries])  # LUTData
    return item


@pytest.mark.parametrize("name, changes", [
    ("linear_exact", {"VOILUTFunction": "LINEAR_EXACT"}),
    ("sigmoid", {"VOILUTFunction": "SIGMOID"}),
    ("narrow", {"WindowCenter": 300, "WindowWidth": 40}),
    ("inverse", {"PresentationLUTShape": "INVERSE"}),
    ("mono1_inverse", {"PhotometricInterpretation": "MONOCHROME1", "PresentationLUTShape": "INVERSE"}),
    ("no_window", {"WindowCenter": None, "WindowWidth": None}),
    ("rescaled", {"RescaleSlope": 0.5, "RescaleIntercept": -100}),
    ("negative_slope", {"RescaleSlope": -2, "RescaleIntercept": 1000, "WindowCenter": 200, "WindowWidth": 1500}),
])
def test_variants_match_the_independent_pipeline(tmp_path, name, changes):
    path = _edit(tmp_path, MR, name, **changes)
    assert np.array_equal(dicom_to_uint8(path), reference_uint8(path))


def test_lut_sequences_match_the_independent_pipeline(tmp_path):
    ds = pydicom.dcmread(MR)  # stored 0..~1200: a square-root modality LUT, then a VOI LUT that clips
    ds.ModalityLUTSequence = [_lut_item(np.sqrt(np.arange(2048) * 4000.0), 0, 16)]
    ds.VOILUTSequence = [_lut_item(np.clip(np.arange(4096) * 40, 0, 65535), 0, 16)]
    del ds.WindowCenter, ds.WindowWidth
    ds.save_as(tmp_path / "luts.dcm")
    image = dicom_to_uint8(tmp_path / "luts.dcm")
    assert np.array_equal(image, reference_uint8(tmp_path / "luts.dcm")) and len(np.unique(image)) > 50


def test_inverse_inverts_and_is_not_refused(tmp_path):
    normal = dicom_to_uint8(MR).astype(int)
    inverse = dicom_to_uint8(_edit(tmp_path, MR, "inv", PresentationLUTShape="INVERSE")).astype(int)
    assert np.abs(inverse - (255 - normal)).max() <= 1 and np.corrcoef(inverse.ravel(), normal.ravel())[0, 1] < -0.99
    # MONOCHROME1 with INVERSE is one inversion (PS3.3 C.8.11.7 pairs them), not two
    mono1 = dicom_to_uint8(_edit(tmp_path, MR, "m1", PhotometricInterpretation="MONOCHROME1"))
    both = _edit(tmp_path, MR, "m1inv", PhotometricInterpretation="MONOCHROME1", PresentationLUTShape="INVERSE")
    assert np.array_equal(dicom_to_uint8(both), mono1)
    assert read_dicom(_edit(tmp_path, MR, "inv2", PresentationLUTShape="INVERSE")).mean() < 0  # mirrored in range


@pytest.mark.parametrize("source, changes, message", [
    (CT, {"RescaleSlope": 0}, "RescaleSlope is 0"),
    (CT, {"RescaleSlope": "nan"}, "RescaleSlope is 'nan'"),
    (CT, {"RescaleIntercept": None}, "RescaleSlope but no RescaleIntercept"),
    (MR, {"WindowWidth": 1e9}, "WindowWidth 1e\\+09.*only 2 grey level"),
    (MR, {"WindowWidth": 0}, "WindowWidth is 0"),
    (MR, {"WindowWidth": -400}, "WindowWidth is -400"),
    (MR, {"WindowWidth": None}, "WindowCenter but no WindowWidth"),
    (MR, {"VOILUTFunction": "CUBIC"}, "VOILUTFunction is 'CUBIC'"),
    (MR, {"SamplesPerPixel": 3}, "SamplesPerPixel is 3 but PhotometricInterpretation MONOCHROME2"),
    (MR, {"BitsStored": 17}, "BitsStored is 17 but BitsAllocated is 16"),
    (MR, {"HighBit": 11}, "HighBit is 11 but BitsStored is 16"),
    (MR, {"PhotometricInterpretation": "MONOCHROME1", "PresentationLUTShape": "IDENTITY"}, "MONOCHROME1.*IDENTITY"),
    (MR, {"PresentationLUTShape": "LIN OD"}, "PresentationLUTShape is 'LIN OD'"),
    (MR, {"WindowCenter": 30000, "WindowWidth": 10}, "window .* shows every pixel of this image as grey 0"),
])
def test_degenerate_headers_are_refused_by_name(tmp_path, source, changes, message):
    path = _edit(tmp_path, source, "bad", **changes)
    with pytest.raises(DataError, match=message) as info:
        dicom_to_uint8(path)
    assert path in str(info.value)


def test_truncated_files_say_truncated(tmp_path):
    data = open(CT, "rb").read()
    pixel_start = 39206 - 128 * 128 * 2
    cuts = [*range(140, pixel_start, 97), 2856, pixel_start - 3, pixel_start + 100, len(data) - 1]  # 2856: between
    # two elements, found only because a CT Image Storage file must end in pixel data
    for cut in cuts:
        path = tmp_path / f"cut{cut}.dcm"
        path.write_bytes(data[:cut])
        for read in (dicom_to_uint8, dicom_modality):  # predict reads the Modality first: "no Modality" was wrong
            with pytest.raises(DataError, match="truncated") as info:
                read(path)
            assert "no Modality" not in str(info.value), cut
    assert dicom_to_uint8(CT).shape == (128, 128)  # the whole file still reads


def _dx(tmp_path, name, body_part):
    ds, _ = deidentify(pydicom.dcmread(CT), salt="a-test-salt-of-16+chars")
    ds.Modality, ds.BodyPartExamined = "DX", body_part
    ds.save_as(tmp_path / f"{name}.dcm", enforce_file_format=True)
    return tmp_path / f"{name}.dcm"


def test_body_part_the_checkpoint_was_not_trained_on_is_refused(tmp_path):
    chest = OnnxPredictor(corpus.export_tiny(tmp_path, ["CR", "DX"])[1])  # the kit's default: a chest X-ray model
    assert chest.meta["body_parts"] == ["CHEST", "THORAX", "LUNG"]
    with pytest.raises(DataError, match="BodyPartExamined FOOT.*trained on CHEST/THORAX/LUNG"):
        chest.predict_files([_dx(tmp_path, "foot", "FOOT")], resize=True)
    assert len(chest.predict_files([_dx(tmp_path, "chest", "CHEST"), _dx(tmp_path, "none", "")], resize=True)) == 2
    (tmp_path / "old").mkdir()  # a model that records neither modality nor body part: warned, by name
    unchecked = OnnxPredictor(corpus.export_tiny(tmp_path / "old", [], body_parts=[])[1])
    with pytest.warns(UserWarning) as record:
        unchecked.predict_files([_dx(tmp_path, "foot", "FOOT")], resize=True)
    text = " ".join(str(w.message) for w in record)
    assert "records no modality" in text and "BodyPartExamined FOOT" in text and "records no body part" in text
