"""Plots the lessons share: image grids with titles, grey images shown as grey."""

import numpy as np

__all__ = ["show_grid"]


def show_grid(images, titles=None, ncols: int = 8, size: float = 1.6, cmap: str = "gray", suptitle: str | None = None):
    """Show images (N, H, W[, C]) in a grid with optional titles; return the figure."""
    import matplotlib.pyplot as plt

    images = list(images)
    nrows = max(1, -(-len(images) // ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * size, nrows * size * 1.1), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, (ax, image) in enumerate(zip(axes.flat, images)):
        image = np.asarray(image)
        ax.imshow(image, cmap=cmap if image.ndim == 2 else None)
        if titles is not None:
            ax.set_title(str(titles[i]), fontsize=8)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig
