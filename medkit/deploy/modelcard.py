"""Generate a model card (Markdown) from a training run: the records a 510(k) or MDR file asks for.

Sections follow Mitchell et al., "Model Cards for Model Reporting" (FAT* 2019), extended with
what regulators ask a medical device maker to keep: where the data came from (dataset, licence,
checksums), clinical performance with confidence intervals, performance per subgroup, known
limitations, and a post-market monitoring plan (FDA's "Good Machine Learning Practice" principles;
EU MDR Articles 83-86 on post-market surveillance). Introduced in lesson 06.

Validation is listed in two parts, each naming its data: internal (held-out parts of the source the model
was trained on) and external (other sources, e.g. a second hospital), and the card says plainly when no
external validation is recorded: a model can score 0.995 AUC on its own source's carve and 0.958 with
half the specificity at another site (issue 28). `ModelCard.from_checkpoint` reads a `medkit fit`
checkpoint's `validation` records (fit's val, and every `medkit evaluate --record`).

The file is a Hugging Face model card (`huggingface_hub.ModelCard`): the Markdown above under a YAML header
(`ModelCardData`) whose `model-index` lists every validation number with its data source and part, so the Hub,
`ModelCard.load` and other tools read the results without parsing the tables.
"""

import datetime as _dt
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from ..base.atomic import write_text
from ..base.cache import sha256sum
from ..base.errors import DataError
from ..base.paths import check_file
from ..core.checkpoint import checkpoint_config
from ..evaluation.evaluate import metrics_with_ci
from ..evaluation.fairness import subgroup_results

__all__ = ["DATASETS", "dataset_provenance", "validation_results", "subgroup_results", "ModelCard"]

# What medkit knows about the datasets it ships or fetches: licence and citation travel with the checksum.
DATASETS = {
    "pneumoniamnist_28_trainval.npz": {
        "dataset": "PneumoniaMNIST (MedMNIST v2), 28 x 28 px",
        "licence": "CC BY 4.0",
        "source": "https://zenodo.org/records/10519652 (MedMNIST v2), train and val splits",
        "citation": "Yang et al., MedMNIST v2, Scientific Data 10, 41 (2023); images from Kermany et al., "
                    "Cell 172(5) 2018 (Guangzhou Women and Children's Medical Center, paediatric chest X-rays)",
    },
    "chest_xray/train": {
        "dataset": "Kermany et al. paediatric chest X-rays, bundled subset: 1,303 images of 805 patients, 128 x 128 px grey",
        "licence": "CC BY 4.0",
        "source": "Mendeley Data doi:10.17632/rscbjbr9sj.2, official train split; whole patients drawn (data_samples/README.md)",
        "citation": "Kermany et al., Cell 172(5) 2018 (Guangzhou Women and Children's Medical Center, children aged 1-5)",
    },
}


def _published_sums(folder: Path) -> dict:
    """Read a `SHA256SUMS` file (lines "<sha256>  <file>") in `folder`, if there is one."""
    path = folder / "SHA256SUMS"
    if not path.is_file():
        return {}
    sums = {}
    for line in path.read_text().splitlines():
        parts = line.strip().split()
        if len(parts) >= 2 and len(parts[0]) == 64:
            sums[parts[-1].lstrip("*")] = parts[0].lower()
    return sums


def dataset_provenance(path, *, role: str = "training and validation", n_images: int | None = None) -> dict:
    """Return the provenance row of a data file or folder: dataset, licence, source, sha256, and whether it matches SHA256SUMS.

    A folder's sha256 is that of its manifest (one "sha256  relative/path" line per file, sorted), and it is verified
    when every file matches the `SHA256SUMS` beside the folder (data_samples/ lists each bundled file).
    """
    if Path(path).is_dir():
        return _folder_provenance(Path(path), role, n_images)
    path = check_file(path, "Data file", hint="The model card must name the data it was trained on.")
    known = DATASETS.get(path.name, {"dataset": path.stem, "licence": "unknown: state it before sharing",
                                     "source": "unknown", "citation": ""})
    digest = sha256sum(path)
    published = _published_sums(path.parent).get(path.name)
    return {**known, "file": path.name, "role": role, "n_images": n_images, "sha256": digest,
            "checksum_verified": None if published is None else published == digest}


