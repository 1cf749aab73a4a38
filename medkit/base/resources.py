"""Where the lesson notebooks and bundled sample data live: the checkout, or the copy inside an installed wheel.

A clone (or `pip install -e .`) reads `notebooks/` and `data_samples/` at the repository root, so an
instructor's edits show at once. A wheel (`pip install medkit`, `pip install git+...`) carries copies as
package data under `medkit/_resources/`, put there by the build step in `setup.py`.
"""

import importlib.resources
from pathlib import Path

from .errors import DataError

__all__ = ["BUNDLED", "resource_dir"]

BUNDLED = ("notebooks", "data_samples")  # the repository folders a wheel carries


def _checkout() -> Path | None:
    root = Path(__file__).resolve().parents[2]
    return root if (root / "pyproject.toml").is_file() else None  # site-packages holds no pyproject.toml


def resource_dir(name: str) -> Path:
    """Return the bundled folder `name` ("notebooks" or "data_samples"): the checkout's, else the installed copy."""
    if name not in BUNDLED:
        raise DataError(f"{name!r} is not bundled with medkit; bundled folders are {', '.join(BUNDLED)}.")
    root = _checkout()
    if root is not None and (root / name).is_dir():
        return root / name
    packaged = Path(str(importlib.resources.files("medkit") / "_resources" / name))
    if packaged.is_dir():
        return packaged
    raise DataError(f"medkit's {name}/ folder is missing: not in a checkout ({Path(__file__).resolve().parents[2]}) "
                    f"nor in the installed package ({packaged}). Reinstall from a wheel or a clone "
                    f"(pip install --force-reinstall medkit), or restore {name}/ in your clone.")
