"""Instructor tools: student copies, clean, the course table, exercise checks."""

import json

import nbformat
import pytest

from medkit import check
from medkit.cli import main
from medkit.course import clean_notebooks, student_copies, summary_table
from medkit.errors import UnknownNameError


def _notebook(path, outputs=True):
    nb = nbformat.v4.new_notebook()
    answer = nbformat.v4.new_code_cell("x = 42", metadata={"tags": ["solution"]})
    shown = nbformat.v4.new_code_cell("print(1)")
    if outputs:
        shown.outputs = [nbformat.v4.new_output("stream", text="1\n")]
        shown.execution_count = 3
    nb.cells = [nbformat.v4.new_markdown_cell("# Lesson"), shown, answer]
    nbformat.write(nb, path)
    return path


def test_student_copies_drop_solutions_and_outputs(tmp_path):
    src = _notebook(tmp_path / "01_x.ipynb")
    (out,) = student_copies(tmp_path / "students", [src])
    cells = json.loads(out.read_text())["cells"]
    assert "x = 42" not in out.read_text() and "Your answer here" in cells[2]["source"]
    assert cells[1]["outputs"] == [] and cells[1]["execution_count"] is None
    assert "x = 42" in src.read_text(), "the instructor's copy is untouched"


def test_clean_check_then_clean(tmp_path, capsys):
    src = _notebook(tmp_path / "01_x.ipynb")
    assert main(["clean", "--check", str(src)]) == 1
    assert main(["clean", str(src)]) == 0
    assert clean_notebooks([src], check=True) == []
    assert main(["clean", "--check", str(src)]) == 0


def test_summary_table_lists_every_number_and_failures():
    table = summary_table([
        {"lesson": "00_start_here", "seconds": 12.0, "error": None, "metrics": {"lesson": "00", "auc": 0.91234, "n": 3}},
        {"lesson": "01_medical_images", "seconds": 3.0, "error": "boom", "metrics": {}},
    ])
    assert "0.9123" in table and "FAILED" in table and "ok, 12 s" in table


def test_exercise_feedback(capsys):
    from medkit.data import pneumonia

    counts = pneumonia()["test"].class_counts()
    assert check.check("00.test_counts", (counts["normal"], counts["pneumonia"]))
    assert "Right" in capsys.readouterr().out
    assert not check.check("00.test_counts", (1, 2))
    assert "Hint" in capsys.readouterr().out
    assert not check.check("05.sensitivity", "not a pair", quiet=True)
    assert check.check("05.sensitivity", (0.9, 0.8), quiet=True)
    assert check.check("04.resnet_cam_layer", "layer4", quiet=True)
    assert check.check("03.head_parameters", 1280 * 2 + 2, quiet=True)
    with pytest.raises(UnknownNameError, match="00.test_counts"):
        check.check("99.nope", 1)
