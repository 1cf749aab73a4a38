"""The training core, above data, models and evaluation, below every lesson method and the recipe.

train (the loop), freeze (layer groups and stages), losses, checkpoint (model.pt + config.json), features
(frozen activations, `TensorLoader`, probes), experiment (`train_and_test`, the lessons' train-and-score), env
(`print_config`, `medkit doctor`), fetch (pre-downloads). Submodules load on first use.
"""

from ..base import lazy_submodules

__getattr__ = lazy_submodules(__name__)
