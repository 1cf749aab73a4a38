"""`medkit fit` / `medkit evaluate` on multi-label findings: a CSV whose label column holds `|`-separated findings.

    path,label,patient
    images/a.png,Effusion|Infiltration,p001
    images/b.png,No Finding,p002

One sigmoid output per finding, trained with binary cross-entropy ("No Finding" is all zeros). The checkpoint
stores the finding names (`findings`), a threshold per finding chosen on val (Youden), and `task: multilabel`;
`medkit evaluate` refuses a CSV with a finding the checkpoint does not know. Scores: per-finding AUC with a
stratified bootstrap 95% interval and the macro AUC over the findings that have both positives and negatives in
the scored part; the others are reported as skipped, with the reason. Test and val parts are carved from the
CSV as `medkit fit` carves any source (test 20%, val 10%, seed `HELD_OUT_SEED`), by patient when every line
has one. `medkit.fit.fit_recipe` and `evaluate_checkpoint` hand multi-label data and checkpoints here.
"""

import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..base.errors import ConfigError, DataError
from ..core.checkpoint import CheckpointConfig, load_checkpoint, read_config, save_checkpoint
from ..core.freeze import fit_stages, schedule
from ..core.train import logits_of, pick_device, seed_everything
from ..data import HELD_OUT_SEED, BatchLoader
from ..data.contrast import contrast_of, equalize_contrast
from ..data.findings import from_findings_csv, is_multilabel
from ..data.splits import TEST_SIZE, VAL_SIZE, carve_index, check_no_leakage
from ..data.table import read_table
from ..deploy.gate import GATE_FILE
from ..evaluation.evaluate import choose_threshold
from ..methods.nih import finding_aucs
from ..models import get_backbone, get_spec
from .audit import audit_before_fit
from .config import (
    METRICS_FILE,
    cache_cut,
    cached_loaders,
    can_cut,
    check_out_dir,
    data_fingerprint,
    image_loaders,
)
from .recipe import RecipeConfig
from .validation import role_of, validation_entry

__all__ = ["TASK", "wants_multilabel", "is_multilabel_checkpoint", "check_task_matches", "carve_findings", "predict_sigmoid",
           "score_findings", "fit_multilabel", "evaluate_multilabel", "fit_summary"]

TASK = "multilabel"


def wants_multilabel(data, multi_label: bool | None = None, label_column: str = "label") -> bool:
    """Return True when `data` should be trained as multi-label: `multi_label`, else a CSV whose labels use `|`.

    Auto-detection (multi_label=None) needs a CSV whose label column holds a `|` somewhere; a CSV of single
    names ("No Finding" included) stays one class per image unless multi_label=True.
    """
    path = Path(data)
    is_csv = path.suffix.lower() == ".csv" and path.is_file()
    if multi_label:
        if not is_csv:
            raise ConfigError(f"--multi-label needs a CSV (path,label[,patient]) with `|`-separated findings; "
                              f"{data} is not one.")
        return True
    if multi_label is False or not is_csv:
        return False
    table = read_table(path)
    return label_column in table.columns and is_multilabel(table[label_column])


def is_multilabel_checkpoint(config: dict) -> bool:
    """Return True for a checkpoint written by `fit_multilabel`."""
    return config.get("task") == TASK


def check_task_matches(ckpt_dir, data) -> bool:
    """Return True for a multi-label checkpoint; refuse findings data for a one-class-per-image checkpoint."""
    config = read_config(ckpt_dir)
    if is_multilabel_checkpoint(config):
        return True
    if wants_multilabel(data):
        raise DataError(f"{data} holds `|`-separated findings, but {ckpt_dir} predicts one class per image "
                        f"({config['classes']}). Train a multi-label checkpoint on it: medkit fit --data {data}.")
    return False


