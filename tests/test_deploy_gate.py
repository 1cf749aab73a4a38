"""The sanity gate of `medkit predict` and `medkit evaluate`: hostile inputs flagged, real X-rays predicted,
--allow-ood the old behaviour, a model without a gate reference warned about, a stale reference refused."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medkit.base.errors import DataError
from medkit.cli import main
from medkit.core.checkpoint import read_config, save_checkpoint
from medkit.deploy import SanityGate, fit_gate, gate_path
from medkit.deploy.gate import GATE_FILE
from medkit.fit import evaluate_checkpoint

SKIN = Path(__file__).resolve().parents[1] / "data_samples" / "isic_dermoscopy" / "images" / "ISIC_0000000.jpg"


def _hostile(xray: np.ndarray, skin: np.ndarray) -> dict:
    """Return {case: uint8 image} built from one real 28 px X-ray and a real dermoscopy image."""
    x = xray.astype(np.float64)
    return {"black": np.zeros_like(xray), "white": np.full_like(xray, 255), "grey": np.full_like(xray, 128),
            "noise": np.random.default_rng(0).integers(0, 256, xray.shape).astype(np.uint8), "inverted": 255 - xray,
            "contrast16": np.clip((x - x.mean()) / 16 + 128, 0, 255).round().astype(np.uint8),
            "skin": np.asarray(Image.fromarray(skin).convert("L").resize(xray.shape[::-1])),
            "1x1": xray[:1, :1], "strip": np.asarray(Image.fromarray(xray).resize((280, 28)))}


@pytest.fixture(scope="module")
def gated_dir(tmp_path_factory, pneumonia):
    """A random-init resnet18 checkpoint (48 px) with a gate fitted on real X-rays, exported (no drift reference)."""
    import torch

    from medkit.models import get_backbone, get_spec

    root = tmp_path_factory.mktemp("gated")
    torch.manual_seed(0)
    model = get_backbone("resnet18", weights=None, num_classes=2)
    ckpt = save_checkpoint(root / "ckpt", model, image_size=48, classes=["0", "1"], input_size=28, channels=1)
    train, val = pneumonia["train"], pneumonia["val"]
    gate = fit_gate(model, train.subset(np.arange(160)), val.subset(np.arange(100)), get_spec("resnet18").preprocess(48))
    gate.save(ckpt / GATE_FILE, model_sha256=read_config(ckpt)["weights_sha256"])
    assert main(["export", "--checkpoint", str(ckpt), "--out", str(root / "model.onnx"), "--n-verify", "16",
                 "--no-drift"]) == 0
    return root


@pytest.fixture
def gated(gated_dir, tmp_path):
    shutil.copytree(gated_dir, tmp_path, dirs_exist_ok=True)
    return tmp_path / "ckpt", tmp_path / "model.onnx"


@pytest.fixture(scope="module")
def files(tmp_path_factory, pneumonia):
    """Real test X-rays and the hostile cases made from them, as PNG files: (clean paths, {case: path})."""
    root = tmp_path_factory.mktemp("images")
    test = pneumonia["test"].images
    clean = []
    for i in range(40):
        clean.append(root / f"xray{i}.png")
        Image.fromarray(test[i]).save(clean[-1])
    skin = np.asarray(Image.open(SKIN).convert("RGB"))
    hostile = {}
    for case, image in _hostile(test[0], skin).items():
        hostile[case] = root / f"{case}.png"
        Image.fromarray(image).save(hostile[case])
    return clean, hostile


def _predict(capsys, *args) -> dict:
    assert main(["predict", "--json", *map(str, args)]) == 0
    return json.loads(capsys.readouterr().out)


def test_every_hostile_case_is_flagged_and_not_predicted(gated, files, capsys):
    _, model = gated
    _, hostile = files
    rows = _predict(capsys, "--model", model, "--resize", *hostile.values())["predictions"]
    for case, row in zip(hostile, rows):
        assert row["flagged"] and row["prediction"] is None and row["probability"] is None, (case, row)
        assert all({"check", "score", "threshold"} <= set(c) for c in row["checks"]), row
    checks = {case: {c["check"] for c in row["checks"]} for case, row in zip(hostile, rows)}
    assert "flat" in checks["black"] and "flat" in checks["white"] and "flat" in checks["grey"]
    assert "too_small" in checks["1x1"] and "aspect" in checks["strip"]
    assert "low_contrast" in checks["contrast16"] and "inverted" in checks["inverted"]
    assert "noisy" in checks["noise"] and any("ood" in c for c in checks.values()), checks


def test_real_xrays_are_predicted_and_allow_ood_predicts_everything(gated, files, capsys):
    _, model = gated
    clean, hostile = files
    rows = _predict(capsys, "--model", model, *clean)["predictions"]
    passed = [r for r in rows if not r["flagged"]]
    # the OOD threshold is the 99% quantile of held-out X-rays: a few false alarms among 40 are expected
    assert len(passed) >= 36, [r["checks"] for r in rows if r["flagged"]]
    assert all(r["prediction"] in ("0", "1") and 0.5 <= r["probability"] <= 1 for r in passed)
    assert all(r["ood_score"] is not None for r in passed)
    rows = _predict(capsys, "--model", model, "--resize", "--allow-ood", *hostile.values())["predictions"]
    assert all(r["prediction"] in ("0", "1") and not r["flagged"] for r in rows)


def test_a_model_without_a_gate_reference_warns_once_and_still_checks_images(gated, files, capsys):
    _, model = gated
    clean, hostile = files
    gate_path(model).unlink()
    assert main(["predict", "--json", "--model", str(model), "--resize", str(hostile["black"]), str(clean[0]),
                 str(hostile["1x1"])]) == 0
    captured = capsys.readouterr()
    assert captured.err.count("out-of-distribution score is unavailable") == 1
    black, xray, tiny = json.loads(captured.out)["predictions"]
    assert black["flagged"] and tiny["flagged"] and not xray["flagged"] and xray["ood_score"] is None


def test_a_stale_gate_reference_is_refused(gated, files, capsys):
    ckpt, model = gated
    SanityGate.load(gate_path(model)).save(gate_path(model), model_sha256="f" * 64)
    assert main(["predict", "--model", str(model), str(files[0][0])]) == 1
    assert "stale gate reference" in capsys.readouterr().err
    for damaged in (b"not an npz", b"PK\x03\x04 a zip header and nothing else"):  # the second: BadZipFile
        (ckpt / GATE_FILE).write_bytes(damaged)
        with pytest.raises(DataError, match="not a gate reference"):
            SanityGate.load(ckpt / GATE_FILE)


def test_evaluate_reports_flagged_images_and_scores_the_rest(gated, pneumonia, files, tmp_path, capsys):
    ckpt, _ = gated
    test = pneumonia["test"]
    hostile = _hostile(test.images[0], np.asarray(Image.open(files[1]["skin"])))
    junk = np.stack([hostile[c] for c in ("black", "inverted", "contrast16", "noise")])
    pick = np.concatenate([np.flatnonzero(test.labels == 0)[:30], np.flatnonzero(test.labels == 1)[:30]])
    images = np.concatenate([test.images[pick], junk])
    labels = np.concatenate([test.labels[pick], [0, 1, 0, 1]])
    data = tmp_path / "site.npz"
    np.savez(data, test_images=images, test_labels=labels[:, None])
    result = evaluate_checkpoint(ckpt, data, n_boot=20)
    gate = result["gate"]
    assert result["n"] == 64 and gate["ood_available"] and gate["flagged"] >= 4
    assert {row["index"] for row in gate["images"]} >= {60, 61, 62, 63}
    assert result["not_flagged"]["n"] == 64 - gate["flagged"] and "auc" in result["not_flagged"]
    assert "gate" not in evaluate_checkpoint(ckpt, data, n_boot=20, allow_ood=True)
    (ckpt / GATE_FILE).unlink()
    assert main(["evaluate", "--checkpoint", str(ckpt), "--data", str(data)]) == 0
    captured = capsys.readouterr()
    assert captured.err.count("out-of-distribution score is unavailable") == 1
    assert "sanity gate:" in captured.err and json.loads(captured.out)["gate"]["ood_available"] is False


def test_shape_checks_without_a_reference():
    gate = SanityGate()
    assert [f.check for f in gate.shape_flags((1, 1))] == ["too_small"]
    assert [f.check for f in gate.shape_flags((100, 1000))] == ["aspect"]
    assert gate.shape_flags((1024, 1280)) == [] and not gate.has_reference
    with pytest.raises(DataError, match="no embedding reference"):
        gate.ood_scores(np.zeros((1, 8)))


def _embedding_sets(seed=0):
    """Return (train, held-out, far) embeddings: two clusters of 64-D in-distribution vectors and a third, far one."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(2, 64)) * 3
    near = [centres[i % 2] + rng.normal(size=64) for i in range(300)]
    far = rng.normal(size=(50, 64)) + rng.normal(size=64) * 3
    return np.array(near[:200]), np.array(near[200:]), far


