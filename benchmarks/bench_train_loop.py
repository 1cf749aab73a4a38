"""Benchmark `medkit.core.train.fit` against a bare PyTorch loop: same model, data, batch size; images/s.

Both loops run side by side in one process, alternating, `--repeats` times each; the table shows the
median images/s and the ratio (target: medkit within 10% of bare, ratio >= 0.90). Validation is off in
both so only the training step is compared; medkit's loop adds its one-cycle schedule and loss bookkeeping.

    python benchmarks/bench_train_loop.py [--backbone efficientnet_lite0] [--image-size 64] [--n 512]
"""

import argparse
import copy
import os
import statistics
import time

import torch
from torch import nn

from medkit.core.train import fit, seed_everything
from medkit.data import BatchLoader, pneumonia, subsample
from medkit.models import get_backbone, get_spec


def bare_loop(model, loader, lr):
    """The plain PyTorch loop everyone writes: AdamW, cross-entropy, no schedule."""
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=1e-4)
    loss_fn = nn.CrossEntropyLoss()
    for x, y in loader:
        loss = loss_fn(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--n", type=int, default=512, help="training images per epoch")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    seed_everything(0)
    train = pneumonia()["train"]
    train = train.subset(subsample(train.labels, args.n, 0))
    spec = get_spec(args.backbone)
    base = get_backbone(args.backbone, weights=None, num_classes=2)

    def loader():
        return BatchLoader(train, args.batch_size, shuffle=True, seed=0, preprocess=spec.preprocess(args.image_size),
                           drop_last=True)

    n_images = len(loader()) * args.batch_size
    runs = {
        "bare PyTorch": lambda m: bare_loop(m, loader(), 1e-3),
        "medkit.core.train.fit": lambda m: fit(m, loader(), None, epochs=1, lr=1e-3, progress=False),
    }
    speeds = {name: [] for name in runs}
    for run in runs.values():  # one warm-up each (allocator, oneDNN kernels)
        run(copy.deepcopy(base))
    for _ in range(args.repeats):
        for name, run in runs.items():
            model = copy.deepcopy(base)
            start = time.perf_counter()
            run(model)
            speeds[name].append(n_images / (time.perf_counter() - start))
    bare = statistics.median(speeds["bare PyTorch"])
    print(f"{args.backbone} {args.image_size} px, batch {args.batch_size}, {n_images} images/epoch, "
          f"{args.repeats} repeats, torch threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.1f}")
    print(f"{'loop':<18} | {'median img/s':>12} | {'min':>7} | {'max':>7} | ratio vs bare")
    for name, values in speeds.items():
        med = statistics.median(values)
        print(f"{name:<18} | {med:>12.1f} | {min(values):>7.1f} | {max(values):>7.1f} | {med / bare:.3f}")


if __name__ == "__main__":
    main()