def carve_findings(findings, group_by: str = "auto", seed: int = HELD_OUT_SEED) -> tuple[dict, str]:
    """Return ({"train", "val", "test"} index arrays, how they were carved): by patient when every image has one."""
    if group_by not in ("auto", "patient", "none"):
        raise ConfigError(f"group_by={group_by!r}: a multi-label CSV is grouped by its `patient` column "
                          "(auto or patient) or not at all (none).")
    grouped = findings.patients is not None and group_by != "none"
    if group_by == "patient" and findings.patients is None:
        raise DataError(f"{findings.meta.get('source')}: group_by='patient' needs a `patient` column with an id on "
                        "every line. Add one, or pass group_by='none'.")
    any_finding = findings.Y.any(1).astype(int)
    index = np.arange(len(findings))
    parts = {}
    for part, size, part_seed in (("test", TEST_SIZE, seed), ("val", VAL_SIZE / (1 - TEST_SIZE), seed + 1)):
        groups = findings.patients[index] if grouped else None
        keep, out = carve_index(any_finding[index], size, part_seed, groups)  # load_source's rule and sizes
        parts[part], index = np.sort(index[out]), np.sort(index[keep])
    parts["train"] = index
    if grouped:
        check_no_leakage(**{k: findings.patients[v] for k, v in parts.items()})
    how = "patient-grouped" if grouped else "stratified by image (no patient id on every line)"
    return {k: parts[k] for k in ("train", "val", "test")}, f"carved {how}, seed {seed} (test) and {seed + 1} (val)"


class _Targets:
    """Wrap a batch loader so its labels are the float multi-hot rows of `Y` (what BCE needs)."""

    def __init__(self, loader, Y):
        loader.labels = torch.as_tensor(np.asarray(Y), dtype=torch.float32)  # both loaders index `labels` per batch
        self.loader = loader

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        return iter(self.loader)


@torch.inference_mode()
def predict_sigmoid(model: nn.Module, loader, device: str = "cpu") -> np.ndarray:
    """Return P(finding) per image and finding, (N, K): a sigmoid per output, not a softmax across them."""
    model.eval().to(device)
    return torch.cat([torch.sigmoid(logits_of(model(x.to(device))).float()).cpu() for x, _ in loader]).numpy()


def score_findings(Y, P, names, *, n_boot: int = 1000, seed: int = 0) -> dict:
    """Return `finding_aucs` as JSON: per-finding AUC (95% interval where 2+ positives and negatives), macro AUC.

    Every finding with a positive and a negative in the part is scored; the others are skipped and named with
    the reason.
    """
    scores = finding_aucs(Y, P, names, min_positives=1, n_boot=n_boot, seed=seed)
    per = {row.finding: {"auc": float(row.auc), "positives": int(row.positives),
                         "ci95": None if np.isnan(row.low) else [round(float(row.low), 6), round(float(row.high), 6)]}
           for row in scores["table"].itertuples()}
    macro = float(np.mean([r["auc"] for r in per.values()])) if per else None
    return {"macro_auc": macro, "auc": macro, "findings": per, "skipped": scores["skipped"], "n": int(len(Y))}


def _thresholds(Y, P, names, rule) -> dict:
    return {name: choose_threshold(Y[:, k], P[:, k], rule) if 0 < Y[:, k].sum() < len(Y) else 0.5
            for k, name in enumerate(names)}