def _folder_provenance(folder: Path, role: str, n_images: int | None) -> dict:
    """Return `dataset_provenance`'s row for a folder of files (the bundled Kermany subset, lessons 01-07)."""
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    if not files:
        raise DataError(f"Data folder {folder} holds no files. The model card must name the data it was trained on.")
    # the SHA256SUMS that lists this folder's files sits in it or above it (data_samples/SHA256SUMS)
    root = next((p for p in (folder, *folder.parents) if (p / "SHA256SUMS").is_file()), folder.parent)
    name = folder.relative_to(root).as_posix()
    digests = {p.relative_to(root).as_posix(): sha256sum(p) for p in files}
    manifest = "".join(f"{digest}  {file}\n" for file, digest in digests.items())
    published = _published_sums(root)
    known = DATASETS.get(name, {"dataset": name, "licence": "unknown: state it before sharing", "source": "unknown",
                                "citation": ""})
    verified = all(published.get(file) == digest for file, digest in digests.items()) if published else None
    return {**known, "file": f"{name}/ ({len(files)} files)", "role": role, "n_images": n_images,
            "sha256": hashlib.sha256(manifest.encode()).hexdigest(), "checksum_verified": verified}


def validation_results(labels, probs, threshold: float = 0.5, *, n_boot: int = 1000, seed: int = 0) -> dict:
    """Return AUC, sensitivity and specificity with 95% stratified bootstrap intervals (`medkit.evaluation`)."""
    return metrics_with_ci(labels, probs, threshold, n_boot=n_boot, seed=seed)


def _cell(value) -> str:
    if value is None:
        return "n/a"
    if hasattr(value, "low"):  # an Interval
        return f"{value.estimate:.3f} ({value.low:.3f} to {value.high:.3f})"
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, tuple) and len(value) == 3:  # (estimate, low, high) of a validation record
        return f"{value[0]:.3f} ({value[1]:.3f} to {value[2]:.3f})"
    return str(value).replace("|", "\\|")  # a bare | would split the Markdown table cell


def _table(rows: list[dict], columns: list[tuple[str, str]]) -> str:
    head = "| " + " | ".join(title for _, title in columns) + " |"
    rule = "|" + "|".join("---" for _ in columns) + "|"
    body = ["| " + " | ".join(_cell(row.get(key)) for key, _ in columns) + " |" for row in rows]
    return "\n".join([head, rule, *body])


_RECORD_METRICS = ("auc", "acc", "sensitivity", "specificity")
# medkit metric -> the metric id the Hub uses in a model-index (evaluate's names where one exists)
_HUB_METRICS = {"auc": "roc_auc", "acc": "accuracy"}
NO_EXTERNAL = ("**No external validation is recorded.** Every number on this card comes from the source the model "
               "was trained on (held-out parts of it, never trained on, but from the same site and collection). "
               "Performance at another hospital, scanner or population is unknown until it is measured there: "
               "`medkit evaluate --checkpoint DIR --data OTHER_SITE --internal-too --record`.")


def _record_row(entry: dict) -> dict:
    """Return one validation record (config.json `validation`) as a table row, each metric with its interval."""
    ci = entry.get("ci95") or {}
    row = {"data": entry.get("data"), "part": entry.get("part"), "n": entry.get("n"), "patients": entry.get("patients"),
           "threshold": entry.get("threshold"), "date": (entry.get("date") or "")[:10],
           "fingerprint": (entry.get("fingerprint") or "")[:16] or None}
    for key in _RECORD_METRICS:
        if entry.get(key) is not None:
            row[key] = (entry[key], *ci[key]) if key in ci else entry[key]
    if entry.get("threshold_chosen_on_this_part"):
        row["part"] = f"{entry.get('part')} (threshold chosen here)"
    return row


def _records_section(records: list, role: str) -> list[str]:
    rows = [_record_row(r) for r in records if r.get("role") == role]
    if not rows:
        return []
    metrics = [(k, k) for k in _RECORD_METRICS if any(k in row for row in rows)]
    return [_table(rows, [("data", "data source"), ("part", "part"), ("n", "images"), ("patients", "patients"),
                          *metrics, ("threshold", "threshold"), ("fingerprint", "data fingerprint"),
                          ("date", "date")]), ""]


