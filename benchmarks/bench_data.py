"""Images per second from each medkit.data source into training batches, against a bare torch DataLoader.

    python benchmarks/bench_data.py [--n 1024] [--repeats 3] [--size 64] [--threads 2]
    python benchmarks/bench_data.py --decode-only [--xrays ../shared/data/chest_xray_224/train]

For each source it times (a) reading the files into memory once (decode) and (b) one epoch of
training batches from memory (BatchLoader: uint8 slice -> augment -> 3 channels, resize, normalise).
The baseline is a bare `torch.utils.data.DataLoader` over the same uint8 tensors with the same
preprocessing applied per batch. The last rows time one training step of efficientnet_lite0 at the
same size; the data path should deliver at least 5x what training consumes. Medians over repeats.

The decode-cache table loads the Kermany training folder (5,216 JPEGs at 224 px, from ../shared/data,
a developer copy) three ways: decoding every JPEG (cache off), a cached load (the memory-mapped .npy,
no JPEG opened) and a cached load that also reads every pixel once, with the peak RSS of each measured
in a fresh subprocess. The decode is the baseline of the ratios.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from medkit import data, models
from medkit.base.timing import median_seconds


def median_rate(fn, n_images: int, repeats: int) -> float:
    """Return the median images/s of `fn()` (which processes n_images) over `repeats` runs, after a warm-up."""
    return n_images / median_seconds(fn, repeats, warmup=1)


def epoch(loader):
    for x, _ in loader:
        x.sum()  # touch the batch so lazy work cannot be skipped


def write_sources(ds, root: Path, n_dicom: int):
    """Write the images as a class folder of PNGs, a CSV over them, and a folder of DICOM copies."""
    for i, (image, label) in enumerate(zip(ds.images, ds.labels)):
        path = root / "png" / ds.classes[label] / f"{i:05d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(path)
    lines = ["path,label,patient"] + [f"png/{ds.classes[y]}/{i:05d}.png,{ds.classes[y]},p{i // 3}"
                                      for i, y in enumerate(ds.labels)]
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    for i in range(n_dicom):
        for name in ("CT_small.dcm", "MR_small.dcm"):
            target = root / "dicom" / name[:2] / f"{i:04d}.dcm"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(data.sample_path(name), target)


XRAYS = Path(__file__).resolve().parents[2] / "shared" / "data" / "chest_xray_224" / "train"
_CHILD = """
import json, resource, sys, time
from medkit.data import from_folder
t = time.perf_counter()
if sys.argv[3] == "import":
    print(json.dumps({"seconds": 0, "n": 0, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
    sys.exit()
ds = from_folder(sys.argv[1], image_size=224, cache=sys.argv[2] == "cache")
if sys.argv[3] == "touch":
    total = int(ds.images.sum(dtype="uint64"))  # read every pixel once, as an epoch would
seconds = time.perf_counter() - t
print(json.dumps({"seconds": seconds, "n": len(ds), "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def load_in_child(root, cache: bool, touch: str) -> dict:
    """Run one folder load in a fresh Python (so peak RSS is its own) and return its seconds, count and RSS."""
    out = subprocess.run([sys.executable, "-c", _CHILD, str(root), "cache" if cache else "decode",
                          touch], check=True, capture_output=True, text=True,
                         env={**os.environ, "PYTHONWARNINGS": "ignore"})
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_decode_cache(root: Path, repeats: int):
    """Print decode vs cached-load images/s (medians) and peak RSS for a folder of JPEGs."""
    with tempfile.TemporaryDirectory() as cache:
        os.environ["MEDKIT_CACHE"] = cache
        imported = load_in_child(root, False, "import")["rss_mb"]
        load_in_child(root, True, "open")  # fills the cache (and the OS file cache, for a fair decode)
        rows = {}
        for name, cache_on, touch in (("decode every JPEG", False, "open"), ("cached: open (mmap)", True, "open"),
                                      ("cached: open + read all", True, "touch")):
            runs = [load_in_child(root, cache_on, touch) for _ in range(repeats)]
            seconds = sorted(r["seconds"] for r in runs)[len(runs) // 2]
            rows[name] = (runs[0]["n"] / seconds, seconds, max(r["rss_mb"] for r in runs))
            count = runs[0]["n"]
        size = sum(f.stat().st_size for f in Path(cache, "decoded").glob("*.npy")) / 1e6
    base = rows["decode every JPEG"][0]
    print(f"\nDecode cache: {root} ({count:,} images, "
          f"224 px); median of {repeats} fresh processes; cache file {size:,.0f} MB; other helpers may share the cores")
    print(f"{'load':<26}{'img/s':>10}{'seconds':>10}{'x decode':>10}{'peak RSS MB':>13}")
    for name, (rate, seconds, rss) in rows.items():
        print(f"{name:<26}{rate:>10,.0f}{seconds:>10.2f}{rate / base:>10.1f}{rss:>13,.0f}")
    print(f"(a Python that only imports medkit.data peaks at {imported:,.0f} MB)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1024, help="images per source")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads for data and training (0: torch's default)")
    parser.add_argument("--size", type=int, default=64, help="backbone input size")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--n-dicom", type=int, default=50, help="copies of each sample DICOM")
    parser.add_argument("--xrays", type=Path, default=XRAYS, help="class folder of JPEGs for the decode-cache table")
    parser.add_argument("--decode-only", action="store_true", help="print only the decode-cache table")
    args = parser.parse_args()
    if args.xrays.is_dir():
        bench_decode_cache(args.xrays, args.repeats)
    elif args.decode_only:
        sys.exit(f"{args.xrays} not found; pass --xrays FOLDER")
    if args.decode_only:
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    ds = data.pneumonia()["train"].subset(np.arange(args.n))
    preprocess = models.get_spec("efficientnet_lite0").preprocess(args.size)
    augment = data.Augment(rotate=10, elastic=1.0, brightness=0.1, contrast=0.1, gamma=0.1, noise=0.01)
    rows = []

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_sources(ds, root, args.n_dicom)
        npz = root / "sample.npz"
        np.savez(npz, train_images=ds.images, train_labels=ds.labels[:, None])
        sources = {
            "npz (MedMNIST)": (lambda: data.load_npz(npz), args.n),
            "folder of PNG": (lambda: data.from_folder(root / "png"), args.n),
            "CSV of PNG": (lambda: data.from_csv(root / "labels.csv"), args.n),
            "folder of DICOM": (lambda: data.from_folder(root / "dicom", image_size=28), 2 * args.n_dicom),
        }
        for name, (load, count) in sources.items():
            decode = median_rate(load, count, max(1, args.repeats // 2))
            loaded = load()
            plain = data.BatchLoader(loaded, args.batch_size, shuffle=True, preprocess=preprocess)
            augmented = data.BatchLoader(loaded, args.batch_size, shuffle=True, preprocess=preprocess,
                                         augment=augment)
            rows.append((name, decode, median_rate(lambda plain=plain: epoch(plain), len(loaded), args.repeats),
                         median_rate(lambda aug=augmented: epoch(aug), len(loaded), args.repeats)))

    images, labels = data.to_tensor(ds), torch.from_numpy(ds.labels)
    bare = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(images, labels), batch_size=args.batch_size,
                                       shuffle=True)
    bare_rate = median_rate(lambda: [preprocess(x).sum() for x, _ in bare], args.n, args.repeats)
    bare_aug = median_rate(lambda: [preprocess(augment(x.float() / 255)).sum() for x, _ in bare], args.n,
                           args.repeats)

    model = models.get_backbone("efficientnet_lite0")
    model = models.replace_head(model, "efficientnet_lite0", 2)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x, y = preprocess(images[:args.batch_size]), labels[:args.batch_size]

    def step():
        loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    train_rate = median_rate(step, args.batch_size, args.repeats)
    worst = min(min(r[2], r[3]) for r in rows)

    print(f"\nmedkit.data throughput, {args.n} images of 28 px -> batches of {args.batch_size} at {args.size} px "
          f"(3 channels, ImageNet normalisation); torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"median of {args.repeats}")
    print(f"{'source':<22}{'decode img/s':>14}{'batches img/s':>15}{'+augment img/s':>16}")
    for name, decode, plain, aug in rows:
        print(f"{name:<22}{decode:>14,.0f}{plain:>15,.0f}{aug:>16,.0f}")
    print(f"{'bare torch DataLoader':<22}{'-':>14}{bare_rate:>15,.0f}{bare_aug:>16,.0f}")
    print(f"\nBatchLoader (npz) vs bare DataLoader: {rows[0][2] / bare_rate:.1f}x plain, {rows[0][3] / bare_aug:.1f}x "
          "with augmentation")
    print(f"efficientnet_lite0 training step at {args.size} px: {train_rate:,.0f} img/s")
    print(f"slowest medkit data path / training: {worst / train_rate:.1f}x (goal >= 5x: "
          f"{'met' if worst >= 5 * train_rate else 'NOT met'})")


if __name__ == "__main__":
    main()
