"""Is a map faithful? ROAD (pytorch-grad-cam's metric) against random maps, and the model-randomisation sanity check.

ROAD (Rong et al., 2022) removes the pixels a map ranks highest (MoRF) or lowest (LeRF), fills
them in by noisy linear imputation so the image stays in-distribution, and watches the model's
confidence. A faithful map loses confidence fast under MoRF and slowly under LeRF; a random map of
the same smoothness does neither, so it is the bar a map must clear. The sanity check (Adebayo et
al., 2018) re-initialises the top of the network: a map that barely changes was not explaining the model.
"""

import copy
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy.stats import spearmanr
from torch import nn

from ..base.errors import DataError
from ..models import get_spec, parameter_groups
from .layers import check_batch

__all__ = ["random_maps", "road_curves", "Faithfulness", "faithfulness", "randomize_top", "rank_correlation",
           "sanity_check", "LogOddsTarget", "SCORES"]

SCORES = ("probability", "log_odds")  # what ROAD watches: the softmax probability, or its log-odds


class LogOddsTarget:
    """A pytorch-grad-cam target: the log-odds of one class, log p / (1 - p), from the logits.

    A confident model's probability sits near 1 and hardly moves when pixels are removed (it saturates);
    its log-odds keep moving, so ROAD can still tell a faithful map from a random one.
    """

    def __init__(self, category: int):
        self.category = int(category)

    def __call__(self, model_output: torch.Tensor) -> torch.Tensor:
        z = model_output if model_output.ndim == 2 else model_output[None]
        others = torch.cat([z[:, :self.category], z[:, self.category + 1:]], 1)
        out = z[:, self.category] - torch.logsumexp(others, 1)
        return out if model_output.ndim == 2 else out[0]


def _targets(targets, n: int, score: str) -> list:
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget

    if score not in SCORES:
        raise DataError(f"Unknown ROAD score {score!r}; choose one of {', '.join(SCORES)}.")
    kind = LogOddsTarget if score == "log_odds" else ClassifierOutputSoftmaxTarget
    return [kind(int(t)) for t in np.broadcast_to(targets, (n,))]


def random_maps(n: int, size, grid: int = 2, seed: int = 0) -> np.ndarray:
    """Return `n` random maps (N, H, W) in [0, 1], as smooth as a CAM from a `grid` x `grid` feature map."""
    gen = torch.Generator().manual_seed(int(seed))
    noise = torch.rand(n, 1, int(grid), int(grid), generator=gen)
    maps = F.interpolate(noise, size=tuple(size), mode="bilinear", align_corners=False)[:, 0]
    low, high = maps.flatten(1).min(1).values, maps.flatten(1).max(1).values
    return ((maps - low[:, None, None]) / (high - low + 1e-7)[:, None, None]).numpy().astype(np.float32)


def _check_maps(x, maps) -> np.ndarray:
    maps = np.asarray(maps, dtype=np.float32)
    if maps.shape != (x.shape[0], *x.shape[-2:]):
        raise DataError(f"Expected one map per image shaped {(x.shape[0], *x.shape[-2:])}, got {maps.shape}.")
    return maps


def road_curves(model: nn.Module, x: torch.Tensor, maps, targets, percentiles=(20, 40, 60, 80), seed: int = 0,
                score: str = "probability") -> dict:
    """Return ROAD's confidence changes per percentile and image: {"percentiles", "morf" (P, N), "lerf" (P, N)}.

    `score` is what counts as confidence in each image's target class: its softmax "probability" (as
    pytorch-grad-cam does) or its "log_odds" (which does not saturate); a percentile p keeps p % of the
    pixels (MoRF removes the top 100 - p %, LeRF the bottom 100 - p %).
    """
    from ..base._optional import require

    require("pytorch_grad_cam", "cam", "ROAD faithfulness")
    from pytorch_grad_cam.metrics.road import ROADLeastRelevantFirst, ROADMostRelevantFirst

    x, maps = check_batch(model, x), _check_maps(x, maps)
    wanted = _targets(targets, len(x), score)
    was_training = model.training
    model.eval()
    morf, lerf = [], []
    try:
        with torch.random.fork_rng(), torch.no_grad():  # the imputer adds noise: seed it, leave the caller's RNG alone
            torch.manual_seed(seed)
            for p in percentiles:
                morf.append(ROADMostRelevantFirst(p)(x, maps, wanted, model))
                lerf.append(ROADLeastRelevantFirst(p)(x, maps, wanted, model))
    finally:
        model.train(was_training)
    return {"percentiles": list(percentiles), "morf": np.float32(morf), "lerf": np.float32(lerf)}


