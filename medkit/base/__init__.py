"""The bottom floor: plumbing every other floor may use and that imports nothing else of medkit.

errors (the one exception family), checks (one rule per user value: channels), atomic (every write), cache
(downloads, `$MEDKIT_CACHE`), named (the one registry rule), paths (a bad path named for what it is), timing,
progress, resources (notebooks and data_samples in a checkout or a wheel), _optional (a missing extra names its
`pip install`). Submodules load on first use.
"""

import importlib


def lazy_submodules(package: str):
    """Return a module `__getattr__` (PEP 562) that imports `package.<name>` the first time it is read."""

    def __getattr__(name):
        try:
            return importlib.import_module(f".{name}", package)  # the import also sets it on the package
        except ModuleNotFoundError as exc:
            if exc.name != f"{package}.{name}":
                raise  # the submodule exists but one of its own imports is missing: say that, not "no attribute"
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None

    return __getattr__


__getattr__ = lazy_submodules(__name__)
