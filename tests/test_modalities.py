"""Lesson 10's bundled modalities (breast ultrasound, dermoscopy) and the transfer helpers, on tiny real data."""

import shutil
import warnings

import numpy as np
import pytest

from medkit.base.errors import DataError
from medkit.data import ImageDataset, breast_ultrasound, dermoscopy, match_channels, samples_dir
from medkit.data.modalities import BREAST_SAMPLE, DERMOSCOPY_HELD_OUT, DERMOSCOPY_SAMPLE
from medkit.methods import transfer


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny batches gain nothing from a second thread and lose several-fold on a shared CPU (as lesson 10 runs)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def skin():
    return dermoscopy(48)


@pytest.fixture(scope="module")
def breast():
    return breast_ultrasound(48)


def test_breast_ultrasound_official_splits_malignant_positive(breast):
    assert {p: len(ds) for p, ds in breast.items()} == {"train": 546, "val": 78, "test": 156}
    assert breast["train"].classes == ["benign", "malignant"]
    # MedMNIST says 0 = malignant; flipped, malignant is the minority (147 of 546 in train)
    assert int(breast["train"].labels.sum()) == 147 and int(breast["test"].labels.sum()) == 42
    assert breast["test"].images.shape == (156, 48, 48) and breast["test"].images.dtype == np.uint8


def test_dermoscopy_carve_is_fixed_stratified_and_disjoint(skin):
    assert {p: len(ds) for p, ds in skin.items()} == {"train": 300, **DERMOSCOPY_HELD_OUT}
    names = {p: set(ds.meta["image"]) for p, ds in skin.items()}
    assert not (names["train"] & names["val"] or names["train"] & names["test"] or names["val"] & names["test"])
    shares = [ds.labels.mean() for ds in skin.values()]  # 153 malignant of 550
    assert max(shares) - min(shares) < 0.02, shares
    assert skin["test"].images.shape == (150, 48, 48, 3)
    assert set(skin["test"].meta) >= {"image", "diagnosis", "age_approx", "sex", "origin"}
    assert all(d == "melanoma" for d, y in zip(skin["train"].meta["diagnosis"], skin["train"].labels) if y == 1)


def test_n_train_draws_with_the_seed_and_keeps_held_out_parts():
    a, b, c = breast_ultrasound(48, 100, seed=0), breast_ultrasound(48, 100, seed=0), breast_ultrasound(48, 100, seed=1)
    assert len(a["train"]) == 100 and np.array_equal(a["train"].images, b["train"].images)
    assert not np.array_equal(a["train"].images, c["train"].images)
    assert np.array_equal(a["test"].images, c["test"].images)


def test_channels_convert_and_say_so(skin):
    with pytest.warns(UserWarning, match="converted to grey"):
        grey = match_channels(skin["test"].images, 1, "dermoscopy:test")
    assert grey.shape == (150, 48, 48)
    with pytest.warns(UserWarning, match="repeated on 3 channels"):
        breast = breast_ultrasound(48, channels=3)
    assert breast["val"].images.shape == (78, 48, 48, 3)
    assert np.array_equal(breast["val"].images[..., 0], breast["val"].images[..., 2])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # as stored: nothing to say
        assert match_channels(skin["test"].images, 3, "x") is skin["test"].images
    with pytest.raises(DataError, match="channels must be 1"):
        match_channels(skin["test"].images, 2, "x")


@pytest.fixture
def copied_samples(tmp_path, monkeypatch):
    """A private copy of lesson 10's samples (and SHA256SUMS) that a test may damage."""
    src = samples_dir()
    shutil.copy(src / BREAST_SAMPLE, tmp_path / BREAST_SAMPLE)
    shutil.copytree(src / DERMOSCOPY_SAMPLE, tmp_path / DERMOSCOPY_SAMPLE)
    shutil.copy(src / "SHA256SUMS", tmp_path / "SHA256SUMS")
    monkeypatch.setenv("MEDKIT_SAMPLES", str(tmp_path))
    return tmp_path


def test_missing_sample_says_what_to_do(copied_samples):
    (copied_samples / BREAST_SAMPLE).unlink()
    with pytest.raises(DataError, match="(?s)is missing.*make_modality_samples.py"):
        breast_ultrasound()
    (copied_samples / DERMOSCOPY_SAMPLE / "images" / "ISIC_0000007.jpg").unlink()
    with pytest.raises(DataError, match="ISIC_0000007.jpg is missing"):
        dermoscopy()


