"""`medkit export` and `medkit predict` against hostile targets: nothing they read is ever replaced, a failed
export changes nothing, RGB and larger models export at their own size, foreign or broken model files are refused."""

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from medkit.cli import main
from medkit.core.checkpoint import CONFIG_FILE, WEIGHTS_FILE, save_checkpoint
from medkit.deploy import DriftMonitor, OnnxPredictor, drift_path, sidecar_path


def _checkpoint(path, channels=1, input_size=28, data=None):
    from medkit.models import get_backbone

    torch.manual_seed(0)
    model = get_backbone("resnet18", weights=None, num_classes=2)
    extra = {"data": {"path": str(data), "fingerprint": "f"}} if data else {}  # the form `medkit fit` writes
    return save_checkpoint(path, model, image_size=48, classes=["a", "b"], input_size=input_size, channels=channels,
                           **extra)


@pytest.fixture(scope="module")
def exported_dir(tmp_path_factory):
    """A checkpoint and its verified export (with drift reference), made once; tests work on copies."""
    root = tmp_path_factory.mktemp("exported")
    ckpt = _checkpoint(root / "ckpt")
    assert main(["export", "--checkpoint", str(ckpt), "--out", str(root / "model.onnx"), "--n-verify", "16"]) == 0
    return root


@pytest.fixture
def exported(exported_dir, tmp_path):
    shutil.copytree(exported_dir, tmp_path, dirs_exist_ok=True)
    return tmp_path / "ckpt", tmp_path / "model.onnx"


def _bytes(paths):
    return {p.name: p.read_bytes() for p in paths if p.exists()}


def test_rgb_64px_model_exports_and_verifies_at_its_own_size(tmp_path, capsys):
    rng = np.random.default_rng(0)
    data = tmp_path / "rgb64.npz"
    np.savez(data, train_images=rng.integers(0, 256, (40, 64, 64, 3), dtype=np.uint8),
             train_labels=rng.integers(0, 2, (40, 1)), val_images=rng.integers(0, 256, (70, 64, 64, 3), dtype=np.uint8),
             val_labels=rng.integers(0, 2, (70, 1)))
    ckpt = _checkpoint(tmp_path / "ckpt", channels=3, input_size=64, data=data)
    out = tmp_path / "rgb.onnx"
    assert main(["export", "--checkpoint", str(ckpt), "--out", str(out), "--n-verify", "16"]) == 0
    assert "input uint8 3x64x64" in capsys.readouterr().out
    predictor = OnnxPredictor(out)
    assert (predictor.channels, predictor.input_size) == (3, 64)
    picture = tmp_path / "p.png"
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(picture)
    assert len(predictor.predict_files([picture])) == 1
    # the training file gone and no --images: no guessing with 28 px grey images
    data.unlink()
    assert main(["export", "--checkpoint", str(ckpt), "--out", str(tmp_path / "again.onnx")]) == 1
    assert "Pass --images" in capsys.readouterr().err
    assert main(["export", "--checkpoint", str(ckpt), "--out", str(tmp_path / "again.onnx"), "--images",
                 str(picture), "--no-drift"]) == 0


def test_export_never_overwrites_its_inputs(tmp_path, pneumonia, capsys):
    ckpt = _checkpoint(tmp_path / "ckpt")
    before = _bytes([ckpt / CONFIG_FILE, ckpt / WEIGHTS_FILE])
    images = tmp_path / "data.npz"
    np.savez(images, test_images=pneumonia["test"].images[:80], test_labels=pneumonia["test"].labels[:80, None])
    data_before = images.read_bytes()
    for out, message in ((ckpt / WEIGHTS_FILE, "does not end in .onnx"), (ckpt / "config", "does not end in .onnx"),
                         (images, "does not end in .onnx"), (ckpt, "is a folder")):
        assert main(["export", "--checkpoint", str(ckpt), "--out", str(out), "--images", str(images)]) == 1
        assert message in capsys.readouterr().err
    assert main(["export", "--checkpoint", str(ckpt), "--out", str(ckpt / "model.onnx"), "--images", str(images),
                 "--n-verify", "16"]) == 0  # into the checkpoint folder, beside model.pt: fine
    assert _bytes([ckpt / CONFIG_FILE, ckpt / WEIGHTS_FILE]) == before and images.read_bytes() == data_before
    png = tmp_path / "x.onnx.json"  # an input that would be the sidecar of --out x.onnx
    png.write_bytes(b"\x89PNG not really")
    assert main(["export", "--checkpoint", str(ckpt), "--out", str(tmp_path / "x.onnx"), "--images", str(png)]) == 1
    assert "would overwrite the input" in capsys.readouterr().err and png.read_bytes() == b"\x89PNG not really"


