"""The `medkit fit` / `medkit evaluate` recipe: the fine-tuning lesson 03 recommends, on any image source.

`--data` is anything `medkit.data.load_source` reads: a class-folder tree, a folder with train/val/test
subfolders, a CSV (path, label, optional patient/site columns) or a MedMNIST `.npz`. Parts the source
lacks are carved out of train with a fixed seed (`HELD_OUT_SEED`), patient-disjoint whenever every
image has a patient key, so the test part is never trained or tuned on. The decision threshold is
chosen on validation only, then stored in the checkpoint config with the split report.

Speed on a CPU (benchmarks/bench_fit_224.py, benchmarks/RECIPE.md): when every stage keeps the lower
layer groups frozen, those groups run once per image and the upper groups train on their cached
outputs (float16, channels_last); augmentation then cannot apply (the same cached features every epoch).
"""

import hashlib
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .data import HELD_OUT_SEED, HELD_OUT_SIZE, BatchLoader, load_npz, stratified_split
from .data.medmnist import available_splits
from .errors import ConfigError, DataError
from .metrics import classification_metrics

__all__ = ["RecipeConfig", "XrayAugment", "train_and_test", "load_splits", "held_out_size", "choose_threshold",
           "fit_recipe", "evaluate_checkpoint", "cache_cut", "data_fingerprint", "VAL_SEED", "METRICS_FILE"]

VAL_SEED = 20241  # carves a validation part from train when a file has none; fixed like HELD_OUT_SEED
METRICS_FILE = "metrics.json"
# images per forward pass when predicting or caching: at 224 px one efficientnet_lite0 image holds ~15 MB of
# live activations (its 96 x 112 x 112 float32 maps), so 128 images peaked the fit at 3.1 GB; 32 stay ~0.5 GB
EVAL_BATCH = 32


@dataclass
class RecipeConfig:
    """The defaults of `medkit fit`: the recipe lesson 03 ends with (measured in benchmarks/RECIPE.md)."""

    backbone: str = "efficientnet_lite0"  # the one backbone with ImageNet weights bundled offline
    weights: str | None = "DEFAULT"  # ImageNet weights; None trains from scratch
    # 224 px, the size the X-rays come in: held-out AUC 0.996 with "top" (benchmarks/RECIPE.md); its frozen-group
    # pass is the fit's main cost (~50 images/s on 2 cores) and it still fits the 10-minute budget
    image_size: int = 224
    epochs: int = 6  # 1 head-only + 5 top-group epochs on cached features: val AUC 0.999, ~10 s per epoch on 2 cores
    # "top": head for 1 epoch, then the top layer group too, on cached features. Held-out AUC 0.996 / acc 0.972
    # against 0.991 / 0.945 for the head alone; training lower groups costs a full pass per epoch (5-40 images/s)
    freeze: str = "top"
    lr: float = 2e-3  # peak lr of the head group in every stage (lower groups get lr / ratio in discriminative ones)
    head_lr: float | None = None  # lr of head-only stages; None = lr (so --lr is never ignored)
    weight_decay: float = 1e-4
    batch_size: int = 64  # not swept: the lessons' size; fine for cached activations (one step ~0.15 s)
    loss: str = "ce"  # plain cross-entropy: with a chosen threshold, weighting buys nothing on AUC
    augment: bool = True  # small affine + intensity jitter, on stages that see images (not cached features)
    # frozen lower groups run once per image: top-group training on their cached outputs runs at ~400 images/s,
    # full fine-tuning at 224 px at ~5 (bench_fit_224.py); float16 storage: 19 KB per image at the top-group cut
    cache_features: bool = True
    group_by: str = "auto"  # patient-disjoint carve whenever every image has a patient key
    threshold: str = "youden"  # "youden" (max sensitivity + specificity - 1 on val) or "0.5"
    seed: int = 0
    threads: int | None = None  # torch threads; None leaves torch's default

    def check(self) -> "RecipeConfig":
        """Raise ConfigError naming the first setting that cannot work; return self."""
        for name in ("epochs", "batch_size", "image_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{name.replace('_', '-')} must be a positive integer, got {value!r}.")
        for name in ("lr", "head_lr", "weight_decay"):
            value = getattr(self, name)
            low_ok = value is None or (name == "weight_decay" and value == 0)
            if not low_ok and not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ConfigError(f"{name.replace('_', '-')} must be a positive number, got {value!r}.")
        if not 16 <= self.image_size <= 512:
            raise ConfigError(f"image-size {self.image_size} is out of range; use 16 to 512 "
                              f"({RecipeConfig.image_size} is the recipe).")
        if self.threads is not None and (not isinstance(self.threads, int) or self.threads < 1):
            raise ConfigError(f"threads must be a positive integer, got {self.threads!r}.")
        return self


