"""Show maps so they read well on grey medical images: windowed image underneath, heat only where the map is high."""

import numpy as np
import torch
import torch.nn.functional as F

from ..base.errors import DataError
from ..data.dicom import window as data_window
from .explain import cams
from .layers import resolve_layer

__all__ = ["overlay", "show_cams", "browser"]


def _grey(image, window) -> np.ndarray:
    """Return a grey image (H, W) in [0, 1] through `medkit.data.window` (a preset, (center, width) or "auto")."""
    image = np.asarray(image, dtype=np.float32)
    image = image[..., 0] if image.ndim == 3 and image.shape[-1] in (1, 3) else image
    image = image[0] if image.ndim == 3 and image.shape[0] in (1, 3) else image
    if image.ndim != 2:
        raise DataError(f"Expected a grey image (H, W), got shape {image.shape}.")
    return data_window(image, window)


def _resize(image: np.ndarray, shape) -> np.ndarray:
    if image.shape == tuple(shape):
        return image
    t = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None]
    return F.interpolate(t, size=tuple(shape), mode="bilinear", align_corners=False)[0, 0].numpy()


def overlay(image, cam, alpha: float = 0.6, cmap: str = "jet", window="auto") -> np.ndarray:
    """Return an RGB image (H, W, 3) in [0, 1]: the windowed grey image with the map's colours laid over it.

    The colour's opacity grows with the map (alpha * cam), so regions the map ignores stay plain grey
    and the anatomy underneath remains readable. `window` goes to `medkit.data.window` (CT: "lung").
    """
    import matplotlib

    cam = np.asarray(cam, dtype=np.float32)
    if cam.ndim != 2:
        raise DataError(f"Expected one map (H, W), got shape {cam.shape}.")
    if not 0 <= alpha <= 1:
        raise DataError(f"alpha must lie in [0, 1], got {alpha}.")
    grey = _resize(_grey(image, window), cam.shape)
    heat = matplotlib.colormaps[cmap](np.clip(cam, 0, 1))[..., :3]
    a = (alpha * np.clip(cam, 0, 1))[..., None]
    return np.clip((1 - a) * grey[..., None] + a * heat, 0, 1)


def show_cams(images, maps, titles=None, show_maps: bool = True, alpha: float = 0.6, cmap: str = "jet",
              size: float = 1.7, window="auto"):
    """Show a grid, one row per image: the image, then per method its map and its overlay; return the figure.

    `maps` is (N, H, W) for one method or a dict {method: (N, H, W)}.
    """
    import matplotlib.pyplot as plt

    maps = maps if isinstance(maps, dict) else {"map": maps}
    images = list(images)
    cols = 1 + len(maps) * (2 if show_maps else 1)
    fig, axes = plt.subplots(len(images), cols, figsize=(cols * size, len(images) * size * 1.1), squeeze=False)
    for i, image in enumerate(images):
        row = [("image" if titles is None else str(titles[i]), _grey(image, window), "gray")]
        for name, m in maps.items():
            if show_maps:
                row.append((name, m[i], cmap))
            row.append((f"{name} overlay" if show_maps else name, overlay(image, m[i], alpha, cmap, window), None))
        for ax, (title, picture, colours) in zip(axes[i], row):
            ax.imshow(picture, cmap=colours, vmin=0, vmax=1)
            ax.set_title(title, fontsize=8)
            ax.axis("off")
    fig.tight_layout()
    return fig


def browser(model, images, x, classes, labels=None, methods=None, layers=None):
    """Return an ipywidgets browser over images, explained class, CAM method and layer.

    Args:
        model: the classifier; images: the grey images to show (N, H, W); x: their preprocessed batch.
        classes: class names; labels: true labels, shown in the title.
        methods: CAM methods offered (default: Grad-CAM, Grad-CAM++, EigenCAM); layers: layer names (default: the registry's).
    """
    import ipywidgets as widgets
    import matplotlib.pyplot as plt

    methods = list(methods or ("gradcam", "gradcam++", "eigencam"))
    layers = list(layers or [resolve_layer(model)[0]])
    cache = {}

    def show(index, target, method, layer):
        key = (index, target, method, layer)
        if key not in cache:
            cache[key] = cams(model, x[index:index + 1], method, layer, target)[0]
        truth = "" if labels is None else f"true: {classes[int(labels[index])]}, "
        explained = "predicted class" if target is None else classes[target]
        fig, axes = plt.subplots(1, 3, figsize=(7.5, 2.8))
        for ax, (title, picture, colours) in zip(axes, [("image", _grey(images[index], "auto"), "gray"),
                                                        (f"{method} @ {layer}", cache[key], "jet"),
                                                        ("overlay", overlay(images[index], cache[key]), None)]):
            ax.imshow(picture, cmap=colours, vmin=0, vmax=1)
            ax.set_title(title, fontsize=9)
            ax.axis("off")
        fig.suptitle(f"image {index}: {truth}explaining {explained}", fontsize=9)
        plt.show()

    return widgets.interactive(
        show,
        index=widgets.IntSlider(value=0, min=0, max=len(x) - 1, description="image"),
        target=widgets.Dropdown(options=[("predicted", None)] + [(c, k) for k, c in enumerate(classes)],
                                description="class"),
        method=widgets.Dropdown(options=methods, description="method"),
        layer=widgets.Dropdown(options=layers, description="layer"),
    )
