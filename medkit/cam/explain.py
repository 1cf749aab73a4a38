"""Class activation maps through pytorch-grad-cam, batched, with hooks that never outlive their use."""

import contextlib
import io

import numpy as np
import torch
from torch import nn

from ..base.errors import UnknownNameError
from .layers import check_batch, num_classes_of, reshape_transform_for, resolve_layer, resolve_targets

__all__ = ["METHODS", "Explainer", "cams"]


def _methods() -> dict:
    from ..base._optional import require

    require("pytorch_grad_cam", "cam", "Grad-CAM through pytorch-grad-cam")
    from pytorch_grad_cam import EigenCAM, GradCAM, GradCAMPlusPlus, ScoreCAM

    return {"gradcam": GradCAM, "gradcam++": GradCAMPlusPlus, "scorecam": ScoreCAM, "eigencam": EigenCAM}


METHODS = ("gradcam", "gradcam++", "scorecam", "eigencam")  # the last two need no gradients


class Explainer:
    """Compute CAMs of one method on one layer: `maps = Explainer(model, "gradcam")(x)`.

    pytorch-grad-cam's hooks record every forward pass of the model for as long as they are registered,
    and its objects keep the last graph alive. So the hooks live only inside each call: they are
    registered, used and removed (also after an error); the graph is freed, the model is put back in the
    mode it was in, and no parameter gradients are left behind. `with Explainer(...) as explain:` also works.

    Args:
        model: a classifier returning logits (N, K).
        method: one of `METHODS`.
        layer: dotted module name; None takes the registry's default for this backbone.
        batch_size: images per forward/backward pass; the maps do not depend on it (eval mode), the peak memory
            does: 16 keeps lesson 04's 128 px workshop kernel within Binder's 1 GB.
    """

    def __init__(self, model: nn.Module, method: str = "gradcam", layer=None, batch_size: int = 16):
        if method not in METHODS:
            raise UnknownNameError(f"Unknown CAM method {method!r}; choose one of {', '.join(METHODS)}.")
        self.model, self.method, self.batch_size = model, method, max(1, int(batch_size))
        self.layer_name, self.layer = resolve_layer(model, layer)
        self.targets = None  # the classes explained by the last call

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False  # never swallow errors (pytorch-grad-cam's own __exit__ hides IndexError)

    def _library_cam(self):
        cam = _methods()[self.method](model=self.model, target_layers=[self.layer],
                                      reshape_transform=reshape_transform_for(self.model))
        # A frozen target layer (and body) gives the layer's output no gradient; asking for the input's gradient
        # restores one, at the cost of recording the graph of the whole network. A trainable layer needs neither.
        cam.compute_input_gradient = cam.uses_gradients and not any(p.requires_grad for p in self.layer.parameters())
        cam.batch_size = 64  # ScoreCAM: masked copies per forward pass
        return cam

    def __call__(self, x: torch.Tensor, target=None) -> np.ndarray:
        """Return maps (N, H, W) in [0, 1] for class `target` (None: the predicted class; an int or one per image)."""
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

        x = check_batch(self.model, x)
        targets = resolve_targets(target, len(x), num_classes_of(self.model))
        was_training = self.model.training
        cam = self._library_cam()  # registers the hooks and puts the model in eval mode
        maps, explained = [], []
        try:
            for start in range(0, len(x), self.batch_size):
                batch = x[start:start + self.batch_size]
                wanted = None if targets is None else [ClassifierOutputTarget(t) for t in targets[start:start + len(batch)]]
                grad = torch.enable_grad() if cam.uses_gradients else torch.no_grad()
                quiet = contextlib.redirect_stderr(io.StringIO())  # ScoreCAM draws a progress bar per image
                with grad, quiet:
                    maps.append(cam(input_tensor=batch, targets=wanted))
                explained.append(cam.outputs.detach().argmax(1).numpy() if targets is None
                                 else np.asarray(targets[start:start + len(batch)]))
                cam.outputs = None  # holds the batch's graph (retain_graph=True) until the next batch
        finally:
            cam.activations_and_grads.release()
            cam.outputs = None
            self.model.train(was_training)
            self.model.zero_grad(set_to_none=True)
        self.targets = np.concatenate(explained)
        return np.concatenate(maps).astype(np.float32)


def cams(model: nn.Module, x: torch.Tensor, method: str = "gradcam", layer=None, target=None,
         batch_size: int = 16) -> np.ndarray:
    """Return CAMs (N, H, W) in [0, 1] of `method` on `layer` (None: the registry default) for `target` (None: predicted)."""
    return Explainer(model, method, layer, batch_size)(x, target)
