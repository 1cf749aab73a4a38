import json

import numpy as np
import pytest

from medkit.checkpoint import CONFIG_FILE
from medkit.cli import main
from medkit.data import load_splits, sample_path, subsample
from medkit.data import pneumonia as load_pneumonia
from medkit.data.augment import Augment
from medkit.errors import ConfigError, DataError, MedkitError, UnknownNameError, WeightsError
from medkit.evaluation.evaluate import choose_threshold
from medkit.fit import RecipeConfig, evaluate_checkpoint, fit_recipe

FAST = ["--epochs", "2", "--image-size", "48", "--quiet", "--batch-size", "32"]
SMALL = ["--epochs", "3", "--image-size", "48", "--quiet", "--batch-size", "16"]


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
    origins = {row["part"]: row["origin"] for row in config["splits"]["report"]}
    assert "carved" in origins["test"] and metrics["n"] == {"train": 160, "val": 60, "test": 40}
    assert config["image_size"] == 48 and config["channels"] == 1 and config["data"]["path"] == str(tiny.resolve())
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(fitted), "--data", str(tiny)]) == 0
    line = capsys.readouterr().out.strip().splitlines()
    assert len(line) == 1
    result = json.loads(line[0])
    for key in ("auc", "acc", "sensitivity", "specificity", "n"):
        assert key in result
    assert result["n"] == 40 and result["split"] == "test" and 0 <= result["auc"] <= 1 and result["patients"] is None
    for key in ("auc", "acc", "sensitivity", "specificity"):
        low, high = result["ci95"][key]
        assert low <= result[key] <= high
    # the checkpoint's threshold is the one chosen on val, and evaluate uses it
    assert result["threshold"] == pytest.approx(config["threshold"])
    assert evaluate_checkpoint(fitted, tiny, "val")["auc"] == pytest.approx(metrics["val"]["auc"], abs=1e-6)


@pytest.mark.parametrize("cache", [True, False])
def test_fit_is_reproducible(tiny, tmp_path, cache):
    # the uncached path runs every group on every batch: one head-only epoch keeps it short
    cfg = RecipeConfig(image_size=48, epochs=2 if cache else 1, batch_size=32, freeze="top", cache_features=cache)
    a = fit_recipe(tiny, tmp_path / "a", cfg, progress=False, log=lambda *_: None)
    b = fit_recipe(tiny, tmp_path / "b", cfg, progress=False, log=lambda *_: None)
    assert a["val"]["auc"] == b["val"]["auc"] and a["threshold"] == b["threshold"]
    assert a["data"]["cached_groups"] == (3 if cache else 0)


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
    a, b = Augment.xray(seed=1)(x), Augment.xray(seed=1)(x)
    assert torch.equal(a, b) and a.shape == x.shape and 0 <= a.min() and a.max() <= 1


# --- bad input: one clear MedkitError each, and a non-zero exit with one line from the CLI -------------------


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
                                                ("--image-size", "4", ConfigError),
                                                ("--batch-size", "0", ConfigError),
                                                ("--micro-batch", "0", ConfigError),
                                                ("--epochs", "-1", ConfigError),
                                                ("--lr", "-0.1", ConfigError),
                                                ("--image-size", "32", ConfigError)])
def test_unknown_names(tiny, tmp_path, capsys, flag, value, error):
    assert main(["fit", "--data", str(tiny), "--out", str(tmp_path / "o"), *FAST, flag, value]) == 1
    assert value in capsys.readouterr().err
    cast = {"--lr": float, "--image-size": int, "--batch-size": int, "--micro-batch": int,
            "--epochs": int}.get(flag, str)
    cfg = RecipeConfig(**{flag.lstrip("-").replace("-", "_"): cast(value)})
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
    with pytest.raises(DataError, match="classes"):
        evaluate_checkpoint(fitted, path, "val")
    with pytest.raises(DataError, match="not a medkit checkpoint"):
        evaluate_checkpoint(tmp_path, path)
    with pytest.raises(DataError, match="split"):
        evaluate_checkpoint(fitted, path, "holdout")
    assert isinstance(DataError("x"), MedkitError)


# --- image folders: patient-grouped carves, evaluation on the carved test, a test/ folder, another folder -----


