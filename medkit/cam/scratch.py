"""Grad-CAM from scratch: two hooks in a context manager, and a base class whose one override is the channel weights.

Lesson 04 builds the short version step by step and checks it against pytorch-grad-cam.
"""

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .layers import check_batch, num_classes_of, reshape_transform_for, resolve_layer, resolve_targets

__all__ = ["LayerHooks", "BaseCAM", "ScratchGradCAM", "normalise_maps"]


class LayerHooks:
    """Record one layer's output and the gradient that flows back into it; the hooks are removed on exit, always.

    The forward hook hands the rest of the network a copy of the output that starts a new graph, so a
    backward pass stops at this layer: nothing below it is differentiated (cheaper, and it works when
    the body is frozen). The backward hook is a tensor hook, which dies with the graph.
    """

    def __init__(self, layer: nn.Module):
        self.layer, self.handles = layer, []
        self.activations = self.gradients = None

    def __enter__(self):
        self.handles.append(self.layer.register_forward_hook(self._forward))
        return self

    def _forward(self, module, inputs, output):
        self.activations = output.detach().requires_grad_(True)
        self.activations.register_hook(self._backward)
        return self.activations.clone()  # a non-leaf, so later in-place ops (DenseNet's ReLU) are allowed

    def _backward(self, grad):
        self.gradients = grad

    def __exit__(self, *exc):
        for handle in self.handles:
            handle.remove()
        self.handles.clear()
        return False


def normalise_maps(cam: torch.Tensor, size) -> np.ndarray:
    """Scale each map to [0, 1] and resize it to `size` (H, W), as pytorch-grad-cam does."""
    flat = cam.flatten(1)
    cam = (cam - flat.min(1).values[:, None, None])
    cam = cam / (cam.flatten(1).max(1).values[:, None, None] + 1e-7)
    cam = F.interpolate(cam[:, None], size=tuple(size), mode="bilinear", align_corners=False)[:, 0]
    return cam.numpy().astype(np.float32)


class BaseCAM:
    """A gradient CAM on one layer: subclasses only say how the channels are weighted (`channel_weights`).

    Args:
        model: a classifier returning logits (N, K).
        layer: dotted module name; None takes the registry's default for this backbone.
    """

    def __init__(self, model: nn.Module, layer=None):
        self.model = model
        self.layer_name, self.layer = resolve_layer(model, layer)
        self.reshape = reshape_transform_for(model)
        self.targets = None  # the classes explained by the last call

    def channel_weights(self, activations: torch.Tensor, gradients: torch.Tensor) -> torch.Tensor:
        """Return one weight per image and channel (N, C): the only thing a CAM method must define."""
        raise NotImplementedError

    def __call__(self, x: torch.Tensor, target=None) -> np.ndarray:
        """Return maps (N, H, W) in [0, 1] for class `target` (None: the predicted class; an int or one per image)."""
        x = check_batch(self.model, x)
        targets = resolve_targets(target, len(x), num_classes_of(self.model))
        was_training = self.model.training
        self.model.eval()  # BatchNorm and dropout as at prediction time
        try:
            with LayerHooks(self.layer) as hooks, torch.enable_grad():
                logits = self.model(x)
                classes = logits.argmax(1) if targets is None else torch.tensor(targets)
                score = logits.gather(1, classes[:, None]).sum()  # images are independent: one backward for all
                torch.autograd.backward(score, inputs=[hooks.activations])
            activations, gradients = hooks.activations.detach(), hooks.gradients
        finally:
            self.model.train(was_training)
        if self.reshape is not None:
            activations, gradients = self.reshape(activations), self.reshape(gradients)
        with torch.no_grad():
            weights = self.channel_weights(activations, gradients)
            cam = F.relu((weights[:, :, None, None] * activations).sum(1))
        self.targets = classes.numpy()
        return normalise_maps(cam, x.shape[-2:])


class ScratchGradCAM(BaseCAM):
    """Grad-CAM (Selvaraju et al., 2017): weight each channel by its mean gradient."""

    def channel_weights(self, activations, gradients):
        return gradients.mean(dim=(2, 3))