def test_corrupt_sample_fails_its_checksum(copied_samples):
    path = copied_samples / DERMOSCOPY_SAMPLE / "images" / "ISIC_0000003.jpg"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte can still decode: only the checksum catches it
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match="(?s)does not match its sha256.*git checkout"):
        dermoscopy()
    (copied_samples / BREAST_SAMPLE).write_bytes(b"not an npz")
    with pytest.raises(DataError, match="does not match its sha256"):
        breast_ultrasound()


def test_unlisted_corrupt_files_still_fail_clearly(copied_samples):
    (copied_samples / "SHA256SUMS").unlink()  # no published sums: the readers' own checks remain
    (copied_samples / BREAST_SAMPLE).write_bytes(b"not an npz")
    with pytest.raises(DataError, match="not a readable .npz"):
        breast_ultrasound()
    (copied_samples / DERMOSCOPY_SAMPLE / "images" / "ISIC_0000003.jpg").write_bytes(b"\xff\xd8 truncated")
    with pytest.raises(DataError, match="(?s)ISIC_0000003.jpg.*make_modality_samples.py"):
        dermoscopy()
    (copied_samples / DERMOSCOPY_SAMPLE / "metadata.csv").write_text("image,label\nISIC_0000000.jpg,benign\n")
    with pytest.raises(DataError, match="lacks the column"):
        dermoscopy()


# --- transfer helpers on tiny data -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny(breast):
    """32 training images, 20 val and 20 test (stratified), 40 px: every run takes about a second."""
    from medkit.data import subsample

    small = {p: ds.subset(subsample(ds.labels, 20, 0)) for p, ds in breast.items() if p != "train"}
    return transfer.draw_train({"train": breast["train"], **small}, 32, seed=0)


def test_draw_train_keeps_held_out_parts(breast):
    drawn = transfer.draw_train(breast, 32, seed=0)
    assert len(drawn["train"]) == 32 and drawn["val"] is breast["val"] and drawn["test"] is breast["test"]
    small = [transfer.draw_train(breast, 32, seed=s, n_held_out=30) for s in (0, 1)]
    assert len(small[0]["test"]) == 30 and np.array_equal(small[0]["test"].images, small[1]["test"].images)
    with pytest.raises(DataError, match="'train', 'val' and 'test'"):
        transfer.draw_train({"train": breast["train"]}, 8, 0)


def test_probe_scores_val_and_test(tiny):
    out = transfer.probe(tiny, image_size=40)
    assert set(out) == {"val_auc", "test_auc"} and all(0 <= v <= 1 for v in out.values())


def test_fit_frozen_same_steps_at_every_depth_and_frozen_stays_frozen(tiny):
    depths = transfer.group_depths()
    assert depths == [0, 1, 2, 3, 4]
    runs = [transfer.fit_frozen(tiny, k, epochs=1, batch_size=16, image_size=40) for k in (0, 3, 4)]
    assert [r["steps"] for r in runs] == [2, 2, 2]
    assert runs[0]["trainable_params"] > runs[1]["trainable_params"] > runs[2]["trainable_params"] == 1280 * 2 + 2
    assert all(0 <= r[f"{p}_auc"] <= 1 for r in runs for p in ("val", "test"))
    again = transfer.fit_frozen(tiny, 3, epochs=1, batch_size=16, image_size=40)
    assert again["test_auc"] == pytest.approx(runs[1]["test_auc"], abs=1e-6)  # seeded
    with pytest.raises(DataError, match="k must be one of"):
        transfer.fit_frozen(tiny, 5)


def test_choose_lr_picks_on_val_and_sweep_rows(tiny):
    best, runs = transfer.choose_lr(tiny, [1e-3, 1e-2], k=4, epochs=1, batch_size=16, image_size=40)
    assert best == max(runs, key=lambda lr: runs[lr]["val_auc"])
    rows = transfer.freeze_depth_sweep(tiny, [4], seeds=[0, 1], epochs=1, batch_size=16, image_size=40)
    assert [(r["seed"], r["k"]) for r in rows] == [(0, 4), (1, 4)]


def test_transfer_refuses_one_class_data(tiny):
    one = ImageDataset(np.zeros((4, 48, 48), np.uint8), [0, 0, 0, 0], ["benign", "malignant"])
    with pytest.raises(DataError):
        transfer.probe({"train": one, "val": tiny["val"], "test": tiny["test"]}, image_size=40)
