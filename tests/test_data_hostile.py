"""Bad and hostile inputs (issues 13 and 18): each gives a clear DataError naming the file, or a said conversion.

Classes of fault, each tried on real files written here: unreadable files (empty, truncated, text named .png,
a decompression-bomb header), intensity damage (12-bit data in 16-bit PNGs, float 0-1 vs 0-255, NaN),
geometry (EXIF orientation), colour (RGBA, grey and RGB mixed), layout (one class, hidden files, a class of
unreadable files, odd path names), labels (out of range, soft, case and spaces) and ids ("007" vs "7", gaps).
"""

import struct
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image

from medkit.base.errors import DataError
from medkit.data import (
    ImageDataset,
    from_csv,
    from_folder,
    load_image,
    load_npz,
    load_source,
    stack_images,
)


def _png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def _xray(seed=0, size=32):
    """A smooth grey image with structure (so JPEG keeps it recognisable)."""
    y, x = np.mgrid[:size, :size]
    rng = np.random.default_rng(seed)
    return (120 + 80 * np.sin(x / 5 + seed) * np.cos(y / 7) + rng.normal(0, 3, (size, size))).clip(0, 255).astype(
        np.uint8)


@pytest.fixture
def folder(tmp_path):
    """Two class folders of four good PNGs each."""
    for cls in ("NORMAL", "PNEUMONIA"):
        for i in range(4):
            _png(tmp_path / "xr" / cls / f"{cls.lower()}{i}.png", _xray(i + 10 * (cls == "NORMAL")))
    return tmp_path / "xr"


# --- unreadable files -------------------------------------------------------------------------------------

def _truncated(path, fmt):
    Image.fromarray(_xray(1, 64)).save(path, fmt)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


@pytest.mark.parametrize("make, why", [
    (lambda p: p.with_suffix(".png").write_bytes(b"") and None, "empty, 0 bytes"),
    (lambda p: p.with_suffix(".jpeg").write_bytes(b"") and None, "empty, 0 bytes"),
    (lambda p: _truncated(p.with_suffix(".png"), "PNG"), "not a readable image"),
    (lambda p: _truncated(p.with_suffix(".jpeg"), "JPEG"), "not a readable image"),
    (lambda p: p.with_suffix(".png").write_text("this is a text file, not a picture") and None, "not a readable"),
])
def test_unreadable_files_name_the_file(tmp_path, make, why):
    make(tmp_path / "bad")
    bad = next(tmp_path.glob("bad.*"))
    with pytest.raises(DataError, match=f"{bad.name}.*{why}"):
        load_image(bad)


def test_decompression_bomb_header_is_refused(tmp_path):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    bomb = tmp_path / "bomb.png"  # a valid PNG header claiming 100,000 x 100,000 grey pixels
    bomb.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 100_000, 100_000, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"\0" * 1000)) + chunk(b"IEND", b""))
    with pytest.raises(DataError, match="bomb.png.*decompression bomb.*MAX_IMAGE_PIXELS"):
        load_image(bomb)


def test_corrupt_and_empty_jpeg_among_good_ones(folder):
    (folder / "NORMAL" / "empty.jpeg").write_bytes(b"")
    _truncated(folder / "PNEUMONIA" / "cut.jpeg", "JPEG")
    with pytest.warns(UserWarning, match="skipped 2 unreadable file.*(cut.jpeg|empty.jpeg)"):
        source = load_source(folder, carve=False, cache=False)  # the fit default: skip, count and name
    assert len(source.splits["all"]) == 8
    assert any("skipped 2" in n and "empty.jpeg" in n for n in source.notes)
    with pytest.raises(DataError, match="(cut|empty).jpeg"):
        load_source(folder, carve=False, cache=False, on_error="raise")


def test_class_folder_with_no_readable_image(folder):
    for p in (folder / "PNEUMONIA").glob("*.png"):
        p.write_bytes(b"broken")
    with pytest.raises(DataError, match="PNEUMONIA has no readable image: all 4.*failed"), \
            pytest.warns(UserWarning, match="skipped 4"):
        from_folder(folder, on_error="skip")


