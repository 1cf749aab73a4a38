"""What a pretrained body sees: pooled features, a linear probe on them, feature maps, filters (lesson 02)."""

import numpy as np
import torch
from torch import nn

from ..base.errors import DataError
from ..base.progress import progress as show_progress  # `progress` is these functions' on/off argument
from ..data import BatchLoader, ImageDataset, subsample
from ..evaluation.metrics import classification_metrics
from ..models import get_backbone, get_spec, split_head
from .experiment import train_and_test
from .freeze import Stage
from .train import SCORE_BATCH, seed_everything

__all__ = ["feature_extractor", "extract_features", "linear_probe", "probe_metrics", "FeatureMaps", "depth_layers",
           "first_layer_filters", "embed_2d", "budget_curve", "layer_chain", "split_at_group", "cache_activations",
           "TensorLoader"]


def feature_extractor(model, weights="DEFAULT") -> nn.Module:
    """Return a copy of a backbone (or a registry name) whose head is the identity: it outputs pooled features."""
    if isinstance(model, str):
        model = get_backbone(model, weights=weights)
    body, _ = split_head(model)
    return body.eval()


@torch.inference_mode()
def extract_features(model, dataset: ImageDataset, *, image_size: int = 64, batch_size: int = SCORE_BATCH,
                     weights="DEFAULT", progress: bool = True, device: str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """Return (features (N, D) float32, labels (N,)) of a dataset through a backbone's frozen body.

    Args:
        model: a registry name ("efficientnet_lite0") or a built backbone (its head is dropped, on a copy).
        dataset: the images; they are resized and normalised as the backbone's weights expect.
        image_size: side of the images fed to the body.
    """
    if not isinstance(dataset, ImageDataset):
        raise DataError(f"extract_features expects a medkit ImageDataset, got {type(dataset).__name__}.")
    body = feature_extractor(model, weights).to(device, memory_format=torch.channels_last)
    loader = BatchLoader(dataset, batch_size, preprocess=get_spec(body).preprocess(image_size))
    batches = show_progress(loader, "features", enabled=progress)
    feats = [body(x.to(device, memory_format=torch.channels_last)).flatten(1).float().cpu() for x, _ in batches]
    return torch.cat(feats).numpy(), dataset.labels.copy()


def linear_probe(X, y, C: float = 0.05, max_iter: int = 2000):
    """Return a fitted scikit-learn logistic regression (standardised features) on frozen features."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = np.asarray(X), np.asarray(y)
    if X.ndim != 2 or len(X) != len(y):
        raise DataError(f"linear_probe needs X (N, D) and y (N,); got {X.shape} and {y.shape}.")
    if len(np.unique(y)) < 2:
        raise DataError("linear_probe needs at least two classes among the training labels.")
    return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=max_iter)).fit(X, y)


def probe_metrics(probe, X, y, threshold: float = 0.5) -> dict:
    """Return `medkit.evaluation.classification_metrics` of a fitted probe on (X, y)."""
    return classification_metrics(y, probe.predict_proba(X), threshold)


def depth_layers(model) -> list[str]:
    """Return the last layer of each body group (stem to top): where to look at feature maps by depth."""
    return [prefixes[-1] for prefixes in get_spec(model).groups[:-1]]


class FeatureMaps:
    """Record the outputs of named layers during a forward pass; the hooks are removed on exit.

    >>> with FeatureMaps(model, ["blocks.1", "bn2"]) as fm:
    ...     model(x)
    >>> fm.maps["bn2"].shape
    """

    def __init__(self, model: nn.Module, layers):
        self.model, self.layers, self.maps, self.handles = model, list(layers), {}, []

    def __enter__(self):
        for name in self.layers:
            try:
                module = self.model.get_submodule(name)
            except AttributeError as exc:
                self.__exit__()  # hooks already placed must not outlive a failed setup
                raise DataError(f"{type(self.model).__name__} has no layer {name!r}; see model.named_modules().") from exc
            self.handles.append(module.register_forward_hook(self._hook(name)))
        return self

    def _hook(self, name):
        def hook(module, inputs, output):
            self.maps[name] = output.detach()

        return hook

    def __exit__(self, *exc):
        for handle in self.handles:
            handle.remove()
        self.handles = []
        return False


def first_layer_filters(model: nn.Module) -> np.ndarray:
    """Return the first convolution's filters as images (out, kh, kw, in), each scaled to [0, 1]."""
    conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    if conv is None:
        raise DataError(f"{type(model).__name__} has no Conv2d layer to show.")
    w = conv.weight.detach().float().permute(0, 2, 3, 1).numpy()
    lo, hi = w.min(axis=(1, 2, 3), keepdims=True), w.max(axis=(1, 2, 3), keepdims=True)
    return (w - lo) / np.maximum(hi - lo, 1e-8)


def embed_2d(X, method: str = "pca", seed: int = 0) -> np.ndarray:
    """Return a 2-D embedding of features (N, D): "pca" (fast, linear) or "tsne" (neighbourhoods)."""
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    X = StandardScaler().fit_transform(np.asarray(X, dtype=np.float64))
    if method == "pca":
        return PCA(2, random_state=seed).fit_transform(X)
    if method == "tsne":
        from sklearn.manifold import TSNE

        X50 = PCA(min(50, X.shape[1], len(X)), random_state=seed).fit_transform(X)
        return TSNE(2, init="pca", random_state=seed, perplexity=min(30.0, (len(X) - 1) / 3)).fit_transform(X50)
    raise DataError(f"Unknown embedding {method!r}; use 'pca' or 'tsne'.")


def budget_curve(splits: dict, budgets, *, seeds=(0,), backbone: str = "efficientnet_lite0", image_size: int = 32,
                 epochs_for=None, lr: float = 1e-3, scratch_lr: float | None = None,
                 methods=("probe", "finetune", "scratch"), features=None, batch_size: int = 32, progress: bool = True):
    """Return a DataFrame of test AUC against the number of labelled training images (lesson 02).

    For each budget and seed, three methods see the same stratified subset of `splits["train"]`:
    `probe` (logistic regression on frozen ImageNet features), `finetune` (the ImageNet network, all layers
    trained) and `scratch` (the same network from random init, same budget and schedule).

    Args:
        splits: {"train", "test"} ImageDatasets (e.g. `medkit.data.pneumonia()`).
        budgets: labelled-image counts; None means all of train.
        epochs_for: budget -> epochs (default: enough passes for ~200 images seen, at least 2).
        lr: fine-tuning lr; scratch_lr: the from-scratch network's own lr, chosen on validation data (a fair
            baseline is tuned too; None: `lr`). Both train for the same number of optimiser steps.
        methods: which of "probe", "finetune", "scratch" to run (e.g. only "scratch" when choosing its lr on val).
        features: (X_train, X_test), the frozen ImageNet features of train and test at `image_size` when already
            extracted; None: extract them here (only the probe needs them).
        batch_size: the largest training batch (a budget of n images trains in batches of n // 4, at least 8); a
            smaller one lowers peak memory (at 96 px a batch of 32 adds ~550 MB, of 16 about half).
    """
    import pandas as pd

    train, test = splits["train"], splits["test"]
    epochs_for = epochs_for or (lambda n: max(2, -(-200 // n)))
    if "probe" in methods:
        X_train, X_test = features or (extract_features(backbone, ds, image_size=image_size, progress=False)[0]
                                       for ds in (train, test))
    rows, jobs = [], [(b, s) for b in budgets for s in seeds]
    jobs = show_progress(jobs, "budgets x seeds", enabled=progress, leave=True)
    for budget, seed in jobs:
        index = subsample(train.labels, budget, seed)
        n = len(index)
        if "probe" in methods:
            probe = linear_probe(X_train[index], train.labels[index])
            rows.append({"method": "probe", "budget": n, "seed": seed, **probe_metrics(probe, X_test, test.labels)})
        for method, weights, method_lr in (("finetune", "DEFAULT", lr), ("scratch", None, scratch_lr or lr)):
            if method not in methods:
                continue
            seed_everything(seed)
            model = get_backbone(backbone, weights=weights, num_classes=train.num_classes)
            result = train_and_test(model, train.subset(index), test, [Stage(epochs_for(n), 0, method_lr)],
                                    image_size=image_size, batch_size=min(batch_size, max(8, n // 4)), seed=seed)
            result.pop("history")
            rows.append({"method": method, "budget": n, "seed": seed, "lr": method_lr, **result})
    return pd.DataFrame(rows)


# --- cached activations: run the frozen lower groups once, train the rest on what they output ----------------


def layer_chain(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Return the backbone as an ordered list of (name, module) whose composition is `model(x)`.

    Only architectures whose forward is a plain chain of top-level modules can be cut this way:
    timm EfficientNets (efficientnet_lite0) and torchvision ResNets.
    """
    import timm.models.efficientnet as timm_effnet
    import torchvision.models as tvm

    if isinstance(model, timm_effnet.EfficientNet):
        return [("conv_stem", model.conv_stem), ("bn1", model.bn1),
                *((f"blocks.{i}", block) for i, block in enumerate(model.blocks)),
                ("conv_head", model.conv_head), ("bn2", model.bn2), ("global_pool", model.global_pool),
                ("classifier", model.classifier)]
    if isinstance(model, tvm.ResNet):
        return [*((name, getattr(model, name)) for name in ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2",
                                                               "layer3", "layer4", "avgpool")),
                ("flatten", nn.Flatten(1)), ("fc", model.fc)]
    raise DataError(f"Cannot cut {type(model).__name__} into a frozen lower part and a trainable upper part "
                    "(only EfficientNet and ResNet backbones are chains of layers); train without cached features.")


def split_at_group(model: nn.Module, k: int) -> tuple[nn.Sequential, nn.Sequential]:
    """Return (lower, upper) sequentials sharing `model`'s modules: lower = layer groups 0..k-1, upper = the rest.

    `upper(lower(x))` equals `model(x)`; training `upper` trains `model`'s own parameters.
    """
    spec = get_spec(model)
    if not 1 <= k < len(spec.groups):
        raise DataError(f"split_at_group(k={k}): {spec.name} has {len(spec.groups)} layer groups; "
                        f"k must be in [1, {len(spec.groups) - 1}].")
    chain = layer_chain(model)
    first = spec.groups[k][0]  # the group's first layer is where the upper part starts
    names = [name for name, _ in chain]
    if first not in names:
        raise DataError(f"{spec.name}: layer group {k} starts at {first!r}, which is not a top-level layer.")
    cut = names.index(first)
    return nn.Sequential(*(m for _, m in chain[:cut])), nn.Sequential(*(m for _, m in chain[cut:]))


def cache_activations(lower: nn.Module, loader, *, dtype=torch.float16, progress: bool = False,
                      device: str = "cpu") -> torch.Tensor:
    """Return the outputs of a frozen `lower` part for every batch of `loader`, stored as `dtype` (N, C, H, W).

    Runs in eval mode (BatchNorm uses its ImageNet statistics, so the cache is deterministic), under
    `torch.inference_mode` and channels_last (see benchmarks/bench_fit_224.py for what each buys).
    float16 halves the memory; the AUC it costs is measured in benchmarks/RECIPE.md. `lower` runs on `device`;
    the cache is kept in CPU memory (a GPU's memory is for the training steps), and `TensorLoader` batches from it.
    """
    lower.eval().to(device)
    batches = show_progress(loader, "caching features", enabled=progress)
    with torch.inference_mode():
        out = [lower(x.to(device).contiguous(memory_format=torch.channels_last)).to(dtype).cpu()
               for x, _ in batches]
    return torch.cat(out).contiguous()  # cat outside inference mode: a normal tensor that may feed autograd


class TensorLoader:
    """Iterate over (x, y) batches of cached activations (N, ...) and labels (N,), seeded; x comes back as float32."""

    def __init__(self, X: torch.Tensor, y, batch_size: int = 64, *, shuffle: bool = False, seed: int = 0,
                 drop_last: bool = False):
        self.X, self.labels = X, torch.as_tensor(np.asarray(y), dtype=torch.long)
        if len(self.X) != len(self.labels):
            raise DataError(f"TensorLoader: {len(self.X)} cached activations for {len(self.labels)} labels.")
        self.batch_size, self.shuffle, self.drop_last = int(batch_size), shuffle, drop_last
        self.generator = torch.Generator().manual_seed(int(seed))

    def __len__(self) -> int:
        n = len(self.labels)
        return max(1, n // self.batch_size) if self.drop_last else -(-n // self.batch_size)

    def __iter__(self):
        n = len(self.labels)
        order = torch.randperm(n, generator=self.generator) if self.shuffle else torch.arange(n)
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            idx = order[start:start + self.batch_size]
            x = self.X[idx].float()
            yield (x.contiguous(memory_format=torch.channels_last) if x.ndim == 4 else x), self.labels[idx]
