"""Train and score the lesson 11 comparison: a 3-D network from scratch against one inflated from ImageNet."""

import time

from ..core.features import TensorLoader
from ..core.train import SCORE_BATCH, fit, predict, seed_everything
from ..evaluation.metrics import auc
from .inflate import volume_net

__all__ = ["train_and_test_volumes", "compare_inits"]


def train_and_test_volumes(model, splits: dict, *, epochs: int, lr: float, batch_size: int = 32, seed: int = 0,
                   device: str = "cpu") -> dict:
    """Fit `model` on splits["train"] (AdamW, one-cycle), then return its val and held-out test AUC and seconds."""
    seed_everything(seed)
    start = time.perf_counter()
    X, y = splits["train"]
    history = fit(model, TensorLoader(X, y, batch_size, shuffle=True, seed=seed), epochs=epochs, lr=lr, device=device,
                  progress=False)
    scores = {}
    for part in ("val", "test"):
        probs, labels = predict(model, TensorLoader(*splits[part], batch_size=SCORE_BATCH), device)
        scores[f"{part}_auc"] = auc(labels, probs[:, 1])
    return {**scores, "train_loss": history.rows[-1]["train_loss"], "seconds": time.perf_counter() - start}


def compare_inits(splits: dict, seeds, *, epochs: int, lr: dict, num_blocks: int = 3, batch_size: int = 32,
                  device: str = "cpu") -> list[dict]:
    """Return one row per (seed, init): the same 3-D architecture, random or inflated from ImageNet.

    `lr` maps "scratch" and "inflated" to their learning rates. The seed sets the head, the random body and the
    batch order; the inflated body is the same for every seed.
    """
    rows = []
    for seed in seeds:
        for init in ("scratch", "inflated"):
            seed_everything(seed)
            model = volume_net(pretrained=init == "inflated", num_blocks=num_blocks)
            result = train_and_test_volumes(model, splits, epochs=epochs, lr=lr[init], batch_size=batch_size, seed=seed,
                                    device=device)
            rows.append({"seed": int(seed), "init": init, "lr": lr[init], **result})
    return rows
