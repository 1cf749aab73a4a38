"""Lessons record their key numbers here; tests and `medkit course` read them back.

A notebook calls `report.init(OUTPUT_DIR, "02_pretrained_features")` once, then
`report.record("auc_pretrained", auc)`. Every call rewrites `metrics.json` atomically, so the
numbers recorded before a failure are never lost.
"""

import json
import math
from pathlib import Path

from .atomic import write_json
from .errors import DataError

__all__ = ["METRICS_FILE", "init", "record", "load", "current"]

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


def _write():
    write_json(_state["path"], _state["data"])  # atomic: temp file in the same folder, fsync, rename