def test_one_class_folder(tmp_path):
    _png(tmp_path / "NORMAL" / "a.png", _xray())
    with pytest.raises(DataError, match="one class subfolder \\(NORMAL\\).*at least two"):
        from_folder(tmp_path)
    with pytest.raises(DataError, match="one class subfolder"):
        load_source(tmp_path, cache=False)


@pytest.mark.parametrize("on_error", ["ignore", "warn", None, "Skip"])
def test_on_error_values_are_checked(folder, tmp_path, on_error):
    csv = tmp_path / "l.csv"
    csv.write_text(f"path,label\n{next(folder.rglob('*.png'))},a\n")
    for call in (lambda: from_folder(folder, on_error=on_error), lambda: from_csv(csv, on_error=on_error),
                 lambda: load_source(folder, on_error=on_error), lambda: stack_images([], on_error=on_error)):
        with pytest.raises(DataError, match="on_error must be 'raise'.*or 'skip'"):
            call()


# --- hidden files and odd names --------------------------------------------------------------------------------

def test_hidden_files_and_folders_are_never_loaded(folder):
    (folder / "NORMAL" / ".DS_Store").write_bytes(b"\0\0\0\1Bud1" + b"\0" * 100)
    (folder / "NORMAL" / "._normal0.png").write_bytes(b"\0\5\26\7\0\2\0\0Mac OS X        ")  # AppleDouble
    _png(folder / "NORMAL" / ".ipynb_checkpoints" / "normal0-checkpoint.png", _xray(99, 48))  # other size too
    _png(folder / ".hidden_class" / "x.png", _xray())
    _png(folder / "__MACOSX" / "NORMAL" / "x.png", _xray())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # not even an "ignored" warning: hidden files are not the user's data
        ds = from_folder(folder)
    assert len(ds) == 8 and ds.classes == ["NORMAL", "PNEUMONIA"]
    assert not any("/." in p or "MACOSX" in p for p in ds.meta["paths"])
    split = folder.parent / "download"
    (split / "__MACOSX" / "train").mkdir(parents=True)  # beside split folders too
    _png(split / "train" / "NORMAL" / "a.png", _xray())
    _png(split / "train" / "PNEUMONIA" / "b.png", _xray(1))
    assert set(load_source(split, carve=False, cache=False).splits) == {"train"}


def test_paths_with_spaces_and_non_ascii(tmp_path, tmp_cache):
    root = tmp_path / "my scans (2024)" / "Röntgen Thorax"
    for cls in ("normal", "pneumonía"):
        for i in range(3):
            _png(root / cls / f"bild {i} – ü.png", _xray(i))
    ds = load_source(root, carve=False).splits["all"]
    assert len(ds) == 6 and ds.classes == ["normal", "pneumonía"]
    again = load_source(root, carve=False).splits["all"]  # through the decode cache
    np.testing.assert_array_equal(ds.images, again.images)
    csv = tmp_path / "étiquettes.csv"
    csv.write_text("path,label\n" + "".join(f'"{p}",{p.parent.name}\n' for p in sorted(root.rglob("*.png"))),
                   encoding="utf-8")
    assert len(from_csv(csv)) == 6


# --- intensity -------------------------------------------------------------------------------------------------

def test_rgba_and_palette_pngs(tmp_path):
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 128
    path = _png(tmp_path / "rgba.png", rgba)
    assert load_image(path).shape == (8, 8, 3) and load_image(path)[0, 0, 0] == 200
    with pytest.warns(UserWarning, match="1 alpha channel.*dropped"):
        stack_images([path])
    grey_rgba = np.repeat(_xray()[..., None], 4, axis=-1)
    grey_rgba[..., 3] = 255
    with pytest.warns(UserWarning, match="alpha"):
        assert stack_images([_png(tmp_path / "g.png", grey_rgba)])[0].shape == (1, 32, 32)  # grey content: grey
    Image.fromarray(_xray()).convert("P").save(tmp_path / "p.png")
    assert load_image(tmp_path / "p.png").shape[:2] == (32, 32)


def test_exif_orientation_is_applied(tmp_path):
    image = np.zeros((20, 40), np.uint8)
    image[:, :10] = 255  # bright left edge of a landscape image
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    Image.fromarray(image).save(tmp_path / "phone.jpeg", exif=exif.tobytes(), quality=95)
    loaded = load_image(tmp_path / "phone.jpeg")
    assert loaded.shape == (40, 20)  # portrait, as a viewer shows it
    assert loaded[:10].mean() > 200 and loaded[-10:].mean() < 50  # the bright edge is now on top
    _, _, _ = stack_images([tmp_path / "phone.jpeg"], notes=(notes := []))
    assert notes == ["1 image(s) rotated or flipped by their EXIF orientation"]


