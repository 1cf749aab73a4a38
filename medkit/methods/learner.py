"""fastai integration: a `Learner` for a medkit dataset and backbone, with layer groups and clinical metrics.

`fine_tune`, `freeze_to`, `lr_find` and fastai's progress bars then work as fastai users expect
(lesson 03). The images stay uint8 in memory; a callback resizes and normalises each batch as the
backbone's weights expect (and augments training batches), exactly as `medkit.data.BatchLoader` does.
"""

# ruff: noqa: E402  (the extra is checked first, so a missing one gives the pip command, not an ImportError)

from pathlib import Path

from ..base._optional import require

require("fastai", "fastai", "medkit.methods.learner (lesson 03's fastai Learner)")

import fastai.callback.progress  # noqa: F401  (adds fastai's progress bars to every Learner)
import fastai.callback.schedule  # noqa: F401  (adds fit_one_cycle, fine_tune and lr_find to Learner)
import numpy as np
import torch
from fastai.callback.core import Callback

from ..base.errors import DataError
from ..data import ImageDataset, load_splits, to_tensor
from ..models import get_backbone, get_spec, parameter_groups

__all__ = ["medical_learner", "medical_metrics", "layer_group_splitter", "PreprocessCallback", "epoch_metrics"]


def layer_group_splitter(model) -> list:
    """Return the parameters of each registry layer group (fastai's `splitter` contract), stem first."""
    return [[p for _, p in group] for group in parameter_groups(model)]


def medical_metrics(num_classes: int = 2) -> list:
    """Return fastai metrics: AUROC, balanced accuracy and, for two classes, sensitivity and specificity."""
    import sklearn.metrics as skm
    from fastai.metrics import AccumMetric, ActivationType, BalancedAccuracy, RocAuc, RocAucBinary

    if num_classes == 2:
        def recall(pos, name):
            return AccumMetric(skm.recall_score, dim_argmax=-1, to_np=True, invert_arg=True, pos_label=pos,
                               zero_division=0, name=name)

        auc = RocAucBinary()
        auc._name = "auroc"
        return [auc, BalancedAccuracy(), recall(1, "sensitivity"), recall(0, "specificity")]
    auc = RocAuc(multi_class="ovr")
    auc.activation = ActivationType.Softmax
    auc._name = "auroc"
    return [auc, BalancedAccuracy()]


class PreprocessCallback(Callback):
    """Turn uint8 batches into what the backbone expects; augment only while training."""

    order = -10  # before anything that looks at the inputs

    def __init__(self, preprocess, augment=None):
        self.preprocess, self.augment = preprocess, augment

    def before_batch(self):
        x = self.xb[0]
        if self.augment is not None and self.training:
            x = self.augment(x.float() / 255.0)
        self.learn.xb = (self.preprocess(x),)


def _dataset(ds: ImageDataset):
    return torch.utils.data.TensorDataset(to_tensor(ds), torch.from_numpy(ds.labels))


def medical_learner(splits, backbone: str = "efficientnet_lite0", *, image_size: int = 64, batch_size: int = 64,
                    weights="DEFAULT", loss_func=None, augment=None, lr: float = 2e-3, wd: float = 1e-4,
                    seed: int = 0, path=None, freeze: bool = True):
    """Return a fastai `Learner` for a medkit dataset and a registry backbone.

    Args:
        splits: {"train": ImageDataset, "val": ImageDataset, ...} (e.g. `medkit.data.pneumonia()`), or the
            path of a MedMNIST `.npz` (split as `medkit fit` does).
        backbone: a registry name; its layer groups become the Learner's param groups, so
            `learn.freeze_to(k)` freezes the same groups as `medkit.core.freeze.freeze_to(model, k)`.
        image_size: side of the images fed to the backbone.
        weights: "DEFAULT" (ImageNet) or None; a pretrained Learner starts frozen, like `vision_learner`.
        loss_func: defaults to cross-entropy.
        augment: a float-batch augmentation applied to training batches (e.g. `medkit.data.Augment.xray()`).
    """
    from fastai.data.core import DataLoaders
    from fastai.data.load import DataLoader
    from fastai.learner import Learner
    from fastai.losses import CrossEntropyLossFlat

    if isinstance(splits, (str, Path)):
        splits = load_splits(splits)[0]
    if not isinstance(splits, dict) or not {"train", "val"} <= set(splits):
        raise DataError("medical_learner needs {'train': ImageDataset, 'val': ImageDataset} or a MedMNIST .npz path.")
    train, val = splits["train"], splits["val"]
    num_classes = train.num_classes
    if val.labels.max() >= num_classes:
        raise DataError(f"Validation label {val.labels.max()} is out of range for {num_classes} training classes.")
    spec = get_spec(backbone)
    torch.manual_seed(seed)
    np.random.seed(seed)
    model = get_backbone(spec.name, weights=weights, num_classes=num_classes)
    train_dl = DataLoader(_dataset(train), bs=batch_size, shuffle=True, drop_last=len(train) > batch_size, num_workers=0)
    train_dl.rng.seed(seed)  # fastai shuffles with its own random.Random
    dls = DataLoaders(train_dl, DataLoader(_dataset(val), bs=max(batch_size, 128), num_workers=0), path=path or ".")
    cb = PreprocessCallback(spec.preprocess(image_size), augment)
    learn = Learner(dls, model, loss_func=loss_func or CrossEntropyLossFlat(), lr=lr, wd=wd,
                    splitter=layer_group_splitter, metrics=medical_metrics(num_classes), cbs=[cb])
    if weights is not None and freeze:
        learn.freeze()
    return learn


def epoch_metrics(learn) -> list[dict]:
    """Return one {name: value} dict per epoch fastai's recorder logged, so lessons read metrics by name, not position."""
    names = [name for name in learn.recorder.metric_names if name not in ("epoch", "time")]
    rows = [dict(zip(names, map(float, values))) for values in learn.recorder.values]
    if rows and len(rows[-1]) != len(learn.recorder.values[-1]):
        raise DataError(f"fastai logged {len(learn.recorder.values[-1])} values per epoch for the names {names}.")
    return rows