class XrayAugment(nn.Module):
    """Random small affine (rotation, scale, shift) and intensity (brightness, contrast, gamma) changes.

    Works on a float [0, 1] batch (N, C, H, W) at the stored resolution, before resizing, so it is cheap.
    The intensity part mimics another detector's response curve (see `medkit.shift.Scanner`).
    """

    def __init__(self, degrees: float = 10.0, scale: float = 0.1, shift: float = 0.08, brightness: float = 0.1,
                 contrast: float = 0.15, gamma: float = 0.2, seed: int = 0):
        super().__init__()
        self.degrees, self.scale, self.shift = degrees, scale, shift
        self.brightness, self.contrast, self.gamma = brightness, contrast, gamma
        self.generator = torch.Generator().manual_seed(int(seed))

    def _uniform(self, n, spread):
        return (torch.rand(n, generator=self.generator) * 2 - 1) * spread

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        angle = self._uniform(n, math.radians(self.degrees))
        scale = 1 + self._uniform(n, self.scale)
        tx, ty = self._uniform(n, self.shift), self._uniform(n, self.shift)
        cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
        theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
        gamma = torch.exp(self._uniform(n, self.gamma)).view(n, 1, 1, 1)
        contrast = (1 + self._uniform(n, self.contrast)).view(n, 1, 1, 1)
        brightness = self._uniform(n, self.brightness).view(n, 1, 1, 1)
        x = x.clamp(0, 1) ** gamma
        return ((x - 0.5) * contrast + 0.5 + brightness).clamp(0, 1)


def train_and_test(model, train, test, stages, *, image_size: int = 64, batch_size: int = 64, val=None,
                   loss_fn=None, augment: bool = False, seed: int = 0, progress: bool = False,
                   train_bn: bool = True) -> dict:
    """Train `model` through freezing `stages` on `train`, then return test metrics, seconds and history.

    The one experiment lessons 02 and 03 repeat (budgets, freeze depths, losses): same loaders, same loop.
    """
    from .freeze import fit_stages
    from .models import get_spec
    from .train import predict, seed_everything

    seed_everything(seed)
    pre = get_spec(model).preprocess(image_size)
    train_dl = BatchLoader(train, batch_size, shuffle=True, seed=seed, preprocess=pre,
                           augment=XrayAugment(seed=seed) if augment else None, drop_last=len(train) > batch_size)
    # scoring in batches of EVAL_BATCH (32): at 96 px a 64-image forward pass adds ~200 MB of peak RSS, 32 ~100 MB
    val_dl = BatchLoader(val, EVAL_BATCH, preprocess=pre) if val is not None else None
    start = time.perf_counter()
    history = fit_stages(model, train_dl, val_dl, stages, loss_fn=loss_fn, progress=progress, train_bn=train_bn)
    seconds = time.perf_counter() - start
    probs, labels = predict(model, BatchLoader(test, EVAL_BATCH, preprocess=pre))
    return {**classification_metrics(labels, probs), "seconds": seconds, "history": history.rows}


