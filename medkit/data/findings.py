"""Multi-label findings: `|`-separated labels ("Effusion|Infiltration", "No Finding") as a multi-hot matrix.

Two readers share one parser:

- `nih_findings(folder)` reads a folder in the layout of the NIH ChestX-ray14 release joined per image
  (`images/*.png` + `metadata.csv` with image, findings, follow_up, patient_id, age, sex, view). Lesson 05
  uses it on the bundled subset (`nih_sample_dir()`: 1,000 images at 64 px, data_samples/nih_cxr14; the NIH
  release has no restriction on use, only attribution: see data_samples/README.md) or on a folder you build.
- `from_findings_csv(path)` reads a `medkit fit` CSV (path, label[, patient]) whose labels are findings.

To build such a folder from the official release (https://nihcc.app.box.com/v/ChestXray-NIHCC): take
`Data_Entry_2017_v2020.csv`, keep the images you want, and write `metadata.csv` with the columns
image = "Image Index", findings = "Finding Labels", follow_up = "Follow-up #", patient_id = "Patient ID",
age = "Patient Age", sex = "Patient Gender", view = "View Position"; put the PNGs (any size; medkit resizes)
into `images/`. Acknowledge the NIH Clinical Center and cite Wang et al., "ChestX-ray8", CVPR 2017.
"""

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..base.errors import DataError, UnknownNameError
from ..base.paths import check_dir
from .dataset import ImageDataset
from .decoded import load_images
from .medmnist import sample_path
from .pixels import DEFAULT_VALUE_RANGE

__all__ = ["NIH_FINDINGS", "NO_FINDING", "SEPARATOR", "NIH_COLUMNS", "NIH_SAMPLE", "Findings", "is_multilabel",
           "parse_findings", "nih_findings", "nih_sample_dir", "from_findings_csv"]

# the 14 labels of ChestX-ray14 (Wang et al. 2017), spelled as Data_Entry_2017 spells them
NIH_FINDINGS = ("Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Effusion", "Emphysema", "Fibrosis",
                "Hernia", "Infiltration", "Mass", "Nodule", "Pleural_Thickening", "Pneumonia", "Pneumothorax")
NO_FINDING = "No Finding"  # all zeros, never a column of its own
SEPARATOR = "|"
NIH_COLUMNS = ("image", "findings", "follow_up", "patient_id", "age", "sex", "view")
NIH_SAMPLE = "nih_cxr14"  # folder under data_samples/: made by make_nih_sample.py


def nih_sample_dir() -> Path:
    """Return the bundled NIH ChestX-ray14 subset (data_samples/nih_cxr14: metadata.csv + images/)."""
    return sample_path(NIH_SAMPLE)


@dataclass
class Findings:
    """Images with a multi-hot label matrix `Y` (N, K) over `names`, and per-image patient data when known."""

    images: np.ndarray  # (N, H, W) uint8 grey or (N, H, W, C)
    Y: np.ndarray  # (N, K) 0/1 int64; a row of zeros is "No Finding"
    names: list
    patients: np.ndarray | None = None  # patient id per image (str)
    meta: dict = field(default_factory=dict)  # age, sex, view, follow_up (arrays) and the source

    def __len__(self) -> int:
        return len(self.Y)

    def dataset(self, index=None, name: str = "") -> ImageDataset:
        """Return the images at `index` as an ImageDataset labelled 1 when any finding is present (for loaders)."""
        index = np.arange(len(self)) if index is None else np.asarray(index)
        groups = None if self.patients is None else self.patients[index]
        return ImageDataset(self.images[index], self.Y[index].any(1).astype(np.int64), ["no finding", "finding"],
                            groups, name)

    def subset(self, index) -> "Findings":
        """Return the images at `index` with their labels, patients and metadata."""
        index = np.asarray(index)
        meta = {k: v[index] if isinstance(v, np.ndarray) and len(v) == len(self) else v for k, v in self.meta.items()}
        return Findings(self.images[index], self.Y[index], list(self.names),
                        None if self.patients is None else self.patients[index], meta)

    def column(self, name: str) -> int:
        """Return the column of `Y` that holds finding `name`."""
        if name not in self.names:
            raise UnknownNameError(f"Unknown finding {name!r}; these data have {', '.join(self.names)}.")
        return self.names.index(name)

    def counts(self) -> dict:
        """Return {finding: number of images showing it}."""
        return {n: int(c) for n, c in zip(self.names, self.Y.sum(0))}


