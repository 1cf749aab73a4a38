"""The one pixel rule (`medkit.data.pixels`): decided by dtype and declared bit depth, never by the observed range."""

import struct
import zlib
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from medkit.base.errors import DataError
from medkit.cli import main
from medkit.data import load_image, load_npz, load_source, pixels_to_uint8, stack_images
from medkit.deploy.files import read_for_model


def _with_sbit(path, bits: int):
    """Insert a PNG sBIT chunk (grey: one byte) right after IHDR, as scanners writing 12-bit data do."""
    data = path.read_bytes()
    body = b"sBIT" + bytes([bits])
    chunk = struct.pack(">I", 1) + body + struct.pack(">I", zlib.crc32(body))
    path.write_bytes(data[:33] + chunk + data[33:])  # 8-byte signature + 25-byte IHDR chunk
    return path


def _png16(path, array, sbit=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array.astype(np.uint16)).save(path)
    return _with_sbit(path, sbit) if sbit else path


def _float_tif(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array.astype(np.float32)).save(path)
    return path


def _grey(size=16):
    return np.linspace(0, 1, size * size, dtype=np.float32).reshape(size, size)


def _model(size=16):
    """What `read_for_model` asks of a predictor: no modality list, grey input of `size` px."""
    return SimpleNamespace(meta={}, channels=1, input_size=size)


def test_float_outside_the_default_range_is_refused_with_the_numbers(tmp_path):
    image = _grey()
    image[3, 4] = 1.02  # one pixel: a range guess would call the whole image 0-255 data
    path = _float_tif(tmp_path / "x.tif", image)
    with pytest.raises(DataError, match=r"x\.tif.*\[0, 1\.02\], outside the declared value range \[0, 1\]"
                                        r".*--value-range"):
        load_image(path)
    with pytest.raises(DataError, match=r"\[0, 1\.02\]"):
        read_for_model(path, _model())  # predict's path refuses it too
    accepted = load_image(path, value_range=(0, 1.1))
    assert accepted[3, 4] == round(1.02 / 1.1 * 255) and accepted[-1, -1] == round(255 / 1.1)


def test_cli_value_range_flag(tmp_path, capsys):
    image = _grey()
    image[0, 0] = 1.02
    for label in ("normal", "pneumonia"):
        _float_tif(tmp_path / "data" / label / "a.tif", image)
    with pytest.raises(DataError, match=r"1\.02\], outside"):  # refused, not skipped as unreadable (on_error="skip")
        load_source(tmp_path / "data", carve=False, cache=False)
    parts = load_source(tmp_path / "data", carve=False, cache=False, value_range=(0, 1.1)).splits
    assert parts["all"].images[0][0, 0] == round(1.02 / 1.1 * 255)
    with pytest.raises(SystemExit):
        main(["predict", "--model", "m.onnx", "--value-range", "1,0", "x.png"])
    assert "low < high" in capsys.readouterr().err


def test_npz_with_one_pixel_above_one_is_refused(tmp_path):
    images = np.tile(_grey()[None], (2, 1, 1))
    images[1, 5, 5] = 1.01
    path = tmp_path / "f.npz"
    np.savez(path, train_images=images, train_labels=np.zeros((2, 1), np.int64))
    with pytest.raises(DataError, match=r"f\.npz: train_images.*\[0, 1\.01\].*\[0, 1\]"):
        load_npz(path)
    assert load_npz(path, value_range=(0, 1.01)).images[0, -1, -1] == round(255 / 1.01)


def test_16bit_png_scaled_by_its_declared_depth_in_fit_and_predict(tmp_path):
    twelve = np.full((16, 16), 2048, np.uint16)  # mid-grey 12-bit data, below 2**11: no 11-bit guess
    declared = _png16(tmp_path / "sbit" / "normal" / "a.png", twelve, sbit=12)
    _png16(tmp_path / "sbit" / "pneumonia" / "a.png", twelve, sbit=12)
    plain = _png16(tmp_path / "plain.png", twelve)
    assert Image.open(declared).mode == "I;16"
    assert load_image(declared)[0, 0] == round(2048 * 255 / 4095)  # 128, not 16 (65535) nor 255 (2047)
    assert load_image(plain)[0, 0] == round(2048 * 255 / 65535)  # no sBIT: the full 16 bits
    fit_images = load_source(tmp_path / "sbit", carve=False, cache=False).splits["all"].images
    predicted = read_for_model(declared, _model())[0]
    np.testing.assert_array_equal(fit_images[0], predicted)
    np.testing.assert_array_equal(stack_images([plain])[0][0], read_for_model(plain, _model())[0])
    with pytest.raises(DataError, match="pixel value 5000 is above the 12-bit depth"):
        load_image(_png16(tmp_path / "liar.png", np.full((4, 4), 5000), sbit=12))


def test_multi_frame_files_are_refused(tmp_path):
    frames = [Image.fromarray(np.full((8, 8), v, np.uint8)) for v in (0, 128, 255)]
    frames[0].save(tmp_path / "cine.gif", save_all=True, append_images=frames[1:])
    frames[0].save(tmp_path / "stack.tif", save_all=True, append_images=frames[1:2])
    frames[0].save(tmp_path / "anim.png", save_all=True, append_images=frames[1:])
    with pytest.raises(DataError, match=r"cine\.gif is an animated GIF with 3 frames.*Save the frame"):
        load_image(tmp_path / "cine.gif")
    with pytest.raises(DataError, match=r"stack\.tif is a multi-page TIFF with 2 frames"):
        read_for_model(tmp_path / "stack.tif", _model(8))
    with pytest.raises(DataError, match=r"anim\.png is an animated PNG \(APNG\) with 3 frames"):
        stack_images([tmp_path / "anim.png"])
    frames[0].save(tmp_path / "one.gif")
    assert load_image(tmp_path / "one.gif").shape[:2] == (8, 8)  # a single-frame GIF is an image


def test_rule_ignores_the_observed_range():
    dim = np.full((4, 4), 0.2, np.float32)  # a dark 0-1 image is not stretched to its own min..max
    assert pixels_to_uint8(dim)[0, 0] == 51
    with pytest.raises(DataError, match="NaN"):
        pixels_to_uint8(np.array([[np.nan, 0.5]]))
