import numpy as np
import pytest
import torch
from torch import nn

from medkit import fit as fit_pkg
from medkit.core.losses import make_loss
from medkit.core.train import _bn_momentum, fit
from medkit.data import subsample
from medkit.fit import RecipeConfig, fit_recipe


@pytest.fixture(scope="module")
def tiny_npz(tmp_path_factory, pneumonia):
    """A train+val-only PneumoniaMNIST file: 64 train, 32 val images."""
    path = tmp_path_factory.mktemp("data") / "tiny.npz"
    parts = {}
    for part, n in (("train", 64), ("val", 32)):
        ds = pneumonia[part]
        keep = subsample(ds.labels, n, 1)
        parts.update({f"{part}_images": ds.images[keep], f"{part}_labels": ds.labels[keep, None]})
    np.savez(path, **parts)
    return path


class Recorder(nn.Module):
    """A small conv net without BatchNorm (so parts of a batch give the whole batch's gradient) that logs sizes."""

    def __init__(self, outputs=2, norm=False):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, 4, 3), *([nn.BatchNorm2d(4)] if norm else []), nn.ReLU(),
                                  nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, outputs))
        self.sizes = []

    def forward(self, x):
        self.sizes.append(len(x))
        return self.body(x)


def _batches(targets="classes", n=3, size=12):
    gen = torch.Generator().manual_seed(0)
    out = []
    for _ in range(n):
        x = torch.rand(size, 1, 8, 8, generator=gen)
        y = (torch.rand(size, 3, generator=gen) > 0.5).float() if targets == "multi" else \
            torch.tensor([0, 0, 0, 1] * (size // 4))  # imbalanced, so class weights matter
        out.append((x, y))
    return out


def _train(micro_batch, loss_fn, batches, outputs=2, norm=False):
    torch.manual_seed(0)
    model = Recorder(outputs, norm)
    fit(model, batches, epochs=2, lr=1e-2, loss_fn=loss_fn, progress=False, micro_batch=micro_batch)
    return model


@pytest.mark.parametrize("loss", ["ce", "weighted_ce", "focal", "weighted_focal", "bce"])
def test_parts_of_a_batch_give_the_whole_batchs_weights(loss):
    batches = _batches("multi" if loss == "bce" else "classes")
    outputs = 3 if loss == "bce" else 2
    loss_fn = nn.BCEWithLogitsLoss() if loss == "bce" else make_loss(loss, torch.tensor([0, 0, 0, 1]).numpy(), 2)
    whole, parts = _train(None, loss_fn, batches, outputs), _train(5, loss_fn, batches, outputs)
    assert max(whole.sizes) == 12 and max(parts.sizes) == 5 and sorted(set(parts.sizes)) == [2, 5]
    for a, b in zip(whole.parameters(), parts.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_parts_differ_only_through_batchnorm():
    batches = _batches()
    whole, parts = _train(None, None, batches, norm=True), _train(4, None, batches, norm=True)
    assert not torch.allclose(whole.body[0].weight, parts.body[0].weight)  # each part normalised on its own
    # scaled momentum: three updates per step still average over about as many images as one did
    bn_whole, bn_parts = whole.body[1], parts.body[1]
    assert bn_parts.momentum == bn_whole.momentum == 0.1  # restored after training
    assert bn_parts.num_batches_tracked == 3 * bn_whole.num_batches_tracked


def test_bn_momentum_is_scaled_then_restored():
    model = nn.Sequential(nn.BatchNorm2d(2), nn.BatchNorm1d(2, momentum=None))
    with _bn_momentum(model, 4):
        assert (1 - model[0].momentum) ** 4 == pytest.approx(0.9)
        assert model[1].momentum is None  # a cumulative average has no momentum to scale
    assert model[0].momentum == 0.1


@pytest.mark.parametrize("cache", [True, False])
def test_fit_recipe_splits_only_image_batches(tiny_npz, tmp_path, monkeypatch, cache):
    seen = []
    real = fit_pkg.single_label.fit_stages

    def spy(*args, **kwargs):
        seen.append(kwargs["micro_batch"])
        return real(*args, **kwargs)

    monkeypatch.setattr(fit_pkg.single_label, "fit_stages", spy)
    cfg = RecipeConfig(image_size=48, epochs=1, batch_size=16, micro_batch=4, freeze="head", cache_features=cache)
    fit_recipe(tiny_npz, tmp_path / "o", cfg, progress=False, log=lambda *_: None)
    assert seen == [None if cache else 4]  # cached features train in whole batches: their numbers stay as they were
