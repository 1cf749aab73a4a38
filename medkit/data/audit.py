"""The data audit `medkit fit` runs before training, and `medkit audit DATA` prints: faults a fit would train through.

It reads what `load_source` reads (class folders, split folders, a CSV, a MedMNIST npz) without decoding the
images for training: file paths, labels, parts and patient keys, a sha256 of every file and a dHash of its pixels
(`fingerprints.py`). Each finding is an error (the fit is refused) or a warning (printed, and kept in the
checkpoint's config), says how many items it concerns with examples, and what to do:

    duplicate_path        one file listed on several lines (counted twice, and carvable into two parts)   error
    conflicting_labels    one file, or one image content, under two labels                                  error
    identical_files       byte-identical copies that can land in two parts (train and test)               error
    identical_files_kept  byte-identical copies kept together (same patient key, one part)                 warning
    near_identical        images a few dHash bits apart (re-encoded or resized copies) in two parts      warning
    label_typo            a class named like a class with 5 times its images (PNEUMONA, PNEUMONIA)        error
    rare_class            a class far rarer than the others                                                 warning
    mixed_label_kinds     numeric labels beside class names ("0" and "PNEUMONIA")                          error
    class_not_in_train    a val/test class with no training images (would be dropped)                       error
    too_few_images        a class too small to carve val and test from                                       error
    patients_across_parts one patient key in two of the parts the source came with                         warning
    undecodable           files the hash could not decode (the loaders skip or refuse them)                 warning

An error can be accepted by name (`accept=("identical_files",)`, `medkit fit --accept-audit identical_files`;
"all" accepts every error): it is then reported as an accepted warning, and recorded as such.
"""

import difflib
import os
import re
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..base.errors import DataError
from ..base.paths import check_file
from .fingerprints import dhash_array, dhash_file, file_sha256, near_pairs
from .folder import is_hidden, visible_files
from .images import DICOM_EXTENSIONS, IMAGE_EXTENSIONS
from .patients import patient_key

__all__ = ["Finding", "Audit", "audit_source", "CODES", "NEAR_BITS", "RARE_RATIO"]

CODES = ("duplicate_path", "conflicting_labels", "identical_files", "identical_files_kept", "near_identical",
         "label_typo", "rare_class", "mixed_label_kinds", "class_not_in_train", "too_few_images",
         "patients_across_parts", "undecodable")
# dHash bits (of 256) that still count as the same picture. On the 5,216 Kermany training X-rays the re-encoded
# copies sit at 0 bits and the closest distinct films at 13 (nothing between): 6 keeps a margin on both sides
NEAR_BITS = 6
RARE_RATIO = 0.05  # a class with under 5% of the largest class's images is "far rarer than the rest"
_TYPO_CUTOFF = 0.75  # difflib ratio: PNEUMONA / PNEUMONIA is 0.94, NORMAL / PNEUMONIA 0.27
_TYPO_SHARE = 0.2  # ... and a misspelt class holds at most a fifth as many images as the class it resembles
_NUMERIC = re.compile(r"^[+-]?\d+(\.\d*)?$")
_SPLITS = {"train": ("train", "training"), "val": ("val", "valid", "validation"), "test": ("test", "testing")}


@dataclass
class Finding:
    """One fault of a data source: what, how many, a few examples, and what to do."""

    code: str
    level: str  # "error" or "warning"
    message: str
    fix: str
    count: int = 0
    examples: list = field(default_factory=list)
    accepted: bool = False  # an error the user accepted by name: reported and recorded as a warning

    def line(self) -> str:
        """Return the finding as one readable paragraph."""
        level = "warning (accepted error)" if self.accepted else self.level
        shown = "".join(f"\n      e.g. {e}" for e in self.examples[:3])
        return f"{level}: [{self.code}] {self.message}{shown}\n      fix: {self.fix}"


