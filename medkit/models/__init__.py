"""Backbones: the registry, their weights and their preprocessing."""

from .preprocess import IMAGENET_MEAN, IMAGENET_STD, Preprocess
from .registry import (
    Backbone,
    Weights,
    get_backbone,
    get_spec,
    list_backbones,
    load_weights,
    parameter_groups,
    register,
    replace_head,
    split_head,
    weights_path,
)

__all__ = [
    "Backbone", "Weights", "register", "list_backbones", "get_spec", "get_backbone", "weights_path",
    "load_weights", "replace_head", "split_head", "parameter_groups", "Preprocess", "IMAGENET_MEAN", "IMAGENET_STD",
]

from .imagenet import imagenet_categories, imagenet_topk  # noqa: E402

__all__ += ["imagenet_categories", "imagenet_topk"]

from .small import SmallCNN, grey_preprocess  # noqa: E402

__all__ += ["SmallCNN", "grey_preprocess"]
