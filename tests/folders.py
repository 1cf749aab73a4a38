"""Small data trees the tests write: shared by the fit, evaluate and adapt tests."""

import numpy as np


def kermany_folder(root, n_patients=16, per_patient=2, seed=0, classes=("NORMAL", "PNEUMONIA"), start=0):
    """Write a tiny Kermany-style class-folder tree of 48 px PNGs (a bright striped square means pneumonia)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for label, cls in enumerate(classes):
        (root / cls).mkdir(parents=True, exist_ok=True)
        for p in range(start, start + n_patients):
            for k in range(per_patient):
                image = rng.integers(0, 80, (48, 48)).astype(np.uint8)
                if label:  # a bright checkered square: local structure, which survives fit's CLAHE default
                    image[12:36, 12:36] += 150
                    image[12:36:4, 12:36] = 255
                name = f"person{p}_bacteria_{k}.png" if label else f"IM-{p:04d}-{k:04d}.png"
                Image.fromarray(image).save(root / cls / name)
    return root