def _comparisons_section(comparisons: list) -> list[str]:
    """Return the retraining-gate section: each decision, against which model, with its numbers per data part."""
    if not comparisons:
        return []
    out = ["## Retraining gate (`medkit compare`)", ""]
    for c in comparisons:
        current = c.get("current") or {}
        out += [f"**{c.get('decision')}** on {(c.get('date') or '')[:10]}: this model (candidate) against "
                f"{current.get('checkpoint')} (weights sha256 {(current.get('weights_sha256') or '')[:16]}). "
                f"Rule: {c.get('rule')}. Paired patient bootstrap, {c.get('n_boot')} replicates.", ""]
        rows = [{**p, "difference": (p["difference"], *p["ci95"]), "p": p.get("p_difference"),
                 "p_ni": p.get("p_noninferior")} for p in c.get("parts", [])]
        out += [_table(rows, [("kind", "part"), ("data", "data"), ("n", "images"), ("patients", "patients"),
                              ("auc_current", "AUC current"), ("auc_candidate", "AUC candidate"),
                              ("difference", "difference (95% CI)"), ("p", "p (difference 0)"),
                              ("p_ni", "p (non-inferiority)"), ("margin", "margin"), ("verdict", "verdict")]), ""]
    return out


def _source_rows(config: dict) -> list[dict]:
    """Return a provenance row per data source a checkpoint was trained or validated on (from its config)."""
    trained = config.get("data") if isinstance(config.get("data"), dict) else {}
    rows, seen = [], set()
    n_train = sum(r.get("images", 0) for r in (config.get("splits") or {}).get("report", []))
    for path, role, fingerprint, n in [(trained.get("path"), "training and internal validation",
                                        trained.get("fingerprint"), n_train or None),
                                       *((r.get("data"), "external validation", r.get("fingerprint"), r.get("n"))
                                         for r in config.get("validation", []) if r.get("role") == "external")]:
        if not path or path in seen:
            continue
        seen.add(path)
        known = DATASETS.get(Path(path).name, {"dataset": Path(path).name, "licence": "unknown: state it before "
                                                                                     "sharing", "source": "unknown"})
        rows.append({**known, "file": path, "role": role, "n_images": n, "fingerprint": fingerprint})
    return rows


