"""Overlays that show image, true mask and predicted mask together: contours, not filled blobs."""

import numpy as np

from ..base.errors import DataError

__all__ = ["show_overlays", "mask_colours"]

TRUE_COLOUR, PRED_COLOUR = "lime", "red"


def mask_colours(true, pred) -> np.ndarray:
    """Return an RGB (H, W, 3) image: green = found (true positive), red = false alarm, blue = missed."""
    true, pred = np.asarray(true) > 0, np.asarray(pred) > 0
    if true.shape != pred.shape:
        raise DataError(f"True mask {true.shape} and predicted mask {pred.shape} do not align.")
    out = np.zeros(true.shape + (3,), dtype=np.float32)
    out[true & pred] = (0, 1, 0)
    out[~true & pred] = (1, 0, 0)
    out[true & ~pred] = (0, 0.4, 1)
    return out


def show_overlays(images, true, pred=None, titles=None, ncols: int = 6, size: float = 2.0, suptitle: str | None = None):
    """Draw each image with the true mask's contour (green) and the predicted one (red, if given); return the figure."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    images, true = np.asarray(images), np.asarray(true)
    pred = np.zeros_like(true) if pred is None else np.asarray(pred)
    drawn = [(TRUE_COLOUR, "true mask")] + ([(PRED_COLOUR, "predicted mask")] if pred.any() else [])
    if not (images.shape == true.shape == pred.shape) or images.ndim != 3:
        raise DataError(f"images {images.shape}, true masks {true.shape} and predicted masks {pred.shape} must all be "
                        "(N, H, W) and align.")
    nrows = max(1, -(-len(images) // ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * size, nrows * size * 1.1), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, ax in enumerate(axes.flat[:len(images)]):
        ax.imshow(images[i], cmap="gray", vmin=0, vmax=255 if images.dtype == np.uint8 else 1)
        for mask, colour in ((true[i], TRUE_COLOUR), (pred[i], PRED_COLOUR)):
            if mask.any():  # contour() warns on a constant field
                ax.contour(mask > 0, levels=[0.5], colors=colour, linewidths=1.0)
        if titles is not None:
            ax.set_title(str(titles[i]), fontsize=8)
    fig.legend(handles=[Line2D([], [], color=c, label=name) for c, name in drawn], loc="lower center", ncol=2,
               fontsize=8, frameon=False)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return fig
