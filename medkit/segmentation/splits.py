"""Lesson 07's lesion sets: lesions inserted into patient-grouped X-ray parts, so train, val and test are other children."""

import numpy as np

from .dataset import SegmentationDataset
from .lesions import LesionSpec, insert_lesions

__all__ = ["PARTS", "lesion_splits"]

PARTS = ("train", "val", "test")


def lesion_splits(xrays: dict, spec: LesionSpec, sizes: dict, *, seed: int = 0, stream: int = 0,
                  image_size: int | None = None) -> dict[str, SegmentationDataset]:
    """Return {part: lesions inserted into `sizes[part]` X-rays of that part} for the parts `sizes` names.

    Args:
        xrays: patient-grouped {"train", "val", "test"} ImageDatasets, e.g. `medkit.data.chest_xrays(64)`.
        spec: the lesions to draw (`LesionSpec`).
        sizes: images per part (None: all of it), e.g. {"train": 128, "val": 64, "test": 200}.
        seed: the lesson's seed. The train X-rays are taken in an order it shuffles (the first k are a budget of k);
            val and test take their first images, so every seed is scored on the same X-rays.
        stream: another lesion draw on the same X-rays (lesson 07's small lesions use stream 1).
    Each part's lesions come from their own seed, drawn from (seed, stream, part): no two parts share a draw.
    """
    out = {}
    for part, n in sizes.items():
        images = xrays[part].images
        order = np.random.default_rng(seed).permutation(len(images)) if part == "train" else np.arange(len(images))
        lesion_seed = int(np.random.SeedSequence([seed, stream, PARTS.index(part)]).generate_state(1)[0])
        out[part] = insert_lesions(images[order[:n]], spec, image_size=image_size, seed=lesion_seed,
                                   name=f"{part} lesions ({xrays[part].name})")
    return out
