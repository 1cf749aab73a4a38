"""Benchmark PyTorch eager against ONNX Runtime on the same exported model: median ms per batch, batch 1 and 32.

Both run the same graph (the stored preprocessing + the network) on real PneumoniaMNIST held-out images,
on the same number of CPU threads. The baseline is PyTorch eager; `speedup` = torch ms / onnx ms. The
load average is printed before and after: on a shared machine, timings are inflated by contention.

    python benchmarks/bench_latency.py [--backbones efficientnet_lite0 resnet18] [--image-size 64]
                                       [--threads 1] [--repeats 30]
"""

import argparse
import os
import tempfile
from pathlib import Path

import torch

from medkit.data import pneumonia
from medkit.deploy import export_onnx, measure_latency, verify_onnx
from medkit.models import get_backbone


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbones", nargs="+", default=["efficientnet_lite0", "resnet18"])
    parser.add_argument("--image-size", type=int, default=64, help="size the network sees (raw images are 28 px)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 32])
    args = parser.parse_args()
    images = pneumonia()["test"].images
    rows, load_before = [], os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.backbones:
            torch.manual_seed(0)
            # offline only efficientnet_lite0 has bundled weights; timing does not depend on the weights' values
            model = get_backbone(name, weights="DEFAULT" if name == "efficientnet_lite0" else None, num_classes=2)
            path = export_onnx(model, Path(tmp) / f"{name}.onnx", input_size=28, image_size=args.image_size,
                               classes=["normal", "pneumonia"])
            check = verify_onnx(model, path, images[:64])
            for row in measure_latency(model, path, images, batch_sizes=args.batch_sizes, repeats=args.repeats,
                                       threads=args.threads):
                rows.append({"backbone": name, **row, "max_prob_diff": check.max_abs_diff})
    print(f"PyTorch {torch.__version__} eager (baseline) vs ONNX Runtime; {args.image_size} px, {args.threads} "
          f"thread(s), median of {args.repeats} runs; load average {load_before:.1f} -> {os.getloadavg()[0]:.1f}")
    header = ["backbone", "batch", "torch_ms", "onnx_ms", "speedup", "torch_img_per_s", "onnx_img_per_s", "max_prob_diff"]
    print(" | ".join(f"{h:>17}" for h in header))
    for row in rows:
        print(" | ".join(f"{row[h]:>17.4g}" if isinstance(row[h], float) else f"{row[h]:>17}" for h in header))


if __name__ == "__main__":
    main()
