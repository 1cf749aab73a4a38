"""One `--data` for every source: a MedMNIST .npz, a CSV, a class-folder tree, or a folder of split folders.

    chest_xray/train/{NORMAL,PNEUMONIA}/*.jpeg          a class-folder tree (carve val and test from it)
    chest_xray/{train,val,test}/{NORMAL,PNEUMONIA}/...  split folders (used as they are; missing ones carved)
    labels.csv                                           path,label[,patient][,site]
    pneumoniamnist.npz                                   MedMNIST {split}_images / {split}_labels

`load_source` returns every part as an ImageDataset and a report of what each part holds and where it
came from. Carved parts are patient-disjoint when every image has a patient key (Kermany file names, a
`patient` column) and stratified by label as far as whole patients allow; without patient ids they are
stratified by image, and the report says so.
"""

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..base.errors import DataError
from ..base.paths import check_file
from .contrast import check_contrast, with_contrast
from .dataset import ImageDataset
from .folder import from_folder, is_hidden
from .images import _to_channels, check_on_error, resize_image
from .medmnist import HELD_OUT_SEED, HELD_OUT_SIZE, available_splits, load_npz
from .pixels import DEFAULT_VALUE_RANGE
from .splits import TEST_SIZE, VAL_SIZE, carve_index, check_no_leakage
from .table import from_csv

__all__ = ["Source", "load_source", "SPLIT_FOLDERS", "GROUP_BY"]

# folder names accepted for each split (case-insensitive), as downloads name them
SPLIT_FOLDERS = {"train": ("train", "training"), "val": ("val", "valid", "validation"), "test": ("test", "testing")}
GROUP_BY = ("auto", "patient", "none")  # or a CSV column name


@dataclass
class Source:
    """The parts of a data source, their classes, how they are grouped, and where each part came from."""

    splits: dict  # part name ("train", "val", "test", or "all") -> ImageDataset
    classes: list
    group_kind: str | None  # "patient", a CSV column name, or None (image-level)
    report: list = field(default_factory=list)  # one dict per part: part, images, groups, classes, origin
    origin: dict = field(default_factory=dict)  # part -> where it came from
    notes: list = field(default_factory=list)  # conversions and caveats, said once

    def format_report(self) -> str:
        """Return the split report as a text table, then the notes."""
        group_head = "patients" if self.group_kind == "patient" else (self.group_kind or "groups")
        lines = [f"{'part':<7}{'images':>8}{group_head:>10}  {'per class':<32}origin"]
        for row in self.report:
            counts = ", ".join(f"{k} {v}" for k, v in row["classes"].items())
            groups = "-" if row["groups"] is None else str(row["groups"])
            lines.append(f"{row['part']:<7}{row['images']:>8}{groups:>10}  {counts:<32}{row['origin']}")
        return "\n".join(lines + [f"note: {n}" for n in self.notes])


def _kind(data: Path) -> str:
    if not data.is_dir():  # a file, or nothing usable: say which
        check_file(data, "Data source", hint="Pass a class-folder tree, a folder with train/ and test/ subfolders, "
                   "a CSV (path,label[,patient][,site]) or a MedMNIST .npz file.")
    if data.is_dir():
        return "splits" if _split_folders(data) else "folder"
    if data.suffix.lower() in (".npz", ".csv"):
        return data.suffix.lower()[1:]
    raise DataError(f"{data} is neither a folder, a .csv nor a .npz file; medkit cannot tell how to read it.")


def _split_folders(data: Path) -> dict:
    """Return {split: folder} for the split subfolders of `data` (empty when it is a class-folder tree)."""
    found = {}
    for sub in sorted(p for p in data.iterdir() if p.is_dir() and not is_hidden(p, data)):
        for split, names in SPLIT_FOLDERS.items():
            if sub.name.lower() in names:
                if split in found:
                    raise DataError(f"{data} has two {split} folders ({found[split].name}, {sub.name}); keep one.")
                found[split] = sub
    others = [p.name for p in data.iterdir() if p.is_dir() and not is_hidden(p, data)
              and not any(p.name.lower() in names for names in SPLIT_FOLDERS.values())]
    if found and others:
        raise DataError(f"{data} mixes split folders ({sorted(p.name for p in found.values())}) with other folders "
                        f"{others}. Use either train/val/test folders or class folders, not both.")
    return found


