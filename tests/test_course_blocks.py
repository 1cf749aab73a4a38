"""Rendered blocks (lesson times, reference lists) are current; every lesson has its teaching front and back matter."""

import datetime
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
    assert "| 03_freezing_and_fine_tuning | 1.7 min | wall | 900 MB |" in table
    assert table.count("not yet measured") == len(LESSONS) - 1


def test_times_on_a_busy_machine_render_cpu_seconds_per_usable_thread():
    busy = dict(RUN, wall_s=400.0, cpu_s=90.0, basis="cpu", usable_threads=1, load_avg=12.0,
                sections=[{"title": "Setup", "seconds": 40.0, "cpu_s": 10.0},
                          {"title": "1. Train", "seconds": 300.0, "cpu_s": 70.0}])
    text = blocks.times_markdown("03", {"03": busy})
    assert "| 1. Train | 70 s |" in text and "(90 s, kernel start 10 s;" in text and "90 CPU-s on 1 thread" in text
    assert "| 03_freezing_and_fine_tuning | 1.5 min | CPU-s / 1 | 900 MB |" in blocks.readme_times_markdown({"03": busy})
    two = dict(busy, usable_threads=2)
    assert "| 1. Train | 35 s |" in blocks.times_markdown("03", {"03": two})


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


def _bench():
    spec = importlib.util.spec_from_file_location("bench_notebooks", ROOT / "benchmarks" / "bench_notebooks.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


def test_bench_sums_papermill_durations_per_section(tmp_path):
    bench = _bench()
    nb = nbformat.v4.new_notebook()
    timed = [nbformat.v4.new_code_cell("x", metadata={"papermill": {"duration": d}}) for d in (1.0, 2.0, 4.0, 8.0)]
    nb.cells = [timed[0], nbformat.v4.new_markdown_cell("## 1. One"), timed[1], timed[2],
                nbformat.v4.new_markdown_cell("## What we saw\n## Exercises"), timed[3]]
    nbformat.write(nb, tmp_path / "run.ipynb")
    assert bench.section_times(tmp_path / "run.ipynb") == [
        {"title": "Setup", "seconds": 1.0}, {"title": "1. One", "seconds": 6.0}, {"title": "Exercises", "seconds": 8.0}]


def test_bench_reads_each_sections_cpu_seconds_off_the_kernels_timeline(tmp_path):
    bench = _bench()

    def cell(start, end):
        iso = [datetime.datetime.fromtimestamp(t, datetime.timezone.utc).isoformat() for t in (start, end)]
        return nbformat.v4.new_code_cell("x", metadata={"papermill": {"duration": end - start, "start_time": iso[0],
                                                                      "end_time": iso[1]}})

    t0 = 1_800_000_000.0
    timeline = [[t0, 0.0], [t0 + 10, 2.0], [t0 + 20, 12.0]]  # 2 CPU-s in the first 10 s, then 10 in the next 10
    nb = nbformat.v4.new_notebook()
    nb.cells = [cell(t0, t0 + 5), nbformat.v4.new_markdown_cell("## 1. Train"), cell(t0 + 10, t0 + 20)]
    nbformat.write(nb, tmp_path / "run.ipynb")
    assert bench.section_times(tmp_path / "run.ipynb", timeline) == [
        {"title": "Setup", "seconds": 5.0, "cpu_s": 1.0}, {"title": "1. Train", "seconds": 10.0, "cpu_s": 10.0}]


def test_bench_times_a_busy_machine_from_cpu_seconds(tmp_path, monkeypatch):
    bench, path = _bench(), tmp_path / "times.json"
    monkeypatch.setattr(bench.os, "cpu_count", lambda: 2)
    run = {"wall_s": 300.0, "cpu_s": 60.0, "peak_mb": 800.0}
    bench.write_times(path, "03_x", dict(run, load_avg=1.0), [], "workshop", "1", "torch")
    bench.write_times(path, "04_y", dict(run, load_avg=9.0), [], "workshop", "1", "torch")
    lessons = json.loads(path.read_text())["lessons"]
    assert lessons["03"]["basis"] == "wall" and lessons["04"]["basis"] == "cpu" and lessons["04"]["usable_threads"] == 1
