"""ONNX export of kit models: parity with PyTorch on real images, stored preprocessing, refusals."""

import json
import shutil

import numpy as np
import onnx
import pytest
import torch

from medkit.base.errors import DataError, MedkitError
from medkit.deploy import OnnxPredictor, export_onnx, sidecar_path, verify_onnx
from medkit.deploy.latency import measure_latency
from medkit.models import Preprocess, get_backbone


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    torch.manual_seed(0)
    model = get_backbone("efficientnet_lite0", num_classes=2).eval()
    out = export_onnx(model, tmp_path_factory.mktemp("onnx") / "model.onnx", input_size=28, image_size=48,
                      classes=["normal", "pneumonia"], threshold=0.4)
    return model, out


@pytest.mark.parametrize("backbone", ["efficientnet_lite0", "resnet18"])
def test_export_matches_pytorch_on_real_images(backbone, exported, pneumonia, tmp_path):
    if backbone == "efficientnet_lite0":
        model, out = exported
    else:
        model = get_backbone(backbone, weights=None, num_classes=2).eval()
        out = export_onnx(model, tmp_path / "m.onnx", input_size=28, image_size=48, classes=pneumonia["test"].classes)
    result = verify_onnx(model, out, pneumonia["test"].images[:48])
    assert result.n_images == 48
    assert result.max_abs_diff <= 1e-4 and result.same_classes and result.ok
    assert result.max_abs_diff_logits <= 1e-4  # pretrained / fresh batch norms: logits agree too
    # dynamic batch: any batch size runs
    predictor = OnnxPredictor(out)
    for n in (1, 5):
        assert predictor.predict_proba(pneumonia["test"].images[:n]).shape == (n, 2)


def test_antialiased_downsizing_is_exported_exactly(tmp_path):
    # Large raw images shrunk inside the graph use Resize(antialias=1), which must match PyTorch.
    model = get_backbone("resnet18", weights=None, num_classes=2).eval()
    out = export_onnx(model, tmp_path / "m.onnx", input_size=80, image_size=48, classes=["a", "b"])
    images = np.random.default_rng(0).integers(0, 256, (6, 80, 80), dtype=np.uint8)
    assert verify_onnx(model, out, images).max_abs_diff <= 1e-4


def test_preprocessing_is_inside_the_graph(exported, pneumonia):
    model, out = exported
    predictor = OnnxPredictor(out)
    meta = json.loads(sidecar_path(out).read_text())
    assert meta["input_size"] == 28 and meta["image_size"] == 48 and meta["channels"] == 1
    assert meta["classes"] == ["normal", "pneumonia"] and meta["threshold"] == 0.4 and meta["opset"] >= 17
    images = pneumonia["val"].images[:8]
    with torch.no_grad():
        expected = torch.softmax(model(Preprocess(48)(torch.from_numpy(images)[:, None])), 1).numpy()
    np.testing.assert_allclose(predictor.predict_proba(images), expected, atol=1e-5)
    probs = np.array([[0.65, 0.35], [0.55, 0.45]])
    assert predictor.decide(probs).tolist() == [0, 1]  # the stored threshold 0.4, not 0.5
    assert predictor.embed(images).shape == (8, 1280)


def test_swapped_onnx_file_is_refused(exported, tmp_path):
    model, out = exported
    other = export_onnx(model, tmp_path / "other.onnx", input_size=28, image_size=64, classes=["normal", "pneumonia"])
    target = tmp_path / "model.onnx"
    shutil.copy(other, target)
    shutil.copy(sidecar_path(out), sidecar_path(target))  # the sidecar says 48 px, the graph does 64 px
    with pytest.raises(DataError, match="image_size"):
        OnnxPredictor(target)


def test_edited_sidecar_or_file_is_refused(exported, tmp_path):
    _, out = exported
    target = tmp_path / "model.onnx"
    shutil.copy(out, target)
    meta = json.loads(sidecar_path(out).read_text())
    sidecar_path(target).write_text(json.dumps({**meta, "mean": [0.5, 0.5, 0.5]}))
    with pytest.raises(DataError, match="mean"):
        OnnxPredictor(target)
    sidecar_path(target).write_text(json.dumps(meta))
    OnnxPredictor(target)  # restored: accepted
    proto = onnx.load(str(target))
    proto.graph.initializer[0].float_data.extend([])  # re-saved, e.g. by another tool: bytes differ, metadata kept
    proto.producer_version = "edited"
    onnx.save(proto, str(target))
    with pytest.raises(DataError, match="changed since it was exported"):
        OnnxPredictor(target)


def test_foreign_onnx_without_metadata_or_sidecar_is_refused(exported, tmp_path):
    _, out = exported
    plain = tmp_path / "plain.onnx"
    torch.onnx.export(torch.nn.Linear(4, 2), (torch.zeros(1, 4),), str(plain), dynamo=False)
    with pytest.raises(DataError, match="no sidecar"):
        OnnxPredictor(plain)
    shutil.copy(sidecar_path(out), sidecar_path(plain))
    with pytest.raises(DataError, match="no medkit metadata"):
        OnnxPredictor(plain)
    with pytest.raises(DataError, match="does not exist"):
        OnnxPredictor(tmp_path / "missing.onnx")


def test_wrong_size_channels_or_dtype_is_refused(exported):
    predictor = OnnxPredictor(exported[1])
    with pytest.raises(DataError, match="28x28"):
        predictor.predict_proba(np.zeros((2, 64, 64), np.uint8))
    with pytest.raises(DataError, match="uint8"):
        predictor.predict_proba(np.zeros((2, 28, 28), np.float32))
    with pytest.raises(MedkitError, match="1-channel"):
        predictor.predict_proba(np.zeros((2, 3, 28, 28), np.uint8))


def test_export_refuses_class_count_mismatch(tmp_path):
    model = get_backbone("resnet18", weights=None, num_classes=2)
    with pytest.raises(DataError, match="2 outputs but 3 classes"):
        export_onnx(model, tmp_path / "m.onnx", input_size=28, image_size=48, classes=["a", "b", "c"])


def test_latency_rows(exported, pneumonia):
    rows = measure_latency(exported[0], exported[1], pneumonia["test"].images[:4], batch_sizes=(1, 4), repeats=2,
                           warmup=1)
    assert [r["batch"] for r in rows] == [1, 4]
    assert all(r["torch_ms"] > 0 and r["onnx_ms"] > 0 for r in rows)
    with pytest.raises(DataError, match="at least 32 images"):
        measure_latency(exported[0], exported[1], pneumonia["test"].images[:4], batch_sizes=(1, 32))