@dataclass
class Audit:
    """The findings of one data source, with what was checked and how long it took."""

    data: str
    findings: list
    stats: dict

    @property
    def errors(self) -> list:
        return [f for f in self.findings if f.level == "error" and not f.accepted]

    @property
    def warnings(self) -> list:
        return [f for f in self.findings if f.level == "warning" or f.accepted]

    def format(self) -> str:
        """Return the readable report: what was read, then each finding, errors first."""
        s = self.stats
        parts = ", ".join(f"{p} {n}" for p, n in s["parts"].items())
        shown = s["classes"] if len(s["classes"]) <= 10 else s["classes"][:10] + ["..."]
        head = f"audit of {self.data}: {s['items']} images ({parts}), {len(s['classes'])} classes {shown}, {s['seconds']:.1f} s"
        body = [f.line() for f in sorted(self.findings, key=lambda f: f.level != "error" or f.accepted)]
        verdict = (f"{len(self.errors)} error(s), {len(self.warnings)} warning(s)" if self.findings
                   else "no findings: the source looks clean")
        return "\n".join([head, *body, verdict])

    def record(self) -> dict:
        """Return what a checkpoint keeps: the warnings (accepted errors included) and the audit's numbers."""
        return {"warnings": [asdict(f) for f in self.warnings], "stats": self.stats}

    def to_dict(self) -> dict:
        """Return every finding and the numbers, JSON-ready (`medkit audit --json`)."""
        return {"data": self.data, "errors": len(self.errors), "warnings": len(self.warnings),
                "findings": [asdict(f) for f in self.findings], "stats": self.stats}

    def raise_on_errors(self) -> None:
        """Raise DataError listing every error that was not accepted."""
        if self.errors:
            codes = ",".join(f.code for f in self.errors)
            raise DataError(f"the data audit of {self.data} found {len(self.errors)} error(s):\n"
                            + "\n".join(f.line() for f in self.errors)
                            + f"\nFix the data, or accept by name if you know why: --accept-audit {codes} "
                            "(accept=(...) in Python); --no-audit skips the audit.")


@dataclass
class _Item:
    """One image the source lists: where it is, its raw label, its part and patient key."""

    where: str  # a path, or "split[index]" for an npz
    label: str
    part: str
    patient: str | None = None
    line: int | None = None  # CSV line number
    path: Path | None = None
    key: str = ""  # what makes two listings one file: the resolved path (or `where` for an npz)

    def __post_init__(self):
        self.key = self.key or self.where


# --- what the source lists -------------------------------------------------------------------------------------


def _image_files(folder: Path) -> list:
    return [p for p in visible_files(folder) if p.suffix.lower() in IMAGE_EXTENSIONS | DICOM_EXTENSIONS]


def _class_folders(root: Path, part: str) -> list:
    items = []
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not is_hidden(p, root)):
        items += [_Item(str(f), sub.name, part, patient_key(f), path=f) for f in _image_files(sub)]
    return items


def _split_folders(root: Path) -> dict:
    subs = {p.name.lower(): p for p in root.iterdir() if p.is_dir() and not is_hidden(p, root)}
    return {split: subs[n] for split, names in _SPLITS.items() for n in names if n in subs}


def _csv_items(path: Path, path_column: str, label_column: str) -> list:
    from .table import read_table

    table = read_table(path)
    missing = [c for c in (path_column, label_column) if c not in table.columns]
    if missing:
        raise DataError(f"{path} has no column(s) {missing}; it has {list(table.columns)}.")
    patients = table["patient"].tolist() if "patient" in table.columns else [None] * len(table)
    items = []
    for i, (p, label, patient) in enumerate(zip(table[path_column], table[label_column], patients)):
        file = Path(p) if Path(p).is_absolute() else path.parent / p
        items.append(_Item(str(file), label, "all", patient or patient_key(file), line=i + 2, path=file,
                           key=os.path.realpath(file)))
    return items


