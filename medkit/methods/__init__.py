"""A lesson's method, one module each, independent of one another (lessons 01-03, 05, 08-10, 12).

ssl and vit (08), federated (09), transfer (10), leakage (01-02), nih (05's NIH section), learner (03's fastai
Learner), second_site (12). The packaged methods (cam, segmentation, volumes, deploy) sit beside this one on the
same floor. What two methods share moves down to `medkit.core`. Submodules load on first use.
"""

import importlib


def __getattr__(name):
    try:
        module = importlib.import_module(f".{name}", __name__)
    except ModuleNotFoundError as exc:
        if exc.name != f"{__name__}.{name}":
            raise
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    globals()[name] = module
    return module