def held_out_size(n_train: int) -> int:
    """Return how many images to hold out of a train split: PneumoniaMNIST's 624, at most a fifth of it."""
    return min(HELD_OUT_SIZE, n_train // 5)


def _carve(dataset, size, seed, name):
    keep, out = stratified_split(dataset.labels, test_size=size, seed=seed)
    return dataset.subset(np.sort(keep), f"{name}:train"), dataset.subset(np.sort(out), name)


def load_splits(path, classes=None) -> tuple[dict, dict]:
    """Return ({"train", "val", "test"} datasets, {split: where it came from}) for a MedMNIST-format file."""
    path = Path(path)
    have = set(available_splits(path))
    if "train" not in have:
        raise DataError(f"{path} has no train split (needs `train_images` and `train_labels`; it has splits "
                        f"{sorted(have) or 'none'}). Pass a MedMNIST-format .npz file.")
    train = load_npz(path, "train", classes)
    splits, source = {"train": train}, {"train": "train"}
    if "test" in have:
        splits["test"], source["test"] = load_npz(path, "test", classes), "test"
    else:
        size = held_out_size(len(train))
        splits["train"], splits["test"] = _carve(train, size, HELD_OUT_SEED, f"{path.stem}:test")
        source["test"] = f"{size} images carved from train (stratified, seed {HELD_OUT_SEED}); never trained or tuned on"
        source["train"] = "train minus the carved test"
    if "val" in have:
        splits["val"], source["val"] = load_npz(path, "val", classes), "val"
    else:
        size = max(2, len(splits["train"]) // 8)
        splits["train"], splits["val"] = _carve(splits["train"], size, VAL_SEED, f"{path.stem}:val")
        source["val"] = f"{size} images carved from train (stratified, seed {VAL_SEED})"
        source["train"] += " minus the carved val"
    _check_labels(path, splits)
    return splits, source


def _check_labels(path, splits):
    k = int(max(ds.labels.max() for ds in splits.values())) + 1
    present = np.unique(splits["train"].labels)
    if len(present) < 2:
        raise DataError(f"{path}: the training labels hold a single class ({present.tolist()}); need at least two.")
    if len(present) != k:
        missing = sorted(set(range(k)) - set(present.tolist()))
        raise DataError(f"{path}: labels must be 0..K-1 with every class in train; labels go up to {k - 1} but "
                        f"classes {missing} have no training image. Relabel them consecutively.")
    sizes = {ds.images.shape[1] for ds in splits.values()}
    if not all(8 <= s <= 1024 for s in sizes):
        raise DataError(f"{path}: image sizes {sorted(sizes)} px are outside what medkit fit handles (28 to 224).")


def choose_threshold(labels, probs, rule: str = "youden") -> float:
    """Return the positive-class threshold for a binary task, chosen on validation data only."""
    if rule in ("0.5", 0.5):
        return 0.5
    if rule != "youden":
        raise DataError(f"Unknown threshold rule {rule!r}; use 'youden' or '0.5'.")
    from sklearn.metrics import roc_curve

    labels, probs = np.asarray(labels), np.asarray(probs)
    if probs.ndim == 2:
        if probs.shape[1] != 2:
            return 0.5  # multi-class predicts the argmax; no threshold to choose
        probs = probs[:, 1]
    if len(np.unique(labels)) < 2:
        return 0.5
    fpr, tpr, thr = roc_curve(labels, probs)
    best = int(np.argmax(tpr - fpr))
    return float(np.clip(thr[best], 0.0, 1.0))


def cache_cut(stages, n_groups: int) -> int:
    """Return how many lower layer groups stay frozen in every stage (0: some stage trains them all)."""
    return min(st.freeze_to % n_groups if st.freeze_to < 0 else st.freeze_to for st in stages)


def data_fingerprint(splits: dict) -> str:
    """Return a sha256 of every part's images and labels, in part order: same data, same fingerprint."""
    digest = hashlib.sha256()
    for name in sorted(splits):
        ds = splits[name]
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(ds.labels).tobytes())
        digest.update(np.ascontiguousarray(ds.images).tobytes())
    return digest.hexdigest()


def _image_loaders(splits, pre, cfg: RecipeConfig):
    augment = XrayAugment(seed=cfg.seed) if cfg.augment else None
    train_dl = BatchLoader(splits["train"], cfg.batch_size, shuffle=True, seed=cfg.seed, preprocess=pre,
                           augment=augment, drop_last=len(splits["train"]) > cfg.batch_size)
    val_dl = BatchLoader(splits["val"], EVAL_BATCH, preprocess=pre)
    return train_dl, val_dl


def _cached_loaders(model, cut, splits, pre, cfg: RecipeConfig, progress: bool):
    """Return (upper part of `model`, train and val loaders over the frozen lower part's cached outputs)."""
    from .features import TensorLoader, cache_activations, split_at_group

    lower, upper = split_at_group(model, cut)
    acts = {part: cache_activations(lower, BatchLoader(splits[part], EVAL_BATCH, preprocess=pre), progress=progress)
            for part in ("train", "val")}
    train = splits["train"]
    train_dl = TensorLoader(acts["train"], train.labels, cfg.batch_size, shuffle=True, seed=cfg.seed,
                            drop_last=len(train) > cfg.batch_size)
    return upper, train_dl, TensorLoader(acts["val"], splits["val"].labels, 256)


def _check_out_dir(out_dir, overwrite: bool) -> None:
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file, not a folder; name a new folder for the checkpoint.")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise ConfigError(f"--out {out} is not empty; fit would overwrite what is there. Name a new folder, "
                          "or pass --overwrite (overwrite=True) to replace its checkpoint.")


