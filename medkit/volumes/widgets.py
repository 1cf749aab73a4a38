"""The slice scroller of lesson 11: scroll through a volume along any axis, in millimetre-true proportions.

Observe-based like lesson 01's explorers (`medkit.data.widgets`): moving a control calls `redraw`, which renders
the slice as PNG bytes into an `ipywidgets.Image`; it works outside a kernel too, which is how the tests drive it.
"""

import numpy as np

from ..data.widgets import to_png
from .io import Volume

__all__ = ["slice_image", "slice_scroller"]


def slice_image(volume: Volume, axis: int, index: int, low: float, high: float) -> np.ndarray:
    """Return slice `index` across `axis` scaled to [0, 1] between `low` and `high`, stretched to square millimetres."""
    from scipy.ndimage import zoom

    plane = np.take(volume.array, int(index), axis=axis)
    spacing = [s for a, s in enumerate(volume.spacing) if a != axis]
    plane = zoom(plane, np.array(spacing) / min(spacing), order=1) if spacing[0] != spacing[1] else plane
    return np.clip((np.rot90(plane) - low) / max(high - low, 1e-6), 0, 1)  # rot90: first axis left-right on screen


def slice_scroller(volume: Volume, axis: int = 2, display_size: int = 320):
    """Return a widget: a slice slider and an axis menu over `volume`, grey levels from its 1st-99th percentiles.

    The returned VBox carries `.slider`, `.axis`, `.image`, `.caption` and `.redraw()`.
    """
    import ipywidgets as widgets

    low, high = (float(v) for v in np.percentile(volume.array, [1, 99]))
    options = [(f"{volume.plane(a)} (axis {a}, {volume.orientation[a]})", a) for a in range(3)]
    axis_menu = widgets.Dropdown(options=options, value=axis, description="plane")
    slider = widgets.IntSlider(value=volume.shape[axis] // 2, min=0, max=volume.shape[axis] - 1,
                               description="slice", continuous_update=True, layout={"width": "420px"})
    image = widgets.Image(format="png")
    caption = widgets.HTML()

    def redraw(change=None):
        a = axis_menu.value
        if slider.max != volume.shape[a] - 1:  # a new axis: keep the slider in range, start in the middle
            with slider.hold_trait_notifications():
                slider.max, slider.value = volume.shape[a] - 1, volume.shape[a] // 2
        image.value = to_png(slice_image(volume, a, slider.value, low, high), display_size)
        mm = slider.value * volume.spacing[a]
        caption.value = (f"{volume.plane(a)} slice {slider.value} of {volume.shape[a]} ({mm:.0f} mm along axis {a}, "
                         f"voxels {' x '.join(f'{s:.3g}' for s in volume.spacing)} mm)")

    slider.observe(redraw, names="value")
    axis_menu.observe(redraw, names="value")
    redraw()
    box = widgets.VBox([widgets.HBox([axis_menu, slider]), image, caption])
    box.slider, box.axis, box.image, box.caption, box.redraw = slider, axis_menu, image, caption, redraw
    return box
