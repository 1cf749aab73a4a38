"""Instructor tools: run every lesson and tabulate its numbers, make student copies, strip outputs."""

import ast
import json
import math
import re
import sys
import time
import traceback
from pathlib import Path

from ..base._optional import LESSON_EXTRAS, install_command, missing_extras, require
from ..base.atomic import write_text
from ..base.errors import ConfigError, DataError
from .notebooks import DEFAULT_KERNEL, check_kernel, lesson_paths, run_notebook

__all__ = ["run_course", "select_lessons", "parse_value", "declared_parameters", "summary_table", "strip_outputs", "clean_notebooks",
           "student_copies", "read_notebook", "SOLUTION_TAG"]

SOLUTION_TAG = "solution"
_SKIP = {"lesson", "profile", "seed", "backbone"}


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def parse_value(text: str):
    """Return a `-p NAME VALUE` value as papermill would inject it: a Python or JSON literal, else the string."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        pass
    try:
        return json.loads(text)
    except ValueError:
        return text


def declared_parameters(path) -> list[str]:
    """Return the names a lesson's `parameters` cell assigns, in order."""
    nb = json.loads(Path(path).read_text())
    cells = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    source = "".join("".join(c["source"]) for c in cells)
    return re.findall(r"^([A-Za-z_]\w*)\s*(?::[^=]+)?=", source, flags=re.MULTILINE)


def _check_parameters(paths, parameters: dict) -> None:
    """Refuse parameters that no selected lesson declares, and those that have their own option."""
    own = {"PROFILE": "--profile", "SEED": "--seed", "OUTPUT_DIR": "--out"}
    for name in parameters:
        if name in own:
            raise ConfigError(f"Set {name} with {own[name]}, not -p {name}.")
    declared = {name for path in paths for name in declared_parameters(path)}
    unknown = sorted(set(parameters) - declared)
    if unknown:
        raise ConfigError(f"No selected lesson has the parameter(s) {', '.join(unknown)}; their parameters cells "
                          f"declare {', '.join(sorted(declared))}.")


def select_lessons(lessons=None) -> list[Path]:
    """Return the lesson notebooks whose number or name is in `lessons` (all when empty), in reading order."""
    paths = [p for p in lesson_paths() if not lessons or p.stem[:2] in lessons or p.stem in lessons]
    if not paths:
        raise DataError(f"No lesson matches {lessons}; lessons are {[p.stem for p in lesson_paths()]}.")
    return paths


def _missing_extras_error(path: Path) -> str | None:
    missing = missing_extras(LESSON_EXTRAS.get(path.stem[:2], ()))
    if not missing:
        return None
    return f"not run: {path.stem} needs the {', '.join(missing)} extra; install it with {install_command(*missing)}"


def run_course(out_dir, profile: str = "workshop", lessons=None, seed: int = 0, echo=_log, kernel: str = DEFAULT_KERNEL,
               timeout: float | None = None, parameters: dict | None = None) -> list[dict]:
    """Run the lessons (all, or those whose number or name is in `lessons`) and return one result per lesson.

    Each lesson runs into `out_dir/NN_name/` (executed notebook + metrics.json); a failing lesson
    is reported and the course goes on, so one broken lesson never hides the others' numbers. A lesson
    whose extra is not installed is not run; its result says which `pip install` it needs.

    Args:
        out_dir: folder for the executed notebooks, their metrics and `course.json`.
        profile, seed: injected into every lesson's parameters cell.
        lessons: lesson numbers ("03") or names; all when empty.
        echo: where progress lines go (default: stderr).
        kernel: Jupyter kernel name (must be installed); timeout: seconds per cell (default: none).
        parameters: more parameters cell values, e.g. {"BACKBONE": "resnet18"}.
    """
    out_dir, results, parameters = Path(out_dir), [], dict(parameters or {})
    require("papermill", "lab", "medkit course (it runs the lessons with papermill)")
    paths = select_lessons(lessons)
    check_kernel(kernel)
    _check_parameters(paths, parameters)
    for i, path in enumerate(paths, 1):
        echo(f"[{i}/{len(paths)}] {path.stem} ({profile}) ...")
        start = time.perf_counter()
        error = _missing_extras_error(path)
        metrics = {}
        if error is None:
            try:
                metrics = run_notebook(path, out_dir / path.stem, profile=profile, seed=seed, kernel=kernel,
                                       timeout=timeout, **parameters)
            except Exception as exc:  # papermill raises PapermillExecutionError with the failing cell
                error = "".join(traceback.format_exception_only(type(exc), exc)).strip().splitlines()[0]
        results.append({"lesson": path.stem, "seconds": time.perf_counter() - start, "metrics": metrics,
                        "error": error, "notebook": str(out_dir / path.stem / path.name)})
        echo(f"  {'FAILED: ' + error if error else 'ok'} in {results[-1]['seconds']:.0f} s")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "course.json").write_text(json.dumps(results, indent=2))
    return results


def _fmt(value) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    if isinstance(value, (list, dict)):
        text = json.dumps(value, separators=(",", ":"))
        return text if len(text) <= 60 else text[:57] + "..."
    return str(value)


def summary_table(results: list[dict]) -> str:
    """Return one plain-text table: lesson, status and time, then every number the lesson recorded."""
    rows = [("lesson", "metric", "value")]
    for r in results:
        rows.append((r["lesson"], "status", "FAILED" if r["error"] else f"ok, {r['seconds']:.0f} s"))
        rows += [("", k, _fmt(v)) for k, v in r["metrics"].items() if k not in _SKIP]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _free_id(stem: str, taken: set) -> str:
    """Return `stem`, or `stem-1`, `stem-2`... whichever no cell has yet, and mark it taken."""
    name, n = stem, 0
    while name in taken:
        n += 1
        name = f"{stem}-{n}"
    taken.add(name)
    return name


