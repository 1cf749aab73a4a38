"""Sources (DICOM, folder, CSV, npz) on real sample files, and every bad-input path they guard."""

import shutil

import numpy as np
import pytest
from PIL import Image

from medkit.base.errors import DataError, MedkitError, UnknownNameError
from medkit.data import (
    dicom_info,
    from_csv,
    from_folder,
    load_image,
    load_npz,
    read_dicom,
    sample_path,
    window,
)

CT = sample_path("CT_small.dcm")
MR = sample_path("MR_small.dcm")
TRUNCATED = sample_path("MR_truncated.dcm")


# --- DICOM -------------------------------------------------------------------------------------------------

def test_ct_is_in_hounsfield_units():
    import pydicom

    hu = read_dicom(CT)
    stored = pydicom.dcmread(CT).pixel_array
    assert hu.dtype == np.float32 and hu.shape == (128, 128)
    np.testing.assert_array_equal(hu, stored.astype(np.float32) - 1024)  # slope 1, intercept -1024
    assert -1000 < hu[:20, :20].mean() < -700  # lung: mostly air
    assert -100 < np.median(hu[95:110, 20:45]) < 100  # paraspinal muscle: near water
    assert hu.max() > 700  # cortical bone of the vertebra
    assert dicom_info(CT)["modality"] == "CT"


def test_monochrome1_is_inverted(tmp_path):
    import pydicom

    ds = pydicom.dcmread(MR)
    ds.PhotometricInterpretation = "MONOCHROME1"
    path = tmp_path / "mono1.dcm"
    ds.save_as(path)
    normal, inverted = read_dicom(MR), read_dicom(path)
    # mirrored within the range its header declares (BitsStored 16, signed), not the range its pixels cover
    np.testing.assert_allclose(inverted, -32768 + 32767 - normal)


def test_truncated_dicom_names_file_and_problem():
    with pytest.raises(DataError, match="MR_truncated.dcm.*(truncated|decode)"):
        read_dicom(TRUNCATED)


def test_not_a_dicom(tmp_path):
    path = tmp_path / "notes.dcm"
    path.write_text("not a dicom")
    with pytest.raises(DataError, match="notes.dcm.*not a DICOM"):
        read_dicom(path)
    with pytest.raises(DataError, match="does not exist"):
        read_dicom(tmp_path / "missing.dcm")


def test_window_presets_and_errors():
    hu = read_dicom(CT)
    lung, bone = window(hu, "lung"), window(hu, "bone")
    assert lung.min() >= 0 and lung.max() <= 1 and lung.dtype == np.float32
    assert lung[:20, :20].mean() > bone[:20, :20].mean()  # lung window shows lung detail; bone window crushes it
    np.testing.assert_allclose(window(np.array([-1000.0, 40.0, 1000.0]), (40, 80)), [0, 0.5, 1])
    with pytest.raises(UnknownNameError, match="'lungs'.*lung"):
        window(hu, "lungs")
    with pytest.raises(DataError, match="width"):
        window(hu, (40, 0))
    for name in ("lung", "mediastinum", "bone", "brain", "abdomen"):
        assert window(hu, name).shape == hu.shape


# --- image folders -----------------------------------------------------------------------------------------

