"""The measurements behind `medkit fit`'s defaults: cached-feature configs on the 224 px Kermany X-rays.

Every config starts from ImageNet efficientnet_lite0 (seed 0), trains on the patient-grouped train part,
picks its threshold on val (Youden) and is scored once on the patient-grouped held-out test part (95%
stratified bootstrap intervals, `medkit.evaluation.metrics_with_ci`). The frozen lower groups run once per
image size; the caches for deeper cuts are derived from the shallower one (the same ImageNet layers in eval
mode). "minutes" = the cache passes that config needs + its training + its val/test predictions, on the
threads given (other processes may share the cores: see the load average printed).

    python benchmarks/sweep_recipe.py [--sizes 224 160] [--threads 2]
"""

import argparse
import os
import time

import numpy as np
import torch
from _kermany import carve, load

from medkit.core.features import TensorLoader, cache_activations, layer_chain, split_at_group
from medkit.core.freeze import Stage, fit_stages
from medkit.core.train import predict, seed_everything
from medkit.data import BatchLoader, ImageDataset
from medkit.evaluation.evaluate import choose_threshold, metrics_with_ci
from medkit.models import get_backbone, get_spec

# (name, cut, stages): cut = frozen groups whose outputs are cached (4: pooled features, head only)
CONFIGS = [
    ("head 10 ep", 4, [Stage(10, -1, 2e-3)]),
    ("head 1 + top1 5 ep", 3, [Stage(1, -1, 2e-3), Stage(5, 3, 2e-3)]),
    ("head 1 + top1 9 ep", 3, [Stage(1, -1, 2e-3), Stage(9, 3, 2e-3)]),
    ("head 1 + top2 3 ep", 2, [Stage(1, -1, 2e-3), Stage(3, 2, 2e-3, 3.0)]),
]


def caches(images, size, batch_size=128):
    """Return ({cut: activations}, {cut: seconds to compute it from the previous one}) for cuts 2, 3, 4."""
    model = get_backbone("efficientnet_lite0", num_classes=2).eval().to(memory_format=torch.channels_last)
    chain = [m for _, m in layer_chain(model)]
    lower2, _ = split_at_group(model, 2)
    lower3, _ = split_at_group(model, 3)
    lower4, _ = split_at_group(model, 4)
    ds = ImageDataset(images, np.zeros(len(images), int))
    acts, secs = {}, {}
    start = time.perf_counter()
    acts[2] = cache_activations(lower2, BatchLoader(ds, batch_size, preprocess=get_spec(model).preprocess(size)))
    secs[2] = time.perf_counter() - start
    for cut, lower in ((3, lower3), (4, lower4)):
        prev = cut - 1
        rest = torch.nn.Sequential(*chain[len(list(split_at_group(model, prev)[0])):len(list(lower))])
        start = time.perf_counter()
        acts[cut] = cache_activations(rest, TensorLoader(acts[prev], np.zeros(len(ds)), batch_size))
        secs[cut] = time.perf_counter() - start
    return acts, secs


def run_config(acts, labels, index, cut, stages, seed=0, batch_size=64):
    """Train one config on cached activations; return (val auc, test intervals, threshold, seconds)."""
    seed_everything(seed)
    model = get_backbone("efficientnet_lite0", num_classes=2).to(memory_format=torch.channels_last)
    _, upper = split_at_group(model, cut)
    loaders = {k: TensorLoader(acts[idx], labels[idx], 256) for k, idx in index.items()}
    train_dl = TensorLoader(acts[index["train"]], labels[index["train"]], batch_size, shuffle=True, seed=seed,
                            drop_last=True)
    start = time.perf_counter()
    fit_stages(model, train_dl, None, stages, progress=False, net=upper)
    val_p, val_y = predict(upper, loaders["val"])
    test_p, test_y = predict(upper, loaders["test"])
    seconds = time.perf_counter() - start
    threshold = choose_threshold(val_y, val_p)
    from medkit.evaluation.metrics import auc

    return auc(val_y, val_p), metrics_with_ci(test_y, test_p, threshold, seed=0), threshold, seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[224, 160])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--configs", nargs="*", default=None, help="names of CONFIGS to run (default all)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    images, labels, names = load()
    index, groups = carve(labels, names)
    print(f"threads {args.threads}, load average {os.getloadavg()[0]:.1f}; "
          + ", ".join(f"{k} {len(v)} images / {len(set(groups[v]))} patients" for k, v in index.items()))
    print("| size | config | val AUC | held-out AUC [95% CI] | accuracy [95% CI] | sensitivity | specificity | "
          "threshold | minutes |")
    print("|---|---|---|---|---|---|---|---|---|")
    for size in args.sizes:
        acts, secs = caches(images, size)
        print(f"<!-- {size} px cache seconds: {secs}; load {os.getloadavg()[0]:.1f} -->", flush=True)
        for name, cut, stages in CONFIGS:
            if args.configs and name not in args.configs:
                continue
            val_auc, ci, thr, seconds = run_config(acts[cut], labels, index, cut, stages)
            minutes = (sum(secs[c] for c in secs if c <= cut) + seconds) / 60
            print(f"| {size} | {name} | {val_auc:.4f} | {ci['auc']} | {ci['acc']} | {ci['sensitivity']} | "
                  f"{ci['specificity']} | {thr:.3f} | {minutes:.1f} |", flush=True)


if __name__ == "__main__":
    main()
