"""Every lesson runs end to end with papermill in the smoke profile, and its claims hold."""

import json
from pathlib import Path

import pytest
from claims import claims_for

from medkit.notebooks import lesson_paths, run_notebook

NOTEBOOKS = sorted(Path(__file__).resolve().parents[1].joinpath("notebooks").glob("[0-9][0-9]_*.ipynb"))


def test_lessons_found():
    assert [p.name for p in lesson_paths()] == [p.name for p in NOTEBOOKS]
    assert NOTEBOOKS[0].stem == "00_start_here"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_clean_and_parametrised(path):
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(not c.get("outputs") and not c.get("execution_count") for c in code), "commit notebooks without outputs"
    tagged = [i for i, c in enumerate(code) if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, "exactly one cell must be tagged 'parameters'"
    params = "".join(code[tagged[0]]["source"])
    for knob in ("PROFILE", "SEED", "OUTPUT_DIR"):
        assert f"{knob} =" in params, f"the parameters cell must set {knob}"
    assert 'PROFILE = "workshop"' in params, "the default profile is workshop"
    assert claims_for(path.stem[:2]), f"tests/claims.py has no check_{path.stem[:2]}"


@pytest.mark.notebooks
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_and_claims_hold(path, tmp_path):
    metrics = run_notebook(path, tmp_path, profile="smoke")
    assert metrics["lesson"] == path.stem
    assert metrics["profile"] == "smoke"
    claims_for(path.stem[:2])(metrics)
