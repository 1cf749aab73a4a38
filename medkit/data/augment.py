"""On-the-fly augmentation of whole batches, with per-image random parameters drawn from a seeded generator.

`Augment` is what `BatchLoader(augment=...)` calls: it takes a float batch (N, C, H, W) in [0, 1]
and returns one of the same shape and dtype. Rotation, flips and elastic deformation are folded into
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
from torch import nn

from ..errors import DataError

__all__ = ["Augment", "XrayAugment", "PerSample", "response_curve"]


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
    """Random rotation, optional flips, elastic deformation, brightness/contrast/gamma and noise, per image.

    Every range is symmetric around "no change"; 0 (or False) switches a transform off.
    """

    rotate: float = 10.0  # degrees: angle uniform in [-rotate, rotate]; small, anatomy is upright
    hflip: bool = False  # left-right flip with p=0.5; off by default because laterality matters
    vflip: bool = False  # up-down flip with p=0.5; rarely anatomically plausible
    elastic: float = 0.0  # elastic displacement, in pixels (std at the control points)
    elastic_grid: int = 4  # control points per side; the field between them is smooth (bicubic)
    scale: float = 0.0  # zoom factor uniform in [1 - scale, 1 + scale]
    brightness: float = 0.1  # additive offset uniform in [-brightness, brightness]
    contrast: float = 0.1  # factor uniform in [1 - contrast, 1 + contrast] around each image's mean
    gamma: float = 0.0  # gamma log-uniform in [exp(-gamma), exp(gamma)]: a detector's response curve
    noise: float = 0.0  # std of Gaussian noise, in [0, 1] intensity units
    padding: str = "reflection"  # what fills pixels rotated in from outside: "zeros", "border", "reflection"
    seed: int = 0  # seeds this augmenter's own generator: same seed, same sequence of batches
    generator: torch.Generator = field(default=None, repr=False)

    def __post_init__(self):
        if self.padding not in ("zeros", "border", "reflection"):
            raise DataError(f"padding must be 'zeros', 'border' or 'reflection', got {self.padding!r}.")
        for name in ("rotate", "elastic", "scale", "brightness", "contrast", "gamma", "noise"):
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

    def _uniform(self, n, low, high, like):
        return torch.rand(n, generator=self.generator, dtype=like.dtype).mul_(high - low).add_(low)

    def _geometry(self, x):
        n, _, h, w = x.shape
        if not (self.rotate or self.hflip or self.vflip or self.elastic or self.scale):
            return x
        angle = self._uniform(n, -self.rotate, self.rotate, x) * (math.pi / 180)
        zoom = self._uniform(n, 1 - self.scale, 1 + self.scale, x) if self.scale else torch.ones(n, dtype=x.dtype)
        sx = torch.ones(n, dtype=x.dtype) / zoom
        sy = sx.clone()
        if self.hflip:
            sx = torch.where(torch.rand(n, generator=self.generator) < 0.5, -sx, sx)
        if self.vflip:
            sy = torch.where(torch.rand(n, generator=self.generator) < 0.5, -sy, sy)
        cos, sin = torch.cos(angle), torch.sin(angle)
        # theta maps output to input coordinates in [-1, 1]; aspect fixes rotation of non-square images
        aspect = w / h
        theta = torch.stack([torch.stack([cos * sx, -sin * sy / aspect, torch.zeros_like(cos)], 1),
                             torch.stack([sin * sx * aspect, cos * sy, torch.zeros_like(cos)], 1)], 1)
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
        if self.contrast:
            mean = x.mean(dim=(1, 2, 3), keepdim=True)
            x = (x - mean) * self._uniform(n, 1 - self.contrast, 1 + self.contrast, x).view(view) + mean
        if self.brightness:
            x = x + self._uniform(n, -self.brightness, self.brightness, x).view(view)
        if self.gamma:
            x = x.clamp(0, 1) ** torch.exp(self._uniform(n, -self.gamma, self.gamma, x)).view(view)
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


class XrayAugment(nn.Module):
    """Random small affine (rotation, scale, shift) and intensity (brightness, contrast, gamma) changes.

    Works on a float [0, 1] batch (N, C, H, W) at the stored resolution, before resizing, so it is cheap.
    The intensity part is `response_curve`, the same curve the simulated scanners apply (`medkit.data.sites.Scanner`).
    """

    def __init__(self, degrees: float = 10.0, scale: float = 0.1, shift: float = 0.08, brightness: float = 0.1,
                 contrast: float = 0.15, gamma: float = 0.2, seed: int = 0):
        super().__init__()
        self.degrees, self.scale, self.shift = degrees, scale, shift
        self.brightness, self.contrast, self.gamma = brightness, contrast, gamma
        self.generator = torch.Generator().manual_seed(int(seed))

    def _uniform(self, n, spread):
        return (torch.rand(n, generator=self.generator) * 2 - 1) * spread

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        angle = self._uniform(n, math.radians(self.degrees))
        scale = 1 + self._uniform(n, self.scale)
        tx, ty = self._uniform(n, self.shift), self._uniform(n, self.shift)
        cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
        theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
        gamma = torch.exp(self._uniform(n, self.gamma)).view(n, 1, 1, 1)
        contrast = (1 + self._uniform(n, self.contrast)).view(n, 1, 1, 1)
        brightness = self._uniform(n, self.brightness).view(n, 1, 1, 1)
        return response_curve(x, gamma, contrast, brightness).clamp(0, 1)


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
