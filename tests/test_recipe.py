import json
from pathlib import Path

import numpy as np
import pytest
import torch
from folders import kermany_folder

from medkit.base.errors import ConfigError, DataError, MedkitError, UnknownNameError, WeightsError
from medkit.cli import main
from medkit.core.checkpoint import CONFIG_FILE
from medkit.data import load_splits, sample_path, subsample
from medkit.data import pneumonia as load_pneumonia
from medkit.data.augment import Augment
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
    with pytest.raises(ConfigError, match="edited after training"):  # settings_sha256 binds backbone to weights
        evaluate_checkpoint(other, tiny)
    config.pop("settings_sha256")  # edited by someone who knew to drop the digest: the weights still do not fit
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


@pytest.fixture(scope="module")
def folder_fit(tmp_path_factory):
    """A fit on a class-folder tree of 32 patients (64 images): (data folder, checkpoint, stdout, stderr)."""
    import subprocess
    import sys

    data = kermany_folder(tmp_path_factory.mktemp("xrays") / "train")
    out = tmp_path_factory.mktemp("folder_ckpt") / "ck"
    loud = [flag for flag in SMALL if flag != "--quiet"]  # --quiet would silence the split report this reads
    proc = subprocess.run([sys.executable, "-m", "medkit.cli", "fit", "--data", str(data), "--out", str(out), *loud],
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
    other = kermany_folder(tmp_path / "site_b", n_patients=6, seed=5, start=100)
    result = evaluate_checkpoint(out, other)
    assert result["split"] == "all" and result["n"] == 24 and result["patients"] == 12
    assert not result["trained_on_this_data"] and result["auc"] > 0.9
    # a folder with its own test/ subfolder: that part is scored, the rest ignored
    split = tmp_path / "split_layout"
    kermany_folder(split / "train", n_patients=4, seed=6)
    kermany_folder(split / "test", n_patients=5, seed=7, start=50)
    result = evaluate_checkpoint(out, split)
    assert result["split"] == "test" and result["n"] == 20


def test_evaluate_refuses_other_class_names(folder_fit, tmp_path, capsys):
    _, out, _, _ = folder_fit
    other = kermany_folder(tmp_path / "other", n_patients=3, classes=("healthy", "sick"))
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
    assert (out / CONFIG_FILE).exists() and (out / "notes.txt").read_text() == "keep me"  # carried into the new folder


def test_a_fit_is_one_commit_and_a_failing_gate_step_leaves_the_previous_folder(folder_fit, tmp_path, monkeypatch):
    import shutil

    import medkit.base.atomic as atomic
    from medkit.base.cache import sha256sum
    from medkit.deploy.gate import GATE_FILE, SanityGate

    data, fitted, _, _ = folder_fit
    ck = tmp_path / "ck"
    shutil.copytree(fitted, ck)
    before = {p.name: p.read_bytes() for p in ck.iterdir()}
    assert {CONFIG_FILE, "model.pt", "metrics.json", GATE_FILE} <= set(before)
    cfg = RecipeConfig(image_size=48, epochs=1, batch_size=16, freeze="head", seed=3)

    def disk_gone(self, path, model_sha256=""):
        raise OSError(5, "Input/output error")

    with monkeypatch.context() as m:
        m.setattr(SanityGate, "save", disk_gone)
        with pytest.raises(DataError, match="Cannot write"):
            fit_recipe(data, ck, cfg, progress=False, log=lambda *_: None, overwrite=True)
    assert {p.name: p.read_bytes() for p in ck.iterdir()} == before  # old weights, metrics and gate, all of them
    assert [p.name for p in tmp_path.iterdir()] == ["ck"]  # no staged folder left beside it

    writes = []
    real = atomic.write_bytes
    monkeypatch.setattr(atomic, "write_bytes", lambda path, data: writes.append(Path(path).name) or real(path, data))
    metrics = fit_recipe(data, ck, cfg, progress=False, log=lambda *_: None, overwrite=True)
    assert writes.count("metrics.json") == 1  # written once, gate line included
    config = json.loads((ck / CONFIG_FILE).read_text())
    assert config["weights_sha256"] != json.loads(before[CONFIG_FILE])["weights_sha256"]
    assert json.loads((ck / "metrics.json").read_text())["gate"] == metrics["gate"] and metrics["gate"]["file"] == GATE_FILE
    assert SanityGate.load(ck / GATE_FILE, model_sha256=sha256sum(ck / "model.pt")).has_reference  # tied to new weights


def _dicom_tree(pngs, root, modality="DX", body_part="CHEST"):
    """Write each PNG of a class-folder tree as an 8-bit MONOCHROME2 DICOM of `modality` and `body_part`."""
    from PIL import Image
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    for png in sorted(pngs.rglob("*.png")):
        pixels = np.asarray(Image.open(png))
        meta = FileMetaDataset()
        meta.TransferSyntaxUID, meta.MediaStorageSOPClassUID = ExplicitVRLittleEndian, "1.2.840.10008.5.1.4.1.1.1.1"
        meta.MediaStorageSOPInstanceUID = generate_uid()
        ds = Dataset()
        ds.file_meta, ds.SOPClassUID, ds.SOPInstanceUID = meta, meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
        ds.Modality, ds.BodyPartExamined, ds.PatientID = modality, body_part, png.stem
        ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PhotometricInterpretation = *pixels.shape, 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
        ds.PixelData = pixels.tobytes()
        out = root / png.relative_to(pngs).with_suffix(".dcm")
        out.parent.mkdir(parents=True, exist_ok=True)
        ds.save_as(out, enforce_file_format=True)
    return root


def test_fit_on_dicom_records_the_modality_and_body_part_export_and_predict_check(tmp_path):
    from medkit.core.checkpoint import CheckpointConfig
    from medkit.deploy.onnx import checkpoint_export_args

    data = _dicom_tree(kermany_folder(tmp_path / "png", n_patients=8), tmp_path / "dicom")
    cfg = RecipeConfig(image_size=48, epochs=1, batch_size=16, freeze="head")
    lines = []
    fit_recipe(data, tmp_path / "ck", cfg, progress=False, log=lines.append, audit=False)
    config = json.loads((tmp_path / "ck" / CONFIG_FILE).read_text())
    assert (config["modalities"], config["body_parts"]) == (["DX"], ["CHEST"])
    assert any("trained on DICOM DX images of CHEST" in line for line in lines)
    args = checkpoint_export_args(tmp_path / "ck", CheckpointConfig.from_dict(config))
    assert (args["modalities"], args["body_parts"]) == (["DX"], ["CHEST"])  # not the kit's CR/DX chest default
    # PNG input records no DICOM scope: export keeps its defaults
    fit_recipe(tmp_path / "png", tmp_path / "ck_png", cfg, progress=False, log=lambda *_: None, audit=False)
    assert "modalities" not in json.loads((tmp_path / "ck_png" / CONFIG_FILE).read_text())


def test_group_by_patient_needs_patient_keys(tiny, tmp_path, capsys):
    assert main(["fit", "--data", str(tiny), "--out", str(tmp_path / "o"), *FAST, "--group-by", "patient"]) != 0
    assert "patient" in capsys.readouterr().err and not (tmp_path / "o").exists()


# --- issue 28: internal vs external validation, records in the checkpoint, the device ---------------------------


def test_fit_labels_its_val_internal_and_records_it(folder_fit):
    from medkit.core.train import pick_device

    data, out, stdout, _ = folder_fit
    summary = json.loads(stdout)
    assert summary["val"]["role"] == "internal" and summary["val"]["part"] == "val"
    assert summary["device"] == pick_device("auto")
    metrics = json.loads((out / "metrics.json").read_text())
    config = json.loads((out / CONFIG_FILE).read_text())
    assert metrics["val"]["role"] == "internal" and metrics["val"]["part"] == "val"
    (entry,) = config["validation"]
    val_row = next(r for r in config["splits"]["report"] if r["part"] == "val")
    assert entry["role"] == "internal" and entry["part"] == "val" and entry["data"] == str(data.resolve())
    assert entry["fingerprint"] == config["data"]["fingerprint"] and entry["n"] == val_row["images"]
    assert entry["patients"] == val_row["groups"] and entry["threshold"] == config["threshold"]
    assert entry["threshold_chosen_on_this_part"] and entry["auc"] == pytest.approx(metrics["val"]["auc"])
    low, high = entry["ci95"]["specificity"]
    assert low <= entry["specificity"] <= high and entry["date"][:2] == "20"


def test_internal_too_scores_both_roles_side_by_side_and_records_them(folder_fit, tmp_path, capsys):
    import shutil

    from medkit.core.checkpoint import load_checkpoint
    from medkit.deploy import ModelCard
    from medkit.deploy.modelcard import NO_EXTERNAL

    data, fitted, _, _ = folder_fit
    ck = tmp_path / "ck"
    shutil.copytree(fitted, ck)  # --record writes into the checkpoint: keep the module's one clean
    other = kermany_folder(tmp_path / "site_b", n_patients=6, seed=5, start=100)
    before = json.loads((ck / CONFIG_FILE).read_text())
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(ck), "--data", str(other), "--internal-too", "--record"]) == 0
    captured = capsys.readouterr()
    (line,) = captured.out.strip().splitlines()
    result = json.loads(line)
    internal, external, gap = result["internal"], result["external"], result["gap"]
    test_row = next(r for r in before["splits"]["report"] if r["part"] == "test")
    assert internal["role"] == "internal" and internal["split"] == "test" and internal["n"] == test_row["images"]
    assert internal["data"] == str(data.resolve()) and internal["fingerprint"] == before["data"]["fingerprint"]
    assert external["role"] == "external" and external["split"] == "all" and external["n"] == 24
    assert external["patients"] == 12 and external["data"] == str(other.resolve())
    for key in ("auc", "acc", "sensitivity", "specificity"):
        assert gap[key] == pytest.approx(external[key] - internal[key], abs=1e-5)
        assert gap["ci95"][key][0] <= gap[key] <= gap["ci95"][key][1]
    # the table: metric, internal [CI], external [CI], gap, on stderr
    table = captured.err[captured.err.index("metric"):]
    assert "internal [95% CI]" in table and "external [95% CI]" in table and "gap" in table
    auc_row = next(r for r in table.splitlines() if r.startswith("auc"))
    assert f"{internal['auc']:.3f}" in auc_row and f"{external['auc']:.3f}" in auc_row
    # recorded: fit's val, then the internal test part and the external folder; weights untouched, still loads
    config = json.loads((ck / CONFIG_FILE).read_text())
    assert config["weights_sha256"] == before["weights_sha256"]
    assert [(r["role"], r["part"]) for r in config["validation"]] == [("internal", "val"), ("internal", "test"),
                                                                      ("external", "all")]
    ext = config["validation"][-1]
    assert ext["data"] == str(other.resolve()) and len(ext["fingerprint"]) == 64 and ext["n"] == 24
    assert ext["patients"] == 12 and ext["threshold"] == pytest.approx(config["threshold"])
    assert ext["auc"] == pytest.approx(external["auc"], abs=1e-6) and set(ext["ci95"]) >= {"auc", "specificity"}
    load_checkpoint(ck)  # sha256 intact: a mismatch would raise WeightsError
    assert evaluate_checkpoint(ck, other, n_boot=50)["auc"] == pytest.approx(external["auc"], abs=1e-6)
    # the model card names the external source in its own section; the unrecorded checkpoint's says there is none
    card = ModelCard.from_checkpoint(ck, intended_use="Tests only.").to_markdown()
    external_part = card[card.index("### External validation"):]
    assert str(other.resolve()) in external_part and NO_EXTERNAL not in card
    assert str(data.resolve()) in card[card.index("### Internal validation"):card.index("### External validation")]
    assert NO_EXTERNAL in ModelCard.from_checkpoint(fitted, intended_use="Tests only.").to_markdown()


