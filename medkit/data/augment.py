"""On-the-fly augmentation of whole batches, with per-image random parameters drawn from a seeded generator.

`Augment` is what `BatchLoader(augment=...)` calls: it takes a float batch (N, C, H, W) in [0, 1]
and returns one of the same shape and dtype. Rotation, scale, shift, flips and elastic deformation are folded into
one sampling grid (`affine_grid` + `grid_sample`, the primitives torchvision.transforms.v2 uses), so a
batch costs one resampling, not one per image and per transform. `PerSample` wraps any
torchvision.transforms.v2 transform when you want one of its many others, at per-image speed.

Flips are off unless you ask: in medicine left and right are not interchangeable (the heart is on
the left, a lesion's side matters, and a flipped X-ray can carry a misleading "L" marker).
"""

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from ..base.errors import DataError

__all__ = ["Augment", "PerSample", "response_curve"]


def _check_batch(x) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or not x.is_floating_point():
        shape = tuple(x.shape) if hasattr(x, "shape") else type(x).__name__
        raise DataError(f"Augmentation expects a float tensor batch (N, C, H, W) in [0, 1]; got {shape}"
                        f"{'' if not hasattr(x, 'dtype') else ' of ' + str(x.dtype)}.")
    return x


def response_curve(x, gamma=1.0, contrast=1.0, brightness=0.0):
    """Return `x` (in [0, 1]) through a detector's response: `x ** gamma`, scaled around mid-grey, then offset.

    Works on numpy arrays and torch tensors alike (per-image factors broadcast), unclipped at the top.
    """
    return (x.clip(0, 1) ** gamma - 0.5) * contrast + 0.5 + brightness


