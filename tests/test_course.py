"""Instructor tools: student copies, clean, the course table, exercise checks."""

import json

import nbformat
import pytest

from medkit.base.errors import UnknownNameError
from medkit.cli import main
from medkit.course import check
from medkit.course.course import clean_notebooks, student_copies, summary_table


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


def test_clean_gives_every_cell_a_unique_id(tmp_path):
    src = _notebook(tmp_path / "01_x.ipynb")
    nb = json.loads(src.read_text())
    nb["cells"][0].pop("id", None)
    nb["cells"][1]["id"] = "cell-00"  # the name the first cell would get is taken
    src.write_text(json.dumps(nb))
    assert clean_notebooks([src]) == [src]
    ids = [cell["id"] for cell in json.loads(src.read_text())["cells"]]
    assert all(ids) and len(set(ids)) == len(ids), ids
    assert clean_notebooks([src], check=True) == []


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


def _lesson(folder, number="00"):
    """A two-cell lesson: a parameters cell, then one that records what it was given."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell('PROFILE = "workshop"\nSEED = 0\nOUTPUT_DIR = "outputs/x"\nWIDTH = 3',
                                  metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("from medkit.course import report\nreport.init(OUTPUT_DIR, 'tiny', profile=PROFILE, seed=SEED)\n"
                                  "report.record('width', WIDTH)\nopen('written_here.txt', 'w').write('x')"),
    ]
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, folder / f"{number}_tiny.ipynb")
    return folder


@pytest.mark.timeout(180)
def test_course_runs_with_parameters_json_and_progress(tmp_path, monkeypatch, capfd):
    monkeypatch.setenv("MEDKIT_NOTEBOOKS", str(_lesson(tmp_path / "nb")))
    out = tmp_path / "out"
    assert main(["course", "--profile", "smoke", "--out", str(out), "-p", "WIDTH", "7", "--timeout", "120", "--json"]) == 0
    captured = capfd.readouterr()
    (result,) = json.loads(captured.out)["results"]
    assert result["error"] is None and result["metrics"]["width"] == 7 and result["metrics"]["profile"] == "smoke"
    assert "[1/1] 00_tiny (smoke)" in captured.err and "ok in" in captured.err
    assert "without encryption" not in captured.err, "the kernel's plain-TCP warning is silenced"
    assert (out / "00_tiny" / "written_here.txt").exists(), "the kernel runs in the lesson's output folder"


def test_course_refuses_bad_input(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MEDKIT_NOTEBOOKS", str(_lesson(tmp_path / "nb")))
    assert main(["course", "--out", str(tmp_path / "o"), "--kernel", "no-such-kernel"]) == 1
    err = capsys.readouterr().err
    assert "No Jupyter kernel named 'no-such-kernel'" in err and "python3" in err
    assert main(["course", "--out", str(tmp_path / "o"), "-p", "DEPTH", "2"]) == 1
    assert "DEPTH" in capsys.readouterr().err
    assert main(["course", "--out", str(tmp_path / "o"), "-p", "SEED", "2", "--json"]) == 1
    assert "--seed" in json.loads(capsys.readouterr().out)["error"]
    assert main(["course", "--out", str(tmp_path / "o"), "--lessons", "42"]) == 1
    assert "No lesson matches" in capsys.readouterr().err


def test_course_names_the_extra_a_lesson_needs(tmp_path, monkeypatch, capsys):
    from medkit.course import course

    monkeypatch.setenv("MEDKIT_NOTEBOOKS", str(_lesson(tmp_path / "nb", number="04")))
    monkeypatch.setattr(course, "missing_extras", lambda extras: list(extras))  # as if grad-cam were not installed
    (result,) = course.run_course(tmp_path / "o", profile="smoke", echo=lambda line: None)
    assert result["error"] == 'not run: 04_tiny needs the cam extra; install it with pip install "medkit[cam]"'


def test_parse_value():
    from medkit.course.course import parse_value

    assert parse_value("7") == 7 and parse_value("1e-3") == 0.001 and parse_value("true") is True
    assert parse_value("resnet18") == "resnet18" and parse_value("[1, 2]") == [1, 2] and parse_value("None") is None