def _folder(root, n_patients=16, per_patient=2, seed=0, classes=("NORMAL", "PNEUMONIA"), start=0):
    """Write a tiny Kermany-style class-folder tree of 48 px PNGs (a bright square means pneumonia)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for label, cls in enumerate(classes):
        (root / cls).mkdir(parents=True, exist_ok=True)
        for p in range(start, start + n_patients):
            for k in range(per_patient):
                image = rng.integers(0, 80, (48, 48)).astype(np.uint8)
                if label:
                    image[12:36, 12:36] += 150
                name = f"person{p}_bacteria_{k}.png" if label else f"IM-{p:04d}-{k:04d}.png"
                Image.fromarray(image).save(root / cls / name)
    return root


@pytest.fixture(scope="module")
def folder_fit(tmp_path_factory):
    """A fit on a class-folder tree of 32 patients (64 images): (data folder, checkpoint, stdout, stderr)."""
    import subprocess
    import sys

    data = _folder(tmp_path_factory.mktemp("xrays") / "train")
    out = tmp_path_factory.mktemp("folder_ckpt") / "ck"
    proc = subprocess.run([sys.executable, "-m", "medkit.cli", "fit", "--data", str(data), "--out", str(out), *SMALL],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return data, out, proc.stdout, proc.stderr


def test_fit_on_a_folder_carves_by_patient_and_reports_it(folder_fit):
    data, out, stdout, stderr = folder_fit
    lines = stdout.strip().splitlines()
    assert len(lines) == 1  # stdout is one JSON line; the report and progress went to stderr
    summary = json.loads(lines[0])
    assert summary["patients"]["train"] + summary["patients"]["val"] + summary["patients"]["test"] == 32
    assert "patients" in stderr and "patient-grouped" in stderr
    metrics = json.loads((out / "metrics.json").read_text())
    config = json.loads((out / CONFIG_FILE).read_text())
    assert metrics["splits"] == config["splits"] and config["splits"]["group_kind"] == "patient"
    assert {r["part"] for r in config["splits"]["report"]} == {"train", "val", "test"}
    assert config["data"]["cached_groups"] == 3 and len(config["data"]["fingerprint"]) == 64
    assert metrics["val"]["auc"] > 0.9  # the bright square is easy: the cached top group did learn


def test_evaluate_scores_the_carved_test_part(folder_fit, capsys):
    data, out, _, _ = folder_fit
    config = json.loads((out / CONFIG_FILE).read_text())
    test_row = next(r for r in config["splits"]["report"] if r["part"] == "test")
    result = evaluate_checkpoint(out, data)
    assert result["split"] == "test" and result["trained_on_this_data"]
    assert result["n"] == test_row["images"] and result["patients"] == test_row["groups"]
    assert result["auc"] > 0.9 and set(result["ci95"]) == {"auc", "acc", "sensitivity", "specificity"}
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(out), "--data", str(data)]) == 0
    captured = capsys.readouterr()
    assert len(captured.out.strip().splitlines()) == 1 and "auc" in captured.err and "[" in captured.err


def test_evaluate_on_another_folder_scores_every_image(folder_fit, tmp_path):
    _, out, _, _ = folder_fit
    other = _folder(tmp_path / "site_b", n_patients=6, seed=5, start=100)
    result = evaluate_checkpoint(out, other)
    assert result["split"] == "all" and result["n"] == 24 and result["patients"] == 12
    assert not result["trained_on_this_data"] and result["auc"] > 0.9
    # a folder with its own test/ subfolder: that part is scored, the rest ignored
    split = tmp_path / "split_layout"
    _folder(split / "train", n_patients=4, seed=6)
    _folder(split / "test", n_patients=5, seed=7, start=50)
    result = evaluate_checkpoint(out, split)
    assert result["split"] == "test" and result["n"] == 20


def test_evaluate_refuses_other_class_names(folder_fit, tmp_path, capsys):
    _, out, _, _ = folder_fit
    other = _folder(tmp_path / "other", n_patients=3, classes=("healthy", "sick"))
    with pytest.raises(DataError, match="healthy"):
        evaluate_checkpoint(out, other)
    assert main(["evaluate", "--checkpoint", str(out), "--data", str(other)]) != 0
    assert "NORMAL" in capsys.readouterr().err


def test_fit_refuses_a_non_empty_out_unless_overwrite(folder_fit, tmp_path, capsys):
    data, _, _, _ = folder_fit
    out = tmp_path / "busy"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    cfg = RecipeConfig(image_size=48, epochs=1, batch_size=16, freeze="head")
    with pytest.raises(ConfigError, match="not empty"):
        fit_recipe(data, out, cfg, progress=False, log=lambda *_: None)
    assert main(["fit", "--data", str(data), "--out", str(out), *SMALL]) != 0
    assert "--overwrite" in capsys.readouterr().err and (out / "notes.txt").read_text() == "keep me"
    fit_recipe(data, out, cfg, progress=False, log=lambda *_: None, overwrite=True)
    assert (out / CONFIG_FILE).exists()


def test_group_by_patient_needs_patient_keys(tiny, tmp_path, capsys):
    assert main(["fit", "--data", str(tiny), "--out", str(tmp_path / "o"), *FAST, "--group-by", "patient"]) != 0
    assert "patient" in capsys.readouterr().err and not (tmp_path / "o").exists()
