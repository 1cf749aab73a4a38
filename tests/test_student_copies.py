"""A `medkit student` copy (solution cells blanked) runs to the end: checks say "not answered yet", never NameError.

Executing every lesson's student copy would double CI's notebook time, so the proof for all lessons is static:
every name a non-solution code cell reads is defined by an earlier non-solution cell (or is a builtin), and an
exercise's answer is read only through `check_answer("key", "name")`, which says "not answered yet" while the
name is undefined. The two fastest lessons' copies are executed in CI, every lesson's in the workshop tier.
"""

import ast
import builtins
import copy
import json
import symtable
from pathlib import Path

import pytest
from test_notebooks import NOTEBOOKS, WORKSHOP_TIER, lesson_parameters

from medkit.course.course import SOLUTION_TAG, student_copies
from medkit.course.notebooks import run_notebook

KERNEL_NAMES = set(dir(builtins)) | {"display", "get_ipython"}  # what IPython defines in every notebook
CHECK_HELPERS = {"check", "check_answer"}
FASTEST = ("00", "11")  # the two quickest lessons with exercise checks (smoke, 2 cores): executed in CI


def _is_solution(cell) -> bool:
    return SOLUTION_TAG in cell.get("metadata", {}).get("tags", [])


def _python(cell) -> str:
    """Return a code cell's source without IPython's magics and shell escapes (not Python)."""
    return "\n".join(line for line in "".join(cell["source"]).splitlines() if not line.lstrip().startswith(("%", "!")))


def cell_names(source: str) -> tuple[set[str], set[str]]:
    """Return (names the cell defines at top level, module-level names it reads), from Python's own symbol tables."""
    top = symtable.symtable(source, "<cell>", "exec")
    defined = {s.get_name() for s in top.get_symbols() if s.is_assigned() or s.is_imported()}
    reads = {s.get_name() for s in top.get_symbols() if s.is_referenced()}
    tables = list(top.get_children())
    while tables:  # functions, lambdas, classes, comprehensions: only the names they take from the module count
        table = tables.pop()
        reads |= {s.get_name() for s in table.get_symbols() if s.is_global() and s.is_referenced()}
        tables.extend(table.get_children())
    return defined, reads


def unguarded_reads(cells) -> dict[int, list[str]]:
    """Return {cell index: names} a non-solution code cell reads that no earlier non-solution cell defines."""
    have, found = set(KERNEL_NAMES), {}
    for i, cell in enumerate(cells):
        if cell["cell_type"] != "code" or _is_solution(cell):
            continue
        defined, reads = cell_names(_python(cell))
        if missing := sorted(reads - defined - have):
            found[i] = missing
        have |= defined
    return found


