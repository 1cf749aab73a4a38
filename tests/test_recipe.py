import json

import numpy as np
import pytest

from medkit.checkpoint import CONFIG_FILE
from medkit.cli import main
from medkit.data import pneumonia as load_pneumonia
from medkit.data import sample_path, subsample
from medkit.errors import ConfigError, DataError, MedkitError, UnknownNameError, WeightsError
from medkit.recipe import RecipeConfig, XrayAugment, choose_threshold, evaluate_checkpoint, fit_recipe, load_splits

FAST = ["--epochs", "2", "--image-size", "48", "--quiet", "--batch-size", "32"]


def _write(path, **splits):
    np.savez(path, **{f"{k}_{part}": v for k, (images, labels) in splits.items()
                      for part, v in (("images", images), ("labels", labels))})
    return path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, pneumonia):
    """A train+val-only PneumoniaMNIST file: 200 train, 60 val images."""
    train, val = pneumonia["train"], pneumonia["val"]
    t, v = subsample(train.labels, 200, 1), subsample(val.labels, 60, 1)
    path = tmp_path_factory.mktemp("data") / "tiny.npz"
    return _write(path, train=(train.images[t], train.labels[t, None]), val=(val.images[v], val.labels[v, None]))


@pytest.fixture(scope="module")
def fitted(tiny, tmp_path_factory):
    out = tmp_path_factory.mktemp("ckpt")
    assert main(["fit", "--data", str(tiny), "--out", str(out), *FAST]) == 0
    return out


def test_carved_test_is_the_lessons_held_out_set():
    splits, source = load_splits(sample_path("pneumoniamnist_28_trainval.npz"))
    lessons = load_pneumonia()
    assert len(splits["test"]) == 624 and "carved" in source["test"]
    assert np.array_equal(splits["test"].images, lessons["test"].images)
    assert np.array_equal(splits["train"].images, lessons["train"].images)


def test_splits_never_overlap(tiny):
    splits, _ = load_splits(tiny)
    assert len(splits["train"]) + len(splits["test"]) == 200 and len(splits["test"]) == 40
    flat = {k: {im.tobytes() for im in ds.images} for k, ds in splits.items()}
    assert not flat["train"] & flat["test"]


def test_file_without_val_carves_one(tmp_path, pneumonia):
    ds = pneumonia["val"]
    path = _write(tmp_path / "t.npz", train=(ds.images, ds.labels))
    splits, source = load_splits(path)
    assert sum(len(s) for s in splits.values()) == len(ds) and "carved" in source["val"]


def test_fit_then_evaluate_cli(fitted, tiny, capsys):
    config = json.loads((fitted / CONFIG_FILE).read_text())
    metrics = json.loads((fitted / "metrics.json").read_text())
    assert config["backbone"] == "efficientnet_lite0" and config["threshold"] == metrics["threshold"]
    assert "carved" in config["splits"]["test"] and metrics["n"] == {"train": 160, "val": 60, "test": 40}
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(fitted), "--data", str(tiny)]) == 0
    line = capsys.readouterr().out.strip().splitlines()
    assert len(line) == 1
    result = json.loads(line[0])
    for key in ("auc", "acc", "sensitivity", "specificity", "n"):
        assert key in result
    assert result["n"] == 40 and result["split"] == "test" and 0 <= result["auc"] <= 1
    # the checkpoint's threshold is the one chosen on val, and evaluate uses it
    assert result["threshold"] == pytest.approx(config["threshold"])
    assert evaluate_checkpoint(fitted, tiny, "val")["auc"] == pytest.approx(metrics["val"]["auc"], abs=1e-6)


def test_fit_is_reproducible(tiny, tmp_path):
    cfg = RecipeConfig(image_size=48, epochs=1, batch_size=32, freeze="head")
    a = fit_recipe(tiny, tmp_path / "a", cfg, progress=False, log=lambda *_: None)
    b = fit_recipe(tiny, tmp_path / "b", cfg, progress=False, log=lambda *_: None)
    assert a["val"]["auc"] == b["val"]["auc"] and a["threshold"] == b["threshold"]


def test_multiclass_rgb_file(tmp_path, capsys):
    rng = np.random.default_rng(0)
    labels = np.tile(np.arange(3), 30)  # interleaved, so every split holds every class
    images = rng.integers(0, 60, (90, 28, 28, 3)).astype(np.uint8)
    images[labels == 1, :14] += 150  # a learnable signal per class
    images[labels == 2, :, :14] += 150
    path = _write(tmp_path / "rgb.npz", train=(images[:60], labels[:60, None]), val=(images[60:75], labels[60:75, None]),
                  test=(images[75:], labels[75:, None]))
    out = tmp_path / "ck"
    assert main(["fit", "--data", str(path), "--out", str(out), "--freeze", "all", *FAST]) == 0
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(out), "--data", str(path), "--split", "test"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["n"] == 15 and {"auc", "sensitivity", "specificity"} <= set(result)


