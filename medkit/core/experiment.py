"""The one experiment lessons 02 and 03 repeat: train through freezing stages, then score on a test set."""

import time

from ..data import BatchLoader
from ..data.augment import Augment
from ..evaluation.metrics import classification_metrics
from ..models import get_spec
from .freeze import fit_stages
from .train import SCORE_BATCH, predict, seed_everything

__all__ = ["train_and_test"]


def train_and_test(model, train, test, stages, *, image_size: int = 64, batch_size: int = 64, val=None,
                   loss_fn=None, augment: bool = False, seed: int = 0, progress: bool = False,
                   train_bn: bool = True) -> dict:
    """Train `model` through freezing `stages` on `train`, then return test metrics, seconds and history.

    The one experiment lessons 02 and 03 repeat (budgets, freeze depths, losses): same loaders, same loop.
    """
    seed_everything(seed)
    pre = get_spec(model).preprocess(image_size)
    train_dl = BatchLoader(train, batch_size, shuffle=True, seed=seed, preprocess=pre,
                           augment=Augment.xray(seed=seed) if augment else None, drop_last=len(train) > batch_size)
    val_dl = BatchLoader(val, SCORE_BATCH, preprocess=pre) if val is not None else None
    start = time.perf_counter()
    history = fit_stages(model, train_dl, val_dl, stages, loss_fn=loss_fn, progress=progress, train_bn=train_bn)
    seconds = time.perf_counter() - start
    probs, labels = predict(model, BatchLoader(test, SCORE_BATCH, preprocess=pre))
    return {**classification_metrics(labels, probs), "seconds": seconds, "history": history.rows}