def _rows(where: list, limit: int = 5) -> str:
    shown = ", ".join(str(w) for w in where[:limit])
    return shown + (f" ... ({len(where)} in all)" if len(where) > limit else "")


def is_multilabel(raw) -> bool:
    """Return True when a label column holds findings: some label joins two with `|`.

    "No Finding" alone does not count: a two-class CSV may well name a class that way, and its meaning
    (one class per image) must not change behind the user's back; `--multi-label` says so explicitly.
    """
    return any(SEPARATOR in str(v) for v in raw)


def parse_findings(raw, names=None, where: str = "labels", first_line: int = 2, fix: str = "") -> tuple[np.ndarray, list]:
    """Return (multi-hot Y (N, K) int64, finding names) from `|`-separated label texts.

    Args:
        raw: one text per image: "Effusion|Mass", "Cardiomegaly" or "No Finding" (no findings).
        names: the findings to expect, in column order (a checkpoint's list, `--findings`); default: the
            sorted findings that occur. A finding outside `names` is refused, naming the lines.
        where: the file the texts came from, for messages; first_line: the line number of raw[0].
        fix: what to do about an unknown finding (appended to the message).
    """
    raw = [str(v).strip() for v in raw]
    empty = [f"line {i + first_line}" for i, v in enumerate(raw) if not v]
    if empty:
        raise DataError(f"{where}: empty findings on {_rows(empty)}. Every image needs its findings, or "
                        f"{NO_FINDING!r} when it has none.")
    split = [[f.strip() for f in v.split(SEPARATOR)] for v in raw]
    bad = [f"line {i + first_line}: {v!r}" for i, (v, fs) in enumerate(zip(raw, split))
           if any(not f for f in fs) or (NO_FINDING in fs and len(fs) > 1) or len(set(fs)) != len(fs)]
    if bad:
        raise DataError(f"{where}: malformed findings on {_rows(bad)}: an empty name between `|`s, a finding "
                        f"repeated, or {NO_FINDING!r} together with a finding. Write e.g. 'Effusion|Mass' or "
                        f"{NO_FINDING!r}.")
    seen = sorted({f for fs in split for f in fs if f != NO_FINDING})
    if names is None:
        names = seen
        if not names:
            raise DataError(f"{where}: every image is {NO_FINDING!r}; there is no finding to learn.")
    names = [str(n) for n in names]
    if len(set(names)) != len(names) or NO_FINDING in names:
        raise DataError(f"Finding names {names} repeat a name or list {NO_FINDING!r} (which means none of them).")
    index = {n: k for k, n in enumerate(names)}
    unknown = [f"line {i + first_line}: {f!r}" for i, fs in enumerate(split) for f in fs
               if f != NO_FINDING and f not in index]
    if unknown:
        by_case = {n.casefold(): n for n in names}
        near = sorted({f for fs in split for f in fs if f not in index and f.casefold() in by_case})
        hint = f" ({near[0]!r} differs from {by_case[near[0].casefold()]!r} only by case)" if near else ""
        raise DataError(f"{where}: finding(s) not among the known findings {names}: {_rows(unknown)}{hint}. "
                        + (fix or "Fix the spelling, or list every finding you use."))
    Y = np.zeros((len(raw), len(names)), dtype=np.int64)
    for i, fs in enumerate(split):
        for f in fs:
            if f != NO_FINDING:
                Y[i, index[f]] = 1
    return Y, names


