"""medkit.methods.ssl: NT-Xent against the paper's formula, views, pretraining, probes, and their bad inputs."""

import math

import numpy as np
import pytest
import torch

from medkit import DataError
from medkit.data import ImageDataset
from medkit.methods.ssl import (
    ContrastiveViews,
    SmallCNN,
    classifier,
    encode,
    nt_xent,
    pretrain,
    probe_auc,
    probe_budgets,
)


def _nt_xent_loop(z1, z2, temperature):
    """SimCLR's loss written term by term from the paper (Chen et al. 2020, eq. 1)."""
    z = torch.nn.functional.normalize(torch.cat([z1, z2]), dim=1)
    n, total = len(z1), 0.0
    for i in range(2 * n):
        j = (i + n) % (2 * n)
        denominator = sum(math.exp(float(z[i] @ z[k]) / temperature) for k in range(2 * n) if k != i)
        total += -math.log(math.exp(float(z[i] @ z[j]) / temperature) / denominator)
    return total / (2 * n)


@pytest.mark.parametrize("temperature", [0.1, 0.5, 1.0])
def test_nt_xent_matches_the_formula(temperature):
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(6, 8, generator=g), torch.randn(6, 8, generator=g)
    assert float(nt_xent(z1, z2, temperature)) == pytest.approx(_nt_xent_loop(z1, z2, temperature), rel=1e-5)


def test_nt_xent_rewards_matching_views():
    g = torch.Generator().manual_seed(1)
    z = torch.randn(16, 32, generator=g)
    matched = nt_xent(z, z + 0.01 * torch.randn(16, 32, generator=g))
    shuffled = nt_xent(z, z[torch.randperm(16, generator=g)])
    assert matched < shuffled
    assert matched < math.log(31) < shuffled + 1  # chance level sits between


def test_nt_xent_bad_inputs():
    with pytest.raises(DataError, match="same shape"):
        nt_xent(torch.zeros(4, 8), torch.zeros(5, 8))
    with pytest.raises(DataError, match="N >= 2"):
        nt_xent(torch.zeros(1, 8), torch.zeros(1, 8))
    with pytest.raises(DataError, match="temperature"):
        nt_xent(torch.randn(4, 8), torch.randn(4, 8), temperature=0)


def test_views_are_seeded_and_valid():
    x = torch.rand(5, 1, 28, 28)
    a, b = ContrastiveViews(seed=3)(x), ContrastiveViews(seed=3)(x)
    assert torch.equal(a, b) and a.shape == x.shape
    assert a.min() >= 0 and a.max() <= 1
    views = ContrastiveViews(seed=3)
    assert not torch.equal(views(x), views(x))  # two calls give two different views
    with pytest.raises(DataError, match="float batch"):
        views(torch.zeros(5, 1, 28, 28, dtype=torch.uint8))
    with pytest.raises(DataError, match="min_scale"):
        ContrastiveViews(min_scale=0)


def _toy(n=64, seed=0):
    """Bright-blob vs dark-blob images: learnable without labels."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    images = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
    images[labels == 1, 8:20, 8:20] += 150
    return ImageDataset(images, labels, ["dark", "bright"])


def test_pretrain_is_reproducible_and_lowers_the_loss():
    data = _toy()
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        encoder = SmallCNN(width=8)
        runs.append((pretrain(encoder, data, epochs=4, batch_size=16, seed=0), encode(encoder, data)))
    (losses, feats), (losses2, feats2) = runs
    assert losses == losses2 and np.array_equal(feats, feats2)
    assert losses[-1] < losses[0]
    assert feats.shape == (64, 32)


def test_classifier_copies_the_encoder_with_a_new_head():
    encoder = SmallCNN(width=8)
    model = classifier(encoder, 3)
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 3)
    assert model.body is not encoder.body  # fine-tuning must not change the pretrained encoder
    assert torch.equal(model.body[0][0].weight, encoder.body[0][0].weight)


def test_probes_and_their_bad_inputs():
    data = _toy(80)
    feats = encode(SmallCNN(width=8), data)
    assert probe_auc(feats[:40], data.labels[:40], feats[40:], data.labels[40:]) > 0.9
    table = probe_budgets({"random": (feats[:40], feats[40:])}, data.labels[:40], data.labels[40:], [10, None], [0, 1])
    assert len(table) == 4 and set(table.labels) == {10, 40}
    with pytest.raises(DataError, match="two classes"):
        probe_auc(feats[:4], np.zeros(4), feats[40:], data.labels[40:])
    with pytest.raises(DataError, match="test feature rows"):
        probe_auc(feats[:40], data.labels[:40], feats[40:], data.labels[41:])
    with pytest.raises(DataError, match="SmallCNN"):
        encode(torch.nn.Identity(), data)
    with pytest.raises(DataError, match="norm"):
        SmallCNN(norm="layer")
