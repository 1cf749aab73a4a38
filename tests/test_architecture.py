"""The package's shape: import layers (import-linter) and lessons that freeze through medkit.freeze."""

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_lesson_sets_requires_grad_itself(path):
    """Freezing is done by `medkit.freeze` (layer groups, BatchNorm rule), never by hand in a lesson."""
    for cell in json.loads(path.read_text())["cells"]:
        if cell["cell_type"] == "code":
            source = "".join(cell["source"])
            assert not re.search(r"requires_grad(_\(|\s*=[^=])", source), (
                f"{path.name} sets requires_grad itself; use medkit.freeze (freeze_to, freeze, unfreeze):\n{source}")
