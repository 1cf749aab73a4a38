"""Lessons record their key numbers here; tests and `medkit course` read them back.

A notebook calls `report.init(OUTPUT_DIR, "02_pretrained_features")` once, then
`report.record("auc_pretrained", auc)`. Every call rewrites `metrics.json` atomically, so the
numbers recorded before a failure are never lost.
"""

import json
import math
import string
from pathlib import Path

from ..base.atomic import write_json
from ..base.errors import DataError

__all__ = ["METRICS_FILE", "init", "record", "load", "current", "render", "summary", "table"]

METRICS_FILE = "metrics.json"
_state = {"path": None, "data": {}}


def _plain(value):
    """Turn numpy/torch scalars and arrays into JSON-ready Python values."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else value
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise DataError(f"Cannot record a value of type {type(value).__name__}; record numbers, strings, lists or dicts.")


def init(output_dir, lesson: str, **context) -> Path:
    """Start a fresh metrics file for `lesson` in `output_dir` and return its path."""
    path = Path(output_dir) / METRICS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    _state["path"], _state["data"] = path, {"lesson": lesson, **_plain(context)}
    _write()
    return path


def record(name: str, value):
    """Record one number (or list/dict of numbers) under `name` and return the value unchanged."""
    if _state["path"] is None:
        raise DataError("report.record() was called before report.init(OUTPUT_DIR, lesson).")
    _state["data"][name] = _plain(value)
    _write()
    return value


def current() -> dict:
    """Return a copy of what has been recorded so far."""
    return dict(_state["data"])


def load(output_dir) -> dict:
    """Read the metrics a lesson recorded in `output_dir`."""
    path = Path(output_dir) / METRICS_FILE
    if not path.exists():
        raise DataError(f"No {METRICS_FILE} in {output_dir}: the lesson did not run, or did not call report.init().")
    return json.loads(path.read_text())


def render(template: str, metrics: dict | None = None, **values) -> str:
    """Fill `template` ("AUC {cv_auc_mean:.3f}") from recorded metrics (default: this run's) and extra `values`."""
    known = {**(current() if metrics is None else metrics), **values}
    for _, field, _, _ in string.Formatter().parse(template):
        name = (field or "").split(".")[0].split("[")[0]
        if field is not None and name not in known:
            raise DataError(f"The summary names {name!r}, which this run did not record; record it with "
                            f"report.record({name!r}, value) first, or fix the name (recorded: {', '.join(sorted(known))}).")
    return template.format_map(known)


def summary(lines, metrics: dict | None = None, title: str = "", **values):
    """Return a markdown list of `lines`, each a template filled from the recorded numbers, for a notebook to display.

    A lesson's "What we saw" is written this way so that no measured number is typed by hand: the prose holds the
    names (`{auc_gap_one_site:.2f}`), the run fills in its own values.
    """
    text = "\n".join(f"- {render(line, metrics, **values)}" for line in lines)
    return _markdown(f"**{title}**\n\n{text}" if title else text)


def table(rows: dict, columns: list[str], metrics: dict | None = None, fmt: str = "{:.3f}", **values):
    """Return a markdown table: one row per `rows` label, each a list of templates (or recorded names) per column."""
    def cell(spec):
        known = {**(current() if metrics is None else metrics), **values}
        if isinstance(spec, str) and "{" not in spec and spec in known:  # a bare recorded name
            value = known[spec]
            return fmt.format(value) if isinstance(value, float) else str(value)
        return render(spec, metrics, **values) if isinstance(spec, str) else str(spec)

    lines = ["| " + " | ".join(["", *columns]) + " |", "|" + "---|" * (len(columns) + 1)]
    for label, specs in rows.items():
        if len(specs) != len(columns):
            raise DataError(f"Row {label!r} has {len(specs)} cells for {len(columns)} columns ({columns}).")
        lines.append("| " + " | ".join([label, *map(cell, specs)]) + " |")
    return _markdown("\n".join(lines))


def _markdown(text: str):
    """Wrap markdown for display in Jupyter; outside IPython the plain string is returned."""
    try:
        from IPython.display import Markdown
    except ImportError:  # pragma: no cover - IPython comes with Jupyter
        return text
    return Markdown(text)


def _write():
    write_json(_state["path"], _state["data"])  # atomic: temp file in the same folder, fsync, rename
