"""What an ImageNet model makes of an image: its top classes, by name (lesson 00)."""

import numpy as np
import torch

from .registry import get_spec

__all__ = ["imagenet_categories", "imagenet_topk"]


def imagenet_categories() -> list[str]:
    """Return the 1000 ImageNet class names (shipped with torchvision, no download)."""
    from torchvision.models import ResNet18_Weights

    return list(ResNet18_Weights.IMAGENET1K_V1.meta["categories"])


@torch.no_grad()
def imagenet_topk(model, images, k: int = 3, image_size: int | None = None) -> list[list[tuple[int, str, float]]]:
    """Return, per image, the top-k (class index, name, probability) of an ImageNet-headed backbone.

    `images` is a uint8 array (H, W[, C]) or a batch (N, H, W[, C]), grey or RGB.
    """
    images = np.asarray(images)
    if images.ndim == 2 or (images.ndim == 3 and images.shape[-1] in (3, 4) and images.shape[0] > 4):
        images = images[None]
    if images.ndim == 4 and images.shape[-1] == 4:
        images = images[..., :3]  # drop alpha
    batch = torch.from_numpy(np.ascontiguousarray(images))
    batch = batch[:, None] if batch.ndim == 3 else batch.permute(0, 3, 1, 2)  # (N, C, H, W), as Preprocess takes
    x = get_spec(model).preprocess(image_size)(batch)
    probs = torch.softmax(model.eval()(x), dim=1)
    names = imagenet_categories()
    top = probs.topk(k, dim=1)
    return [[(int(i), names[int(i)], float(p)) for p, i in zip(ps, idx)] for ps, idx in zip(top.values, top.indices)]