def test_internal_too_without_the_training_data_still_reports_external(folder_fit, tmp_path, capsys):
    import shutil

    from medkit.base.atomic import write_json

    _, fitted, _, _ = folder_fit
    ck = tmp_path / "ck"
    shutil.copytree(fitted, ck)
    config = json.loads((ck / CONFIG_FILE).read_text())
    gone = tmp_path / "moved_away"
    write_json(ck / CONFIG_FILE, {**config, "data": {**config["data"], "path": str(gone)}})
    other = kermany_folder(tmp_path / "site_b", n_patients=4, seed=5, start=100)
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(ck), "--data", str(other), "--internal-too"]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert result["internal"]["available"] is False and str(gone) in result["internal"]["reason"]
    assert result["gap"] is None and result["external"]["role"] == "external" and result["external"]["n"] == 16
    assert "not scored" in captured.err and str(gone) in captured.err


def test_internal_too_refuses_the_training_source_as_external(folder_fit, capsys):
    data, fitted, _, _ = folder_fit
    assert main(["evaluate", "--checkpoint", str(fitted), "--data", str(data), "--internal-too"]) == 1
    assert "trained on" in capsys.readouterr().err
    assert evaluate_checkpoint(fitted, data, n_boot=50)["role"] == "internal"


def _no_gpu(monkeypatch, cuda=False, mps=False):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)


