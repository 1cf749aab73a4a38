"""Insert lesions of known size, shape and contrast into real X-rays: masks that are exact by construction.

Superimposing simulated nodules on real radiographs is how detectability is studied in imaging
research (e.g. Samei et al., Radiology 1999, on subtle lung nodules): the anatomy, and its
"anatomical noise", stays real while the ground truth is known to the pixel. Each lesion is an
ellipse whose brightness follows the projection of a sphere, (1 - r^2)^0.5, so its edge fades the
way a real nodule's does; the mask is exactly the pixels whose centre lies inside the ellipse.
Everything is drawn from one seeded generator, so the same seed gives the same images and masks.
"""

from dataclasses import asdict, dataclass

import numpy as np

from ..base.errors import DataError
from ..data.dataset import ImageDataset
from .dataset import SegmentationDataset, resize_images

__all__ = ["LesionSpec", "insert_lesions", "LESION_COLUMNS"]

LESION_COLUMNS = ("image", "cx", "cy", "semi_major", "semi_minor", "angle", "contrast")


@dataclass(frozen=True)
class LesionSpec:
    """How lesions are drawn; every range is (low, high) and sampled uniformly."""

    radius: tuple = (2.0, 6.0)  # semi-major axis, in pixels of the working image size
    contrast: tuple = (0.15, 0.35)  # peak brightness added, in grey units of [0, 1] (nodules are denser: brighter)
    count: tuple = (1, 2)  # lesions per image, both ends included
    aspect: tuple = (0.6, 1.0)  # minor / major axis: 1 is a round nodule
    empty_fraction: float = 0.1  # share of images left without any lesion, as in real series
    box: tuple = (0.2, 0.8)  # centres fall in this central part of the image (roughly the lung fields)
    profile: float = 0.5  # edge exponent of (1 - r^2)^p: 0.5 projects a sphere, smaller gives sharper edges

    def __post_init__(self):
        for name in ("radius", "contrast", "count", "aspect", "box"):
            low, high = getattr(self, name)
            if not low <= high:
                raise DataError(f"LesionSpec.{name}={getattr(self, name)}: expected (low, high) with low <= high.")
        if self.radius[0] <= 0 or self.aspect[0] <= 0 or self.count[0] < 0:
            raise DataError(f"LesionSpec: radius, aspect must be > 0 and count >= 0; got {self}.")
        if not 0 <= self.empty_fraction <= 1 or not 0 <= self.box[0] < self.box[1] <= 1:
            raise DataError(f"LesionSpec: empty_fraction must lie in [0, 1] and box within (0, 1); got {self}.")


def _draw(rng, spec: LesionSpec, size: int):
    """Return one lesion's parameters (cx, cy, a, b, angle, contrast)."""
    cx, cy = rng.uniform(spec.box[0] * size, spec.box[1] * size, 2)
    a = rng.uniform(*spec.radius)
    b = a * rng.uniform(*spec.aspect)
    return cx, cy, a, b, rng.uniform(0, np.pi), rng.uniform(*spec.contrast)


def _ellipse_r2(size: int, cx, cy, a, b, angle) -> np.ndarray:
    """Return the squared normalised radius of each pixel centre: <= 1 inside the ellipse."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    dx, dy = xx - cx, yy - cy
    cos, sin = np.cos(angle), np.sin(angle)
    return ((dx * cos + dy * sin) / a) ** 2 + ((-dx * sin + dy * cos) / b) ** 2


def insert_lesions(images, spec: LesionSpec = LesionSpec(), *, image_size: int | None = None, seed: int = 0,
                   name: str = "lesions") -> SegmentationDataset:
    """Return real images with seeded synthetic lesions inserted and their exact masks.

    Args:
        images: an ImageDataset or grey uint8 images (N, H, W), e.g. `medkit.data.pneumonia()["train"]`.
        spec: sizes, contrasts and counts of the lesions (`LesionSpec`).
        image_size: resize the images to this square size first, so masks are exact at the working size.
        seed: the one seed every random draw comes from.
    The parameters of every lesion are kept in `meta["lesions"]` (columns `LESION_COLUMNS`).
    """
    source = images.name if isinstance(images, ImageDataset) else "array"
    images = images.images if isinstance(images, ImageDataset) else np.asarray(images)
    if len(images) == 0:
        raise DataError("insert_lesions: no images were given; pass at least one X-ray.")
    if images.ndim != 3:
        raise DataError(f"insert_lesions: expected grey images (N, H, W), got shape {images.shape}.")
    size = int(image_size or images.shape[1])
    if images.shape[1] != images.shape[2] and image_size is None:
        raise DataError(f"insert_lesions: images of shape {images.shape[1:]} are not square; pass image_size.")
    base = resize_images(images, size).astype(np.float64) / 255.0
    rng = np.random.default_rng(seed)
    masks = np.zeros(base.shape, dtype=np.uint8)
    table = []
    for i in range(len(base)):
        count = 0 if rng.random() < spec.empty_fraction else int(rng.integers(spec.count[0], spec.count[1] + 1))
        for _ in range(count):
            cx, cy, a, b, angle, contrast = _draw(rng, spec, size)
            r2 = _ellipse_r2(size, cx, cy, a, b, angle)
            inside = r2 <= 1.0
            # X-ray attenuation adds up along the beam, so a lesion adds brightness on top of the anatomy
            base[i] += contrast * np.clip(1.0 - r2, 0.0, None) ** spec.profile
            masks[i] |= inside
            table.append((i, cx, cy, a, b, angle, contrast))
    out = np.round(np.clip(base, 0.0, 1.0) * 255).astype(np.uint8)
    meta = {"source": source, "seed": int(seed), "image_size": size, "spec": asdict(spec),
            "lesions": np.array(table, dtype=np.float64).reshape(-1, len(LESION_COLUMNS))}
    return SegmentationDataset(out, masks, ["background", "lesion"], name=name, meta=meta)
