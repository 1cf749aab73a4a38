"""Optional extras: which lessons need which, and one clear error when an extra is missing.

The core install (`pip install medkit`) runs lessons 00, 01, 02, 05, 07, 08 and 10. Four lessons need a heavy
library that only they use; each lives in an extra so a laptop does not install spaCy, OpenCV, a gRPC
server stack and ONNX Runtime for one notebook apiece. `pip install "medkit[all]"` installs the whole course.
"""

import importlib
import importlib.util

from .errors import MedkitError

__all__ = ["EXTRAS", "LESSON_EXTRAS", "MissingExtraError", "require", "missing_extras", "install_command"]

# extra -> the modules it provides (import names, not distribution names)
EXTRAS = {
    "fastai": ("fastai",),  # lesson 03's fastai Learner (brings spaCy)
    "cam": ("pytorch_grad_cam",),  # lesson 04's library CAMs and ROAD (brings OpenCV)
    "deploy": ("onnx", "onnxruntime"),  # lesson 06, `medkit export` and `medkit predict`
    "federated": ("flwr",),  # lesson 09's Flower server loop (brings gRPC and cryptography)
    "serve": ("pynetdicom", "highdicom"),  # `medkit serve`, the DICOM node; no lesson imports it
    # Jupyter itself: `medkit course` runs lessons through papermill. An extra so a host's own Jupyter (Colab, a
    # JupyterHub) is never replaced by `pip install medkit`; no lesson needs it beyond the host's kernel.
    "lab": ("jupyterlab", "ipykernel", "papermill"),
}
# lesson number -> the extras its notebook imports
LESSON_EXTRAS = {"03": ("fastai",), "04": ("cam",), "06": ("deploy",), "09": ("federated",)}


class MissingExtraError(MedkitError, ImportError):
    """An optional dependency that is not installed; the message names the extra to install."""


def install_command(*extras: str) -> str:
    """Return the pip command that installs `extras`, e.g. pip install "medkit[cam]"."""
    return f'pip install "medkit[{",".join(extras)}]"'


def require(module: str, extra: str, feature: str = ""):
    """Import and return `module`, or raise MissingExtraError naming the extra that provides it.

    Args:
        module: the import name, e.g. "pytorch_grad_cam".
        extra: the medkit extra that installs it, e.g. "cam" (a key of EXTRAS).
        feature: what needs it, for the message (default: the module name).
    """
    if extra not in EXTRAS:
        raise KeyError(f"unknown extra {extra!r}; extras are {sorted(EXTRAS)}")  # a programming error, not a user's
    what = feature or module
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        whole = "" if extra == "lab" else " (or medkit[all] for the whole course)"
        raise MissingExtraError(f"{what} needs {exc.name!r}, which is not installed. Install the {extra!r} extra: "
                                f"{install_command(extra)}{whole}.") from exc
    except ImportError as exc:  # installed but broken, e.g. a binary built for another numpy
        raise MissingExtraError(f"{what} needs {module!r}, which is installed but fails to import ({exc}). "
                                f"Reinstall it: {install_command(extra)} --force-reinstall.") from exc


def missing_extras(extras) -> list[str]:
    """Return the extras among `extras` whose modules are not installed (found without importing them)."""
    return [extra for extra in extras
            if any(importlib.util.find_spec(module) is None for module in EXTRAS[extra])]