@pytest.mark.parametrize("cuda, mps, expected", [(False, False, "cpu"), (True, False, "cuda"), (False, True, "mps"),
                                                 (True, True, "cuda")])
def test_pick_device_auto_prefers_cuda_then_mps(monkeypatch, cuda, mps, expected):
    from medkit.core.train import pick_device
    from medkit.course import profiles

    _no_gpu(monkeypatch, cuda, mps)
    assert pick_device("auto") == expected and pick_device("cpu") == "cpu"
    assert profiles.resolve("full", "02").device == expected and profiles.resolve("smoke", "02").device == "cpu"


def test_unavailable_or_unknown_device_is_refused(monkeypatch, tiny, tmp_path, capsys):
    from medkit.core.train import pick_device

    _no_gpu(monkeypatch)
    with pytest.raises(ConfigError, match="'cuda' is not available.*cpu"):
        pick_device("cuda")
    with pytest.raises(ConfigError, match="mps"):
        pick_device("mps")
    with pytest.raises(ConfigError, match="tpu"):
        pick_device("tpu")
    with pytest.raises(ConfigError, match="gpu"):
        RecipeConfig(device="gpu").check()
    with pytest.raises(ConfigError, match="cuda"):  # refused before any data is read or anything written
        fit_recipe(tiny, tmp_path / "o", RecipeConfig(image_size=48, epochs=1, device="cuda"), progress=False)
    assert not (tmp_path / "o").exists()
    assert main(["fit", "--data", str(tiny), "--out", str(tmp_path / "o"), *FAST, "--device", "cuda"]) == 1
    assert "not available" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["evaluate", "--checkpoint", str(tmp_path), "--data", str(tiny), "--device", "tpu"])
    assert exc.value.code == 2


