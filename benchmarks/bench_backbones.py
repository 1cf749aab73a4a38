"""Forward throughput and size of the EfficientNet-Lite backbones, each at the size its ImageNet weights were trained at.

One row per backbone and thread count: parameters (millions, ImageNet head included), images/s of a
forward pass over one batch (median over --repeats rounds after a warm-up round; the backbones
alternate within a round), under `torch.inference_mode` with a channels_last model and batch, as
`medkit.core.features.cache_activations` runs it. The input is
random: throughput does not depend on pixel values. Other processes may share the cores (load printed).

    python benchmarks/bench_backbones.py [--batch 32] [--repeats 5] [--threads 1 2]
"""

import argparse
import os
import statistics
import time

import torch

from medkit.models import get_backbone, get_spec

NAMES = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")


def batch_seconds(model: torch.nn.Module, x: torch.Tensor) -> float:
    """Return the wall time of one forward pass of `model` on `x`."""
    start = time.perf_counter()
    with torch.inference_mode():
        model(x)
    return time.perf_counter() - start


def main() -> None:
    """Print one row per backbone and thread count."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    models, inputs = {}, {}
    for name in NAMES:
        size = get_spec(name).input_size
        models[name] = get_backbone(name).eval().to(memory_format=torch.channels_last)
        inputs[name] = torch.randn(args.batch, 3, size, size).contiguous(memory_format=torch.channels_last)
    print(f"torch {torch.__version__}, batch {args.batch}, median of {args.repeats}, "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"{'backbone':<20}{'size':>6}{'params (M)':>12}{'threads':>9}{'images/s':>10}")
    for threads in args.threads:
        torch.set_num_threads(threads)
        times = {name: [] for name in NAMES}
        for round_ in range(args.repeats + 1):  # round 0 warms up; backbones alternate so load drift hits all
            for name in NAMES:
                seconds = batch_seconds(models[name], inputs[name])
                if round_:
                    times[name].append(seconds)
        for name in NAMES:
            params = sum(p.numel() for p in models[name].parameters()) / 1e6
            rate = args.batch / statistics.median(times[name])
            print(f"{name:<20}{inputs[name].shape[-1]:>6}{params:>12.2f}{threads:>9}{rate:>10.1f}")


if __name__ == "__main__":
    main()