def _load_parts(data, kind, group_by, **load) -> tuple[dict, dict]:
    """Return ({part: dataset}, {part: origin}) of what the source holds, uncarved."""
    if kind == "npz":
        if group_by not in ("auto", "none"):
            raise DataError(f"{data}: a MedMNIST .npz file holds no patient ids, so group_by={group_by!r} cannot "
                            "work. Use group_by='auto' (image-level) or a folder/CSV with patient ids.")
        parts = {s: load_npz(data, s, load.get("classes"), value_range=load["value_range"]) for s in SPLIT_FOLDERS if s in available_splits(data)}
        if not parts:
            raise DataError(f"{data} holds no split with both `_images` and `_labels` arrays.")
        for extra in ("image_size", "channels"):
            if load.get(extra) is not None:
                parts = {s: _convert(ds, **{extra: load[extra]}) for s, ds in parts.items()}
        return parts, {s: f"{s} split of {data.name}" for s in parts}
    if kind == "csv":
        column = None if group_by in GROUP_BY else group_by
        column = "patient" if group_by == "patient" else column
        return {"all": from_csv(data, group_column=column, **load)}, {"all": data.name}
    if kind == "folder":
        return {"all": from_folder(data, **load)}, {"all": f"{data.name}/ class folders"}
    folders = _split_folders(data)
    parts = {}
    for split in [s for s in SPLIT_FOLDERS if s in folders]:  # train first: its classes name the others'
        classes = load.pop("classes", None) or (next(iter(parts.values())).classes if parts else None)
        parts[split] = from_folder(folders[split], classes=classes, **load)
    return parts, {split: f"{folders[split].name}/ folder" for split in parts}


def _convert(ds, image_size=None, channels=None):
    images = ds.images
    if channels is not None:
        images = np.stack([_to_channels(a, channels) for a in images])
    if image_size is not None:
        images = np.stack([resize_image(a, int(image_size)) for a in images])
    return ImageDataset(images, ds.labels, ds.classes, ds.groups, ds.name, ds.meta)


def _apply_grouping(parts, group_by, data, notes) -> str | None:
    """Keep, require or drop each part's groups as `group_by` says; return the group kind."""
    kinds = {ds.meta.get("group_kind") if ds.groups is not None else None for ds in parts.values()}
    kind = kinds.pop() if len(kinds) == 1 else None
    if group_by == "none" or kind is None:
        if group_by == "patient" or (group_by not in GROUP_BY and kind is None):
            wanted = "patient ids" if group_by == "patient" else f"a complete {group_by!r} column"
            raise DataError(f"{data}: group_by={group_by!r} needs {wanted} for every image, and some part has none. "
                            "Folders get patient keys from Kermany-style file names (personN_..., IM-NNNN-...); a CSV "
                            "needs a `patient` column with an id on every line. Or pass group_by='none'.")
        for ds in parts.values():
            ds.groups = None
        if group_by == "auto":
            notes.append("images are not grouped by patient (no patient id for every image): carved splits are "
                         "stratified by image, so one patient's images can sit on both sides and inflate test scores")
        return None
    if group_by == "patient" and kind != "patient":
        raise DataError(f"{data}: group_by='patient' but the images are grouped by {kind!r}, not by patient. "
                        "Pass group_by='auto' or name the column.")
    return kind


def _carve_missing(parts, origin, grouped, kind, val_size, test_size, seed, npz) -> None:
    """Carve test then val out of train (or out of "all") where the source lacks them, in place."""
    if "train" not in parts:
        if "all" not in parts:
            raise DataError(f"No train part to carve from among {sorted(parts)}; add a train/ folder or pass "
                            "carve=False to use the parts as they are.")
        parts["train"] = parts.pop("all")
        origin["train"] = origin.pop("all")
    how = f"{'patient-grouped' if kind == 'patient' else f'grouped by {kind}' if grouped else 'stratified by image'}"
    pool = 1.0
    for part, size, part_seed in (("test", test_size, seed), ("val", val_size, seed + 1)):
        if part in parts:
            continue
        train = parts["train"]
        cap = HELD_OUT_SIZE if npz and part == "test" else None
        keep, out = carve_index(train.labels, size / pool, part_seed, train.groups if grouped else None, cap)
        parts[part] = train.subset(out, f"{train.name}:{part}")
        parts["train"] = train.subset(keep, train.name)
        origin[part] = f"carved from train, {how}, seed {part_seed}"
        origin["train"] += f" minus {part}"
        pool -= size


