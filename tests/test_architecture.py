"""The package's shape: import layers (import-linter) and lessons that freeze through medkit.core.freeze."""

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_lesson_sets_requires_grad_itself(path):
    """Freezing is done by `medkit.core.freeze` (layer groups, BatchNorm rule), never by hand in a lesson."""
    for cell in json.loads(path.read_text())["cells"]:
        if cell["cell_type"] == "code":
            source = "".join(cell["source"])
            assert not re.search(r"requires_grad(_\(|\s*=[^=])", source), (
                f"{path.name} sets requires_grad itself; use medkit.core.freeze (freeze_to, freeze, unfreeze):\n{source}")


def test_import_layers_and_no_cycles():
    """`lint-imports` keeps the layers and the no-cycles contract in pyproject.toml ([tool.importlinter])."""
    lint = shutil.which("lint-imports")
    if lint is None:
        pytest.skip("import-linter is not installed (pip install -e '.[dev]' brings it); the layers go unchecked here")
    done = subprocess.run([lint, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