def _npz_items(path: Path) -> tuple[list, dict]:
    from .medmnist import available_splits

    items, arrays = [], {}
    with np.load(path) as npz:
        for split in available_splits(path):
            images = npz[f"{split}_images"]
            labels = np.asarray(npz[f"{split}_labels"]).reshape(len(images), -1)
            arrays[split] = images
            items += [_Item(f"{split}[{i}]", "|".join(str(int(v)) for v in labels[i]), split)
                      for i in range(len(images))]
    return items, arrays


def _list_source(data: Path, path_column: str, label_column: str) -> tuple[list, dict | None, str]:
    """Return (items, npz arrays or None, kind) of a source, the way `load_source` will read it."""
    if not data.is_dir():  # a file, or nothing usable (missing, a loop, a FIFO np.load would block on): say which
        check_file(data, "Data source", allow_empty=True, hint="Pass a class-folder tree, a folder with train/ and "
                   "test/ subfolders, a CSV or a MedMNIST .npz file.")
    if data.is_dir():
        splits = _split_folders(data)
        if splits:
            return [it for part, folder in splits.items() for it in _class_folders(folder, part)], None, "splits"
        return _class_folders(data, "all"), None, "folder"
    if data.suffix.lower() == ".csv":
        return _csv_items(data, path_column, label_column), None, "csv"
    if data.suffix.lower() == ".npz":
        items, arrays = _npz_items(data)
        return items, arrays, "npz"
    raise DataError(f"{data} is neither a folder, a .csv nor a .npz file; medkit cannot audit it.")


# --- content: sha256 and dHash -----------------------------------------------------------------------------------


def _file_content(path) -> tuple[str | None, np.ndarray | None]:
    try:
        return file_sha256(path), dhash_file(path)
    except OSError:
        return None, None


def _content(items, arrays, near: bool) -> tuple[list, list]:
    """Return (sha256 or None, dHash or None) for every item; file reads and decodes run on a few threads."""
    if arrays is not None:
        import hashlib

        out = []
        for it in items:
            split, i = it.where[:-1].split("[")
            image = arrays[split][int(i)]
            out.append((hashlib.sha256(np.ascontiguousarray(image).tobytes()).hexdigest(),
                        dhash_array(image) if near else None))
    else:
        files = [it.path for it in items]
        unique = list(dict.fromkeys(files))  # a path listed twice is hashed once
        with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:  # decoding releases the GIL
            if near:
                done = dict(zip(unique, pool.map(_file_content, unique)))
            else:
                done = {f: (s, None) for f, s in zip(unique, pool.map(_safe_sha, unique))}
        out = [done[f] for f in files]
    return [s for s, _ in out], [h for _, h in out]


def _safe_sha(path):
    try:
        return file_sha256(path)
    except OSError:
        return None


# --- the checks ----------------------------------------------------------------------------------------------------


def _carved(kind: str, parts: set) -> set:
    """Return the parts `load_source` carves (val, test) out of what the source holds."""
    if kind in ("folder", "csv"):
        return {"val", "test"}
    return {"val", "test"} - parts


def _same_side(members: list) -> bool:
    """Return True when items surely stay in one part: one given part, and one patient key kept whole."""
    parts = {it.part for it in members}
    patients = {it.patient for it in members}
    return len(parts) == 1 and len(patients) == 1 and None not in patients


def _show(it: _Item) -> str:
    return f"line {it.line}: {it.where}" if it.line else it.where