def test_explicit_cpu_device_on_the_cached_path(tiny, tmp_path):
    # cache_activations runs the frozen part on the device and keeps the cache in CPU memory
    cfg = RecipeConfig(image_size=48, epochs=2, batch_size=32, freeze="top", device="cpu")
    metrics = fit_recipe(tiny, tmp_path / "a", cfg, progress=False, log=lambda *_: None)
    assert metrics["device"] == "cpu" and metrics["data"]["cached_groups"] == 3 and metrics["recipe"]["device"] == "cpu"
    result = evaluate_checkpoint(tmp_path / "a", tiny, "val", device="cpu", n_boot=50)
    assert result["device"] == "cpu" and result["auc"] == pytest.approx(metrics["val"]["auc"], abs=1e-6)


def test_soup_is_the_mean_of_the_seeds_runs(tiny, tmp_path):
    """--soup 2 stores the element-wise mean of the seed-0 and seed-1 runs' weights, and differs from either."""
    from medkit.core.checkpoint import load_checkpoint

    base = dict(image_size=48, epochs=2, batch_size=32, freeze="top")
    for name, cfg in (("s0", RecipeConfig(**base)), ("s1", RecipeConfig(**base, seed=1)),
                      ("soup", RecipeConfig(**base, soup=2))):
        fit_recipe(tiny, tmp_path / name, cfg, progress=False, log=lambda *_: None)
    states = {name: load_checkpoint(tmp_path / name)[0].state_dict() for name in ("s0", "s1", "soup")}
    weight = "blocks.6.0.conv_pw.weight"  # in the top group: trained, so the seeds differ there
    assert not torch.equal(states["s0"][weight], states["s1"][weight])
    mean = (states["s0"][weight] + states["s1"][weight]) / 2
    torch.testing.assert_close(states["soup"][weight], mean, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(states["soup"][weight], states["s0"][weight])
    with pytest.raises(ConfigError, match="soup"):
        RecipeConfig(soup=0).check()


def test_the_contrast_step_is_kept_with_the_checkpoint_and_applied_where_it_reads_images(folder_fit):
    """fit's default CLAHE is recorded, evaluate scores through it, and a deployed model's file reader applies it."""
    from types import SimpleNamespace

    from medkit.core.checkpoint import load_checkpoint
    from medkit.core.train import predict
    from medkit.data import BatchLoader, load_source
    from medkit.data.contrast import contrast_of, equalize_contrast, equalize_image
    from medkit.data.images import load_image
    from medkit.deploy.files import read_for_model
    from medkit.fit.single_label import score_checkpoint
    from medkit.models import get_spec

    data, out, _, _ = folder_fit
    model, config = load_checkpoint(out)
    assert contrast_of(config) == "clahe" == RecipeConfig().contrast
    _, (labels, probs) = score_checkpoint(out, data, "test", device="cpu")
    ds = load_source(data, image_size=48, carve=True).splits["test"]
    pre = get_spec(config["backbone"]).preprocess(48)
    expected = {name: predict(model, BatchLoader(ds.__class__(equalize_contrast(ds.images, name), ds.labels),
                                                 32, preprocess=pre))[0] for name in ("clahe", "none")}
    np.testing.assert_allclose(probs, expected["clahe"], atol=1e-5)
    assert not np.allclose(probs, expected["none"], atol=1e-3)  # the step changes what the model sees
    path = sorted((data / "NORMAL").glob("*.png"))[0]
    predictor = SimpleNamespace(meta={"contrast": "clahe"}, channels=1, input_size=48)
    np.testing.assert_array_equal(read_for_model(path, predictor)[0], equalize_image(load_image(path), "clahe"))
    with pytest.raises(ConfigError, match="contrast"):
        RecipeConfig(contrast="gamma").check()
