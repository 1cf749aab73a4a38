"""Patient keys in file names, so splits can keep every image of one patient on one side (lesson 01).

The Kermany chest X-rays (the images PneumoniaMNIST was made from) name their files after the patient:

    person1003_bacteria_2934.jpeg, person1003_virus_1685.jpeg  -> person1003
    IM-0117-0001.jpeg, IM-0640-0001-0001.jpeg                   -> IM-0117, IM-0640
    NORMAL2-IM-1018-0001.jpeg                                    -> NORMAL2-IM-1018

The source does not document this key; it is the grouping a careful user would apply (about half the
`personN` keys hold both bacterial and viral images), not ground truth.
"""

import re
import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np

__all__ = ["patient_key", "patient_keys", "pneumonia_type", "classes_per_patient", "warn_mixed_patients"]

_PERSON = re.compile(r"^(person\d+)_(bacteria|virus)_\d+(?:_\d+)*$", re.IGNORECASE)
_IM = re.compile(r"^((?:NORMAL\d+-)?IM-\d+)(?:-\d+)+$", re.IGNORECASE)


def _stem(path_or_name) -> str:
    return Path(str(path_or_name)).stem


def patient_key(path_or_name) -> str | None:
    """Return the patient key of a Kermany file name (`person12`, `IM-0117`, `NORMAL2-IM-1018`), else None."""
    stem = _stem(path_or_name)
    match = _PERSON.match(stem) or _IM.match(stem)
    return match.group(1) if match else None


def patient_keys(paths) -> np.ndarray | None:
    """Return the patient key of every path as a string array, or None unless every path has one."""
    keys = [patient_key(p) for p in paths]
    if not keys or any(k is None for k in keys):
        return None
    return np.asarray(keys, dtype=str)


def pneumonia_type(path_or_name) -> str | None:
    """Return "bacterial" or "viral" for a Kermany pneumonia file name, None when the name does not say."""
    match = _PERSON.match(_stem(path_or_name))
    if not match:
        return None
    return "bacterial" if match.group(2).lower() == "bacteria" else "viral"


def classes_per_patient(groups, labels) -> dict:
    """Return {group: sorted labels} for every group whose images carry more than one label."""
    seen = defaultdict(set)
    for group, label in zip(np.asarray(groups).tolist(), np.asarray(labels).tolist()):
        seen[group].add(label)
    return {g: sorted(labels) for g, labels in seen.items() if len(labels) > 1}


def warn_mixed_patients(groups, labels, classes, source: str = "") -> int:
    """Warn (once, with the count) when a patient key appears under two classes; return that count."""
    mixed = classes_per_patient(groups, labels)
    if mixed:
        example, where = next(iter(mixed.items()))
        warnings.warn(f"{source or 'images'}: {len(mixed)} patient key(s) appear under two or more classes, e.g. "
                      f"{example!r} under {[classes[i] for i in where]}. A patient-grouped split keeps each key on one "
                      "side; check the labels or the file names if one patient should have one diagnosis.",
                      stacklevel=3)
    return len(mixed)
