"""What the `medkit serve` tests share: benchmarks/_serve.py (the DX-study writer, the tiny model with its gate,
the C-STORE sender) loaded as a module, and the pseudonymisation salt. Import it after pytest.importorskip of
pynetdicom and highdicom: benchmarks/_serve.py imports both."""

import importlib.util

from conftest import ROOT

__all__ = ["SALT", "helpers"]

_spec = importlib.util.spec_from_file_location("_serve", ROOT / "benchmarks" / "_serve.py")
helpers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(helpers)

SALT = "a-test-salt-of-16+chars"
