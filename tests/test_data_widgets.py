"""The lesson 01 explorers redraw when a slider moves (what the browser test does by hand)."""

import io

import numpy as np
from PIL import Image

from medkit.data import read_dicom, sample_path, window
from medkit.data.widgets import augment_explorer, to_png, window_explorer


def _pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)))


def test_window_explorer_redraws_on_level_and_window():
    hu = read_dicom(sample_path("CT_small.dcm"))
    box = window_explorer(hu)
    assert box.level.description == "level" and box.window.description == "window"
    before = box.image.value
    box.level.value = 40
    box.window.value = 400
    after = _pixels(box.image.value)
    assert box.image.value != before
    expected = _pixels(to_png(window(hu, (40, 400)), 320))
    np.testing.assert_array_equal(after, expected)  # the picture is exactly the chosen window
    assert "level 40 HU, window 400 HU" in box.caption.value
    box.preset.value = "bone"
    assert (box.level.value, box.window.value) == (400, 1800)


def test_augment_explorer_redraws():
    images = np.random.default_rng(0).integers(0, 255, (2, 16, 16), dtype=np.uint8)
    box = augment_explorer(images, n_show=4)
    before = box.image.value
    box.controls["rotate"].value = 30
    assert box.image.value != before
    assert _pixels(box.image.value).shape[1] == 5 * _pixels(box.image.value).shape[0]  # original + 4 views