def test_knn_score_flags_far_embeddings_at_its_val_quantile_and_round_trips(tmp_path):
    train, held, far = _embedding_sets()
    images = np.tile(np.linspace(0, 255, 32 * 32).reshape(32, 32).astype(np.uint8), (len(train), 1, 1))
    gate = SanityGate.fit(images, train, images[:len(held)], held, quantile=0.95)
    assert gate.ood_method == "knn" and int(gate.ood["k"]) == 10 and gate.ood["reference"].shape == (200, 64)
    assert np.mean(gate.ood_scores(held) > gate.ood["threshold"]) == pytest.approx(0.05, abs=0.011)  # the quantile
    assert np.mean(gate.ood_scores(far) > gate.ood["threshold"]) == 1.0
    # the score is a distance between unit vectors: a rescaled embedding scores the same
    np.testing.assert_allclose(gate.ood_scores(far * 7), gate.ood_scores(far), rtol=1e-5)
    back = SanityGate.load(gate.save(tmp_path / "g.npz"))
    assert back.ood_method == "knn" and "10th nearest" in repr(back)
    np.testing.assert_allclose(back.ood_scores(far), gate.ood_scores(far), rtol=1e-6)
    maha = SanityGate.fit(images, train, images[:len(held)], held, quantile=0.95, ood_method="mahalanobis")
    assert SanityGate.load(maha.save(tmp_path / "m.npz")).ood_method == "mahalanobis"
    with pytest.raises(DataError, match="Unknown OOD method 'lof'"):
        SanityGate.fit(images, train, images[:len(held)], held, ood_method="lof")
    with pytest.raises(DataError, match=r"shaped \(N, 64\)"):
        gate.ood_scores(np.zeros((2, 8)))


def test_a_gate_file_without_a_method_is_the_mahalanobis_one_it_was_written_as(tmp_path):
    train, held, far = _embedding_sets(1)
    images = np.tile(np.linspace(0, 255, 32 * 32).reshape(32, 32).astype(np.uint8), (len(train), 1, 1))
    maha = SanityGate.fit(images, train, images[:len(held)], held, ood_method="mahalanobis")
    path = maha.save(tmp_path / "old.npz")
    with np.load(path) as f:
        fields = {k: f[k] for k in f.files if k != "method"}  # what medkit-gate/1 files written before held
    np.savez(tmp_path / "older.npz", **fields)
    older = SanityGate.load(tmp_path / "older.npz")
    assert older.ood_method == "mahalanobis"
    np.testing.assert_allclose(older.ood_scores(far), maha.ood_scores(far))
