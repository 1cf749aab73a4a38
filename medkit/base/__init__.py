"""The bottom floor: plumbing every other floor may use and that imports nothing else of medkit.

errors (the one exception family), checks (one rule per user value: channels), atomic (every write), cache
(downloads, `$MEDKIT_CACHE`), named (the one registry rule), paths (a bad path named for what it is), timing,
progress, resources (notebooks and data_samples in a checkout or a wheel), _optional (a missing extra names its
`pip install`). Submodules load on first use.
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