def _load_source(data, cfg: RecipeConfig, *, carve: bool, log):
    from .data import load_source

    return load_source(data, image_size=cfg.image_size, group_by=cfg.group_by, carve=carve, log=log)


def _split_summary(source) -> dict:
    return {"report": source.report, "group_kind": source.group_kind, "notes": list(source.notes)}


def fit_recipe(data, out_dir, cfg: RecipeConfig | None = None, progress: bool = True, log=print,
               overwrite: bool = False, multi_label: bool | None = None, findings=None) -> dict:
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
            (`medkit.recipe_multilabel`); detected from the labels unless `multi_label` says so.
    """
    from .recipe_multilabel import fit_multilabel, wants_multilabel

    if findings is not None or wants_multilabel(data, multi_label):
        return fit_multilabel(data, out_dir, cfg, findings=findings, progress=progress, log=log, overwrite=overwrite)
    from .atomic import write_json
    from .checkpoint import save_checkpoint
    from .freeze import fit_stages, schedule
    from .losses import make_loss
    from .models import get_backbone, get_spec
    from .train import predict, seed_everything

    cfg = (cfg or RecipeConfig()).check()
    start = time.perf_counter()
    _check_out_dir(out_dir, overwrite)
    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    spec = get_spec(cfg.backbone)  # an unknown backbone fails here, before any data is read
    stages = schedule(cfg.freeze, cfg.epochs, cfg.lr, cfg.head_lr, n_groups=len(spec.groups))
    pre = spec.preprocess(cfg.image_size)  # a size too small for this backbone's features (ConfigError) fails here too
    source = _load_source(data, cfg, carve=True, log=log)
    splits, classes = source.splits, source.classes
    _check_labels(data, splits)
    seed_everything(cfg.seed)
    model = get_backbone(cfg.backbone, weights=cfg.weights, num_classes=len(classes))
    model = model.to(memory_format=torch.channels_last)  # about twice as fast on CPU (bench_fit_224.py)
    loss_fn = make_loss(cfg.loss, splits["train"].labels, len(classes))
    cut = cache_cut(stages, len(spec.groups)) if cfg.cache_features else 0
    if cut and not _can_cut(model):
        log(f"medkit fit: {spec.name} is not a chain of layers that can be cut; every stage runs on images")
        cut = 0
    log(f"medkit fit: {cfg.backbone} ({cfg.weights or 'random init'}) at {cfg.image_size} px, "
        f"{len(splits['train'])} train / {len(splits['val'])} val images, {cfg.epochs} epochs, freeze={cfg.freeze}"
        + (f"; layer groups 0-{cut - 1} frozen throughout: their outputs are cached once per image "
           "(no augmentation on cached features)" if cut else ""))
    if cut:
        net, train_dl, val_dl = _cached_loaders(model, cut, splits, pre, cfg, progress)
    else:
        net, (train_dl, val_dl) = model, _image_loaders(splits, pre, cfg)
    history = fit_stages(model, train_dl, val_dl, stages, weight_decay=cfg.weight_decay, loss_fn=loss_fn,
                         progress=progress, net=net)
    for row in history.rows:
        log("  " + " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
    probs, labels = predict(net, val_dl)
    threshold = choose_threshold(labels, probs, cfg.threshold) if probs.shape[1] == 2 else 0.5
    val_metrics = classification_metrics(labels, probs, threshold)
    seconds = time.perf_counter() - start
    data_info = {"path": str(Path(data).resolve()), "fingerprint": data_fingerprint(splits), "group_by": cfg.group_by,
                 "channels": int(splits["train"].channels), "cached_groups": cut}
    height, width = splits["train"].image_size
    save_checkpoint(out_dir, model, image_size=cfg.image_size, classes=classes, threshold=threshold,
                    channels=data_info["channels"], input_size=height if height == width else None, recipe=asdict(cfg), splits=_split_summary(source), data=data_info)
    metrics = {"val": val_metrics, "threshold": threshold, "train_seconds": seconds, "history": history.rows,
               "splits": _split_summary(source), "data": data_info, "recipe": asdict(cfg),
               "n": {k: len(v) for k, v in splits.items()}}
    write_json(Path(out_dir) / METRICS_FILE, metrics)  # atomic: a crash leaves the old metrics, not half a file
    return metrics


def _can_cut(model) -> bool:
    from .features import layer_chain

    try:
        layer_chain(model)
    except DataError:
        return False
    return True


def _pick_part(source, split: str, data) -> str:
    if split != "auto":
        if split not in source.splits:
            raise DataError(f"{data} has no {split!r} part; it has {sorted(source.splits)}. Pass --split with one of "
                            "them, or leave --split auto.")
        return split
    for part in ("test", "all"):
        if part in source.splits:
            return part
    raise DataError(f"{data} holds parts {sorted(source.splits)} but no test part to score; pass --split.")


def evaluate_checkpoint(ckpt_dir, data, split: str = "auto", backbone: str | None = None, batch_size: int = EVAL_BATCH,
                        n_boot: int = 1000, log=None) -> dict:
    """Return AUC, accuracy, sensitivity, specificity (with 95% bootstrap intervals), n and patients of a checkpoint.

    What is scored (`split="auto"`): the carved test part when `data` is the source the checkpoint was trained
    on (same carve, same seed); a source's own test part (a `test/` subfolder, an npz `test` split); or every
    image of a source with no split parts (a checkpoint trained on one folder, scored on another).
    """
    from .checkpoint import load_checkpoint
    from .evaluate import metrics_with_ci
    from .models import get_spec
    from .train import predict

    if split not in ("auto", "train", "val", "test", "all"):
        raise DataError(f"Unknown split {split!r}; use auto, train, val, test or all.")
    from .recipe_multilabel import check_task_matches, evaluate_multilabel

    if check_task_matches(ckpt_dir, data):
        return evaluate_multilabel(ckpt_dir, data, split, backbone=backbone, n_boot=n_boot, log=log,
                                   batch_size=batch_size)
    model, config = load_checkpoint(ckpt_dir, backbone=backbone)
    recipe = config.get("recipe", {})
    trained_on = config.get("data", {}) if isinstance(config.get("data"), dict) else {}
    same = trained_on.get("path") == str(Path(data).resolve())
    cfg = RecipeConfig(image_size=int(config["image_size"]), group_by=recipe.get("group_by", "auto"))
    source = _load_source(data, cfg, carve=same, log=log)
    if same and trained_on.get("fingerprint") not in (None, data_fingerprint(source.splits)) and log:
        log(f"warning: {data} changed since the checkpoint was trained (fingerprint differs): its carved test part "
            "may now hold images the model was trained on")
    if list(source.classes) != list(config["classes"]):
        raise DataError(f"{data} has classes {source.classes}, the checkpoint {ckpt_dir} was trained on "
                        f"{config['classes']}: they must match by name and order. Rename the class folders or "
                        "labels, or use the checkpoint trained for these classes.")
    part = _pick_part(source, split, data)
    ds = source.splits[part]
    pre = get_spec(config["backbone"]).preprocess(config["image_size"])
    probs, labels = predict(model.to(memory_format=torch.channels_last), BatchLoader(ds, batch_size, preprocess=pre))
    if probs.shape[1] != config["num_classes"]:
        raise DataError(f"The model predicts {probs.shape[1]} classes, its config says {config['num_classes']}.")
    threshold = config.get("threshold", 0.5)
    out = classification_metrics(labels, probs, threshold)
    if probs.shape[1] == 2 and min(np.bincount(labels, minlength=2)) >= 2:
        ci = metrics_with_ci(labels, probs, threshold, n_boot=n_boot, seed=0)
        out.update({k: v.estimate for k, v in ci.items()})
        out["ci95"] = {k: [round(v.low, 6), round(v.high, 6)] for k, v in ci.items()}
    elif probs.shape[1] > 2:
        out.update(_macro_sens_spec(labels, probs.argmax(1), probs.shape[1]))
    out.update({"split": part, "source": source.origin.get(part, part), "n": len(ds),
                "patients": None if ds.groups is None else int(len(np.unique(ds.groups))),
                "trained_on_this_data": same})
    return out


def _macro_sens_spec(labels, pred, k) -> dict:
    """Return one-vs-rest sensitivity and specificity averaged over the classes present (multi-class)."""
    sens = [float((pred[labels == c] == c).mean()) for c in range(k) if (labels == c).any()]
    spec = [float((pred[labels != c] != c).mean()) for c in range(k) if (labels != c).any()]
    return {"sensitivity": float(np.mean(sens)), "specificity": float(np.mean(spec))}