@dataclass
class Faithfulness:
    """ROAD scores per image ((LeRF - MoRF) / 2, averaged over percentiles) of a map and of random maps."""

    cam: np.ndarray  # (N,) the maps under test
    random: np.ndarray  # (N,) random maps of the same smoothness (mean over the random draws)
    curves: dict  # road_curves of the maps under test
    random_curves: list  # road_curves of each random draw

    @property
    def gain(self) -> float:
        """Mean ROAD of the maps minus that of the random maps (> 0: better than chance)."""
        return float(self.cam.mean() - self.random.mean())

    @property
    def win_rate(self) -> float:
        """Fraction of images whose map beats the random maps."""
        return float((self.cam > self.random).mean())

    def __repr__(self) -> str:
        return (f"Faithfulness(ROAD map={self.cam.mean():.4f}, random={self.random.mean():.4f}, "
                f"gain={self.gain:+.4f}, win rate={self.win_rate:.0%}, n={len(self.cam)})")


def _road(curves) -> np.ndarray:
    return ((curves["lerf"] - curves["morf"]) / 2).mean(0)  # pytorch-grad-cam's ROADCombined


def faithfulness(model: nn.Module, x: torch.Tensor, maps, targets, percentiles=(20, 40, 60, 80), grid: int = 2,
                 n_random: int = 1, seed: int = 0, baseline: Faithfulness | None = None,
                 score: str = "probability") -> Faithfulness:
    """Score `maps` with ROAD and compare them with `n_random` draws of random maps, image by image.

    Args:
        model, x: the classifier and the preprocessed batch the maps explain.
        maps: (N, H, W) maps; targets: the class each map explains (one int, or one per image).
        grid: side of the random maps' grid; match the CAM layer's feature map (2 for efficientnet at 64 px).
        baseline: a previous result on the same images and targets whose random maps are reused (saves their cost).
        score: "probability" (pytorch-grad-cam's ROAD) or "log_odds" (for confident models; see `LogOddsTarget`).
    """
    maps = _check_maps(check_batch(model, x), maps)
    curves = road_curves(model, x, maps, targets, percentiles, seed, score)
    curves["score"] = score
    if baseline is not None:
        if (len(baseline.random) != len(x) or baseline.curves["percentiles"] != list(percentiles)
                or baseline.curves.get("score") != score):
            raise DataError("The baseline was scored on other images, percentiles or score; compute it afresh "
                            "(baseline=None).")
        return Faithfulness(_road(curves), baseline.random, curves, baseline.random_curves)
    random_curves = [road_curves(model, x, random_maps(len(x), x.shape[-2:], grid, seed + 1 + k), targets,
                                 percentiles, seed, score) for k in range(n_random)]
    return Faithfulness(_road(curves), np.mean([_road(c) for c in random_curves], axis=0), curves, random_curves)


def randomize_top(model: nn.Module, n_groups: int = 1, seed: int = 0) -> nn.Module:
    """Return a copy of a registry model whose top `n_groups` layer groups (head first) are re-initialised."""
    spec = get_spec(model)
    if not 1 <= n_groups <= len(spec.groups):
        raise DataError(f"n_groups must be between 1 and {len(spec.groups)} for {spec.name}, got {n_groups}.")
    clone = copy.deepcopy(model)
    names = {name for group in parameter_groups(clone, spec)[-n_groups:] for name, _ in group}
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        for prefix, module in clone.named_modules():
            own = {f"{prefix}.{n}" if prefix else n for n, _ in module.named_parameters(recurse=False)}
            if own & names and hasattr(module, "reset_parameters"):
                module.reset_parameters()  # BatchNorm also forgets its running statistics
    return clone


def rank_correlation(a, b) -> np.ndarray:
    """Return the Spearman rank correlation of each pair of maps (NaN where a map is constant)."""
    a, b = np.asarray(a), np.asarray(b)
    out = []
    for u, v in zip(a.reshape(len(a), -1), b.reshape(len(b), -1)):
        out.append(np.nan if u.std() == 0 or v.std() == 0 else spearmanr(u, v)[0])
    return np.asarray(out, dtype=np.float64)


def sanity_check(model: nn.Module, x: torch.Tensor, cam_fn, targets, groups=(1, 2), seed: int = 0) -> dict:
    """Return {n_groups: mean rank correlation} between the maps of `model` and of copies with the top groups re-initialised.

    `cam_fn(model, x, targets)` computes the maps (the same classes for both models, as Adebayo et al. do).
    Near 1 means the map ignores what the model learned; a faithful method gives low values. A map that
    turns constant (all zero after the ReLU) keeps none of the trained map's ranking and counts as 0.
    """
    reference = cam_fn(model, x, targets)
    out = {}
    for n in groups:
        rho = rank_correlation(reference, cam_fn(randomize_top(model, n, seed), x, targets))
        out[n] = float(np.nan_to_num(rho, nan=0.0).mean())
    return out