def nih_findings(folder, *, image_size: int | None = None, names=NIH_FINDINGS, cache: bool = True) -> Findings:
    """Read a folder in the NIH ChestX-ray14 layout: images plus findings, patients, age, sex, view, follow-up.

    Args:
        folder: holds `metadata.csv` (columns image, findings, follow_up, patient_id, age, sex, view; one line
            per image, the official Data_Entry_2017 table joined per image: see this module's docstring) and
            `images/` with the files the `image` column names.
        image_size: resize every image to this side (default: as stored; they must then share one size).
        names: the findings, in column order (default the 14 of ChestX-ray14).
        cache: decode the images once into medkit's cache.
    """
    from .table import read_table

    folder = Path(folder) if folder is not None else None
    how = ("Point it at a folder with metadata.csv and images/ built from the NIH ChestX-ray14 release "
           "(see `medkit.data.findings`).")
    if folder is None:
        raise DataError(f"No NIH folder given. {how}")
    check_dir(folder, "NIH folder", hint=how)
    csv = folder / "metadata.csv"
    if not csv.is_file():
        raise DataError(f"{folder} has no metadata.csv. {how}")
    table = read_table(csv)
    missing = [c for c in NIH_COLUMNS if c not in table.columns]
    if missing:
        raise DataError(f"{csv} lacks column(s) {missing}; it has {list(table.columns)}. It needs {list(NIH_COLUMNS)} "
                        "(Data_Entry_2017's Image Index, Finding Labels, Follow-up #, Patient ID, Patient Age, "
                        "Patient Gender, View Position).")
    if table.empty:
        raise DataError(f"{csv} lists no images.")
    for column in ("image", "patient_id"):
        empty = (table.index[table[column] == ""] + 2).tolist()
        if empty:
            raise DataError(f"{csv}: empty {column} on line(s) {_rows(empty)}; every image needs one.")
    Y, names = parse_findings(table["findings"], names, where=str(csv),
                              fix="Use the 14 ChestX-ray14 labels as Data_Entry_2017 spells them, or pass names=.")
    files = [folder / "images" / name for name in table["image"]]
    absent = [f"line {i + 2}: {f.name}" for i, f in enumerate(files) if not f.is_file()]
    if absent:
        raise DataError(f"{csv} names {len(absent)} image(s) missing from {folder / 'images'}: {_rows(absent, 3)}.")
    images, kept, _ = load_images(files, image_size=image_size, channels=1, on_error="raise", source=str(csv),
                                  cache=cache)
    meta = {"source": str(folder)}
    for column, kind in (("age", float), ("follow_up", int)):
        try:
            meta[column] = table[column].astype(float).astype(kind).to_numpy()
        except ValueError as exc:
            raise DataError(f"{csv}: column {column!r} must be numeric ({exc}).") from None
    for column in ("sex", "view"):
        meta[column] = table[column].to_numpy(dtype=str)
    return Findings(images, Y[kept], names, table["patient_id"].to_numpy(dtype=str)[kept], meta)


def from_findings_csv(path, *, names=None, path_column: str = "path", label_column: str = "label",
                      group_column: str | None = "patient", image_size: int | None = None, channels: int | None = None,
                      cache: bool = True, fix: str = "", value_range=DEFAULT_VALUE_RANGE) -> Findings:
    """Read a CSV of image paths and `|`-separated findings (the multi-label form of `medkit fit --data x.csv`).

    Args:
        names: the findings expected (a checkpoint's list); default: those that occur, sorted.
        group_column: patient id column, used when present and filled on every line.
        fix: what to do about an unknown finding (appended to the message).
    """
    from .table import read_table

    path = Path(path)
    table = read_table(path)
    missing = [c for c in (path_column, label_column) if c not in table.columns]
    if missing:
        raise DataError(f"{path} has no column(s) {missing}; it has {list(table.columns)}.")
    if table.empty:
        raise DataError(f"{path} lists no images.")
    Y, names = parse_findings(table[label_column], names, where=str(path), fix=fix)
    files = [Path(p) if Path(p).is_absolute() else path.parent / p for p in table[path_column]]
    absent = [f"line {i + 2}: {f}" for i, f in enumerate(files) if not f.is_file()]
    if absent:
        raise DataError(f"{path} names {len(absent)} missing file(s): {_rows(absent, 3)}. Relative paths start at "
                        "the CSV's folder.")
    images, kept, _ = load_images(files, image_size=image_size, channels=channels, on_error="raise",
                                  source=str(path), cache=cache, value_range=value_range)
    patients = None
    if group_column in table.columns and (table[group_column] != "").all():
        patients = table[group_column].to_numpy(dtype=str)[kept]
    return Findings(images, Y[kept], names, patients, {"source": str(path)})
