"""`RecipeConfig`, the settings of `medkit fit` with their defaults, in a module free of torch.

`medkit fit --help` shows these defaults; keeping them here (standard library only, the checks import what they
need when they run) keeps the help under half a second instead of the 7-9 s torch takes to import.
"""

import math
from dataclasses import dataclass

from ..base.errors import ConfigError

__all__ = ["RecipeConfig"]


@dataclass
class RecipeConfig:
    """The defaults of `medkit fit`: the recipe lesson 03 ends with (measured in benchmarks/RECIPE.md)."""

    backbone: str = "efficientnet_lite0"  # the one backbone with ImageNet weights bundled offline
    weights: str | None = "DEFAULT"  # ImageNet weights; None trains from scratch
    # 224 px, the size the X-rays come in: held-out AUC 0.996 with "top" (benchmarks/RECIPE.md); its frozen-group
    # pass is the fit's main cost (~50 images/s on 2 cores) and it still fits the 10-minute budget
    image_size: int = 224
    epochs: int = 6  # 1 head-only + 5 top-group epochs on cached features: val AUC 0.999, ~10 s per epoch on 2 cores
    # "top": head for 1 epoch, then the top layer group too, on cached features. Held-out AUC 0.996 / acc 0.972
    # against 0.991 / 0.945 for the head alone; training lower groups costs a full pass per epoch (5-40 images/s)
    freeze: str = "top"
    lr: float = 2e-3  # peak lr of the head group in every stage (lower groups get lr / ratio in discriminative ones)
    head_lr: float | None = None  # lr of head-only stages; None = lr (so --lr is never ignored)
    weight_decay: float = 1e-4
    batch_size: int = 64  # not swept: the lessons' size; fine for cached activations (one step ~0.15 s)
    # stages on images (--no-cache, a freeze that trains low groups) run each batch in parts of this many images and
    # accumulate gradients: autograd keeps ~78 MB per 224 px image for backward (efficientnet_lite0), so 64 at once
    # peaked at 7.2 GB and 8 at ~1.9 GB, and parts of 8 run no slower on CPU (bench_fit_memory.py). Cached
    # features train in whole batches (a part is small there); BatchNorm sees parts, so numbers differ from 64
    micro_batch: int = 8
    loss: str = "ce"  # plain cross-entropy: with a chosen threshold, weighting buys nothing on AUC
    # every image through CLAHE after the resize, here and wherever the checkpoint reads images (medkit.data.contrast):
    # at a second site it raised the external AUC on every seed (0.958 -> 0.966, accuracy 0.797 -> 0.874)
    contrast: str = "clahe"  # medkit.data.contrast.DEFAULT_CONTRAST, repeated so `--help` imports no torch (tests keep the two equal)
    augment: bool = True  # small affine + intensity jitter, on stages that see images (not cached features)
    # frozen lower groups run once per image: top-group training on their cached outputs runs at ~400 images/s,
    # full fine-tuning at 224 px at ~5 (bench_fit_224.py); float16 storage: 19 KB per image at the top-group cut
    cache_features: bool = True
    group_by: str = "auto"  # patient-disjoint carve whenever every image has a patient key
    # the range float images were saved in; a value outside it is refused, never rescaled (medkit.data.pixels)
    value_range: tuple = (0.0, 1.0)
    threshold: str = "youden"  # "youden" (max sensitivity + specificity - 1 on val) or "0.5"
    seed: int = 0
    # train the trainable part this many times (seeds seed, seed+1, ...) on the same cached features and average
    # their weights into one model (a "model soup", Wortsman et al., ICML 2022); 1 = a single run.
    # benchmarks/bench_second_site.py measures it at a second site
    soup: int = 1
    threads: int | None = None  # torch threads; None leaves torch's default
    # "auto": cuda if torch sees one, else mps, else cpu (medkit.core.train.pick_device); the numbers in
    # benchmarks/RECIPE.md are CPU runs, and a GPU gives the same recipe, only faster
    device: str = "auto"

    def check(self) -> "RecipeConfig":
        """Raise ConfigError naming the first setting that cannot work; return self."""
        for name in ("epochs", "batch_size", "image_size", "micro_batch", "soup"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{name.replace('_', '-')} must be a positive integer, got {value!r}.")
        for name in ("lr", "head_lr", "weight_decay"):
            value = getattr(self, name)
            low_ok = value is None or (name == "weight_decay" and value == 0)
            if not low_ok and not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ConfigError(f"{name.replace('_', '-')} must be a positive number, got {value!r}.")
        if not 16 <= self.image_size <= 512:
            raise ConfigError(f"image-size {self.image_size} is out of range; use 16 to 512 "
                              f"({RecipeConfig.image_size} is the recipe).")
        if self.threads is not None and (not isinstance(self.threads, int) or self.threads < 1):
            raise ConfigError(f"threads must be a positive integer, got {self.threads!r}.")
        from ..core.train import DEVICES
        from ..data.contrast import check_contrast  # imported here: medkit.data loads torch, --help must not

        check_contrast(self.contrast)
        if self.device not in DEVICES:
            raise ConfigError(f"device {self.device!r} is not one of {', '.join(DEVICES)}.")
        return self