@dataclass
class ModelCard:
    """Everything a model card says; `to_markdown()` renders it, `hub_card()` adds the metadata, `save(path)` writes it."""

    name: str
    model: dict  # backbone, weights, classes, sizes, threshold, ONNX file and its sha256...
    data: list  # provenance rows from `dataset_provenance`
    validation: dict  # metric -> Interval, from `validation_results`: the internal held-out result
    validation_set: str  # which images, how many, how they were chosen
    intended_use: str
    records: list = field(default_factory=list)  # a checkpoint's `validation` records: internal and external
    comparisons: list = field(default_factory=list)  # retraining-gate decisions (`medkit compare --record`)
    out_of_scope: list = field(default_factory=list)
    subgroups: list = field(default_factory=list)  # rows from `subgroup_results`
    subgroup_note: str = ""  # what the subgroups are (and whether they are simulated)
    limitations: list = field(default_factory=list)
    monitoring: dict = field(default_factory=dict)  # the drift monitor's settings and measured rates
    monitoring_actions: list = field(default_factory=list)
    training: dict = field(default_factory=dict)  # epochs, learning rate, seed, profile...
    created: str = field(default_factory=lambda: _dt.date.today().isoformat())

    def hub_card(self):
        """Return the card as a `huggingface_hub.ModelCard`: the Markdown body under its YAML metadata."""
        from huggingface_hub import ModelCard as HubCard

        return HubCard(f"---\n{self._hub_data().to_yaml()}\n---\n\n{self.to_markdown()}")

    def _hub_data(self):
        """Return the card's `ModelCardData`: library, tags and one `EvalResult` per validation number."""
        from huggingface_hub import EvalResult, ModelCardData

        def result(metric, value, dataset, split, low=None, high=None):
            interval = "" if low is None else f" (95% CI {low:.3f} to {high:.3f})"
            return EvalResult(task_type="image-classification", dataset_type="medkit", dataset_name=str(dataset),
                              dataset_split=split, metric_type=_HUB_METRICS.get(metric, metric),
                              metric_value=float(value), metric_name=f"{metric}{interval}")

        results = [result(k, v.estimate, self.validation_set or "internal validation", "internal", v.low, v.high)
                   for k, v in self.validation.items()]
        for entry in self.records:
            ci = entry.get("ci95") or {}
            results += [result(k, entry[k], entry.get("data"), f"{entry.get('role')} {entry.get('part')}", *ci.get(k, ()))
                        for k in _RECORD_METRICS if entry.get(k) is not None]
        return ModelCardData(model_name=self.name, library_name="medkit", tags=["medical-imaging", "medkit"],
                             eval_results=results or None)

    def to_markdown(self) -> str:
        """Return the model card as Markdown (the sections, from the title to the monitoring plan; no header)."""
        from .. import __version__

        if not self.validation and not self.records:
            raise DataError("A model card needs validation results; compute them with validation_results(), or "
                            "build the card from a checkpoint's records (ModelCard.from_checkpoint).")
        out = [f"# Model card: {self.name}", "",
               f"Generated on {self.created} by medkit {__version__} from the training run. "
               "Numbers below were measured, not typed.", "",
               "## Model details", "", _table([{"k": k, "v": v} for k, v in self.model.items()],
                                               [("k", "field"), ("v", "value")]), ""]
        if self.training:
            out += ["Training: " + ", ".join(f"{k} = {_cell(v)}" for k, v in self.training.items()) + ".", ""]
        out += ["## Intended use", "", self.intended_use, ""]
        if self.out_of_scope:
            out += ["Out of scope:", "", *[f"- {item}" for item in self.out_of_scope], ""]
        optional = [(key, title) for key, title in (("sha256", "sha256"), ("checksum_verified", "matches SHA256SUMS"),
                                                    ("fingerprint", "data fingerprint (images + labels)"))
                    if any(key in row for row in self.data)]
        out += ["## Data provenance", "",
                _table(self.data, [("dataset", "dataset"), ("role", "role"), ("file", "file"), ("n_images", "images"),
                                   ("licence", "licence"), *optional]), ""]
        out += [f"Source: {row['source']}. Cite: {row['citation']}." for row in self.data if row.get("citation")]
        out += ["", "## Validation results", "", "### Internal validation (the source it was trained on)", ""]
        if self.validation:
            level = next(iter(self.validation.values())).level
            out += [self.validation_set, "",
                    _table([{"metric": k, "value": v} for k, v in self.validation.items()],
                           [("metric", "metric"), ("value", f"estimate ({level:.0%} bootstrap CI)")]), ""]
        out += _records_section(self.records, "internal")
        out += ["### External validation (other sources)", ""]
        out += _records_section(self.records, "external") or [NO_EXTERNAL, ""]
        out += _comparisons_section(self.comparisons)
        if self.subgroups:
            metrics = [k for k in self.validation if any(k in row for row in self.subgroups)]
            out += ["## Subgroup results", "", self.subgroup_note, "",
                    _table(self.subgroups, [("group", "subgroup"), ("n", "n"), ("prevalence", "prevalence"),
                                            *[(m, m) for m in metrics]]), ""]
        if self.limitations:
            out += ["## Limitations", "", *[f"- {item}" for item in self.limitations], ""]
        if self.monitoring or self.monitoring_actions:
            out += ["## Post-market monitoring plan", ""]
            out += [f"- {k}: {_cell(v)}" for k, v in self.monitoring.items()]
            out += [f"- {item}" for item in self.monitoring_actions]
            out += [""]
        return "\n".join(out)

    @classmethod
    def from_checkpoint(cls, ckpt_dir, *, intended_use: str, name: str | None = None, **fields) -> "ModelCard":
        """Return the card of a `medkit fit` checkpoint: model, training, data sources and validation records.

        Args:
            intended_use: what the model is for (the one thing a checkpoint cannot say about itself).
            fields: any other `ModelCard` field (limitations, monitoring...), which wins over what is read.
        """
        config = checkpoint_config(ckpt_dir)
        recipe = config.extra.get("recipe") or {}
        model = {"backbone": config.backbone, "weights": config.weights or "random init",
                 "classes": ", ".join(map(str, config.classes)), "image size": config.image_size,
                 "decision threshold": config.threshold, "checkpoint": str(Path(ckpt_dir).resolve()),
                 "weights sha256": config.weights_sha256}
        training = {k: recipe[k] for k in ("epochs", "freeze", "lr", "batch_size", "augment", "seed") if k in recipe}
        defaults = {"name": name or f"{config.backbone} {' / '.join(map(str, config.classes))}",
                    "model": model, "training": training, "data": _source_rows(config.to_dict()), "validation": {},
                    "validation_set": "", "records": list(config.validation),
                    "comparisons": list(config.extra.get("comparisons") or []),
                    "intended_use": intended_use}
        return cls(**{**defaults, **fields})

    def save(self, path) -> Path:
        """Write the model card (`to_markdown()` under its Hugging Face metadata header) to `path` and return it."""
        return write_text(path, str(self.hub_card()))  # atomic, unlike huggingface_hub's ModelCard.save
