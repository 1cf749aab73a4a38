"""`load_source`: every layout behind one --data, patient-disjoint carves, the split report, and the decode cache."""

import os
import shutil

import numpy as np
import pytest

from medkit.base.errors import DataError
from medkit.data import (
    HELD_OUT_SEED,
    chest_xray_dir,
    decoded_dir,
    load_images,
    load_source,
    patient_key,
    pneumonia,
    sample_path,
)


def _copy_patients(dest, n_patients=30, offset=0):
    """Copy the images of `n_patients` whole patients per class from the bundled sample into dest/CLASS/."""
    for cls in ("NORMAL", "PNEUMONIA"):
        files = sorted((chest_xray_dir() / cls).glob("*.jpeg"))
        keys = sorted({patient_key(f.name) for f in files})[offset:offset + n_patients]
        (dest / cls).mkdir(parents=True, exist_ok=True)
        for f in files:
            if patient_key(f.name) in keys:
                shutil.copy(f, dest / cls / f.name)
    return dest


@pytest.fixture
def tree(tmp_path, tmp_cache):
    return _copy_patients(tmp_path / "xrays")


def test_class_folder_is_carved_by_patient_with_a_report(tree):
    lines = []
    source = load_source(tree, log=lines.append)
    assert set(source.splits) == {"train", "val", "test"} and source.group_kind == "patient"
    keys = {p: set(ds.groups) for p, ds in source.splits.items()}
    assert not keys["train"] & keys["test"] and not keys["train"] & keys["val"] and not keys["val"] & keys["test"]
    assert sum(len(ds) for ds in source.splits.values()) == len(list(tree.rglob("*.jpeg")))
    assert all(0 < ds.labels.mean() < 1 for ds in source.splits.values())  # stratified: both classes everywhere
    report = lines[0]
    assert "patients" in report and f"carved from train, patient-grouped, seed {HELD_OUT_SEED}" in report
    row = next(r for r in source.report if r["part"] == "test")
    assert row["images"] == len(source.splits["test"]) and row["groups"] == len(keys["test"])
    assert source.splits["test"].meta["paths"] == load_source(tree).splits["test"].meta["paths"]  # fixed carve


def test_split_folders_are_used_as_they_are(tmp_path, tmp_cache):
    root = tmp_path / "chest_xray"
    _copy_patients(root / "train", 25)
    _copy_patients(root / "Test", 8, offset=25)
    source = load_source(root)
    assert set(source.splits) == {"train", "val", "test"}
    assert source.origin["test"] == "Test/ folder" and "carved from train" in source.origin["val"]
    assert len(source.splits["test"]) == len(list((root / "Test").rglob("*.jpeg")))
    only_test = load_source(root / "Test", carve=False)
    assert set(only_test.splits) == {"all"} and only_test.classes == ["NORMAL", "PNEUMONIA"]
    shutil.rmtree(root / "train")
    assert set(load_source(root, carve=False).splits) == {"test"}
    with pytest.raises(DataError, match="No train part to carve from"):
        load_source(root)
    (root / "NORMAL").mkdir()
    with pytest.raises(DataError, match="mixes split folders"):
        load_source(root)


def test_group_by_choices(tree, tmp_path):
    (tree / "NORMAL" / "scan 1.jpeg").write_bytes((chest_xray_dir() / "NORMAL" / "IM-0117-0001.jpeg").read_bytes())
    source = load_source(tree)  # one image without a patient key: image-level, and the report says so
    assert source.group_kind is None and all(ds.groups is None for ds in source.splits.values())
    assert "not grouped by patient" in source.format_report()
    with pytest.raises(DataError, match="group_by='patient' needs patient ids"):
        load_source(tree, group_by="patient")
    with pytest.raises(DataError, match="names a CSV column"):
        load_source(tree, group_by="hospital")
    with pytest.raises(DataError, match="on_error must be"):
        load_source(tree, on_error="ignore")
    with pytest.raises(DataError, match="does not exist"):
        load_source(tmp_path / "nowhere")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DataError, match="neither a folder"):
        load_source(tmp_path / "notes.txt")