def strip_outputs(nb: dict) -> bool:
    """Remove outputs, execution counts and widget state, and give every cell an id; return True if it changed."""
    before = json.dumps(nb, sort_keys=True)
    taken = {cell.get("id") for cell in nb.get("cells", [])}
    for i, cell in enumerate(nb.get("cells", [])):
        if not cell.get("id"):  # nbformat 4.5 requires one (a cell pasted in by hand has none): papermill warns
            cell["id"] = _free_id(f"cell-{i:02d}", taken)
        if cell.get("cell_type") == "code":
            cell["outputs"], cell["execution_count"] = [], None
        for key in ("execution", "collapsed", "scrolled"):
            cell.get("metadata", {}).pop(key, None)
    for key in ("widgets", "papermill"):
        nb.get("metadata", {}).pop(key, None)
    return json.dumps(nb, sort_keys=True) != before


def _write(nb: dict, path: Path) -> None:
    write_text(path, json.dumps(nb, indent=1, ensure_ascii=False) + "\n")  # atomic: a full disk leaves the old file


def read_notebook(path) -> tuple[dict, bool]:
    """Return (notebook as nbformat-4 JSON, converted) for `path`, refusing a file that is not a whole notebook.

    An nbformat-3 notebook is converted with nbformat (`converted` True), so cleaning it really strips
    its outputs; a truncated file, another kind of JSON or a CSV is a DataError naming the file.
    """
    path = Path(path)
    fix = "Pass .ipynb notebooks; restore a damaged one from git or re-save it in Jupyter."
    if path.suffix.lower() != ".ipynb":
        raise DataError(f"{path} is not a notebook (.ipynb). {fix}")
    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DataError(f"Cannot read {path}: {exc.strerror or exc}. {fix}") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path} is not valid notebook JSON (truncated or damaged: {exc}). {fix}") from exc
    version = nb.get("nbformat") if isinstance(nb, dict) else None
    if not isinstance(version, int) or isinstance(version, bool):
        raise DataError(f"{path} is JSON but not a Jupyter notebook (no nbformat version). {fix}")
    if version < 4:
        return _converted(path, nb, fix), True
    if not isinstance(nb.get("cells"), list) or not all(isinstance(c, dict) for c in nb["cells"]):
        raise DataError(f"{path} is an nbformat-{version} notebook without a list of cells. {fix}")
    return nb, False


def _converted(path: Path, nb: dict, fix: str) -> dict:
    """Return an nbformat-3 notebook as nbformat-4 JSON (its worksheets become cells, outputs kept for stripping)."""
    import nbformat

    try:
        return json.loads(nbformat.writes(nbformat.convert(nbformat.from_dict(nb), 4)))
    except Exception as exc:  # nbformat raises several kinds for a malformed old notebook
        raise DataError(f"{path} is an nbformat-{nb.get('nbformat')} notebook nbformat cannot convert ({exc}). "
                        f"{fix}") from exc


def _inputs(paths) -> list[Path]:
    """Return the notebooks named (default: every lesson), each once."""
    return list(dict.fromkeys(map(Path, paths or lesson_paths())))


def clean_notebooks(paths=None, check: bool = False) -> list[Path]:
    """Strip outputs in place (or, with `check`, only list the notebooks that need it); return those paths.

    Every notebook is read and checked before any is written, so one malformed notebook changes nothing.
    """
    dirty = []
    for path, (nb, converted) in [(p, read_notebook(p)) for p in _inputs(paths)]:
        if strip_outputs(nb) or converted:
            dirty.append((path, nb))
    if not check:
        for path, nb in dirty:
            _write(nb, path)
    return [path for path, _ in dirty]


def _student_targets(out_dir: Path, inputs: list[Path]) -> list[Path]:
    """Return the student copy of each input, refusing one that would replace an input or another copy."""
    targets, seen = [out_dir / p.name for p in inputs], {}
    sources = {p.resolve() for p in inputs}
    for path, target in zip(inputs, targets):
        if target.resolve() in sources:
            raise ConfigError(f"The student copy of {path} would be written to {target}, over a notebook it reads "
                              "(the solutions would be lost). Choose another --out folder.")
        if target.resolve() in seen:
            raise ConfigError(f"{seen[target.resolve()]} and {path} have the same name: both student copies "
                              f"would be {target}. Convert them into different --out folders.")
        seen[target.resolve()] = path
    return targets


def student_copies(out_dir, paths=None) -> list[Path]:
    """Write copies of the lessons without solution cells (tag `solution`) and without outputs.

    Never over an input notebook, and never two inputs onto one copy: both are refused before anything is written.
    """
    out_dir, inputs = Path(out_dir), _inputs(paths)
    targets = _student_targets(out_dir, inputs)
    notebooks = [read_notebook(path)[0] for path in inputs]  # all read and checked before any write
    for nb, target in zip(notebooks, targets):
        cells = []
        for cell in nb["cells"]:
            if SOLUTION_TAG in cell.get("metadata", {}).get("tags", []) and cell.get("cell_type") == "markdown":
                # a written answer (a questionnaire's): the student writes prose, so the blank stays markdown
                cells.append({"cell_type": "markdown", "metadata": {"tags": ["answer"]}, "source": "*Your answers here*\n",
                              "id": cell.get("id", "answer")})
            elif SOLUTION_TAG in cell.get("metadata", {}).get("tags", []):
                cells.append({"cell_type": "code", "metadata": {"tags": ["answer"]}, "source": "# Your answer here\n",
                              "outputs": [], "execution_count": None, "id": cell.get("id", "answer")})
            else:
                cells.append(cell)
        nb["cells"] = cells
        strip_outputs(nb)
        _write(nb, target)
    return targets