def test_failed_verification_changes_nothing(exported, tmp_path, capsys, monkeypatch):
    from medkit.deploy.onnx import Verification

    ckpt, out = exported
    files = [out, sidecar_path(out), drift_path(out)]
    before = _bytes(files)
    assert len(before) == 3
    monkeypatch.setattr(Verification, "ok", property(lambda self: False))  # the parity check fails
    assert main(["export", "--checkpoint", str(ckpt), "--out", str(out), "--n-verify", "16"]) == 1
    assert "nothing was written" in capsys.readouterr().out
    assert _bytes(files) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["ckpt", *before])  # no staged leftovers
    OnnxPredictor(out).monitor()  # the old model and its drift reference still fit together


def test_foreign_or_broken_model_files_are_refused_by_predict(exported, tmp_path, pneumonia, capsys):
    ckpt, out = exported
    image = tmp_path / "x.png"
    Image.fromarray(pneumonia["test"].images[0]).save(image)
    cases = {
        "text.onnx": (b"this is not onnx", None, "is not a readable ONNX file"),
        "badjson.onnx": (out.read_bytes(), "{oops", "is not valid JSON"),
        "partial.onnx": (out.read_bytes(), json.dumps({"input_size": 28}), "lacks"),
    }
    for name, (content, sidecar, message) in cases.items():
        target = tmp_path / name
        target.write_bytes(content)
        if sidecar is None:
            shutil.copy(sidecar_path(out), sidecar_path(target))
        else:
            sidecar_path(target).write_text(sidecar)
        assert main(["predict", "--model", str(target), str(image)]) == 1, name
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, (name, err)
    # another model's ONNX file under this model's sidecar
    from medkit.deploy import export_onnx
    from medkit.models import get_backbone

    other = export_onnx(get_backbone("resnet18", weights=None, num_classes=2), tmp_path / "o.onnx", input_size=28,
                        image_size=48, classes=["a", "b"])
    shutil.copy(other, tmp_path / "swapped.onnx")
    shutil.copy(sidecar_path(out), sidecar_path(tmp_path / "swapped.onnx"))
    assert main(["predict", "--model", str(tmp_path / "swapped.onnx"), str(image)]) == 1
    assert "changed since it was exported" in capsys.readouterr().err


def test_stale_drift_reference_is_refused(exported, tmp_path):
    ckpt, out = exported
    monitor = OnnxPredictor(out).monitor()
    monitor.save(drift_path(out), model_sha256="f" * 64)  # a reference saved for another model file
    with pytest.raises(Exception, match="stale reference"):
        OnnxPredictor(out).monitor()
    assert isinstance(DriftMonitor.load(drift_path(out)), DriftMonitor)  # without a model to match, it loads


def test_a_real_fit_checkpoint_exports_on_its_own_training_file(tmp_path, pneumonia, capsys):
    """A `medkit fit` checkpoint records `data` as a dict: export still finds its training file, for the
    verification images (its carved test part) and, where config.json lacks them, for the raw size and channels."""
    import dataclasses

    from medkit.core.checkpoint import checkpoint_config
    from medkit.data import subsample
    from medkit.deploy.onnx import checkpoint_input
    from medkit.fit import RecipeConfig, fit_recipe

    train, val = pneumonia["train"], pneumonia["val"]
    t, v = subsample(train.labels, 160, 1), subsample(val.labels, 48, 1)
    data = tmp_path / "tiny.npz"
    np.savez(data, train_images=train.images[t], train_labels=train.labels[t, None],
             val_images=val.images[v], val_labels=val.labels[v, None])
    fit_recipe(data, tmp_path / "ck", RecipeConfig(image_size=48, epochs=1, batch_size=32, freeze="head"),
               progress=False, log=lambda *_: None, audit=False)
    config = checkpoint_config(tmp_path / "ck")
    assert isinstance(json.loads((tmp_path / "ck" / CONFIG_FILE).read_text())["data"], dict)
    assert config.data_path == str(data.resolve())
    capsys.readouterr()
    assert main(["--json", "export", "--checkpoint", str(tmp_path / "ck"), "--out", str(tmp_path / "m.onnx"),
                 "--n-verify", "8"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["ok"] and result["n_verified"] == 8  # on the carved test part of tiny.npz, no --images
    assert (result["input_size"], result["channels"]) == (config.input_size, config.channels) == (48, 1)
    unsized = dataclasses.replace(config, input_size=None, channels=None)  # as an older checkpoint records it
    assert checkpoint_input(unsized, tmp_path / "ck") == (28, 1)  # read from the training file's shape
    data.unlink()
    with pytest.raises(Exception, match=r"Pass them: --input-size"):
        checkpoint_input(unsized, tmp_path / "ck")
