"""`medkit predict`'s file reading: PNG/JPEG/DICOM in, wrong modality, colour or size refused with the file named."""

import numpy as np
import pydicom
import pytest
import torch
from PIL import Image
from pydicom.data import get_testdata_file

from medkit.base.errors import DataError
from medkit.cli import main
from medkit.core.checkpoint import save_checkpoint
from medkit.deploy import OnnxPredictor, deidentify, export_onnx
from medkit.models import get_backbone


@pytest.fixture(scope="module")
def predictor(tmp_path_factory):
    torch.manual_seed(0)
    model = get_backbone("resnet18", weights=None, num_classes=2).eval()
    out = export_onnx(model, tmp_path_factory.mktemp("onnx") / "model.onnx", input_size=28, image_size=48,
                      classes=["normal", "pneumonia"])
    return OnnxPredictor(out)


def _png(path, array):
    Image.fromarray(array).save(path)
    return path


def test_png_jpeg_and_dx_dicom_are_predicted(predictor, pneumonia, tmp_path):
    x = pneumonia["test"].images[:2]
    files = [_png(tmp_path / "a.png", x[0]), tmp_path / "b.jpg"]
    Image.fromarray(x[1]).save(files[1], quality=95)
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds, _ = deidentify(ds, salt="test-salt-0123456789")
    ds.Modality = "DX"  # pretend it is a radiograph: the modality check then lets it through
    ds.save_as(tmp_path / "c.dcm", enforce_file_format=True)
    files.append(tmp_path / "c.dcm")
    with pytest.raises(DataError, match="128x128 px"):
        predictor.predict_files(files)
    rows = predictor.predict_files(files, resize=True)
    assert [r["prediction"] in ("normal", "pneumonia") for r in rows] == [True] * 3
    # the PNG gives exactly what the array gives
    np.testing.assert_allclose(rows[0]["p_pneumonia"], predictor.predict_proba(x[:1])[0, 1], atol=1e-6)


def test_wrong_modality_is_refused(predictor):
    for name, modality in (("CT_small.dcm", "CT"), ("MR_small.dcm", "MR")):
        with pytest.raises(DataError, match=f"is a {modality} image.*CR/DX"):
            predictor.predict_files([get_testdata_file(name)], resize=True)


def test_colour_picture_is_refused(predictor, tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (28, 28, 3), dtype=np.uint8)
    with pytest.raises(DataError, match="colour image"):
        predictor.predict_files([_png(tmp_path / "photo.png", rgb)])
    grey_rgb = np.repeat(rgb[..., :1], 3, axis=-1)  # grey saved as RGB is fine
    assert len(predictor.predict_files([_png(tmp_path / "grey.png", grey_rgb)])) == 1


def test_export_and_predict_commands(pneumonia, tmp_path, capsys):
    model = get_backbone("resnet18", weights=None, num_classes=2)
    save_checkpoint(tmp_path / "ckpt", model, image_size=48, classes=pneumonia["test"].classes, input_size=28,
                    channels=1)
    out = tmp_path / "model.onnx"
    assert main(["export", "--checkpoint", str(tmp_path / "ckpt"), "--out", str(out), "--n-verify", "32"]) == 0
    text = capsys.readouterr().out
    assert "max |probability difference|" in text and "identical" in text and "opset" in text and "OK" in text
    images = [_png(tmp_path / f"{i}.png", pneumonia["test"].images[i]) for i in range(12)]
    assert main(["predict", "--model", str(out), *map(str, images), "--drift"]) == 0
    text = capsys.readouterr().out
    assert "0.png" in text and "drift: mmd" in text
    assert main(["predict", "--model", str(out), get_testdata_file("CT_small.dcm")]) == 1
    assert "is a CT image" in capsys.readouterr().err
    assert main(["predict", "--model", str(out), *map(str, images[:3]), "--drift"]) == 1
    assert "too small for the drift test" in capsys.readouterr().err
    assert main(["export", "--checkpoint", str(tmp_path / "nothing"), "--out", str(out)]) == 1
    assert "Checkpoint folder" in (err := capsys.readouterr().err) and "does not exist" in err


def test_predict_cli_refuses_a_float_image_outside_its_range(predictor, tmp_path, capsys):
    image = np.linspace(0, 1, 28 * 28, dtype=np.float32).reshape(28, 28)
    image[5, 5] = 1.02  # one pixel: a range guess would read the image as 0-255 and predict on a black one
    Image.fromarray(image).save(tmp_path / "f.tif")
    assert main(["predict", "--model", str(predictor.path), str(tmp_path / "f.tif")]) == 1
    assert "[0, 1.02], outside the declared value range [0, 1]" in capsys.readouterr().err
    assert main(["predict", "--model", str(predictor.path), str(tmp_path / "f.tif"), "--value-range", "0,1.1"]) == 0
