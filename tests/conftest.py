import os
import tempfile
from pathlib import Path

import pytest

# Tests never touch the network: any weights not bundled must raise OfflineError, as in CI.
os.environ.setdefault("MEDKIT_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
# Under pytest-xdist (addopts `-n 2`) each worker gets one thread: two workers with two threads each on two cores
# would contend. Set before torch is imported; notebook kernels inherit it.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
# Decoded-image caches and converted weights go to a scratch folder shared by test runs, never the user's cache.
os.environ.setdefault("MEDKIT_CACHE", str(Path(tempfile.gettempdir()) / "medkit-test-cache"))

ROOT = Path(__file__).resolve().parents[1]
# ../shared/data beside the checkout; a git worktree one level deeper finds it further up; MEDKIT_SHARED_DATA overrides
SHARED_DATA = Path(os.environ.get("MEDKIT_SHARED_DATA") or next(
    (p / "shared" / "data" for p in ROOT.parents if (p / "shared" / "data").is_dir()), ROOT.parent / "shared" / "data"))


@pytest.fixture
def tmp_cache(tmp_path, monkeypatch):
    """An empty medkit cache for one test."""
    monkeypatch.setenv("MEDKIT_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture(scope="session")
def pneumonia():
    """The bundled PneumoniaMNIST splits (train / val / held-out test)."""
    from medkit.data import pneumonia as load

    return load()
