"""`medkit fit` / `medkit evaluate`: the fine-tuning recipe lesson 03 ends with, on any image source.

`config` (what both recipes share), `single_label` (one class per image; hands findings on), `multilabel`
(`|`-separated findings, one sigmoid each), `validation` (internal and external results, the records a
checkpoint keeps of them) and `table` (the measured recipe table lesson 03 renders).
"""

from .config import METRICS_FILE, RecipeConfig
from .single_label import evaluate_checkpoint, evaluate_internal_and_external, fit_recipe
from .validation import record

# `table` is not imported here, so `python -m medkit.fit.table RECIPE.md` runs it as a script cleanly
__all__ = ["RecipeConfig", "METRICS_FILE", "fit_recipe", "evaluate_checkpoint", "evaluate_internal_and_external",
           "record"]
