"""Patient keys from file names, patient-grouped folders, and the bundled real-resolution chest X-rays."""

import numpy as np
import pytest
from conftest import SHARED_DATA
from PIL import Image

from medkit.base.errors import DataError
from medkit.data import (
    HELD_OUT_SEED,
    chest_xray_dir,
    chest_xrays,
    classes_per_patient,
    from_folder,
    patient_key,
    patient_keys,
    pneumonia_type,
    subsample,
)

SOURCE = SHARED_DATA / "chest_xray_224" / "train"


@pytest.mark.parametrize("name, key, kind", [
    ("person1003_bacteria_2934.jpeg", "person1003", "bacterial"),
    ("chest_xray/train/PNEUMONIA/person1003_virus_1685.jpeg", "person1003", "viral"),
    ("person447_virus_921_1.jpeg", "person447", "viral"),
    ("IM-0117-0001.jpeg", "IM-0117", None),
    ("IM-0640-0001-0001.jpeg", "IM-0640", None),
    ("NORMAL2-IM-1018-0001.jpeg", "NORMAL2-IM-1018", None),
    ("scan_0001.png", None, None),
    ("IM-0117.jpeg", None, None),  # no image number after the patient number: not the Kermany pattern
])
def test_patient_key_and_pneumonia_type(name, key, kind):
    assert patient_key(name) == key and pneumonia_type(name) == kind


def test_patient_keys_need_every_name():
    assert list(patient_keys(["IM-0001-0001.jpeg", "person3_virus_9.jpeg"])) == ["IM-0001", "person3"]
    assert patient_keys(["IM-0001-0001.jpeg", "scan.png"]) is None


@pytest.mark.skipif(not SOURCE.is_dir(), reason="needs ../shared/data/chest_xray_224")
def test_patient_keys_of_the_kermany_training_split():
    names = [p.name for p in SOURCE.rglob("*.jpeg")]
    keys = patient_keys(names)
    assert len(names) == 5216 and len(set(keys)) == 2846  # the count ../shared/data/README.md states


def _write(path, value=0, size=8):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size, size), value, np.uint8)).save(path)


def test_folder_groups_by_patient_and_warns_on_mixed_classes(tmp_path):
    for name in ("IM-0001-0001.png", "IM-0001-0002.png", "IM-0002-0001.png"):
        _write(tmp_path / "NORMAL" / name)
    for name in ("person1_virus_1.png", "person1_bacteria_2.png", "person2_virus_3.png"):
        _write(tmp_path / "PNEUMONIA" / name)
    ds = from_folder(tmp_path)
    assert ds.meta["group_kind"] == "patient"
    assert sorted(set(ds.groups)) == ["IM-0001", "IM-0002", "person1", "person2"]
    _write(tmp_path / "NORMAL" / "person2_virus_4.png")  # one patient now under both classes
    with pytest.warns(UserWarning, match="1 patient key.*'person2'.*NORMAL.*PNEUMONIA"):
        ds = from_folder(tmp_path)
    assert classes_per_patient(ds.groups, ds.labels) == {"person2": [0, 1]}
    _write(tmp_path / "NORMAL" / "other.png")  # one name without a key: no groups at all, never partial ones
    assert from_folder(tmp_path).groups is None and from_folder(tmp_path).meta["group_kind"] is None


def test_subsample_by_group_keeps_patients_whole():
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(100), rng.integers(1, 5, 100))
    labels = (groups % 3 == 0).astype(int)
    keep = subsample(labels, 60, seed=1, groups=groups)
    kept, dropped = set(groups[keep]), set(np.delete(groups, keep))
    assert not kept & dropped and 55 <= len(keep) <= 75
    assert abs(labels[keep].mean() - labels.mean()) < 0.1
    np.testing.assert_array_equal(keep, subsample(labels, 60, seed=1, groups=groups))
    assert not np.array_equal(keep, subsample(labels, 60, seed=2, groups=groups))


# --- the bundled sample --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def xrays():
    return chest_xrays()


def test_chest_xrays_is_patient_disjoint_and_stratified(xrays):
    assert set(xrays) == {"train", "val", "test"}
    assert sum(len(ds) for ds in xrays.values()) == 1303
    keys = {name: set(ds.groups) for name, ds in xrays.items()}
    assert not keys["train"] & keys["test"] and not keys["train"] & keys["val"] and not keys["val"] & keys["test"]
    for ds in xrays.values():
        assert ds.images.shape[1:] == (128, 128) and ds.images.dtype == np.uint8
        assert ds.classes == ["NORMAL", "PNEUMONIA"]
        assert 0.3 < ds.labels.mean() < 0.8  # both classes in every part
        assert [patient_key(p) for p in ds.meta["paths"]] == list(ds.groups)  # paths follow their images
    assert 0.15 < len(xrays["test"]) / 1303 < 0.25
    assert str(HELD_OUT_SEED) in xrays["test"].meta["origin"]


def test_chest_xrays_test_part_does_not_move_with_the_seed(xrays):
    small = chest_xrays(n_train=200, seed=3)
    assert small["test"].meta["paths"] == xrays["test"].meta["paths"]
    assert small["val"].meta["paths"] == xrays["val"].meta["paths"]
    assert 180 <= len(small["train"]) <= 240 and set(small["train"].groups) <= set(xrays["train"].groups)
    other = chest_xrays(n_train=200, seed=4)
    assert other["train"].meta["paths"] != small["train"].meta["paths"]
    assert chest_xrays(n_train=200, seed=3)["train"].meta["paths"] == small["train"].meta["paths"]


def test_chest_xrays_sizes_and_channels():
    ds = chest_xrays(image_size=64, channels=3, n_train=50)
    assert ds["train"].images.shape[1:] == (64, 64, 3) and ds["test"].images.shape[1:] == (64, 64, 3)


@pytest.mark.skipif(not SOURCE.is_dir(), reason="needs ../shared/data/chest_xray_224")
def test_sample_holds_whole_patients_of_the_source():
    sample = {p.name for p in chest_xray_dir().rglob("*.jpeg")}
    source = {p.name for p in SOURCE.rglob("*.jpeg")}
    assert sample <= source
    chosen = {patient_key(n) for n in sample}
    assert {n for n in source if patient_key(n) in chosen} == sample


def test_chest_xrays_from_another_folder(tmp_path):
    # the `full` profile's DATA_DIR: a downloaded Kermany folder replaces the bundled subset, split the same way
    import shutil

    for label in ("NORMAL", "PNEUMONIA"):
        files = sorted((chest_xray_dir() / label).glob("*.jpeg"))[:60]
        (tmp_path / "train" / label).mkdir(parents=True)
        for f in files:
            shutil.copy(f, tmp_path / "train" / label / f.name)
    parts = chest_xrays(image_size=48, folder=tmp_path / "train")
    assert sum(len(p) for p in parts.values()) == 120 and parts["test"].name == "train:test"
    assert not set(parts["train"].groups) & set(parts["test"].groups)
    with pytest.raises(DataError, match="DATA_DIR"):
        chest_xrays(folder=tmp_path / "nope")
