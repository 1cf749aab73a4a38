"""The training core, above data, models and evaluation, below every lesson method and the recipe.

train (the loop), freeze (layer groups and stages), losses, checkpoint (model.pt + config.json), features
(frozen activations, `TensorLoader`, probes), experiment (`train_and_test`, the lessons' train-and-score), env
(`print_config`, `medkit doctor`), fetch (pre-downloads). Submodules load on first use.
"""

import importlib


def __getattr__(name):
    try:
        module = importlib.import_module(f".{name}", __name__)
    except ModuleNotFoundError as exc:
        if exc.name != f"{__name__}.{name}":
            raise
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    globals()[name] = module
    return module
