"""What a checkpoint was validated on: internal (its own source's held-out part) and external (another source).

A number from the training source's own carve says how well the model does on more of the same; a
number from a second site says how well it travels (issue 28: `medkit fit` defaults score AUC 0.995 on
the Kermany training folder's patient-grouped carve, 0.958 on a second set of Kermany images collected
apart from it, with specificity falling to 0.479). Every result therefore carries its `role`, and
`medkit evaluate --internal-too` (`medkit.fit.evaluate_internal_and_external`) puts the two side by side
with the gap between them.

`validation_entry` is the one record shape both `medkit fit` (its internal val) and `medkit evaluate
--record` write into the checkpoint's config (`medkit.core.checkpoint.record_validation`); the model card reads
those records back.
"""

import datetime as _dt
from pathlib import Path

from ..core.checkpoint import data_path, record_validation
from ..evaluation.evaluate import metric_gaps

__all__ = ["ROLES", "METRICS", "role_of", "validation_entry", "record", "metric_gap"]

ROLES = ("internal", "external")
METRICS = ("auc", "acc", "sensitivity", "specificity")  # what a record keeps, each with its 95% interval


def role_of(config: dict, data) -> str:
    """Return "internal" when `data` is the source the checkpoint was trained on (by path), else "external"."""
    return "internal" if data_path(config) == str(Path(data).resolve()) else "external"


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def validation_entry(result: dict, *, threshold_chosen_here: bool = False) -> dict:
    """Return the record of one scored part (an `evaluate_checkpoint` result, or fit's val) for config.json.

    Keeps role, part, data path and fingerprint, n, patients, the metrics with their 95% intervals, the
    threshold used and the date. `threshold_chosen_here` marks the part the threshold was chosen on (fit's
    val), whose sensitivity and specificity are optimistic for that reason.
    """
    entry = {"role": result["role"], "part": result.get("part", result.get("split")), "data": result["data"],
             "fingerprint": result.get("fingerprint"), "n": int(result["n"]),
             "patients": None if result.get("patients") is None else int(result["patients"])}
    entry.update({k: float(result[k]) for k in METRICS if result.get(k) is not None})
    if result.get("ci95"):
        entry["ci95"] = {k: [float(v[0]), float(v[1])] for k, v in result["ci95"].items()}
    if result.get("task") == "multilabel":
        entry.update({"task": "multilabel", "thresholds": result.get("thresholds", {}),
                      "findings": {name: row["auc"] for name, row in result["findings"].items()}})
    elif result.get("threshold") is not None:  # more than two classes: argmax, no threshold
        entry["threshold"] = float(result["threshold"])
    if threshold_chosen_here:
        entry["threshold_chosen_on_this_part"] = True
    entry["date"] = _now()
    return entry


def record(ckpt_dir, result: dict) -> dict:
    """Append an `evaluate_checkpoint` result to the checkpoint's `validation` records; return the entry written."""
    entry = validation_entry(result)
    record_validation(ckpt_dir, entry)
    return entry


def metric_gap(internal: dict, external: dict, scores: dict | None, threshold: float | None,
               n_boot: int = 1000) -> dict:
    """Return external minus internal for each metric both results have; with 95% intervals for a binary task.

    `scores` holds the (labels, probs) of each role; the intervals come from resampling each set on its own
    (`medkit.evaluation.metric_gaps`), so they include the sampling noise of the smaller set.
    """
    gap = {"of": "external minus internal"}
    gap.update({k: float(external[k]) - float(internal[k]) for k in METRICS
                if internal.get(k) is not None and external.get(k) is not None})
    if scores and "ci95" in internal and "ci95" in external:
        intervals = metric_gaps(scores["internal"], scores["external"], threshold, n_boot=n_boot)
        gap.update({k: v.estimate for k, v in intervals.items()})
        gap["ci95"] = {k: [round(v.low, 6), round(v.high, 6)] for k, v in intervals.items()}
    return gap