def fit_multilabel(data, out_dir, cfg=None, *, findings=None, progress: bool = True, log=print,
                   overwrite: bool = False, audit: bool = True, accept_audit=()) -> dict:
    """Train the recipe with one sigmoid output per finding on a multi-label CSV; write checkpoint + metrics.json.

    Args:
        data: a CSV (path, label[, patient]) whose labels are `|`-separated findings or "No Finding".
        findings: the finding names, in output order (default: those in the CSV, sorted); a finding in the
            CSV outside this list is refused.
        out_dir, cfg, progress, log, overwrite, audit, accept_audit: as in `medkit.fit.fit_recipe`.
    """
    cfg = (cfg or RecipeConfig()).check()
    if cfg.loss != "ce":
        raise ConfigError(f"--loss {cfg.loss} is for one class per image; multi-label findings train with binary "
                          "cross-entropy per finding. Leave --loss at its default.")
    start = time.perf_counter()
    check_out_dir(out_dir, overwrite)
    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    device = pick_device(cfg.device)
    spec = get_spec(cfg.backbone)
    stages = schedule(cfg.freeze, cfg.epochs, cfg.lr, cfg.head_lr, n_groups=len(spec.groups))
    pre = spec.preprocess(cfg.image_size)
    audit_record = audit_before_fit(data, audit, accept_audit, log, multilabel=True)
    table = from_findings_csv(data, names=findings, image_size=cfg.image_size, value_range=tuple(cfg.value_range),
                              fix="Add it to --findings, or correct the CSV.")
    table.images = equalize_contrast(table.images, cfg.contrast)
    names = table.names
    parts, how = carve_findings(table, cfg.group_by)
    splits = {k: table.dataset(v, f"{Path(data).stem}:{k}") for k, v in parts.items()}
    Y = {k: table.Y[v] for k, v in parts.items()}
    absent = [n for k, n in enumerate(names) if Y["train"][:, k].sum() == 0]
    report = [{"part": k, "images": len(v), "groups": None if table.patients is None else
               int(len(np.unique(table.patients[v]))), "findings": {n: int(c) for n, c in zip(names, Y[k].sum(0))},
               "origin": how if k != "train" else "the rest"} for k, v in parts.items()]
    for row in report:
        log(f"{row['part']:<6}{row['images']:>6} images" + (f" {row['groups']:>5} patients" if row["groups"] else "")
            + "  " + ", ".join(f"{n} {c}" for n, c in row["findings"].items()))
    if absent:
        log(f"note: no training image shows {absent}; their outputs cannot learn anything")
    seed_everything(cfg.seed)
    model = get_backbone(cfg.backbone, weights=cfg.weights, num_classes=len(names))
    model = model.to(device, memory_format=torch.channels_last)
    cut = cache_cut(stages, len(spec.groups)) if cfg.cache_features else 0
    if cut and not can_cut(model):
        cut = 0
    log(f"medkit fit (multi-label, {len(names)} findings): {cfg.backbone} at {cfg.image_size} px, "
        f"{len(parts['train'])} train / {len(parts['val'])} val images, {cfg.epochs} epochs, freeze={cfg.freeze}, "
        f"on {device}")
    if cut:
        net, train_dl, val_dl = cached_loaders(model, cut, splits, pre, cfg, progress, device=device)
    else:
        net, (train_dl, val_dl) = model, image_loaders(splits, pre, cfg)
    train_dl = _Targets(train_dl, Y["train"])
    # no per-epoch validation inside the loop: its loss and AUC assume one class per image
    history = fit_stages(model, train_dl, None, stages, weight_decay=cfg.weight_decay, loss_fn=nn.BCEWithLogitsLoss(),
                         progress=progress, net=net, device=device,
                         micro_batch=None if cut else cfg.micro_batch)
    P_val = predict_sigmoid(net, val_dl, device)
    thresholds = _thresholds(Y["val"], P_val, names, cfg.threshold)
    seconds = time.perf_counter() - start
    data_info = {"path": str(Path(data).resolve()), "fingerprint": data_fingerprint(splits), "group_by": cfg.group_by,
                 "channels": int(splits["train"].channels), "cached_groups": cut}
    val_metrics = {**score_findings(Y["val"], P_val, names), "task": TASK, "role": "internal", "part": "val",
                   "data": data_info["path"], "fingerprint": data_info["fingerprint"], "thresholds": thresholds,
                   "patients": next(r["groups"] for r in report if r["part"] == "val")}
    split_info = {"report": report, "group_kind": "patient" if "patient-grouped" in how else None, "notes": []}
    height, width = table.images.shape[1:3]
    metrics = {"task": TASK, "val": val_metrics, "threshold": None, "thresholds": thresholds, "train_seconds": seconds,
               "history": history.rows, "splits": split_info, "data": data_info, "audit": audit_record,
               "recipe": asdict(cfg),
               "n": {k: len(v) for k, v in parts.items()}, "findings": list(names), "device": device}
    save_checkpoint(out_dir, model.cpu(), image_size=cfg.image_size, classes=names, threshold=0.5,
                    channels=data_info["channels"], input_size=height if height == width else None, recipe=asdict(cfg),
                    splits=split_info, data=data_info, audit=audit_record, task=TASK, findings=list(names), thresholds=thresholds,
                    validation=[validation_entry(val_metrics, threshold_chosen_here=True)],
                    files={METRICS_FILE: metrics, GATE_FILE: None})  # one commit; None: no gate for multi-label
    return metrics


