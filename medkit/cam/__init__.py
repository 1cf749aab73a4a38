"""Class activation maps you can trust (lesson 04): Grad-CAM and friends, overlays, faithfulness and sanity checks.

- `cams` / `Explainer`: Grad-CAM, Grad-CAM++, ScoreCAM, EigenCAM through pytorch-grad-cam, batched, hooks always removed.
- `ScratchGradCAM` (on `BaseCAM` and `LayerHooks`): the same Grad-CAM in a few lines, to check the library against.
- `overlay`, `show_cams`, `browser`: maps on windowed grey images, grids, an ipywidgets browser.
- `faithfulness`: ROAD against random maps; `sanity_check`: maps of a model with its top re-initialised.
- `pointing_game`, `energy_inside`: maps scored against exact masks, beside `random_maps` and `centre_prior`;
  `burn_marker`: the burned-in corner marker a model can learn as a shortcut.
"""

from .explain import METHODS, Explainer, cams
from .faithfulness import (
    SCORES,
    Faithfulness,
    LogOddsTarget,
    faithfulness,
    random_maps,
    randomize_top,
    rank_correlation,
    road_curves,
    sanity_check,
)
from .layers import count_hooks, feature_size, layer_candidates, layer_group, resolve_layer, tokens_to_grid
from .localisation import box_mask, burn_marker, centre_prior, energy_inside, marker_box, pointing_game
from .overlay import browser, overlay, show_cams
from .scratch import BaseCAM, LayerHooks, ScratchGradCAM

__all__ = [
    "METHODS", "Explainer", "cams", "BaseCAM", "LayerHooks", "ScratchGradCAM",
    "resolve_layer", "layer_group", "layer_candidates", "tokens_to_grid", "feature_size", "count_hooks",
    "random_maps", "road_curves", "SCORES", "LogOddsTarget", "Faithfulness", "faithfulness", "randomize_top", "rank_correlation", "sanity_check",
    "pointing_game", "energy_inside", "centre_prior", "marker_box", "box_mask", "burn_marker",
    "overlay", "show_cams", "browser",
]