def _check_paths(items) -> list:
    by_path = defaultdict(list)
    for it in items:
        if it.path is not None:
            by_path[it.key].append(it)
    repeated = {p: its for p, its in by_path.items() if len(its) > 1}
    out = []
    conflicting = {p: its for p, its in repeated.items() if len({it.label for it in its}) > 1}
    if conflicting:
        out.append(Finding("conflicting_labels", "error", f"{len(conflicting)} file(s) are listed with two or more "
                           "labels", "keep one line per file with its one label (or use a multi-label CSV)",
                           len(conflicting), [f"{p}: {sorted({it.label for it in its})} on lines "
                                              f"{[it.line for it in its]}" for p, its in conflicting.items()]))
    same = {p: its for p, its in repeated.items() if p not in conflicting}
    if same:
        n_extra = sum(len(its) - 1 for its in same.values())
        out.append(Finding("duplicate_path", "error", f"{len(same)} file(s) are listed more than once ({n_extra} extra "
                           "line(s)): they count twice in training, and a carve can put one copy in train and the "
                           "other in test", "drop the repeated lines (pandas: drop_duplicates('path'))", len(same),
                           [f"{p} on lines {[it.line for it in its]}" for p, its in same.items()]))
    return out


def _groups_by_sha(items, shas) -> list:
    """Return the lists of distinct files that share one sha256."""
    by_sha = defaultdict(dict)
    for it, sha in zip(items, shas):
        if sha is not None:
            by_sha[sha].setdefault(it.key, it)
    return [list(group.values()) for group in by_sha.values() if len(group) > 1]


def _check_identical(items, shas, kind) -> list:
    out = []
    groups = _groups_by_sha(items, shas)
    clash = [g for g in groups if len({it.label for it in g}) > 1]
    if clash:
        out.append(Finding("conflicting_labels", "error", f"{len(clash)} image content(s) appear byte-identical "
                           "under two or more labels", "decide each image's one label and delete the other copies",
                           len(clash), [" = ".join(f"{_show(it)} ({it.label})" for it in g) for g in clash]))
    rest = [g for g in groups if g not in clash]
    apart = [g for g in rest if not _same_side(g)]
    kept = [g for g in rest if _same_side(g)]
    carve = "carved " if kind in ("folder", "csv") or any({it.part for it in g} == {"train"} for g in apart) else ""
    if apart:
        across = sum(len({it.part for it in g}) > 1 for g in apart)
        out.append(Finding("identical_files", "error", f"{len(apart)} group(s) of byte-identical files "
                           f"({sum(len(g) for g in apart)} files) can sit in two parts: {across} already do, the "
                           f"others have no shared patient key to keep them together in the {carve}split, so test "
                           "can hold training images", "delete the copies (keep one file per image), or give copies "
                           "one patient id (a CSV `patient` column)", len(apart),
                           [" = ".join(_show(it) for it in g) for g in apart]))
    if kept:
        out.append(Finding("identical_files_kept", "warning", f"{len(kept)} group(s) of byte-identical files "
                           f"({sum(len(g) for g in kept)} files) share a patient key and a part: the split keeps them "
                           "together, but each counts more than once in training and in scores",
                           "delete the extra copies unless the weighting is intended", len(kept),
                           [" = ".join(_show(it) for it in g) for g in kept]))
    return out


def _check_near(items, shas, hashes, max_bits) -> list:
    have = [i for i, h in enumerate(hashes) if h is not None]
    if len(have) < 2:
        return []
    pairs = near_pairs(np.stack([hashes[i] for i in have]), max_bits)
    near = [(items[have[a]], items[have[b]], bits) for a, b, bits in pairs if shas[have[a]] != shas[have[b]]]
    out = []
    clash = [(a, b, d) for a, b, d in near if a.label != b.label]
    apart = [(a, b, d) for a, b, d in near if a.label == b.label and not _same_side([a, b])]
    if clash:
        out.append(Finding("near_identical", "warning", f"{len(clash)} pair(s) of near-identical images (at most "
                           f"{max_bits} of 256 dHash bits apart, not byte-identical) carry different labels",
                           "look at each pair: a copy with the wrong label, or the same film read twice",
                           len(clash), [f"{_show(a)} ({a.label}) ~ {_show(b)} ({b.label}), {d} bits"
                                        for a, b, d in clash]))
    if apart:
        keyed = [(a, b) for a, b, _ in apart if a.patient is not None and b.patient is not None]
        keys = (f"{sum(a.patient != b.patient for a, b in keyed)} of them under two patient keys" if keyed
                else "no patient ids to tell")
        out.append(Finding("near_identical", "warning", f"{len(apart)} pair(s) of near-identical images (at most "
                           f"{max_bits} of 256 dHash bits apart: re-encoded or resized copies) can sit in two parts "
                           f"({keys})", "look at the pairs; delete copies of one film, "
                           "or give them one patient id so the split keeps them together", len(apart),
                           [f"{_show(a)} ~ {_show(b)}, {d} bits" for a, b, d in apart]))
    return out


