"""`medkit fit` / `medkit evaluate` with one class per image: the fine-tuning lesson 03 recommends, on any source.

`--data` is anything `medkit.data.load_source` reads: a class-folder tree, a folder with train/val/test
subfolders, a CSV (path, label, optional patient/site columns) or a MedMNIST `.npz`. Parts the source
lacks are carved out of train with a fixed seed (`HELD_OUT_SEED`), patient-disjoint whenever every
image has a patient key, so the test part is never trained or tuned on. The decision threshold is
chosen on validation only, then stored in the checkpoint config with the split report.

Speed on a CPU (benchmarks/bench_fit_224.py, benchmarks/RECIPE.md): when every stage keeps the lower
layer groups frozen, those groups run once per image and the upper groups train on their cached
outputs (float16, channels_last); augmentation then cannot apply (the same cached features every epoch).

Every score says its role (`medkit.fit.validation`): fit's val and the carved test part are "internal" (the
source the checkpoint was trained on), any other source is "external". The checkpoint keeps fit's val as its
first `validation` record; `evaluate_internal_and_external` scores both roles and the gap between them.
"""

import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from ..base.errors import ConfigError, DataError
from ..core.checkpoint import CheckpointConfig, data_path, load_checkpoint, read_config, save_checkpoint
from ..core.features import TensorLoader, split_at_group
from ..core.freeze import fit_stages, schedule
from ..core.losses import make_loss
from ..core.train import SCORE_BATCH, pick_device, predict, seed_everything
from ..data import BatchLoader, check_trainable, load_source
from ..data.contrast import contrast_of
from ..data.dicom import dicom_scope
from ..deploy.gate import GATE_FILE, SanityGate, dataset_shapes, embed_and_predict, fit_gate, summarise
from ..evaluation.evaluate import choose_threshold, metrics_with_ci
from ..evaluation.metrics import classification_metrics, sensitivity_specificity
from ..models import get_backbone, get_spec
from .adapt import adaptation_images
from .audit import audit_before_fit
from .config import (
    METRICS_FILE,
    average_states,
    cache_cut,
    cached_loaders,
    can_cut,
    check_out_dir,
    data_fingerprint,
    image_loaders,
    pick_part,
)
from .multilabel import check_task_matches, evaluate_multilabel, fit_multilabel, wants_multilabel
from .recipe import RecipeConfig
from .validation import metric_gap, role_of, validation_entry

__all__ = ["fit_recipe", "evaluate_checkpoint", "score_checkpoint", "ScoredPart", "score_part", "read_as_trained",
           "evaluate_internal_and_external", "checkpoint_gate"]


def _load_source(data, cfg: RecipeConfig, *, carve: bool, log):
    return load_source(data, image_size=cfg.image_size, group_by=cfg.group_by, carve=carve, log=log,
                       value_range=tuple(cfg.value_range), contrast=cfg.contrast)


def _split_summary(source) -> dict:
    return {"report": source.report, "group_kind": source.group_kind, "notes": list(source.notes)}