def test_csv_source_with_patient_ids_kept_as_text(tree, tmp_path):
    files = sorted(tree.rglob("*.jpeg"))
    rows = ["path,label,patient"] + [f"{f},{f.parent.name.lower()},{'007' if i % 2 else '7'}{i // 4}"
                                     for i, f in enumerate(files)]
    csv = tmp_path / "labels.csv"
    csv.write_text("\n".join(rows) + "\n")
    source = load_source(csv)
    assert source.group_kind == "patient" and source.classes == ["normal", "pneumonia"]
    groups = np.concatenate([ds.groups for ds in source.splits.values()])
    assert "0070" in groups and "70" in groups  # "007"+"0" and "7"+"0" stay two patients
    assert set(load_source(csv, carve=False).splits) == {"all"}
    assert load_source(csv, group_by="none").group_kind is None


def test_npz_source_gives_the_fixed_pneumonia_carve(tmp_cache):
    source = load_source(sample_path("pneumoniamnist_28_trainval.npz"), classes=["normal", "pneumonia"])
    fixed = pneumonia()
    for part in ("train", "val", "test"):
        np.testing.assert_array_equal(source.splits[part].images, fixed[part].images)
        np.testing.assert_array_equal(source.splits[part].labels, fixed[part].labels)
    assert "not by patient" in source.format_report() and source.group_kind is None
    with pytest.raises(DataError, match="holds no patient ids"):
        load_source(sample_path("pneumoniamnist_28_trainval.npz"), group_by="patient")


# --- the decode cache ------------------------------------------------------------------------------------------

def test_second_load_reads_the_cache_not_the_images(tree, monkeypatch):
    first = load_source(tree, carve=False).splits["all"]
    assert len(list(decoded_dir().glob("*.npy"))) == 1

    def refuse(*args, **kwargs):
        raise AssertionError("an image file was opened on a cached load")

    monkeypatch.setattr("PIL.Image.open", refuse)
    second = load_source(tree, carve=False).splits["all"]
    np.testing.assert_array_equal(first.images, second.images)
    assert not second.images.flags.owndata and isinstance(second.images.base, np.memmap)  # mapped, not read in
    second.images[0, 0, 0] = 7  # copy-on-write: a caller's edit never reaches the cache file
    monkeypatch.undo()
    assert load_source(tree, carve=False).splits["all"].images[0, 0, 0] == first.images[0, 0, 0]


def test_cache_key_follows_the_files_and_the_size(tree):
    paths = sorted(tree.rglob("*.jpeg"))
    load_images(paths, image_size=64)
    load_images(paths, image_size=32)
    assert len(list(decoded_dir().glob("*.npy"))) == 2
    stat = paths[0].stat()
    os.utime(paths[0], ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # a changed file is decoded again
    load_images(paths, image_size=64)
    assert len(list(decoded_dir().glob("*.npy"))) == 3
    assert not list(decoded_dir().glob(".*.part"))  # no temporary file left behind


def test_damaged_cache_entry_is_rebuilt(tree):
    paths = sorted(tree.rglob("*.jpeg"))
    images, _, _ = load_images(paths)
    npy = next(decoded_dir().glob("*.npy"))
    npy.write_bytes(b"not an array")
    again, _, _ = load_images(paths)
    np.testing.assert_array_equal(images, again)


def test_unwritable_cache_warns_once_and_loads(tree, tmp_path, monkeypatch):
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the cache folder should be")
    monkeypatch.setenv("MEDKIT_CACHE", str(blocked))
    paths = sorted(tree.rglob("*.jpeg"))
    with pytest.warns(UserWarning, match="Cannot write the decode cache"):
        images, kept, _ = load_images(paths)
    assert len(images) == len(paths) == len(kept)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # said once, not on every load
        load_images(paths)


def test_cached_skips_still_raise_when_asked(tree):
    (tree / "NORMAL" / "IM-9999-0001.jpeg").write_bytes(b"")
    paths = sorted(tree.rglob("*.jpeg"))
    with pytest.warns(UserWarning, match="skipped 1 unreadable file.*IM-9999-0001.jpeg"):
        _, kept, skipped = load_images(paths, on_error="skip")
    assert len(kept) == len(paths) - 1 and list(skipped)[0].endswith("IM-9999-0001.jpeg")
    with pytest.raises(DataError, match="IM-9999-0001.jpeg.*empty"):
        load_images(paths, on_error="raise")
