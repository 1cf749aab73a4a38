import numpy as np
import pytest
import torch
from torch import nn

from medkit.base.errors import DataError, MedkitError, UnknownNameError
from medkit.core.losses import FocalLoss, class_weights, make_loss


def test_class_weights_balance_the_classes():
    labels = np.array([0] * 30 + [1] * 90)
    w = class_weights(labels)
    assert torch.allclose(w, torch.tensor([2.0, 2 / 3]))
    # each class then carries the same total weight
    assert w[0] * 30 == pytest.approx(float(w[1] * 90))


def test_focal_with_gamma_zero_is_cross_entropy():
    torch.manual_seed(0)
    logits, y = torch.randn(32, 3), torch.randint(0, 3, (32,))
    w = torch.tensor([1.0, 2.0, 0.5])
    assert torch.allclose(FocalLoss(0.0)(logits, y), nn.CrossEntropyLoss()(logits, y), atol=1e-6)
    assert torch.allclose(FocalLoss(0.0, weight=w)(logits, y), nn.CrossEntropyLoss(weight=w)(logits, y), atol=1e-6)


def test_focal_down_weights_easy_examples():
    y = torch.tensor([1, 1])
    easy, hard = torch.tensor([[-4.0, 4.0]]), torch.tensor([[0.5, -0.5]])
    ce = nn.CrossEntropyLoss(reduction="none")
    focal = FocalLoss(2.0, reduction="none")
    ratio_easy = focal(easy, y[:1]) / ce(easy, y[:1])
    ratio_hard = focal(hard, y[:1]) / ce(hard, y[:1])
    assert ratio_easy < 1e-3 < ratio_hard < 1


def test_focal_gradients_flow():
    logits = torch.randn(8, 2, requires_grad=True)
    FocalLoss(2.0)(logits, torch.randint(0, 2, (8,))).backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


def test_make_loss_names():
    labels = np.array([0, 0, 0, 1])
    assert isinstance(make_loss("ce"), nn.CrossEntropyLoss)
    assert make_loss("weighted_ce", labels).weight[1] > make_loss("weighted_ce", labels).weight[0]
    assert isinstance(make_loss("focal"), FocalLoss)
    assert make_loss("weighted_focal", labels).weight is not None


@pytest.mark.parametrize("call, error", [
    (lambda: make_loss("dice"), UnknownNameError),
    (lambda: make_loss("weighted_ce"), DataError),
    (lambda: class_weights([0, 0, 2]), DataError),
    (lambda: class_weights([0, 1, 5], num_classes=2), DataError),
    (lambda: FocalLoss(-1.0), DataError),
])
def test_bad_input_raises_medkit_errors(call, error):
    with pytest.raises(error) as info:
        call()
    assert isinstance(info.value, MedkitError) and str(info.value)