def test_choose_threshold_uses_youden():
    labels = np.array([0, 0, 0, 1, 1, 1])
    probs = np.array([0.1, 0.2, 0.6, 0.7, 0.8, 0.9])
    assert choose_threshold(labels, probs) == pytest.approx(0.7)
    assert choose_threshold(labels, probs, "0.5") == 0.5
    with pytest.raises(DataError):
        choose_threshold(labels, probs, "f1")


def test_augment_is_seeded_and_in_range():
    import torch

    x = torch.rand(4, 1, 28, 28)
    a, b = XrayAugment(seed=1)(x), XrayAugment(seed=1)(x)
    assert torch.equal(a, b) and a.shape == x.shape and 0 <= a.min() and a.max() <= 1


# --- bad input: one clear MedkitError each, and exit code 2 with one line from the CLI -------------------


def test_file_without_expected_keys(tmp_path, capsys):
    path = tmp_path / "bad.npz"
    np.savez(path, x=np.zeros((4, 28, 28), np.uint8), y=np.zeros(4))
    with pytest.raises(DataError, match="train_images"):
        load_splits(path)
    assert main(["fit", "--data", str(path), "--out", str(tmp_path / "o"), *FAST]) == 1
    err = capsys.readouterr().err
    assert "medkit fit: error:" in err and "bad.npz" in err


@pytest.mark.parametrize("labels", [np.array([0, 1, 5] * 20), np.array([0, 1, -1] * 20), np.zeros(60)])
def test_labels_out_of_range(tmp_path, labels):
    images = np.zeros((60, 28, 28), np.uint8)
    path = _write(tmp_path / "l.npz", train=(images, labels[:, None]), val=(images[:9], labels[:9, None]))
    with pytest.raises(DataError):
        fit_recipe(path, tmp_path / "o", RecipeConfig(epochs=1, image_size=48), progress=False)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_splits(tmp_path / "nope.npz")


@pytest.mark.parametrize("flag, value, error", [("--backbone", "alexnet", UnknownNameError),
                                                ("--freeze", "sometimes", UnknownNameError),
                                                ("--freeze", "freeze_to:9", UnknownNameError),
                                                ("--image-size", "4", DataError),
                                                ("--image-size", "32", ConfigError)])
def test_unknown_names(tiny, tmp_path, capsys, flag, value, error):
    assert main(["fit", "--data", str(tiny), "--out", str(tmp_path / "o"), *FAST, flag, value]) == 1
    assert value in capsys.readouterr().err
    cfg = RecipeConfig(**{flag.lstrip("-").replace("-", "_"): int(value) if value.isdigit() else value})
    with pytest.raises(error):
        fit_recipe(tiny, tmp_path / "o", cfg, progress=False)
    assert not (tmp_path / "o").exists()  # refused before any training or writing


def test_checkpoint_from_another_backbone(fitted, tiny, tmp_path, capsys):
    with pytest.raises(WeightsError, match="efficientnet_lite0"):
        evaluate_checkpoint(fitted, tiny, backbone="resnet18")
    assert main(["evaluate", "--checkpoint", str(fitted), "--data", str(tiny), "--backbone", "resnet18"]) == 1
    # a config that names another backbone than the weights it sits next to
    import shutil

    other = tmp_path / "other"
    shutil.copytree(fitted, other)
    config = json.loads((other / CONFIG_FILE).read_text())
    (other / CONFIG_FILE).write_text(json.dumps({**config, "backbone": "resnet18"}))
    with pytest.raises(WeightsError, match="resnet18"):
        evaluate_checkpoint(other, tiny)


def test_evaluate_refuses_wrong_data(fitted, tmp_path):
    labels = np.repeat(np.arange(3), 20)
    path = _write(tmp_path / "three.npz", train=(np.zeros((60, 28, 28), np.uint8), labels[:, None]),
                  val=(np.zeros((6, 28, 28), np.uint8), labels[::10, None]))
    with pytest.raises(DataError, match="out of range"):
        evaluate_checkpoint(fitted, path, "val")
    with pytest.raises(DataError, match="not a medkit checkpoint"):
        evaluate_checkpoint(tmp_path, path)
    with pytest.raises(DataError, match="split"):
        evaluate_checkpoint(fitted, path, "holdout")
    assert isinstance(DataError("x"), MedkitError)
