"""Find the layer a CAM looks at, check what goes in, and count the hooks left behind."""

import difflib
import numbers

import torch
from torch import nn

from ..base.errors import DataError, UnknownNameError
from ..models import get_spec

__all__ = ["resolve_layer", "layer_group", "layer_candidates", "tokens_to_grid", "reshape_transform_for", "num_classes_of",
           "check_batch", "resolve_targets", "feature_size", "count_hooks"]


def _spec(model):
    name = getattr(model, "medkit_backbone", None)
    return get_spec(name) if name else None


def layer_candidates(model: nn.Module, n: int = 6) -> list[str]:
    """Return the names of the last `n` convolution/normalisation layers: the usual CAM targets."""
    kinds = (nn.Conv2d, nn.BatchNorm2d, nn.LayerNorm)
    return [name for name, module in model.named_modules() if name and isinstance(module, kinds)][-n:]


def resolve_layer(model: nn.Module, layer=None) -> tuple[str, nn.Module]:
    """Return (dotted name, module) of the CAM target layer; None means the registry's default for this backbone."""
    modules = dict(model.named_modules())
    if isinstance(layer, nn.Module):
        for name, module in modules.items():
            if module is layer:
                return name, module
        raise UnknownNameError("The layer passed is not a submodule of this model; pass its dotted name instead.")
    if layer is None:
        spec = _spec(model)
        if spec is None:
            raise UnknownNameError(f"{type(model).__name__} is not a registry backbone, so it has no default CAM layer; "
                                   f"pass layer=..., e.g. one of {layer_candidates(model)}.")
        layer = spec.cam_layer
    if not isinstance(layer, str) or not layer or layer not in modules:
        close = difflib.get_close_matches(str(layer), [k for k in modules if k], n=5, cutoff=0.5)
        raise UnknownNameError(f"The model has no layer {layer!r}. Close matches: {close or 'none'}; "
                               f"usual CAM layers of this model: {layer_candidates(model)}. "
                               "List them all with [name for name, _ in model.named_modules()].")
    return layer, modules[layer]


def layer_group(model: nn.Module, layer=None) -> int:
    """Return the index of the registry layer group (stem first) that holds the CAM layer (None: the default one)."""
    name, _ = resolve_layer(model, layer)
    spec = _spec(model)
    if spec is None:
        raise UnknownNameError(f"{type(model).__name__} is not a registry backbone, so it has no layer groups.")
    for i, prefixes in enumerate(spec.groups):
        if any(name == p or name.startswith(p + ".") for p in prefixes):
            return i
    raise DataError(f"Layer {name!r} spans several layer groups of {spec.name} ({spec.groups}); pick one inside a group.")


def tokens_to_grid(tensor: torch.Tensor) -> torch.Tensor:
    """Turn ViT tokens (N, 1 + h*w, C) into a feature map (N, C, h, w), dropping the class token."""
    n, tokens, channels = tensor.shape
    side = int(round((tokens - 1) ** 0.5))
    if side * side != tokens - 1:
        raise DataError(f"Cannot arrange {tokens - 1} ViT tokens (after the class token) on a square grid.")
    return tensor[:, 1:, :].reshape(n, side, side, channels).permute(0, 3, 1, 2)


def reshape_transform_for(model: nn.Module):
    """Return the reshape a CAM needs for this backbone (ViT tokens -> grid), or None for a CNN."""
    spec = _spec(model)
    return tokens_to_grid if spec is not None and spec.family == "vit" else None


def num_classes_of(model: nn.Module) -> int | None:
    """Return the number of outputs of the classifier head (registry head, else the last Linear), or None."""
    spec = _spec(model)
    head = model.get_submodule(spec.head) if spec is not None else None
    if not isinstance(head, nn.Linear):
        linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
        head = linears[-1] if linears else None
    return head.out_features if head is not None else None


def check_batch(model: nn.Module, x) -> torch.Tensor:
    """Return `x` if it is a float batch (N, C, H, W) this model accepts, else raise DataError saying why."""
    if not isinstance(x, torch.Tensor):
        raise DataError(f"Expected a torch.Tensor batch (N, C, H, W), got {type(x).__name__}; "
                        "preprocess images with spec.preprocess(image_size).")
    if x.ndim != 4 or x.shape[0] == 0:
        hint = " Add the batch dimension with x[None]." if x.ndim == 3 else ""
        raise DataError(f"Expected a non-empty batch shaped (N, C, H, W), got shape {tuple(x.shape)}.{hint}")
    if not x.is_floating_point():
        raise DataError(f"Expected a float (preprocessed) batch, got dtype {x.dtype}; apply spec.preprocess(image_size) first.")
    conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    if conv is not None and x.shape[1] != conv.in_channels:
        raise DataError(f"The model takes {conv.in_channels} channels, the batch has {x.shape[1]} "
                        f"(shape {tuple(x.shape)}); spec.preprocess() turns grey images into 3 channels.")
    spec = _spec(model)
    if spec is not None and spec.family == "vit" and tuple(x.shape[-2:]) != (spec.input_size, spec.input_size):
        raise DataError(f"{spec.name} needs {spec.input_size} x {spec.input_size} inputs, got {tuple(x.shape[-2:])}; "
                        f"use spec.preprocess({spec.input_size}).")
    return x


def resolve_targets(target, n: int, num_classes: int | None) -> list[int] | None:
    """Return one class index per image (None: the predicted class), each checked against the model's classes."""
    if target is None:
        return None
    scalar = isinstance(target, numbers.Number) or (hasattr(target, "ndim") and target.ndim == 0)
    targets = [target] * n if scalar else list(target)
    if len(targets) != n:
        raise DataError(f"Got {len(targets)} target classes for a batch of {n} images; pass one class, or one per image.")
    out = []
    for t in targets:
        if isinstance(t, bool) or not float(t).is_integer():
            raise DataError(f"Target class {t!r} is not an integer class index.")
        t = int(t)
        if t < 0 or (num_classes is not None and t >= num_classes):
            top = f"0..{num_classes - 1}" if num_classes is not None else "0 or more"
            raise DataError(f"Class index {t} is out of range for a model with {num_classes} classes ({top}).")
        out.append(t)
    return out


def feature_size(model: nn.Module, x: torch.Tensor, layer=None) -> tuple[int, int]:
    """Return the (height, width) of the CAM layer's feature map for inputs like `x` (one forward, no grad)."""
    name, module = resolve_layer(model, layer)
    shapes = []
    handle = module.register_forward_hook(lambda m, i, out: shapes.append(tuple(out.shape)))
    try:
        with torch.no_grad():
            model(check_batch(model, x)[:1])
    finally:
        handle.remove()
    shape = shapes[0]
    if len(shape) == 3:  # ViT tokens
        side = int(round((shape[1] - 1) ** 0.5))
        return side, side
    return shape[-2], shape[-1]


def count_hooks(model: nn.Module) -> int:
    """Return how many forward/backward hooks are registered on the model's modules (0 after any medkit CAM)."""
    names = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")
    return sum(len(getattr(m, attr, {}) or {}) for m in model.modules() for attr in names)