def fit_recipe(data, out_dir, cfg: RecipeConfig | None = None, progress: bool = True, log=print,
               overwrite: bool = False, multi_label: bool | None = None, findings=None, audit: bool = True,
               accept_audit=()) -> dict:
    """Train the recipe on an image source, write checkpoint + metrics.json into `out_dir`, return metrics.

    Args:
        data: a class-folder tree, a folder with train/val/test subfolders, a CSV or a MedMNIST `.npz`
            (`medkit.data.load_source`); missing val and test parts are carved from train, patient-disjoint
            when every image has a patient key.
        out_dir: checkpoint folder (`config.json`, `model.pt`) and `metrics.json`; refused when not empty
            unless `overwrite`.
        cfg: a `RecipeConfig` (defaults: the recipe measured in benchmarks/RECIPE.md).
        log: receives the split report and progress lines (the CLI sends them to stderr).
        multi_label, findings: a CSV of `|`-separated findings trains one sigmoid output per finding
            (`medkit.fit.multilabel`); detected from the labels unless `multi_label` says so.
        audit, accept_audit: the data audit runs first (`medkit.data.audit`): its errors refuse the fit unless
            their codes are in `accept_audit` ("all" accepts every one); its warnings go into the checkpoint's
            config (`audit`). audit=False skips it (recorded as skipped).
    """
    if findings is not None or wants_multilabel(data, multi_label):
        return fit_multilabel(data, out_dir, cfg, findings=findings, progress=progress, log=log, overwrite=overwrite,
                              audit=audit, accept_audit=accept_audit)
    cfg = (cfg or RecipeConfig()).check()
    start = time.perf_counter()
    check_out_dir(out_dir, overwrite)
    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    device = pick_device(cfg.device)  # an unavailable device fails here, before any data is read
    spec = get_spec(cfg.backbone)  # an unknown backbone fails here, before any data is read
    stages = schedule(cfg.freeze, cfg.epochs, cfg.lr, cfg.head_lr, n_groups=len(spec.groups))
    pre = spec.preprocess(cfg.image_size)  # a size too small for this backbone's features (ConfigError) fails here too
    audit_record = audit_before_fit(data, audit, accept_audit, log)  # before decoding: a refused source costs seconds
    source = _load_source(data, cfg, carve=True, log=log)
    splits, classes = source.splits, source.classes
    check_trainable(data, splits)
    seed_everything(cfg.seed)
    model = get_backbone(cfg.backbone, weights=cfg.weights, num_classes=len(classes))
    model = model.to(device, memory_format=torch.channels_last)  # about twice as fast on CPU (bench_fit_224.py)
    loss_fn = make_loss(cfg.loss, splits["train"].labels, len(classes)).to(device)  # class weights live on `device`
    cut = cache_cut(stages, len(spec.groups)) if cfg.cache_features else 0
    if cut and not can_cut(model):
        log(f"medkit fit: {spec.name} is not a chain of layers that can be cut; every stage runs on images")
        cut = 0
    log(f"medkit fit: {cfg.backbone} ({cfg.weights or 'random init'}) at {cfg.image_size} px, "
        f"{len(splits['train'])} train / {len(splits['val'])} val images, {cfg.epochs} epochs, freeze={cfg.freeze}, "
        f"contrast={cfg.contrast}, on {device}"
        + (f"; layer groups 0-{cut - 1} frozen throughout: their outputs are cached once per image "
           "(no augmentation on cached features)" if cut else ""))
    if cut:
        net, train_dl, val_dl = cached_loaders(model, cut, splits, pre, cfg, progress, device=device)
    else:
        net, (train_dl, val_dl) = model, image_loaders(splits, pre, cfg)
    history = fit_stages(model, train_dl, val_dl, stages, weight_decay=cfg.weight_decay, loss_fn=loss_fn,
                         progress=progress, net=net, device=device,
                         micro_batch=None if cut else cfg.micro_batch)
    if cfg.soup > 1:
        states = [model.state_dict()] + [_train_soup_member(cfg, cfg.seed + i, len(classes), cut, train_dl, val_dl,
                                                            splits, pre, stages, loss_fn, device, log)
                                         for i in range(1, cfg.soup)]
        model.load_state_dict(average_states(states))
        log(f"medkit fit: weights averaged over {cfg.soup} runs (seeds {cfg.seed}-{cfg.seed + cfg.soup - 1})")
    for row in history.rows:
        log("  " + " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
    probs, labels = predict(net, val_dl, device)
    threshold = choose_threshold(labels, probs, cfg.threshold) if probs.shape[1] == 2 else 0.5
    seconds = time.perf_counter() - start
    data_info = {"path": str(Path(data).resolve()), "fingerprint": data_fingerprint(splits), "group_by": cfg.group_by,
                 "channels": int(splits["train"].channels), "cached_groups": cut}
    val_metrics = {**_scores(labels, probs, threshold, n_boot=1000), "role": "internal", "part": "val", "data": data_info["path"], "fingerprint": data_info["fingerprint"],
                   "patients": _patients(splits["val"])}
    height, width = splits["train"].image_size
    metrics = {"val": val_metrics, "threshold": threshold, "train_seconds": seconds, "history": history.rows,
               "splits": _split_summary(source), "data": data_info, "audit": audit_record, "recipe": asdict(cfg),
               "device": device,
               "n": {k: len(v) for k, v in splits.items()}}
    scope = dicom_scope(splits["train"].meta.get("paths", []))  # what predict and export check DICOMs against
    if scope:
        log(f"medkit fit: trained on DICOM {'/'.join(scope['modalities'])} images of "
            f"{'/'.join(scope.get('body_parts', ['no named body part']))}; kept in the checkpoint for export and predict")
    gate = _fit_gate(model, splits, pre, cfg, device, log)
    metrics["gate"] = _gate_info(gate)
    # one commit: weights, config, metrics and the gate (tied to the weights' sha256) appear together or not at all
    save_checkpoint(out_dir, model.cpu(), image_size=cfg.image_size, classes=classes, threshold=threshold,
                    channels=data_info["channels"], input_size=height if height == width else None, recipe=asdict(cfg),
                    splits=_split_summary(source), data=data_info, audit=audit_record,
                    validation=[validation_entry(val_metrics, threshold_chosen_here=True)], **scope,
                    files={METRICS_FILE: metrics, GATE_FILE: None if gate is None else
                           (lambda path, weights_sha256: gate.save(path, model_sha256=weights_sha256))})
    if gate is not None:
        log(f"medkit fit: sanity gate saved in {GATE_FILE}: {gate!r}")
    return metrics


def _fit_gate(model, splits, pre, cfg: RecipeConfig, device: str, log):
    """Fit the sanity gate on train (up to 1000 images) with thresholds on val; None when there are too few images."""
    try:
        return fit_gate(model, splits["train"], splits["val"], pre, device=device, batch_size=cfg.batch_size,
                        seed=cfg.seed)
    except DataError as exc:  # too few images for a reference: predict and evaluate then warn that OOD is off
        log(f"medkit fit: no sanity-gate reference saved ({exc})")
        return None


def _gate_info(gate) -> dict | None:
    """Return what metrics.json says about the saved gate: its OOD threshold, quantile and reference size."""
    if gate is None:
        return None
    return {"file": GATE_FILE, "ood_threshold": float(gate.ood["threshold"]), "quantile": gate.quantile,
            "n_reference": gate.n_reference, "contrast_floor": gate.contrast_floor, "min_side": gate.min_side,
            "aspect_range": list(gate.aspect_range), "inverted_below": gate.inverted_below}


def _train_soup_member(cfg, seed, n_classes, cut, train_dl, val_dl, splits, pre, stages, loss_fn, device, log):
    """Train one more run of the recipe with `seed` (on the same cached features when `cut`); return its weights."""
    seed_everything(seed)
    model = get_backbone(cfg.backbone, weights=cfg.weights, num_classes=n_classes)
    model = model.to(device, memory_format=torch.channels_last)
    if cut:
        _, net = split_at_group(model, cut)  # the lower groups are the same frozen ImageNet layers: reuse their cache
        train_dl = TensorLoader(train_dl.X, train_dl.labels, cfg.batch_size, shuffle=True, seed=seed,
                                drop_last=train_dl.drop_last)
    else:
        net, (train_dl, val_dl) = model, image_loaders(splits, pre, replace(cfg, seed=seed))
    history = fit_stages(model, train_dl, val_dl, stages, weight_decay=cfg.weight_decay, loss_fn=loss_fn,
                         progress=False, net=net, device=device, micro_batch=None if cut else cfg.micro_batch)
    log(f"  soup run seed {seed}: val_auc={history.last.get('val_auc', float('nan')):.4g}")
    return model.state_dict()


def _patients(ds) -> int | None:
    return None if ds.groups is None else int(len(np.unique(ds.groups)))


def _scores(labels, probs, threshold: float, n_boot: int) -> dict:
    """Return the point metrics at `threshold`, with 95% bootstrap intervals where the part allows them."""
    out = classification_metrics(labels, probs, threshold)
    if probs.shape[1] == 2 and min(np.bincount(labels, minlength=2)) >= 2:
        ci = metrics_with_ci(labels, probs, threshold, n_boot=n_boot, seed=0)
        out.update({k: v.estimate for k, v in ci.items()})
        out["ci95"] = {k: [round(v.low, 6), round(v.high, 6)] for k, v in ci.items()}
    elif probs.shape[1] > 2:
        out.update(sensitivity_specificity(labels, probs.argmax(1), probs.shape[1]))
    return out


def score_checkpoint(ckpt_dir, data, split: str = "auto", backbone: str | None = None, batch_size: int = SCORE_BATCH,
                     n_boot: int = 1000, log=None, device: str = "auto", value_range=None,
                     allow_ood: bool = False) -> tuple[dict, tuple | None]:
    """Return (`evaluate_checkpoint`'s result, (labels, probs) of the part scored; None for multi-label).

    `value_range`: the range float images of `data` were saved in; None takes the one the checkpoint was fit with.
    """
    if split not in ("auto", "train", "val", "test", "all"):
        raise DataError(f"Unknown split {split!r}; use auto, train, val, test or all.")
    device = pick_device(device)
    if check_task_matches(ckpt_dir, data):
        if log and not allow_ood:
            log("warning: the sanity gate does not cover multi-label checkpoints yet; every image is scored unchecked")
        return evaluate_multilabel(ckpt_dir, data, split, backbone=backbone, n_boot=n_boot, log=log,
                                   batch_size=batch_size, device=device, value_range=value_range), None
    scored = score_part(ckpt_dir, data, split, backbone, batch_size, n_boot, log, device, value_range, allow_ood)
    return scored.result, (scored.labels, scored.probs)


def read_as_trained(config: dict, data, *, carve: bool, log=None, value_range=None):
    """Load `data` through the reader a checkpoint was fit with (size, contrast step, grouping, value range)."""
    recipe = config.get("recipe", {})
    value_range = value_range if value_range is not None else recipe.get("value_range", RecipeConfig.value_range)
    cfg = RecipeConfig(image_size=int(config["image_size"]), group_by=recipe.get("group_by", "auto"),
                       contrast=contrast_of(config), value_range=tuple(value_range))
    return _load_source(data, cfg, carve=carve, log=log)


@dataclass(frozen=True)
class ScoredPart:
    """What `score_part` scored: the result, each image's label and probabilities, and the images themselves."""

    result: dict
    labels: np.ndarray
    probs: np.ndarray
    dataset: object  # the ImageDataset scored (its groups are the patient keys), adaptation images left out
    source: object  # the whole source it came from (every part, as the checkpoint's reader loaded it)


def score_part(ckpt_dir, data, split: str = "auto", backbone: str | None = None, batch_size: int = SCORE_BATCH,
               n_boot: int = 1000, log=None, device: str = "cpu", value_range=None,
               allow_ood: bool = False, carve: bool | None = None) -> ScoredPart:
    """Score a one-class-per-image checkpoint on one part of `data` (`evaluate_checkpoint`); keep what was scored.

    `carve`: cut val and test out of `data` as fit does; None carves the checkpoint's own source only.
    """
    model, config = load_checkpoint(ckpt_dir, backbone=backbone)
    trained_on = config.get("data", {}) if isinstance(config.get("data"), dict) else {}
    role = role_of(config, data)
    source = read_as_trained(config, data, carve=role == "internal" if carve is None else carve, log=log,
                             value_range=value_range)
    fingerprint = data_fingerprint(source.splits)
    if role == "internal" and trained_on.get("fingerprint") not in (None, fingerprint) and log:
        log(f"warning: {data} changed since the checkpoint was trained (fingerprint differs): its carved test part "
            "may now hold images the model was trained on")
    if list(source.classes) != list(config["classes"]):
        raise DataError(f"{data} has classes {source.classes}, the checkpoint {ckpt_dir} was trained on "
                        f"{config['classes']}: they must match by name and order. Rename the class folders or "
                        "labels, or use the checkpoint trained for these classes.")
    part = pick_part(source, split, data)
    ds, skipped = _without_adaptation_images(source.splits[part], config, data, log)
    pre = CheckpointConfig.from_dict(config).preprocess()  # the stored mean/std, as export uses
    model = model.to(device, memory_format=torch.channels_last)
    loader = BatchLoader(ds, batch_size, preprocess=pre)
    if allow_ood:
        probs, labels = predict(model, loader, device)
    else:
        probs, labels, embeddings = embed_and_predict(model, loader, device)
    if probs.shape[1] != config["num_classes"]:
        raise DataError(f"The model predicts {probs.shape[1]} classes, its config says {config['num_classes']}.")
    out = _scores(labels, probs, config.get("threshold", 0.5), n_boot)
    if not allow_ood:
        out.update(_gated_scores(ckpt_dir, config, ds, embeddings, labels, probs, n_boot, log))
    out.update({"role": role, "split": part, "source": source.origin.get(part, part), "data": str(Path(data).resolve()),
                "fingerprint": fingerprint, "n": len(ds), "patients": _patients(ds),
                "trained_on_this_data": role == "internal", "device": device})
    if config.get("adaptation"):
        out["adaptation_images_skipped"] = skipped
    return ScoredPart(out, labels, probs, ds, source)


def evaluate_checkpoint(ckpt_dir, data, split: str = "auto", backbone: str | None = None, batch_size: int = SCORE_BATCH,
                        n_boot: int = 1000, log=None, device: str = "auto", value_range=None,
                        allow_ood: bool = False) -> dict:
    """Return AUC, accuracy, sensitivity, specificity (with 95% bootstrap intervals), n and patients of a checkpoint.

    What is scored (`split="auto"`): the carved test part when `data` is the source the checkpoint was trained
    on (same carve, same seed; `role` "internal"); a source's own test part (a `test/` subfolder, an npz `test`
    split) or every image of a source with no split parts (another source: `role` "external"). Images a
    checkpoint was adapted on (`medkit adapt`, listed in its config) are skipped and counted in
    `adaptation_images_skipped`. `device`:
    "auto" (cuda, else mps, else cpu), "cpu", "cuda" or "mps" (`medkit.core.train.pick_device`). `value_range`: the
    range float images of `data` were saved in (None: the checkpoint's own, default 0-1).
    Unless `allow_ood`, every image also goes through the checkpoint's sanity gate (`medkit.deploy.gate`): the
    metrics above are over all images; `gate` says how many were flagged and by which check, and `not_flagged`
    holds the same metrics over the images the gate let through.
    """
    return score_checkpoint(ckpt_dir, data, split, backbone, batch_size, n_boot, log, device, value_range,
                            allow_ood)[0]


def evaluate_internal_and_external(ckpt_dir, data, split: str = "auto", backbone: str | None = None,
                                   n_boot: int = 1000, log=None, device: str = "auto", value_range=None,
                                   allow_ood: bool = False) -> dict:
    """Return {"internal", "external", "gap"}: the checkpoint on another source and on its own held-out test part.

    Args:
        data: another source than the checkpoint's own (refused when it is the same one); `split` picks its part.
        The internal part is the test part fit carved from the source recorded in the checkpoint (`data.path`),
        same carve, same seed. When that source is not on this machine, "internal" says so (`available`
        false, with the reason), the gap is None, and the external result is still returned.
        gap: external minus internal per metric, with 95% intervals from resampling each set on its own.
    """
    config = read_config(ckpt_dir)
    if role_of(config, data) == "internal":
        raise ConfigError(f"{data} is the source {ckpt_dir} was trained on, whose test part --internal-too scores "
                          "anyway. Pass another source as --data (a second site), or drop --internal-too.")
    device = pick_device(device)
    kwargs = {"backbone": backbone, "n_boot": n_boot, "log": log, "device": device, "allow_ood": allow_ood}
    external, ext_scores = score_checkpoint(ckpt_dir, data, split, value_range=value_range, **kwargs)
    trained_on = data_path(config)
    if not trained_on or not Path(trained_on).exists():
        why = (f"its training data {trained_on} is not on this machine" if trained_on
               else "the checkpoint does not record its training data (data.path)")
        if log:
            log(f"internal: not scored: {why}. Only the external result is reported; run this where that data is "
                "to see both.")
        return {"internal": {"role": "internal", "data": trained_on, "available": False, "reason": why},
                "external": external, "gap": None}
    internal, int_scores = score_checkpoint(ckpt_dir, trained_on, "auto", **kwargs)
    scores = {"internal": int_scores, "external": ext_scores} if ext_scores and int_scores else None
    gap = metric_gap(internal, external, scores, external.get("threshold"), n_boot=n_boot)
    return {"internal": internal, "external": external, "gap": gap}


def checkpoint_gate(ckpt_dir, config: dict, log=None) -> SanityGate:
    """Return the checkpoint's sanity gate (gate.npz, checked against its weights), or one without OOD reference."""
    path = Path(ckpt_dir) / GATE_FILE
    if path.is_file():
        return SanityGate.load(path, model_sha256=config.get("weights_sha256", ""))
    if log:
        log(f"warning: {ckpt_dir} has no {GATE_FILE} (trained before the gate, or adapted): the out-of-distribution "
            "score is unavailable; only the image checks (flat, contrast, noise, size, aspect) run. Retrain with `medkit fit` "
            "to get it.")
    return SanityGate()


def _gated_scores(ckpt_dir, config, ds, embeddings, labels, probs, n_boot: int, log) -> dict:
    """Return the gate's summary of a scored part and the metrics over the images it did not flag."""
    gate = checkpoint_gate(ckpt_dir, config, log)
    verdicts = gate.check(ds.images, embeddings, dataset_shapes(ds))
    summary = summarise(verdicts)
    if "paths" in ds.meta:
        for row in summary["images"]:
            row["file"] = ds.meta["paths"][row["index"]]
    keep = np.array([not v.flagged for v in verdicts])
    out = {"gate": {**summary, "ood_available": gate.has_reference}}
    if log and summary["flagged"]:
        log(f"sanity gate: {summary['flagged']} of {len(ds)} images flagged ({summary['by_check']}); the metrics "
            "are over all images, `not_flagged` over the rest (--allow-ood: no gate)")
    if summary["flagged"] and keep.any():
        rest = labels[keep]
        scores = _scores(rest, probs[keep], config.get("threshold", 0.5), n_boot) if len(np.unique(rest)) > 1 else {}
        out["not_flagged"] = {**scores, "n": int(keep.sum())}
    return out


def _without_adaptation_images(ds, config: dict, data, log):
    """Return (ds without the images `medkit adapt` learnt from, how many were dropped): they are never scored."""
    used = adaptation_images(config)
    if not used or "paths" not in ds.meta:
        return ds, 0
    keep = np.array([str(Path(p).resolve()) not in used for p in ds.meta["paths"]])
    if log and not keep.all():
        info = config["adaptation"]
        log(f"medkit evaluate: {int((~keep).sum())} image(s) of {data} were used by `medkit adapt` ({info['method']}, "
            f"k={info['k']}, seed {info['seed']}) to adapt this checkpoint; they are not scored")
    return (ds if keep.all() else ds.subset(keep)), int((~keep).sum())
