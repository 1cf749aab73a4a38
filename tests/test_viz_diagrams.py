"""The lesson diagrams draw what the code holds: layer groups and their frozen state, U-Net shapes, SimCLR sizes,
FedAvg weights, Grad-CAM's map."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from medkit import models  # noqa: E402
from medkit.core import freeze
from medkit.course import viz
from medkit.methods import ssl


def _texts(fig) -> list[str]:
    return [t.get_text() for ax in fig.axes for t in ax.texts]


@pytest.fixture(scope="module")
def backbone():
    torch.manual_seed(0)
    return models.get_backbone("efficientnet_lite0", num_classes=2)


def test_layer_groups_show_the_registry_split_and_what_freeze_to_froze(backbone):
    spec = models.get_spec("efficientnet_lite0")
    freeze.freeze_to(backbone, 2)
    try:
        texts = [t for t in _texts(viz.layer_groups_diagram(backbone)) if t.startswith("group")]
    finally:
        freeze.unfreeze(backbone)
        plt.close("all")
    assert len(texts) == len(spec.groups)
    assert [t.rsplit("\n", 1)[1] for t in texts] == ["frozen, BatchNorm trains"] * 2 + ["trained"] * (len(spec.groups) - 2)
    freeze.freeze_to(backbone, 1, train_bn=False)
    assert _texts(viz.layer_groups_diagram(backbone))[0].endswith("\nfrozen")
    head = sum(p.numel() for _, p in models.parameter_groups(backbone)[-1])
    assert f"{head / 1e3:.1f} k weights" in texts[-1]


def test_unet_diagram_reads_its_shapes_from_a_forward_pass():
    from medkit import segmentation as seg

    unet = seg.build_segmenter("efficientnet_lite0", None, encoder_depth=3)
    texts = _texts(viz.unet_diagram(unet, 32))
    plt.close("all")
    stages = [t for t in texts if t.startswith("encoder stage")]
    blocks = [t for t in texts if t.startswith("decoder block")]
    assert len(stages) == len(blocks) == 3
    assert stages[0].endswith("16 x 16 x 16") and stages[-1].endswith("x 4 x 4")  # stride 2, then 8
    assert blocks[-1].endswith("x 32 x 32") and any("mask logits 1 x 32 x 32" in t for t in texts)
    assert "random init" in viz.unet_diagram(unet, 32).axes[0].get_title()
    plt.close("all")


def test_simclr_diagram_reads_the_projection_sizes_and_fedavg_the_weights():
    model = ssl.SimCLR(ssl.SmallCNN(width=16), projection_dim=24)
    image = (np.random.default_rng(0).random((28, 28)) * 255).astype(np.uint8)
    texts = _texts(viz.simclr_diagram(model, ssl.ContrastiveViews(seed=0), image, temperature=0.2))
    dim = model.encoder.feature_dim
    assert any(t.endswith(f"{dim} → {dim} → 24") for t in texts) and any("τ = 0.2" in t for t in texts)
    texts = _texts(viz.fedavg_diagram({"a": 100, "b": 300}, n_weights=5000, rounds=4))
    plt.close("all")
    weights = sorted(float(t.rsplit(" ", 1)[1]) for t in texts if t.startswith("w_k, weight"))
    assert weights == [0.25, 0.75]


def test_gradcam_diagram_draws_the_map_medkit_computes(backbone):
    from medkit import cam

    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    fig = viz.gradcam_diagram(backbone, "blocks.4", x)
    heat = fig.axes[5].images[-1].get_array()
    plt.close("all")
    expected = cam.ScratchGradCAM(backbone, layer="blocks.4")(x)[0]
    scaled = (heat - heat.min()) / (heat.max() - heat.min() + 1e-7)
    assert np.corrcoef(np.asarray(scaled).ravel(), expected.ravel())[0, 1] > 0.99