def _check_labels(items) -> list:
    labels = [it.label for it in items]
    numeric = sorted({x for x in labels if _NUMERIC.match(x)})
    names = sorted({x for x in labels if not _NUMERIC.match(x)})
    if numeric and names:
        return [Finding("mixed_label_kinds", "error", f"labels mix numbers {numeric[:5]} with class names {names[:5]}: "
                        "medkit would read each as a class of its own", "write every label one way: all class names, "
                        "or all indices 0..K-1", sum(x in numeric for x in labels),
                        [_show(it) + f": {it.label!r}" for it in items if it.label in numeric])]
    return []


def _numbered(a: str, b: str) -> bool:
    """Return True for names that differ only in their digits (class1, class2): numbered classes, not typos."""
    return re.sub(r"\d", "", a) == re.sub(r"\d", "", b)


def _check_rare(items) -> list:
    counts = defaultdict(int)
    for it in items:
        counts[it.label] += 1
    top = max(counts.values())
    out = []
    for label, n in sorted(counts.items()):
        # a typo: named like a class with at least 5 times its images (PNEUMONA beside PNEUMONIA)
        bigger = [c for c in counts if counts[c] >= n / _TYPO_SHARE and c != label and not _numbered(c, label)]
        close = difflib.get_close_matches(label, bigger, n=1, cutoff=_TYPO_CUTOFF)
        where = [_show(it) for it in items if it.label == label]
        if close:
            out.append(Finding("label_typo", "error", f"class {label!r} has {n} image(s) against {counts[close[0]]} "
                               f"for {close[0]!r}: it looks like a misspelling of {close[0]!r}",
                               f"relabel them {close[0]!r} (or accept label_typo if {label!r} is a real class)", n,
                               where))
        elif len(counts) > 2 and n < RARE_RATIO * top:  # with two classes, a small one is an imbalance
            out.append(Finding("rare_class", "warning", f"class {label!r} has {n} image(s), under {RARE_RATIO:.0%} "
                               f"of the largest class ({top})", "check it is meant to be a class; scores for it "
                               "will be noisy", n, where))
    return out


def _check_parts(items, kind, multilabel: bool) -> list:
    out = []
    by_part = defaultdict(lambda: defaultdict(int))
    for it in items:
        by_part[it.part][it.label] += 1
    if "train" in by_part:
        for part in [p for p in by_part if p != "train"]:
            extra = sorted(set(by_part[part]) - set(by_part["train"]))
            if extra:
                out.append(Finding("class_not_in_train", "error", f"the {part} part has class(es) {extra} that train "
                                   f"lacks ({sum(by_part[part][c] for c in extra)} images): the model cannot predict "
                                   "them, and the loaders would leave them out", f"add training images for {extra}, or "
                                   f"move those images out of {part}", len(extra),
                                   [f"{part}/{c}: {by_part[part][c]} images" for c in extra]))
    pool = "all" if "all" in by_part else "train"
    carved = _carved(kind, set(by_part))
    if pool in by_part and carved and not multilabel:  # findings are carved by "any finding", not per label
        need = len(carved) + 1
        groups = defaultdict(set)
        for it in items:
            if it.part == pool:
                groups[it.label].add(it.patient or it.where)
        small = {c: len(g) for c, g in groups.items() if len(g) < need}
        if small:
            out.append(Finding("too_few_images", "error", f"class(es) {sorted(small)} have fewer than {need} images "
                               f"(or patients) in {pool}: carving {sorted(carved)} out of it needs at least one per "
                               "part and class", f"add images (at least {need} per class, better dozens), or bring "
                               "your own val/ and test/ folders", len(small),
                               [f"{c}: {n}" for c, n in sorted(small.items())]))
    return out


