"""Grad-CAM cost per image, batched, against one forward+backward pass of the same model.

    python benchmarks/bench_cam.py [--backbone efficientnet_lite0] [--image-size 64] [--batch 1 16 64] [--repeats 5]

Prints medians of seconds per image and their ratio to the baseline (target: Grad-CAM <= 1.5x on
efficientnet_lite0 at 64 px). The baseline is what training does per batch: forward, then backward
of the class scores into every parameter. Run it on a quiet machine: other processes inflate all rows.
"""

import argparse

import torch

from medkit import cam, models
from medkit.base.timing import median_seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: the workshop's one core)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = models.get_backbone(args.backbone, weights=None, num_classes=2).eval()
    scratch = cam.ScratchGradCAM(model)

    def forward_backward(x):
        model.zero_grad(set_to_none=True)
        logits = model(x)
        logits.gather(1, logits.argmax(1, keepdim=True)).sum().backward()
        model.zero_grad(set_to_none=True)

    rows = []
    for n in args.batch:
        x = torch.randn(n, 3, args.image_size, args.image_size)
        base = median_seconds(lambda x=x: forward_backward(x), args.repeats) / n
        rows.append((n, "forward+backward (baseline)", base, 1.0))
        for name, method in [("Grad-CAM, pytorch-grad-cam", "gradcam"), ("Grad-CAM++, pytorch-grad-cam", "gradcam++"),
                             ("EigenCAM, pytorch-grad-cam", "eigencam"), ("Grad-CAM, medkit ScratchGradCAM", None)]:
            if method is None:
                t = median_seconds(lambda x=x: scratch(x), args.repeats) / n
            else:
                t = median_seconds(lambda x=x, m=method, n=n: cam.cams(model, x, m, batch_size=n), args.repeats) / n
            rows.append((n, name, t, t / base))
    print(f"{args.backbone} at {args.image_size} px, {torch.get_num_threads()} thread(s), median of {args.repeats}")
    print(f"{'batch':>5}  {'method':<33} {'ms/image':>9} {'x baseline':>10}")
    for n, name, t, ratio in rows:
        print(f"{n:>5}  {name:<33} {t * 1e3:>9.2f} {ratio:>10.2f}")


if __name__ == "__main__":
    main()