def _note_shared_groups(parts, notes) -> None:
    names = [p for p, ds in parts.items() if ds.groups is not None]
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            shared = set(parts[a].groups.tolist()) & set(parts[b].groups.tolist())
            if shared:
                notes.append(f"{len(shared)} patient(s) appear in both the {a} and {b} parts the source came with, "
                             f"e.g. {sorted(shared)[:3]}; their scores may be optimistic")


def _report(parts, origin) -> list:
    order = [p for p in ("train", "val", "test", "all") if p in parts]
    return [{"part": p, "images": len(parts[p]),
             "groups": None if parts[p].groups is None else int(len(np.unique(parts[p].groups))),
             "classes": parts[p].class_counts(), "origin": origin[p]} for p in order]


def load_source(data, *, image_size: int | None = None, channels: int | None = None, group_by: str = "auto",
                carve: bool = True, val_size: float = VAL_SIZE, test_size: float = TEST_SIZE, seed: int = HELD_OUT_SEED,
                on_error: str = "skip", cache: bool = True, classes=None, log=None,
                value_range=DEFAULT_VALUE_RANGE, contrast: str = "none") -> Source:
    """Load a data source into its parts, carving the missing ones (group-disjoint, stratified).

    Args:
        data: a MedMNIST .npz, a CSV (path,label[,patient][,site]), a class-folder tree, or a folder with
            split subfolders (train/, val|valid|validation/, test/, each a class-folder tree).
        image_size, channels: convert every image (see `stack_images`).
        group_by: "auto" (patient ids when every image has one, else image-level, said in the report),
            "patient" (required), "none", or a CSV column name.
        carve: False returns only the parts that exist (a flat folder or CSV is one part, "all"): what
            `medkit evaluate` scores. True carves the missing test and val parts out of train.
        val_size, test_size: fractions of the images to carve (approximate when groups are kept whole).
        seed: the carve's seed; the default `HELD_OUT_SEED` keeps the test part fixed. Val uses seed + 1.
        on_error: "skip" unreadable images (counted and named in the notes) or "raise".
        cache: decode image files once into medkit's cache (`decoded.load_images`).
        classes: class names in label order (default: the folder names, the CSV's labels, the npz's indices).
        log: a callable that receives the split report (e.g. print).
        value_range: (low, high) that float images were saved in (default 0-1); values outside are refused.
        contrast: the contrast step every image goes through after the resize (`medkit.data.contrast`; a
            checkpoint's own, so fit, evaluate and adapt see the same pixels).
    """
    check_on_error(on_error)
    check_contrast(contrast)
    if not isinstance(group_by, str) or not group_by:
        raise DataError(f"group_by must be one of {GROUP_BY} or a CSV column name, got {group_by!r}.")
    data = Path(data)
    kind = _kind(data)
    if group_by not in GROUP_BY and kind != "csv":
        raise DataError(f"group_by={group_by!r} names a CSV column, but {data} is not a CSV. Use one of {GROUP_BY}.")
    load = {"image_size": image_size, "channels": channels, "classes": classes, "value_range": value_range}
    if kind != "npz":
        load.update(on_error=on_error, cache=cache)
    parts, origin = _load_parts(data, kind, group_by, **load)
    notes = [n for ds in parts.values() for n in ds.meta.get("notes", [])]
    if kind == "npz":
        notes.append(f"{data.name} holds no patient ids: splits are by image, not by patient")
    group_kind = _apply_grouping(parts, "none" if kind == "npz" else group_by, data, notes if kind != "npz" else [])
    classes = list(next(iter(parts.values())).classes)
    _note_shared_groups(parts, notes)  # the source's own parts: reported, not refused
    if carve:
        given = set(parts)
        _carve_missing(parts, origin, group_kind is not None, group_kind, val_size, test_size, seed, kind == "npz")
        carved = [p for p in parts if p not in given]
        if group_kind is not None and carved:
            check_no_leakage(**{p: parts[p].groups for p in ["train", *carved]})
    for name, ds in parts.items():
        ds.meta = {**ds.meta, "origin": origin[name], "group_kind": group_kind}
        parts[name] = with_contrast(ds, contrast)
    source = Source(parts, classes, group_kind, _report(parts, origin), origin, notes)
    if log is not None:
        log(source.format_report())
    return source