def _write(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


@pytest.fixture
def xray_folder(tmp_path, pneumonia):
    """A Kaggle-style folder (train/NORMAL, train/PNEUMONIA) of real PNGs from the bundled sample."""
    ds = pneumonia["val"]
    for i in range(12):
        _write(tmp_path / "train" / ["NORMAL", "PNEUMONIA"][ds.labels[i]] / f"im{i:02d}.png", ds.images[i])
    return tmp_path, ds


def test_folder_round_trip(xray_folder):
    root, ds = xray_folder
    loaded = from_folder(root, "train")
    assert loaded.classes == ["NORMAL", "PNEUMONIA"] and len(loaded) == 12
    # images come back bit-exact, each with its label
    by_name = {p.split("/")[-1]: i for i, p in enumerate(loaded.meta["paths"])}
    for i in range(12):
        j = by_name[f"im{i:02d}.png"]
        np.testing.assert_array_equal(loaded.images[j], ds.images[i])
        assert loaded.labels[j] == ds.labels[i]


def test_folder_reads_dicom(tmp_path):
    (tmp_path / "ct").mkdir()
    (tmp_path / "mr").mkdir()
    shutil.copy(CT, tmp_path / "ct" / "a.dcm")
    shutil.copy(MR, tmp_path / "mr" / "b.dcm")
    ds = from_folder(tmp_path, image_size=64)
    assert ds.images.shape == (2, 64, 64) and ds.images.dtype == np.uint8 and list(ds.labels) == [0, 1]


def test_non_image_file_is_counted_not_silent(xray_folder):
    root, _ = xray_folder
    (root / "train" / "NORMAL" / "README.txt").write_text("notes")
    with pytest.warns(UserWarning, match="ignored 1 non-image"):
        ds = from_folder(root, "train")
    assert len(ds) == 12 and ds.meta["ignored"][0].endswith("README.txt")


def test_corrupt_image_raises_or_is_skipped_with_count(xray_folder):
    root, _ = xray_folder
    (root / "train" / "NORMAL" / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(DataError, match="broken.png.*not a readable image"):
        from_folder(root, "train")
    with pytest.warns(UserWarning, match="skipped 1 unreadable"):
        ds = from_folder(root, "train", on_error="skip")
    assert len(ds) == 12 and list(ds.meta["skipped"])[0].endswith("broken.png")


def test_empty_folder_and_empty_class_folder(tmp_path):
    with pytest.raises(DataError, match="no class subfolders"):
        from_folder(tmp_path)
    (tmp_path / "NORMAL").mkdir()
    (tmp_path / "PNEUMONIA").mkdir()
    _write(tmp_path / "NORMAL" / "a.png", np.zeros((8, 8), np.uint8))
    with pytest.raises(DataError, match="PNEUMONIA holds no image files"):
        from_folder(tmp_path)
    with pytest.raises(DataError, match="does not exist"):
        from_folder(tmp_path / "nowhere")
    with pytest.raises(DataError, match=r"no subfolder for class\(es\) \['COVID'\]"):
        from_folder(tmp_path, classes=["NORMAL", "COVID"])


def test_mixed_sizes_and_channels(tmp_path):
    _write(tmp_path / "a" / "small.png", np.zeros((8, 8), np.uint8))
    _write(tmp_path / "b" / "big.png", np.full((16, 16), 200, np.uint8))
    with pytest.raises(DataError, match="mixed image sizes.*small.png.*big.png.*image_size"):
        from_folder(tmp_path)
    ds = from_folder(tmp_path, image_size=12)
    assert ds.images.shape == (2, 12, 12)
    colour = np.zeros((8, 8, 3), np.uint8)
    colour[..., 0] = 200  # real colour: red
    _write(tmp_path / "b" / "colour.png", colour)
    _write(tmp_path / "b" / "colour2.png", colour)
    with pytest.warns(UserWarning) as said:
        mixed = from_folder(tmp_path, image_size=8)
    notes = [str(w.message) for w in said if "grey image(s) converted to 3 channels" in str(w.message)]
    assert len(notes) == 1 and "2 grey image(s)" in notes[0] and "2 colour" in notes[0]  # said once, with counts
    assert mixed.images.shape == (4, 8, 8, 3) and mixed.meta["notes"] == [notes[0].split(": ", 1)[1]]
    (tmp_path / "b" / "colour2.png").unlink()
    grey = from_folder(tmp_path, image_size=8, channels=1)
    rgb = from_folder(tmp_path, image_size=8, channels=3)
    assert grey.images.shape == (3, 8, 8) and rgb.images.shape == (3, 8, 8, 3)


def test_16bit_png_and_load_image_errors(tmp_path):
    path = tmp_path / "deep.png"
    Image.fromarray(np.array([[0, 65535]], dtype=np.uint16)).save(path)
    np.testing.assert_array_equal(load_image(path), [[0, 255]])
    with pytest.raises(DataError, match="does not exist"):
        load_image(tmp_path / "nope.png")


# --- CSV ---------------------------------------------------------------------------------------------------

@pytest.fixture
def csv_source(xray_folder):
    root, ds = xray_folder
    lines = ["path,label,patient,site"]
    for i in range(12):
        cls = ["NORMAL", "PNEUMONIA"][ds.labels[i]]
        lines.append(f"train/{cls}/im{i:02d}.png,{cls.lower()},p{i // 2},{'ab'[i % 2]}")
    path = root / "labels.csv"
    path.write_text("\n".join(lines) + "\n")
    return path, ds


def test_csv_round_trip_with_groups(csv_source):
    path, ds = csv_source
    loaded = from_csv(path)
    assert loaded.classes == ["normal", "pneumonia"] and len(loaded) == 12
    np.testing.assert_array_equal(loaded.images, ds.images[:12])
    np.testing.assert_array_equal(loaded.labels, ds.labels[:12])
    assert list(loaded.groups[:4]) == ["p0", "p0", "p1", "p1"] and loaded.meta["site"][:2] == ["a", "b"]
    assert from_csv(path, group_column="site").groups[1] == "b"


def test_csv_missing_files_and_bad_labels(csv_source):
    path, _ = csv_source
    text = path.read_text()
    path.write_text(text + "train/NORMAL/ghost.png,normal,p9,a\n")
    with pytest.raises(DataError, match="1 missing file.*line 14.*ghost.png"):
        from_csv(path)
    path.write_text(text + text.splitlines()[1].split(",")[0] + ",,p9,a\n")
    with pytest.raises(DataError, match="empty label on line.*14"):
        from_csv(path)
    path.write_text(text)
    with pytest.raises(DataError, match="not among classes.*line 2"):
        from_csv(path, classes=["NORMAL", "PNEUMONIA"])
    with pytest.raises(DataError, match="no column.*'file'"):
        from_csv(path, path_column="file")
    with pytest.raises(DataError, match="no group column 'hospital'"):
        from_csv(path, group_column="hospital")
    with pytest.raises(DataError, match="does not exist"):
        from_csv(path.with_name("none.csv"))


def test_csv_integer_labels_out_of_range(csv_source):
    path, _ = csv_source
    image = path.read_text().splitlines()[1].split(",")[0]
    path.write_text(f"path,label\n{image},0\n{image},3\n")
    assert from_csv(path).classes == ["0", "1", "2", "3"]
    with pytest.raises(DataError, match="out of range.*line 3"):
        from_csv(path, classes=["normal", "pneumonia"])


# --- npz ---------------------------------------------------------------------------------------------------

def test_npz_labels_not_matching_images(tmp_path):
    path = tmp_path / "bad.npz"
    np.savez(path, train_images=np.zeros((5, 8, 8), np.uint8), train_labels=np.zeros((4, 1)))
    with pytest.raises(DataError, match="bad.npz.*5 images.*4 labels"):
        load_npz(path)
    np.savez(path, train_images=np.zeros((5, 8, 8, 2), np.uint8), train_labels=np.zeros((5, 1)))
    with pytest.raises(DataError, match="bad.npz.*shape"):
        load_npz(path)


def test_all_errors_are_medkit_errors():
    assert issubclass(DataError, MedkitError)


def test_from_medmnist_offline_raises(tmp_cache):
    from medkit.base.errors import OfflineError
    from medkit.data import from_medmnist

    with pytest.raises(OfflineError):
        from_medmnist("pneumoniamnist", "train", size=64)


def test_rgb_npz_gives_three_channel_batches(tmp_path):
    from medkit.data import BatchLoader

    path = tmp_path / "derma.npz"
    images = np.random.default_rng(0).integers(0, 255, (6, 28, 28, 3), dtype=np.uint8)
    np.savez(path, train_images=images, train_labels=np.arange(6)[:, None] % 3)
    ds = load_npz(path)
    assert ds.channels == 3 and ds.num_classes == 3
    x, y = next(iter(BatchLoader(ds, 4)))
    assert tuple(x.shape) == (4, 3, 28, 28) and x.dtype.is_floating_point is False
    np.testing.assert_array_equal(x[0].permute(1, 2, 0).numpy(), images[0])
