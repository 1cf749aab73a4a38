"""Interactive explorers for lesson 01: a CT window/level explorer and an augmentation explorer.

Both are observe-based: moving a slider calls `redraw`, which renders the new picture into an
`ipywidgets.Image` as PNG bytes (no matplotlib round trip, so it stays responsive, and it works
outside a kernel too, which is how the tests drive it).
"""

import io

import numpy as np

from .augment import Augment
from .dicom import WINDOWS, window

__all__ = ["to_png", "window_explorer", "augment_explorer"]


def to_png(image, display_size: int = 320) -> bytes:
    """Encode a [0, 1] float image (H, W) or (H, W, 3) as PNG bytes, upscaled (nearest) to about `display_size` px high."""
    from PIL import Image

    array = (np.clip(np.asarray(image, dtype=np.float32), 0, 1) * 255 + 0.5).astype(np.uint8)
    pil = Image.fromarray(array)
    scale = max(1, display_size // array.shape[0])  # by height, so a strip of tiles stays legible
    pil = pil.resize((array.shape[1] * scale, array.shape[0] * scale), Image.NEAREST)
    buffer = io.BytesIO()
    pil.save(buffer, format="PNG")
    return buffer.getvalue()


def window_explorer(hu, level: float = -600, width: float = 1500, display_size: int = 320):
    """Return a widget: `level` and `window` sliders and a preset menu over a CT slice in HU.

    The returned VBox carries `.level`, `.window`, `.preset`, `.image`, `.caption` and `.redraw()`.
    """
    import ipywidgets as widgets

    hu = np.asarray(hu, dtype=np.float32)
    style = {"description_width": "60px"}
    level_slider = widgets.IntSlider(value=int(level), min=-1200, max=1500, step=10, description="level",
                                     continuous_update=False, style=style, layout={"width": "420px"})
    window_slider = widgets.IntSlider(value=int(width), min=1, max=3000, step=10, description="window",
                                      continuous_update=False, style=style, layout={"width": "420px"})
    preset = widgets.Dropdown(options=["(custom)", *WINDOWS], value="(custom)", description="preset", style=style)
    image = widgets.Image(format="png", width=display_size, height=display_size)
    caption = widgets.HTML()

    def redraw(change=None):
        shown = window(hu, (level_slider.value, window_slider.value))
        image.value = to_png(shown, display_size)
        black, white = float((shown <= 0).mean()), float((shown >= 1).mean())
        caption.value = (f"level {level_slider.value} HU, window {window_slider.value} HU: shows "
                         f"{level_slider.value - window_slider.value / 2:.0f} to "
                         f"{level_slider.value + window_slider.value / 2:.0f} HU; "
                         f"{black:.0%} of pixels pure black, {white:.0%} pure white")

    def apply_preset(change):
        if change["new"] in WINDOWS:
            center, width_ = WINDOWS[change["new"]]
            with level_slider.hold_trait_notifications(), window_slider.hold_trait_notifications():
                level_slider.value, window_slider.value = int(center), int(width_)

    level_slider.observe(redraw, names="value")
    window_slider.observe(redraw, names="value")
    preset.observe(apply_preset, names="value")
    redraw()
    box = widgets.VBox([widgets.HBox([level_slider, window_slider]), preset, image, caption])
    box.level, box.window, box.preset, box.image, box.caption, box.redraw = (
        level_slider, window_slider, preset, image, caption, redraw)
    return box


def augment_explorer(images, n_show: int = 8, seed: int = 0, display_size: int = 96):
    """Return a widget with one slider per augmentation, showing `n_show` augmented copies of `images[0]`.

    `images` is uint8 (N, H, W) or (N, H, W, 3). The VBox carries `.controls` (name -> widget),
    `.image` and `.redraw()`.
    """
    import ipywidgets as widgets
    import torch

    first = np.asarray(images)[0]
    x = torch.from_numpy(first).float().div(255)
    x = x[None, None] if x.ndim == 2 else x.permute(2, 0, 1)[None]
    batch = x.expand(n_show, -1, -1, -1).contiguous()
    controls = {
        "rotate": widgets.FloatSlider(value=10, min=0, max=45, step=1, description="rotate"),
        "elastic": widgets.FloatSlider(value=0, min=0, max=4, step=0.25, description="elastic"),
        "scale": widgets.FloatSlider(value=0, min=0, max=0.3, step=0.05, description="scale"),
        "shift": widgets.FloatSlider(value=0, min=0, max=0.3, step=0.02, description="shift"),
        "brightness": widgets.FloatSlider(value=0.1, min=0, max=0.5, step=0.05, description="brightness"),
        "contrast": widgets.FloatSlider(value=0.1, min=0, max=0.9, step=0.05, description="contrast"),
        "gamma": widgets.FloatSlider(value=0, min=0, max=1, step=0.05, description="gamma"),
        "noise": widgets.FloatSlider(value=0, min=0, max=0.2, step=0.01, description="noise"),
        "hflip": widgets.Checkbox(value=False, description="hflip"),
        "seed": widgets.IntSlider(value=seed, min=0, max=99, description="seed"),
    }
    for control in controls.values():
        control.continuous_update = False
    image = widgets.Image(format="png")

    def redraw(change=None):
        out = Augment(**{k: c.value for k, c in controls.items()})(batch)
        tiles = [t.permute(1, 2, 0).numpy() if t.shape[0] == 3 else t[0].numpy() for t in out]
        image.value = to_png(np.concatenate([x[0].permute(1, 2, 0).numpy() if x.shape[1] == 3 else x[0, 0].numpy(),
                                             *tiles], axis=1), display_size)

    for control in controls.values():
        control.observe(redraw, names="value")
    redraw()
    box = widgets.VBox([widgets.HBox(list(controls.values())[:5]), widgets.HBox(list(controls.values())[5:]), image])
    box.controls, box.image, box.redraw = controls, image, redraw
    return box