def _check_patients(items) -> list:
    parts = defaultdict(set)
    for it in items:
        if it.patient is not None:
            parts[it.patient].add(it.part)
    shared = sorted(p for p, s in parts.items() if len(s) > 1)
    if not shared:
        return []
    return [Finding("patients_across_parts", "warning", f"{len(shared)} patient key(s) appear in two or more of the "
                    "parts the source came with: their scores may be optimistic", "move each patient's images into "
                    "one part (or carve the parts by patient: give fit only train/)", len(shared),
                    [f"{p} in {sorted(parts[p])}" for p in shared])]


def _check_undecodable(items, hashes, near: bool) -> list:
    bad = [_show(it) for it, h in zip(items, hashes) if near and h is None
           and (it.path is None or it.path.suffix.lower() not in DICOM_EXTENSIONS)]
    if not bad:
        return []
    return [Finding("undecodable", "warning", f"{len(bad)} file(s) could not be decoded for the near-duplicate check",
                    "replace or remove them; the loaders skip (or refuse) them too", len(bad), bad)]


def audit_source(data, *, accept=(), near: bool = True, max_bits: int = NEAR_BITS, path_column: str = "path",
                 label_column: str = "label", multilabel: bool = False) -> Audit:
    """Audit a data source (what `load_source` reads) for faults a fit would train through; return the Audit.

    Args:
        data: a class-folder tree, a folder of split folders, a CSV or a MedMNIST .npz.
        accept: error codes to report as accepted warnings instead ("all": every error).
        near: also look for near-identical images (dHash); False hashes bytes only.
        max_bits: dHash bits (of 256) that still count as near-identical.
        multilabel: labels are `|`-separated findings: the class checks (typos, rare, kinds) are skipped.
    """
    start = time.perf_counter()
    data = Path(data)
    unknown = sorted(set(accept) - set(CODES) - {"all"})
    if unknown:
        raise DataError(f"unknown audit code(s) {unknown} to accept; the codes are {', '.join(CODES)} (or all).")
    items, arrays, kind = _list_source(data, path_column, label_column)
    if not items:
        raise DataError(f"{data} lists no images to audit.")
    root = data if data.is_dir() else data.parent
    for it in items:  # examples read relative to the source (the key keeps the full path)
        if it.path is not None and it.path.is_relative_to(root):
            it.where = str(it.path.relative_to(root))
    present = [it for it in items if it.path is None or it.path.is_file()]  # missing files: the loaders name them
    shas, hashes = _content(present, arrays, near)
    findings = _check_paths(present) + _check_identical(present, shas, kind)
    if near:
        findings += _check_near(present, shas, hashes, max_bits)
    if not multilabel:
        findings += _check_labels(present) + _check_rare(present)
    findings += _check_parts(present, kind, multilabel) + _check_patients(present) + _check_undecodable(present, hashes, near)
    for f in findings:
        f.examples = f.examples[:5]
        f.accepted = f.level == "error" and ("all" in accept or f.code in accept)
    stats = {"kind": kind, "items": len(items), "missing_files": len(items) - len(present),
             "parts": {p: sum(it.part == p for it in items) for p in dict.fromkeys(it.part for it in items)},
             "classes": sorted({x for it in items for x in (it.label.split("|") if multilabel else [it.label])}),
             "near_check": near, "near_bits": max_bits,
             "seconds": round(time.perf_counter() - start, 2)}
    return Audit(str(data), findings, stats)