def test_grey_and_rgb_mixed_are_converted_and_said_once(folder):
    for i in range(3):
        colour = np.stack([_xray(i), _xray(i + 1), _xray(i + 2)], axis=-1)
        _png(folder / "NORMAL" / f"colour{i}.png", colour)
    with pytest.warns(UserWarning) as said:
        ds = from_folder(folder)
    lines = [str(w.message) for w in said if "converted to 3 channels" in str(w.message)]
    assert len(lines) == 1 and "8 grey image(s)" in lines[0] and "3 colour" in lines[0]
    assert ds.images.shape == (11, 32, 32, 3)


def test_mixed_sizes_resize_or_clear_error(folder):
    _png(folder / "NORMAL" / "big.png", _xray(5, 64))
    with pytest.raises(DataError, match="mixed image sizes.*big.png.*image_size"):
        from_folder(folder)
    assert from_folder(folder, image_size=48).images.shape == (9, 48, 48)


# --- npz -------------------------------------------------------------------------------------------------------

def _npz(path, images, labels):
    np.savez(path, train_images=images, train_labels=labels)
    return path


def test_npz_object_array_is_never_unpickled(tmp_path):
    path = tmp_path / "evil.npz"
    images = np.empty(2, dtype=object)
    images[:] = [np.zeros((4, 4)), "payload"]
    np.savez(path, train_images=images, train_labels=np.zeros((2, 1), np.int64))
    with pytest.raises(DataError, match="evil.npz.*object array.*allow_pickle=False"):
        load_npz(path)


def test_npz_float_images(tmp_path):
    grey = _xray(3)
    unit = _npz(tmp_path / "unit.npz", grey.astype(np.float32)[None] / 255, np.zeros((1, 1)))
    ds = load_npz(unit)
    np.testing.assert_allclose(ds.images[0].astype(int), grey.astype(int), atol=1)  # not cast to {0, 1}
    full = _npz(tmp_path / "full.npz", grey.astype(np.float64)[None], np.zeros((1, 1)))
    with pytest.raises(DataError, match=r"\[\d+, \d+\], outside the declared value range \[0, 1\]"):
        load_npz(full)  # 0-255 floats are not guessed from their range: they are declared
    np.testing.assert_array_equal(load_npz(full, value_range=(0, 255)).images[0], grey)
    with pytest.raises(DataError, match=r"outside the declared value range"):
        load_npz(_npz(tmp_path / "hu.npz", grey.astype(np.float32)[None] * 10 - 1000, np.zeros((1, 1))))
    nan = grey.astype(np.float32)[None] / 255
    nan[0, :2, :3] = np.nan
    with pytest.raises(DataError, match="nan.npz.*6 pixel.*NaN"):
        load_npz(_npz(tmp_path / "nan.npz", nan, np.zeros((1, 1))))
    with pytest.raises(DataError, match="uint16 values in \\[4095, 4095\\] do not fit 0-255"):
        load_npz(_npz(tmp_path / "deep.npz", np.full((1, 4, 4), 4095, np.uint16), np.zeros((1, 1))))


def test_npz_labels_out_of_range_or_soft(tmp_path):
    images = np.zeros((3, 4, 4), np.uint8)
    with pytest.raises(DataError, match="label 5 is out of range for 2 classes"):
        load_npz(_npz(tmp_path / "a.npz", images, np.array([[0], [1], [5]])), classes=["normal", "pneumonia"])
    with pytest.raises(DataError, match="negative label"):
        load_npz(_npz(tmp_path / "b.npz", images, np.array([[0], [-1], [1]])))
    with pytest.raises(DataError, match="2 label.*not whole numbers.*refused rather than truncated"):
        load_npz(_npz(tmp_path / "c.npz", images, np.array([[0.0], [0.7], [0.4]])))
    assert list(load_npz(_npz(tmp_path / "d.npz", images, np.array([[0.0], [1.0], [1.0]]))).labels) == [0, 1, 1]
    with pytest.raises(DataError, match="not whole numbers"):
        ImageDataset(images, np.array([0, np.nan, 1]))


