"""Every lesson runs end to end with papermill in the smoke profile, and its claims hold."""

import json
import math
from pathlib import Path

import pytest
from claims import claims_for

from medkit.notebooks import lesson_paths, run_notebook

SMOKE_RUNS: dict[str, dict] = {}  # lesson stem -> metrics of its smoke run, reused by the reproducibility test
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
    SMOKE_RUNS[path.stem] = metrics
    claims_for(path.stem[:2])(metrics)


@pytest.mark.notebooks
@pytest.mark.parametrize("lesson", ["04", "05"])
def test_claims_that_need_a_workshop_size_model_hold(lesson, tmp_path):
    """Lesson 04's faithfulness and lesson 05's site-shift claims need the default profile (~100 s and ~35 s)."""
    metrics = run_notebook(next(p for p in NOTEBOOKS if p.stem.startswith(lesson)), tmp_path, profile="workshop")
    assert metrics["profile"] == "workshop"
    claims_for(lesson)(metrics)


def _without_timings(value):
    """Drop wall-clock entries (keys naming seconds, ms or a rate per second), which differ between runs by nature."""
    if isinstance(value, dict):
        return {k: _without_timings(v) for k, v in value.items()
                if not any(t in k for t in ("seconds", "_ms", "time", "_per_s"))}
    if isinstance(value, list):
        return [_without_timings(v) for v in value]
    return value


def assert_same_numbers(first, second, where="metrics"):
    """Assert two metric trees match: same keys, same values, floats to 1e-6 relative.

    The tolerance only absorbs the last bits of float sums, which oneDNN may order differently from one run
    to the next; a changed seed or data order moves the numbers by far more.
    """
    assert type(first) is type(second) or {type(first), type(second)} <= {int, float}, (where, first, second)
    if isinstance(first, dict):
        assert first.keys() == second.keys(), (where, sorted(first), sorted(second))
        for key in first:
            assert_same_numbers(first[key], second[key], f"{where}[{key!r}]")
    elif isinstance(first, list):
        assert len(first) == len(second), (where, first, second)
        for i, (a, b) in enumerate(zip(first, second)):
            assert_same_numbers(a, b, f"{where}[{i}]")
    elif isinstance(first, float):
        assert math.isclose(first, second, rel_tol=1e-6, abs_tol=1e-9), (where, first, second)
    else:
        assert first == second, (where, first, second)


def test_same_numbers_tolerates_float_noise_only():
    assert_same_numbers({"auc": 0.9, "rows": [{"k": 1}]}, {"auc": 0.9 + 1e-12, "rows": [{"k": 1}]})
    for changed in ({"auc": 0.9001, "rows": [{"k": 1}]}, {"auc": 0.9, "rows": [{"k": 2}]}, {"auc": 0.9, "rows": []}):
        with pytest.raises(AssertionError):
            assert_same_numbers({"auc": 0.9, "rows": [{"k": 1}]}, changed)


@pytest.mark.notebooks
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_same_seed_same_profile_gives_the_same_numbers(path, tmp_path):
    first = SMOKE_RUNS.get(path.stem) or run_notebook(path, tmp_path / "first", profile="smoke")
    second = run_notebook(path, tmp_path / "second", profile="smoke")
    assert_same_numbers(_without_timings(first), _without_timings(second))
