"""Rendered blocks (lesson times, reference lists) are current; every lesson has its teaching front and back matter."""

import importlib.util
import json
import re
from pathlib import Path

import nbformat
import pytest

from medkit.base.errors import DataError
from medkit.course import blocks
from medkit.course.course import student_copies

ROOT = Path(__file__).resolve().parents[1]
LESSONS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
RUN = {"notebook": "03_x", "wall_s": 100.0, "peak_mb": 900, "profile": "workshop", "threads": "default",
       "torch": "torch 2.14.1+cpu (CPU build, as on Binder)", "cpus": 2, "load_avg": 1.5, "machine": "x86_64",
       "commit": "abc", "date": "2026-12-08",
       "sections": [{"title": "Setup", "seconds": 10.0}, {"title": "1. Train", "seconds": 70.0},
                    {"title": "Exercises", "seconds": 0.0}]}


def test_every_rendered_block_is_current():
    stale = blocks.sync(readme=ROOT / "README.md", check=True)
    assert not stale, f"stale blocks in {[p.name for p in stale]}: run `python -m medkit.course.blocks`"


def test_times_render_measured_sections_and_say_when_unmeasured():
    text = blocks.times_markdown("03", {"03": RUN})
    assert "| 1. Train | 70 s |" in text and "Exercises" not in text  # a section that ran nothing is left out
    assert "kernel start 20 s" in text and "900 MB" in text and "load was 1.5" in text
    assert "not yet measured" in blocks.times_markdown("03", {})
    table = blocks.readme_times_markdown({"03": RUN})
    assert "| 03_freezing_and_fine_tuning | 1.7 min | 900 MB |" in table and table.count("not yet measured") == len(LESSONS) - 1


def test_replace_block_rewrites_only_its_block_and_refuses_a_missing_one():
    text = "a\n<!-- medkit:x -->\nold\n<!-- /medkit:x -->\nb"
    assert blocks.replace_block(text, "x", "new") == "a\n<!-- medkit:x -->\nnew\n<!-- /medkit:x -->\nb"
    with pytest.raises(DataError, match="medkit:y"):
        blocks.replace_block(text, "y", "new")


def test_sync_rewrites_a_stale_lesson(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# 03\n<!-- medkit:times 03 -->\nstale\n<!-- /medkit:times 03 -->")]
    path = tmp_path / "03_x.ipynb"
    nbformat.write(nb, path)
    assert blocks.sync([path], times={"03": RUN}, check=True) == [path]
    assert "stale" in path.read_text(), "check changes nothing"
    blocks.sync([path], times={"03": RUN})
    assert "| 1. Train | 70 s |" in path.read_text() and blocks.sync([path], times={"03": RUN}, check=True) == []


def _markdown(path):
    return [(c, "".join(c["source"])) for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "markdown"]


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.stem[:2])
def test_lesson_has_objectives_questionnaire_answers_further_research_and_references(path):
    cells, lesson = _markdown(path), path.stem[:2]
    first_section = next(i for i, (_, text) in enumerate(cells) if "\n## " in "\n" + text)
    header = next(text for _, text in cells[:first_section] if "**Objectives.**" in text)  # before section 1
    assert "**Objectives.**" in header and "**Prerequisites.**" in header and f"<!-- medkit:times {lesson} -->" in header
    assert len(re.findall(r"^- ", header.split("**Prerequisites.**")[0], flags=re.MULTILINE)) >= 3
    questions = next(text for _, text in cells if "## Questionnaire" in text or "## Questions" in text)
    part = questions.split("## Questionnaire" if "## Questionnaire" in questions else "## Questions")[1].split("\n## ")[0]
    n = len(re.findall(r"^\d+\. ", part, flags=re.MULTILINE))
    assert 5 <= n <= 10, f"{path.name}: {n} questions"
    answers = [text for cell, text in cells if "solution" in cell["metadata"].get("tags", []) and "Instructor answers" in text]
    assert len(answers) == 1 and len(re.findall(r"^\d+\. ", answers[0], flags=re.MULTILINE)) == n, "one answer per question"
    assert any(text.startswith("## Further research") and text.count("\n- ") >= 3 for _, text in cells)
    assert any(f"<!-- medkit:references {lesson} -->" in text for _, text in cells)


def test_student_copies_leave_out_the_instructor_answers(tmp_path):
    (copy,) = student_copies(tmp_path, [LESSONS[0]])
    cells = json.loads(copy.read_text())["cells"]
    assert "Instructor answers" not in copy.read_text()
    blanks = [c for c in cells if "answer" in c["metadata"].get("tags", []) and c["cell_type"] == "markdown"]
    assert blanks and "".join(blanks[0]["source"]).startswith("*Your answers here*")


def test_bench_sums_papermill_durations_per_section(tmp_path):
    spec = importlib.util.spec_from_file_location("bench_notebooks", ROOT / "benchmarks" / "bench_notebooks.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    nb = nbformat.v4.new_notebook()
    timed = [nbformat.v4.new_code_cell("x", metadata={"papermill": {"duration": d}}) for d in (1.0, 2.0, 4.0, 8.0)]
    nb.cells = [timed[0], nbformat.v4.new_markdown_cell("## 1. One"), timed[1], timed[2],
                nbformat.v4.new_markdown_cell("## What we saw\n## Exercises"), timed[3]]
    nbformat.write(nb, tmp_path / "run.ipynb")
    assert bench.section_times(tmp_path / "run.ipynb") == [
        {"title": "Setup", "seconds": 1.0}, {"title": "1. One", "seconds": 6.0}, {"title": "Exercises", "seconds": 8.0}]