@dataclass
class Augment:
    """Random rotation, scale, shift, optional flips, elastic deformation, a detector's response curve and noise.

    Every range is symmetric around "no change"; 0 (or False) switches a transform off. `Augment.xray()` is the
    setting `medkit fit` and lessons 02-03 train with.
    """

    rotate: float = 10.0  # degrees: angle uniform in [-rotate, rotate]; small, anatomy is upright
    hflip: bool = False  # left-right flip with p=0.5; off by default because laterality matters
    vflip: bool = False  # up-down flip with p=0.5; rarely anatomically plausible
    elastic: float = 0.0  # elastic displacement, in pixels (std at the control points)
    elastic_grid: int = 4  # control points per side; the field between them is smooth (bicubic)
    scale: float = 0.0  # zoom factor uniform in [1 - scale, 1 + scale]
    shift: float = 0.0  # translation uniform in [-shift, shift] per axis, in half image sides (0.1 = 5% of the side)
    # the intensity part is `response_curve`, the curve the simulated scanners apply (`medkit.data.sites.Scanner`)
    brightness: float = 0.1  # additive offset uniform in [-brightness, brightness]
    contrast: float = 0.1  # factor uniform in [1 - contrast, 1 + contrast] around mid-grey
    gamma: float = 0.0  # gamma log-uniform in [exp(-gamma), exp(gamma)]: a detector's response curve
    noise: float = 0.0  # std of Gaussian noise, in [0, 1] intensity units
    padding: str = "reflection"  # what fills pixels rotated in from outside: "zeros", "border", "reflection"
    seed: int = 0  # seeds this augmenter's own generator: same seed, same sequence of batches
    generator: torch.Generator = field(default=None, repr=False)

    @classmethod
    def xray(cls, seed: int = 0) -> "Augment":
        """Return the small affine + intensity jitter `medkit fit` trains chest X-rays with (no flips, no noise)."""
        # border padding: a rotated film shows its own edge, not a mirrored or black one
        return cls(rotate=10.0, scale=0.1, shift=0.08, brightness=0.1, contrast=0.15, gamma=0.2, padding="border",
                   seed=seed)

    def __post_init__(self):
        if self.padding not in ("zeros", "border", "reflection"):
            raise DataError(f"padding must be 'zeros', 'border' or 'reflection', got {self.padding!r}.")
        for name in ("rotate", "elastic", "scale", "shift", "brightness", "contrast", "gamma", "noise"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise DataError(f"Augment.{name} must be a number >= 0, got {value!r}.")
        if self.scale >= 1 or self.contrast >= 1:
            raise DataError(f"scale and contrast must be < 1 (got {self.scale}, {self.contrast}).")
        if self.elastic_grid < 2:
            raise DataError(f"elastic_grid must be >= 2, got {self.elastic_grid}.")
        if self.generator is None:
            self.reset()

    def reset(self, seed: int | None = None) -> "Augment":
        """Restart the random sequence (from `seed`, default the one it was made with)."""
        self.seed = self.seed if seed is None else int(seed)
        self.generator = torch.Generator().manual_seed(int(self.seed))
        return self

    def _spread(self, n, spread, like):
        """Return `n` draws uniform in [-spread, spread] (0 when off, drawing nothing)."""
        if not spread:
            return torch.zeros(n, dtype=like.dtype)
        return (torch.rand(n, generator=self.generator, dtype=like.dtype) * 2 - 1) * spread

    def _sign(self, n, flip, like):
        if not flip:
            return torch.ones(n, dtype=like.dtype)
        return torch.where(torch.rand(n, generator=self.generator) < 0.5, -1.0, 1.0).to(like.dtype)

    def _geometry(self, x):
        n, _, h, w = x.shape
        if not (self.rotate or self.scale or self.shift or self.hflip or self.vflip or self.elastic):
            return x
        angle = self._spread(n, math.radians(self.rotate), x)
        zoom = 1 + self._spread(n, self.scale, x)
        tx, ty = self._spread(n, self.shift, x), self._spread(n, self.shift, x)
        fx, fy = self._sign(n, self.hflip, x), self._sign(n, self.vflip, x)
        cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
        # theta maps output to input coordinates in [-1, 1]; aspect fixes rotation of non-square images
        aspect = w / h
        theta = torch.stack([torch.stack([cos * fx, -sin * fy / aspect, tx], 1),
                             torch.stack([sin * fx * aspect, cos * fy, ty], 1)], 1)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        if self.elastic:
            g = int(self.elastic_grid)
            coarse = torch.randn(n, 2, g, g, generator=self.generator, dtype=x.dtype) * self.elastic
            coarse = coarse * torch.tensor([2.0 / w, 2.0 / h], dtype=x.dtype).view(1, 2, 1, 1)  # px -> grid units
            field = F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=True)
            grid = grid + field.permute(0, 2, 3, 1)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode=self.padding, align_corners=False)

    def _intensity(self, x):
        n = x.shape[0]
        view = (n, 1, 1, 1)
        if self.gamma or self.contrast or self.brightness:
            gamma = torch.exp(self._spread(n, self.gamma, x)).view(view)
            contrast = (1 + self._spread(n, self.contrast, x)).view(view)
            x = response_curve(x, gamma, contrast, self._spread(n, self.brightness, x).view(view))
        if self.noise:
            x = x + torch.randn(x.shape, generator=self.generator, dtype=x.dtype) * self.noise
        return x.clamp(0.0, 1.0)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Return an augmented copy of the float batch `x` (N, C, H, W) in [0, 1]."""
        x = _check_batch(x)
        if x.shape[0] == 0:
            return x.clone()
        with torch.no_grad():
            return self._intensity(self._geometry(x)).contiguous()


class PerSample:
    """Apply a torchvision.transforms.v2 transform to each image with its own seeded random draw.

    v2 transforms draw one set of parameters per call, so on a batch every image would get the same
    rotation; this calls it image by image, seeding torch's RNG from its own generator without
    disturbing the global one. Slower than `Augment`, but any v2 transform fits.
    """

    def __init__(self, transform, seed: int = 0):
        self.transform, self.seed = transform, int(seed)
        self.reset()

    def reset(self, seed: int | None = None) -> "PerSample":
        """Restart the random sequence."""
        self.seed = self.seed if seed is None else int(seed)
        self.generator = torch.Generator().manual_seed(self.seed)
        return self

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = _check_batch(x)
        seeds = torch.randint(0, 2**62, (x.shape[0],), generator=self.generator).tolist()
        out = []
        with torch.random.fork_rng(devices=[]):
            for image, seed in zip(x, seeds):
                torch.manual_seed(seed)
                out.append(self.transform(image))
        return torch.stack(out).clamp(0.0, 1.0).to(x.dtype)

    def __repr__(self) -> str:
        return f"PerSample({self.transform!r}, seed={self.seed})"
