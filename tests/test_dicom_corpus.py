"""Every file of pydicom's test corpus through medkit's DICOM reader and `medkit predict`: loaded right or refused
clearly, never a traceback, never a silent wrong result (the checks live in benchmarks/dicom_corpus.py)."""

import dataclasses
import importlib.util
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT
from pydicom.data import get_testdata_file

from medkit.base.errors import DataError
from medkit.cli import main
from medkit.data.dicom import dicom_to_uint8, load_dicom, read_dicom
from medkit.data.images import to_uint8

_spec = importlib.util.spec_from_file_location("dicom_corpus", ROOT / "benchmarks" / "dicom_corpus.py")
corpus = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(corpus)


@pytest.fixture(scope="module")
def rows(tmp_path_factory):
    rows = corpus.run_corpus(tmp_path_factory.mktemp("corpus"))
    for r in rows:  # the table, visible with pytest -s
        print(f"{r['file'][:40]:40} {r['modality']:8} {r['transfer_syntax']:30} {r['photometric']:14} "
              f"{r['reader']:12} {r['predict']}")
    print(corpus.counts(rows))
    return {r["path"]: r for r in rows}


def _row(rows, name):
    return rows[get_testdata_file(name)]


def test_no_crash_and_no_silent_wrong_result(rows):
    counts = corpus.counts(rows.values())
    bad = [(r["file"], r["reader"], r["detail"]) for r in rows.values() if r["reader"] in ("crashed", "silent-wrong")]
    assert counts["crashed"] == 0 and counts["silent-wrong"] == 0, bad
    assert counts["predict crashed"] == 0, [(r["file"], r["predict_detail"]) for r in rows.values()
                                            if r["predict"] == "crashed"]
    assert counts["tried"] >= 170 and counts["loaded"] >= 75  # pydicom 3.0.2: 176 files, 81 load without plugins


def _pydicom_decodes(path) -> bool:
    """Whether pydicom, with the plugins installed here, decodes the pixels of the file at `path`."""
    import pydicom

    try:
        _ = pydicom.dcmread(path).pixel_array
    except Exception:  # noqa: BLE001 - any decoder failure means "no usable decoder here"
        return False
    return True


def test_what_loads_and_what_is_refused(rows):
    for name in ("MR_small_jpeg_ls_lossless.dcm", "SC_rgb_jpeg_gdcm.dcm", "JPEGLSNearLossless_08.dcm"):
        row = _row(rows, name)
        # loaded where a decoder for its transfer syntax is installed (pyjpegls comes with highdicom, the serve
        # extra), else refused with the install hint
        if _pydicom_decodes(row["path"]):
            assert row["reader"] == "loaded", row
        else:
            assert row["reader"] == "refused" and 'pip install "medkit[dicom]"' in row["detail"], row
    for name in ("JPEG-lossy.dcm", "JPGExtended.dcm"):  # 12-bit JPEG: Pillow is installed but cannot
        assert 'pip install "medkit[dicom]"' in _row(rows, name)["detail"]
    for name in ("CT_small.dcm", "MR_small_RLE.dcm", "examples_palette.dcm", "SC_ybr_full_422_uncompressed.dcm",
                 "liver_1frame.dcm"):
        assert _row(rows, name)["reader"] == "loaded" and _row(rows, name)["predict"] == "predicted", name
    # a 32-bit dose grid without a window: its whole declared range shows the dose as one grey, so it is refused
    assert "stores no window" in _row(rows, "rtdose_1frame.dcm")["detail"]
    assert "truncated" in _row(rows, "rtplan_truncated.dcm")["detail"]  # was "no pixel data"
    assert "truncated" in _row(rows, "MR_truncated.dcm")["detail"]
    assert _row(rows, "rtplan.dcm")["detail"].startswith("FILE has no pixel data")
    assert "not a DICOM file" in _row(rows, "README.txt")["detail"]
    # multi-frame: read in full by read_dicom, refused (never 4-D) by the single-image path and predict
    assert _row(rows, "examples_ybr_color.dcm")["predict"] == "refused"
    assert "30 frames" in _row(rows, "examples_ybr_color.dcm")["predict_detail"]
    assert read_dicom(get_testdata_file("examples_ybr_color.dcm"), frame=2).shape == (240, 320, 3)
    # no Modality: predicted by a model that lists UNKNOWN (the corpus models do)
    assert _row(rows, "SC_jpeg_no_color_transform.dcm")["modality"] == "-"
    assert _row(rows, "SC_jpeg_no_color_transform.dcm")["predict"] == "predicted"


def test_cr_monochrome1_is_windowed_then_inverted():
    # 6154 is a CR (MONOCHROME1) with a stored window: the old order (invert, then window) made it all white
    path = next(p for p in corpus.corpus_files() if p.name == "6154")
    pixels = load_dicom(path)
    assert pixels.photometric == "MONOCHROME1" and pixels.window is not None and pixels.modality == "CR"
    image = dicom_to_uint8(path)
    expected = 255 - (to_uint8(pixels.values, pixels.window)).astype(int)
    assert np.abs(image.astype(int) - expected).max() <= 1 and (image == 255).mean() < 0.5
    values = pixels.values
    old = to_uint8(values.max() + values.min() - values, pixels.window)  # the old order: invert, then window
    assert np.abs(old.astype(int) - image).mean() > 20


def test_values_are_physical():
    hu = read_dicom(get_testdata_file("CT_small.dcm"))
    assert -1100 < hu.min() < -800 and hu.max() < 3100
    dose = read_dicom(get_testdata_file("rtdose_1frame.dcm"))
    assert 0.5 < dose.max() < 2.0  # Gy, not raw integers in the millions
    palette = read_dicom(get_testdata_file("examples_palette.dcm"))
    assert palette.shape == (350, 800, 3) and palette.max() <= 255


def test_checks_catch_the_faults_they_guard(monkeypatch, tmp_path):
    """The corpus checks are not vacuous: the old faults, re-introduced, are flagged."""
    refs = {}
    cr = next(p for p in corpus.corpus_files() if p.name == "6154")
    monkeypatch.setattr(corpus, "dicom_to_uint8", lambda p: to_uint8(read_dicom(p), load_dicom(p).window))
    assert any("MONOCHROME1" in f for f in corpus.check_loaded(cr, tmp_path, refs))
    monkeypatch.undo()

    def raw(path, frame=None):  # modality LUT, palette and DoseGridScaling all forgotten
        pixels = load_dicom(path, frame)
        return dataclasses.replace(pixels, values=np.asarray(pixels.ds.pixel_array, np.float32))

    monkeypatch.setattr(corpus, "load_dicom", raw)
    for name, fault in (("CT_small.dcm", "rescale"), ("examples_palette.dcm", "PALETTE"), ("rtdose.dcm", "Gy")):
        assert any(fault in f for f in corpus.check_loaded(Path(get_testdata_file(name)),
                                                            tmp_path, refs)), name


def test_unknown_modality_refused_unless_listed(tmp_path, capsys):
    models = corpus.export_tiny(tmp_path, ["CR", "DX"])
    no_modality = get_testdata_file("SC_jpeg_no_color_transform.dcm")
    assert main(["predict", "--model", str(models[3]), "--resize", no_modality]) == 1
    err = capsys.readouterr().err
    assert "no Modality" in err and "--modality CR,DX,UNKNOWN" in err
    with pytest.raises(DataError, match="frame=15 does not exist"):
        read_dicom(get_testdata_file("rtdose.dcm"), frame=15)
