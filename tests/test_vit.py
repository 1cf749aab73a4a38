"""medkit.methods.vit: a small timm ViT for 28-64 px images, and its bad inputs."""

import pytest
import torch

from medkit import DataError
from medkit.methods.vit import count_parameters, small_vit


@pytest.mark.parametrize("size,patch", [(28, 4), (32, 4), (64, 8)])
def test_small_vit_shapes(size, patch):
    model = small_vit(image_size=size, patch_size=patch, num_classes=2)
    assert model(torch.zeros(2, 1, size, size)).shape == (2, 2)
    assert model.patch_embed.num_patches == (size // patch) ** 2
    assert count_parameters(model) < 500_000  # small enough to train on a CPU


def test_small_vit_bad_inputs():
    with pytest.raises(DataError, match="multiple of patch_size"):
        small_vit(image_size=28, patch_size=5)
    with pytest.raises(DataError, match="divisible by num_heads"):
        small_vit(embed_dim=30, num_heads=4)