def _check_calls(cell):
    """Yield the check / check_answer calls of a code cell."""
    for node in ast.walk(ast.parse(_python(cell))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in CHECK_HELPERS:
            yield node


def check_problems(cells) -> list[str]:
    """Return what would break an exercise check in the student copy or leave it unanswered in the full lesson."""
    problems, by_solution, by_lesson = [], set(), set()
    for i, cell in enumerate(cells):
        if cell["cell_type"] != "code":
            continue
        defined = cell_names(_python(cell))[0]
        if _is_solution(cell):
            problems += [f"cell {i}: a check inside a solution cell (students never get it)" for _ in _check_calls(cell)]
            by_solution |= defined
            continue
        by_lesson |= defined
        for call in _check_calls(cell):
            if call.func.id == "check" and not (len(call.args) > 1 and isinstance(call.args[1], ast.Constant)):
                problems.append(f"cell {i}: check(...) on an expression: use check_answer(key, 'name')")
                continue
            name = call.args[1].value if call.func.id == "check_answer" and len(call.args) > 1 else None
            if isinstance(name, str) and name in by_lesson:
                problems.append(f"cell {i}: {name!r} is defined by the lesson itself: the student copy would judge it")
            elif isinstance(name, str) and name not in by_solution:
                problems.append(f"cell {i}: no solution cell above defines {name!r}: the full lesson never answers it")
    return problems


def _cells(path):
    return json.loads(Path(path).read_text())["cells"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_non_solution_cells_read_only_what_non_solution_cells_define(path):
    assert unguarded_reads(_cells(path)) == {}, "a student copy would stop with a NameError at these cells"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_checks_live_outside_solutions_and_read_answers_by_name(path):
    assert check_problems(_cells(path)) == []


def _code(source, solution=False):
    return {"cell_type": "code", "metadata": {"tags": [SOLUTION_TAG]} if solution else {}, "source": source}


def test_the_static_checks_catch_what_a_student_copy_would_trip_on():
    lesson = next(p for p in NOTEBOOKS if p.stem.startswith("12"))
    cells = _cells(lesson)
    assert unguarded_reads(cells) == {} and check_problems(cells) == []
    at = next(i for i, c in enumerate(cells) if "check_answer(\"12.few_label_threshold\"" in "".join(c["source"]))
    read_directly = copy.deepcopy(cells)
    read_directly[at]["source"] = ["check(\"12.few_label_threshold\", thr_25, labels=y, probs=model.probs, picked=picked)"]
    assert unguarded_reads(read_directly) == {at: ["check", "picked", "thr_25"]}  # (12 imports only check_answer)
    assert any("on an expression" in p for p in check_problems(read_directly))
    in_solution = copy.deepcopy(cells)
    in_solution[at - 1]["source"].append("\ncheck_answer(\"12.few_label_threshold\", \"thr_25\")")
    assert any("inside a solution" in p for p in check_problems(in_solution))
    shadowed = cells[:at] + [_code("thr_25 = 0.5")] + cells[at:]
    assert any("defined by the lesson itself" in p for p in check_problems(shadowed))
    never_answered = cells[:at] + [_code("check_answer(\"12.few_label_threshold\", \"thr_26\")")] + cells[at:]
    assert any("never answers" in p for p in check_problems(never_answered))
    # Reads inside functions and comprehensions count; their own parameters and loop names do not.
    assert unguarded_reads([_code("def f(a):\n    return a + b\n"), _code("[x for x in f(c)]")]) == {0: ["b"], 1: ["c"]}
    assert unguarded_reads([_code("%matplotlib inline\nimport numpy as np\nprint(np.pi, len([]))")]) == {}


def _run_student_copy(path, tmp_path, profile="smoke"):
    """Execute the student copy of a lesson; return its executed cells' text outputs."""
    copy_path = student_copies(tmp_path / "student", [path])[0]
    run_notebook(copy_path, tmp_path / "run", profile=profile, **lesson_parameters(path))
    cells = json.loads((tmp_path / "run" / copy_path.name).read_text())["cells"]
    return ["".join(o.get("text", "")) for c in cells if c["cell_type"] == "code" for o in c.get("outputs", [])]


def _assert_runs_to_the_end(path, tmp_path, profile="smoke"):
    outputs = "\n".join(_run_student_copy(path, tmp_path, profile))
    n_checks = sum(1 for c in _cells(path) if c["cell_type"] == "code" and not _is_solution(c)
                   for call in _check_calls(c) if call.func.id == "check_answer")
    assert outputs.count("Not answered yet") == n_checks, outputs[-2000:]


@pytest.mark.notebooks
@pytest.mark.parametrize("lesson", FASTEST)
def test_student_copy_runs_to_the_end(lesson, tmp_path):
    _assert_runs_to_the_end(next(p for p in NOTEBOOKS if p.stem.startswith(lesson)), tmp_path)


@pytest.mark.workshop
@pytest.mark.notebooks
@WORKSHOP_TIER
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_student_copy_runs_to_the_end(path, tmp_path):
    """Every lesson's student copy, at smoke size (what is proved is that it runs, not what it measures)."""
    _assert_runs_to_the_end(path, tmp_path)