# --- CSV -------------------------------------------------------------------------------------------------------

@pytest.fixture
def images(folder):
    return sorted(folder.rglob("*.png"))


def _csv(path, header, rows):
    path.write_text(header + "\n" + "\n".join(",".join(map(str, r)) for r in rows) + "\n")
    return path


def test_csv_labels_are_stripped_and_case_clashes_refused(tmp_path, images):
    ok = _csv(tmp_path / "ok.csv", "path,label", [(p, "Pneumonia " if i % 2 else " Normal") for i, p in
                                                  enumerate(images)])
    assert from_csv(ok).classes == ["Normal", "Pneumonia"]
    clash = _csv(tmp_path / "clash.csv", "path,label", [(p, "pneumonia" if i % 2 else "Pneumonia ")
                                                        for i, p in enumerate(images)])
    with pytest.raises(DataError, match=r"clash.csv: labels \['Pneumonia', 'pneumonia'\] differ only by case"):
        from_csv(clash)


def test_csv_soft_and_out_of_range_labels(tmp_path, images):
    soft = _csv(tmp_path / "soft.csv", "path,label", [(p, [0, 0.7, 1][i % 3]) for i, p in enumerate(images)])
    with pytest.raises(DataError, match="soft.csv: non-integer label.*line 3: 0.7.*refused rather than truncated"):
        from_csv(soft)
    floats = _csv(tmp_path / "floats.csv", "path,label", [(p, f"{i % 2}.0") for i, p in enumerate(images)])
    assert list(from_csv(floats).labels[:2]) == [0, 1]  # "1.0" is the integer 1 (pandas writes ints like that)
    high = _csv(tmp_path / "high.csv", "path,label", [(p, i % 2 * 3) for i, p in enumerate(images)])
    with pytest.raises(DataError, match="out of range.*line 3: 3"):
        from_csv(high, classes=["normal", "pneumonia"])


def test_csv_patient_ids_are_text_and_gaps_are_named(tmp_path, images):
    ids = ["007", "7", "007", "7", "0007", "7.0", "007", "7"]
    path = _csv(tmp_path / "ids.csv", "path,label,patient", [(p, p.parent.name, ids[i]) for i, p in
                                                             enumerate(images)])
    ds = from_csv(path)
    assert list(ds.groups) == ids and len(set(ds.groups)) == 4  # "007", "7", "0007" and "7.0" stay apart
    gaps = ids[:2] + ["", ""] + ids[4:]
    path = _csv(tmp_path / "gaps.csv", "path,label,patient", [(p, p.parent.name, gaps[i]) for i, p in
                                                              enumerate(images)])
    with pytest.raises(DataError, match="gaps.csv: empty 'patient' on line.*4, 5"):
        from_csv(path, group_column="patient")
    with pytest.raises(DataError, match="empty 'patient' on line"):
        load_source(path, group_by="patient", cache=False)
    ds = from_csv(path)  # not asked for: no groups, and the notes say why
    assert ds.groups is None and any("'patient' column is empty on 2 line" in n for n in ds.meta["notes"])
    source = load_source(path, carve=False, cache=False)
    assert source.group_kind is None and "not grouped by patient" in source.format_report()


def test_csv_naming_missing_files(tmp_path, images):
    path = _csv(tmp_path / "m.csv", "path,label", [(p, "a") for p in images] + [("gone/x ray.png", "b")])
    with pytest.raises(DataError, match="m.csv names 1 missing file.*line 10.*x ray.png"):
        from_csv(path)


@pytest.mark.parametrize("write", [
    lambda p: p.write_bytes(b"not an archive at all"),
    lambda p: np.save(open(p, "wb"), np.zeros((2, 4, 4), np.uint8)),  # a bare .npy under an .npz name
], ids=["text", "single-array"])
def test_a_file_that_is_not_an_npz_archive_is_refused_everywhere(tmp_path, write):
    from medkit.data import available_splits

    path = tmp_path / "data.npz"
    write(path)
    for read in (available_splits, load_npz):
        with pytest.raises(DataError, match="data.npz"):
            read(path)
