"""fit -> export -> predict -> evaluate on every kind of checkpoint `medkit fit` writes (real tiny fits, no
hand-written configs): a class folder, a CSV, a MedMNIST npz; a multi-label CSV is refused by export, clearly."""

import json

import numpy as np
import pytest
from folders import kermany_folder
from PIL import Image

from medkit.cli import main
from medkit.core.checkpoint import CONFIG_FILE, WEIGHTS_FILE, read_config
from medkit.deploy.gate import GATE_FILE
from medkit.fit.config import METRICS_FILE

FIT = ["--epochs", "1", "--image-size", "48", "--quiet", "--batch-size", "32", "--freeze", "all"]


def _csv_of(folder):
    """Write a path,label,patient CSV over a kermany_folder tree; return its path."""
    rows = ["path,label,patient"]
    for png in sorted(folder.rglob("*.png")):
        patient = png.stem.split("_")[0] if png.parent.name == "PNEUMONIA" else png.stem[:7]
        rows.append(f"{png.relative_to(folder)},{png.parent.name},{patient}")
    path = folder / "labels.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def _npz(folder, pneumonia):
    """Write a 120-train / 40-val PneumoniaMNIST file (28 px grey) and one of its images as a PNG."""
    from medkit.data import subsample

    train, val = pneumonia["train"], pneumonia["val"]
    t, v = subsample(train.labels, 120, 1), subsample(val.labels, 40, 1)
    path = folder / "tiny.npz"
    np.savez(path, train_images=train.images[t], train_labels=train.labels[t, None], val_images=val.images[v],
             val_labels=val.labels[v, None])
    Image.fromarray(val.images[v][0]).save(folder / "one.png")
    return path, [folder / "one.png"]


@pytest.fixture(scope="module", params=["folder", "csv", "npz"])
def chain(request, tmp_path_factory, pneumonia):
    """(data, checkpoint, images to predict) after a real `medkit fit` on one kind of source."""
    root = tmp_path_factory.mktemp(request.param)
    if request.param == "npz":
        data, images = _npz(root, pneumonia)
    else:
        data = kermany_folder(root / "xrays", n_patients=24)
        images = sorted((data / "PNEUMONIA").glob("*.png"))[:2]
        data = _csv_of(data) if request.param == "csv" else data
    ckpt = root / "ck"
    assert main(["fit", "--data", str(data), "--out", str(ckpt), *FIT]) == 0
    return data, ckpt, images


def test_fit_export_predict_evaluate(chain, tmp_path, capsys):
    data, ckpt, images = chain
    assert sorted(p.name for p in ckpt.iterdir()) == sorted([CONFIG_FILE, GATE_FILE, METRICS_FILE, WEIGHTS_FILE])
    assert isinstance(read_config(ckpt)["data"], dict)  # what fit writes, not the string form of old tests
    out = tmp_path / "m.onnx"
    capsys.readouterr()
    assert main(["export", "--checkpoint", str(ckpt), "--out", str(out), "--n-verify", "16"]) == 0  # no --images
    assert "OK" in capsys.readouterr().out
    assert main(["predict", "--json", "--resize", "--model", str(out), *map(str, images)]) == 0
    rows = json.loads(capsys.readouterr().out)["predictions"]
    # the sanity gate may flag a training-like image on data this tiny (its OOD threshold is a 0.99 val quantile):
    # a flagged row carries no class, every other row one of the checkpoint's
    assert len(rows) == len(images) and all(r["flagged"] or r["prediction"] in read_config(ckpt)["classes"]
                                            for r in rows)
    assert main(["evaluate", "--json", "--checkpoint", str(ckpt), "--data", str(data)]) == 0
    assert json.loads(capsys.readouterr().out)["n"] > 0


def test_multilabel_checkpoint_export_is_refused_clearly(tmp_path, capsys):
    from test_multilabel import _csv

    data = _csv(tmp_path / "findings", n=24)
    ckpt = tmp_path / "ml"
    assert main(["fit", "--data", str(data), "--out", str(ckpt), *FIT]) == 0
    capsys.readouterr()
    assert main(["export", "--checkpoint", str(ckpt), "--out", str(tmp_path / "m.onnx")]) == 1
    assert "multi-label checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "m.onnx").exists()
