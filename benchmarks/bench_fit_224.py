"""Speed of `medkit fit`'s pieces at 224 px on a CPU, each against the bare PyTorch loop on the same tensors.

Rows (images/s, median over --repeats, ratio = medkit / bare):
- load: decoding the JPEG folder with PIL (bare) vs reading medkit's decoded cache (second run of
  `medkit.data.load_source`, a memory-mapped uint8 array);
- frozen-feature pass: the lower layer groups over preprocessed batches; bare = `torch.no_grad`, NCHW;
  medkit = `medkit.core.features.cache_activations` (`torch.inference_mode`, channels_last, float16 storage);
  the two mixed variants show what each change buys on its own;
- top-group training on cached features: the top layer group + head on cached activations; bare = plain
  AdamW loop; medkit = `medkit.core.freeze.fit_stages(..., net=upper)` over a `TensorLoader` (one-cycle, bookkeeping);
- full fine-tuning on images: every group trains; bare = NCHW model; medkit = channels_last model in
  `medkit.core.train.fit`. Its images/s against the cached row is why `medkit fit` caches.
Both sides of a row run alternately in one process; other processes may share the cores (load printed).

    python benchmarks/bench_fit_224.py [--threads 2] [--n 256] [--repeats 3]
"""

import argparse
import copy
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _kermany import DEFAULT_DATA, decode  # noqa: E402
from bench_train_loop import bare_loop  # noqa: E402

from medkit.core.features import TensorLoader, cache_activations, split_at_group  # noqa: E402
from medkit.core.freeze import Stage, fit_stages  # noqa: E402
from medkit.core.train import fit, seed_everything  # noqa: E402
from medkit.models import get_backbone, get_spec  # noqa: E402


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def compare(name, n_images, bare, medkit, repeats, extra=()):
    """Run bare and medkit (and any extra (label, fn)) alternately; return table rows of images/s."""
    runs = {"bare": bare, "medkit": medkit, **dict(extra)}
    for fn in runs.values():  # warm-up: allocator, oneDNN kernels
        fn()
    speeds = {label: [] for label in runs}
    for _ in range(repeats):
        for label, fn in runs.items():
            speeds[label].append(n_images / timed(fn))
    base = statistics.median(speeds["bare"])
    return [(name, label, statistics.median(v), statistics.median(v) / base) for label, v in speeds.items()]


def load_rows(args):
    """Decode with PIL vs medkit's decoded cache on the whole folder."""
    try:
        from medkit.data import load_source
    except ImportError:
        return [("load", "medkit cache", float("nan"), float("nan"))]
    n = len(load_source(args.data, carve=False).splits["all"])  # first run fills the cache
    bare_s = [decode(args.data)[3] for _ in range(args.repeats)]
    cached_s = [timed(lambda: load_source(args.data, carve=False)) for _ in range(args.repeats)]
    bare = n / statistics.median(bare_s)
    cached = n / statistics.median(cached_s)
    return [("load", "bare (PIL decode)", bare, 1.0), ("load", "medkit (decoded cache)", cached, cached / bare)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--n", type=int, default=256, help="images per timed pass (feature pass, cached training)")
    parser.add_argument("--n-full", type=int, default=64, help="images per timed full fine-tuning pass")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--cut", type=int, default=3, help="frozen layer groups (3: the top group and head train)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-load", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    seed_everything(0)
    load0 = os.getloadavg()[0]
    rows = [] if args.skip_load else load_rows(args)

    images, labels, _, _ = decode(args.data, args.n // 2)
    pre = get_spec("efficientnet_lite0").preprocess(args.image_size)
    x = torch.cat([pre(torch.from_numpy(images[i:i + 64]).unsqueeze(1)) for i in range(0, len(images), 64)])
    y = torch.from_numpy(labels)
    base = get_backbone("efficientnet_lite0", num_classes=2).eval()
    cl = copy.deepcopy(base).to(memory_format=torch.channels_last)
    lower_nchw, _ = split_at_group(base, args.cut)
    lower_cl, _ = split_at_group(cl, args.cut)
    batches = [(x[i:i + 64], y[i:i + 64]) for i in range(0, len(x), 64)]

    def feature_pass(lower, mode, fmt):
        def run():
            with mode():
                for xb, _ in batches:
                    lower(xb.contiguous(memory_format=fmt))
        return run

    rows += compare("frozen-feature pass", len(x), feature_pass(lower_nchw, torch.no_grad, torch.contiguous_format),
                    lambda: cache_activations(lower_cl, batches), args.repeats,
                    extra=[("no_grad + channels_last", feature_pass(lower_cl, torch.no_grad, torch.channels_last)),
                           ("inference_mode, NCHW",
                            feature_pass(lower_nchw, torch.inference_mode, torch.contiguous_format))])

    acts = cache_activations(lower_cl, batches)
    acts32 = acts.float()
    cached_batches = [(acts32[i:i + 64], y[i:i + 64]) for i in range(0, len(y), 64)]

    def cached_bare():
        model = copy.deepcopy(base)
        bare_loop(split_at_group(model, args.cut)[1], cached_batches, 1e-3)

    def cached_medkit():
        model = copy.deepcopy(cl)
        fit_stages(model, TensorLoader(acts, y, 64, shuffle=True), None, [Stage(1, args.cut, 1e-3)], progress=False,
                   net=split_at_group(model, args.cut)[1])

    rows += compare(f"top-group training (groups {args.cut}+ on cached features)", len(y), cached_bare,
                    cached_medkit, args.repeats)

    full = [(x[i:i + 32], y[i:i + 32]) for i in range(0, args.n_full, 32)]
    n_full = sum(len(b[1]) for b in full)

    def full_medkit():
        fit(copy.deepcopy(cl), full, None, epochs=1, lr=1e-3, progress=False)

    rows += compare("full fine-tuning on images", n_full, lambda: bare_loop(copy.deepcopy(base), full, 1e-3), full_medkit,
                    args.repeats)
    print(f"efficientnet_lite0 at {args.image_size} px, torch threads {args.threads}, {args.repeats} repeats, "
          f"{len(x)} images per pass ({n_full} for full fine-tuning), cut after group {args.cut - 1}; "
          f"load average {load0:.1f} before, {os.getloadavg()[0]:.1f} after")
    print(f"| {'step':<52} | {'loop':<26} | {'images/s':>9} | {'ratio vs bare':>13} |")
    print(f"|{'-' * 54}|{'-' * 28}|{'-' * 11}|{'-' * 15}|")
    for step, label, speed, ratio in rows:
        print(f"| {step:<52} | {label:<26} | {speed:>9.1f} | {ratio:>13.2f} |")


if __name__ == "__main__":
    main()