def evaluate_multilabel(ckpt_dir, data, split: str = "auto", backbone: str | None = None, n_boot: int = 1000,
                        log=None, batch_size: int = 32, device: str = "cpu", value_range=None) -> dict:
    """Return per-finding AUC with 95% intervals, macro AUC, skipped findings, n and patients of a multi-label checkpoint.

    What is scored: the test part `fit` carved when `data` is the CSV the checkpoint was trained on, else
    every line of `data` (`split` "train"/"val"/"test" need the training CSV, "all" scores every line).
    `value_range`: the range float images were saved in (None: the checkpoint's own, default 0-1).
    """
    model, config = load_checkpoint(ckpt_dir, backbone=backbone)
    names = config.get("findings") or config["classes"]
    path = Path(data)
    if path.suffix.lower() != ".csv" or not path.is_file():
        raise DataError(f"{ckpt_dir} is a multi-label checkpoint (findings {names}); score it on a CSV "
                        f"(path,label[,patient]) of `|`-separated findings, not {data}.")
    trained_on = config.get("data") if isinstance(config.get("data"), dict) else {}
    same = role_of(config, path) == "internal"
    value_range = value_range if value_range is not None else config.get("recipe", {}).get("value_range", (0.0, 1.0))
    table = from_findings_csv(path, names=names, image_size=int(config["image_size"]), value_range=tuple(value_range),
                              fix=f"The checkpoint {ckpt_dir} knows only these findings: score it on data labelled "
                                  "with them, or train a checkpoint that includes the new one.")
    table.images = equalize_contrast(table.images, contrast_of(config))
    if split == "auto":
        split = "test" if same else "all"
    if split == "all":
        index, origin = np.arange(len(table)), f"every line of {path.name}"
        fingerprint = data_fingerprint({"all": table.dataset(index)})
    else:
        if not same:
            raise DataError(f"--split {split} names a part fit carved, but {data} is not the CSV {ckpt_dir} was "
                            f"trained on ({trained_on.get('path')}). Pass --split all (or auto).")
        parts, origin = carve_findings(table, trained_on.get("group_by", "auto"))
        index = parts[split]
        splits = {k: table.dataset(v) for k, v in parts.items()}
        fingerprint = data_fingerprint(splits)
        if trained_on.get("fingerprint") not in (None, fingerprint) and log:
            log(f"warning: {data} changed since the checkpoint was trained (fingerprint differs): its carved test "
                "part may now hold images the model was trained on")
    pre = CheckpointConfig.from_dict(config).preprocess()  # the stored mean/std, as export uses
    loader = BatchLoader(table.dataset(index), batch_size, preprocess=pre)
    P = predict_sigmoid(model.to(device, memory_format=torch.channels_last), loader, device)
    out = score_findings(table.Y[index], P, names, n_boot=n_boot)
    out.update({"task": TASK, "role": "internal" if same else "external", "split": split, "source": origin,
                "data": str(path.resolve()), "fingerprint": fingerprint, "thresholds": config.get("thresholds", {}),
                "patients": None if table.patients is None else int(len(np.unique(table.patients[index]))),
                "trained_on_this_data": same, "device": device})
    return out


def fit_summary(out, metrics: dict) -> dict:
    """Return the one JSON line `medkit fit` prints for a multi-label fit."""
    val = metrics["val"]
    return {"out": str(out), "task": TASK, "findings": metrics["findings"],
            "thresholds": {k: round(v, 4) for k, v in metrics["thresholds"].items()},
            "train_seconds": round(metrics["train_seconds"], 1), "device": metrics["device"],
            "val": {"role": "internal", "part": "val",
                    "macro_auc": None if val["macro_auc"] is None else round(val["macro_auc"], 6), "n": val["n"],
                    "auc": {k: round(v["auc"], 6) for k, v in val["findings"].items()}, "skipped": val["skipped"]},
            "n": metrics["n"], "patients": {r["part"]: r["groups"] for r in metrics["splits"]["report"]}}
