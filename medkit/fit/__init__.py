"""`medkit fit` / `medkit evaluate`: the fine-tuning recipe lesson 03 ends with, on any image source.

`recipe` (`RecipeConfig`: the settings and their defaults, free of torch), `config` (what both recipes share),
`single_label` (one class per image; hands findings on), `multilabel` (`|`-separated findings, one sigmoid each),
`validation` (internal and external results, the records a checkpoint keeps of them) and `table` (the measured
recipe table lesson 03 renders).

Names load on first use, as in `medkit/__init__.py`: `medkit fit --help` reads `RecipeConfig`'s defaults through
`medkit.fit.recipe` without the torch that the recipe modules import.
"""

import importlib

# `table` is not imported here, so `python -m medkit.fit.table RECIPE.md` runs it as a script cleanly
_HOME = {"RecipeConfig": "recipe", "METRICS_FILE": "config", "fit_recipe": "single_label",
         "evaluate_checkpoint": "single_label", "evaluate_internal_and_external": "single_label",
         "record": "validation"}
__all__ = list(_HOME)


def __getattr__(name):
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_HOME[name]}", __name__), name)
    globals()[name] = value
    return value
