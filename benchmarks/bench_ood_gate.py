"""The sanity gate of `medkit predict` / `evaluate`: false alarms on real X-rays, detection of real other images.

For each `medkit fit` checkpoint given (trained on ../shared/data/chest_xray_224/train with fit's defaults,
CLAHE included), the gate is refitted exactly as fit fits it (`fit_gate`: up to 1000 training images, seeded
by the fit seed; thresholds at the 0.99 quantile of the internal *val* part, never of a test set), and every
set below goes through the checkpoint's own reading path (resize, its contrast step, its preprocessing) in
memory, as `medkit evaluate` reads a folder:

- false alarms (should pass): the carved test part (patient-disjoint, never trained or tuned on), the second
  site (../shared/data/chest_xray_224_external_dev, 301 X-rays of another collection) and 1000 NIH
  ChestX-ray14 films (64 px, another hospital; in distribution for a chest X-ray model);
- detection (should be flagged): 550 ISIC dermoscopy photos (made grey, as a user would to pass the colour
  check), BreastMNIST ultrasound (all 780), axial slices of one brain MRI (T1, T2, FLAIR: every 3rd slice with
  brain in it), pydicom's CT and MR corpus files that medkit reads (their DICOM modality is refused anyway by
  `predict`; here their pixels are scored as if sent as PNGs), and synthetic hostile files made from test
  X-rays (black, white, grey, noise, inverted, 1/16 contrast, 1x1, a 1000x100 strip).

Each set is scored by the per-image checks (flat, low contrast, noisy, inverted, size, aspect), by each OOD
score, and by the gate as a whole (image checks or OOD). OOD scores compared (same reference, same 0.99 val
quantile): `mahalanobis`, the gate's score up to issue 23 (Ledoit-Wolf Mahalanobis on the drift monitor's
PCA features); `knn`, the distance of the L2-normalised pooled embedding to its k-th nearest training
embedding (Sun et al., ICML 2022, "Out-of-distribution detection with deep nearest neighbors").

    python benchmarks/bench_ood_gate.py --checkpoints ck0,ck1,ck2 --json ood.json

Measured (issue 23), ONE seed only: seeds 1-2 could not be trained in the time the shared 2-core machine left
(load 18-24). /work/runs/final/ck0 (seed 0, `medkit fit` defaults: 224 px, CLAHE) with `--max-per-set 300`
(the second site whole; train reference 1000 and val 522 as fit uses them). Fraction of each set flagged:

| set | n | image checks | mahalanobis | knn1 | knn10 | gate (mahalanobis) | gate (knn1) | gate (knn10) |
|---|---|---|---|---|---|---|---|---|
| internal test | 300 | 0.000 | 0.020 | 0.007 | 0.003 | 0.020 | 0.007 | 0.003 |
| second site | 301 | 0.000 | 0.007 | 0.027 | 0.020 | 0.007 | 0.027 | 0.020 |
| NIH ChestX-ray14 | 300 | 0.000 | 0.093 | 0.300 | 0.293 | 0.093 | 0.300 | 0.293 |
| ISIC dermoscopy | 300 | 0.543 | 0.503 | 0.370 | 0.847 | 0.803 | 0.687 | 0.907 |
| BreastMNIST ultrasound | 300 | 0.147 | 0.333 | 0.957 | 0.983 | 0.410 | 0.977 | 0.993 |
| brain MRI slices | 115 | 0.000 | 0.070 | 0.870 | 0.904 | 0.070 | 0.870 | 0.904 |
| pydicom CT/MR | 12 | 0.000 | 0.750 | 0.917 | 1.000 | 0.750 | 0.917 | 1.000 |
| hostile: black | 10 | 1.000 | 0.000 | 1.000 | 1.000 | 1.000 | 1.000 | 1.000 |
| hostile: white | 10 | 1.000 | 1.000 | 1.000 | 1.000 | 1.000 | 1.000 | 1.000 |
| hostile: grey | 10 | 1.000 | 1.000 | 1.000 | 1.000 | 1.000 | 1.000 | 1.000 |
| hostile: noise | 10 | 1.000 | 0.600 | 1.000 | 1.000 | 1.000 | 1.000 | 1.000 |
| hostile: inverted | 10 | 1.000 | 0.000 | 0.000 | 0.000 | 1.000 | 1.000 | 1.000 |
| hostile: contrast/16 | 10 | 0.000 | 0.000 | 0.300 | 0.300 | 0.000 | 0.300 | 0.300 |
| hostile: 1x1 | 10 | 1.000 | 1.000 | 1.000 | 1.000 | 1.000 | 1.000 | 1.000 |
| hostile: 1000x100 strip | 10 | 1.000 | 0.000 | 0.100 | 0.100 | 1.000 | 1.000 | 1.000 |

So: the k-NN score (k=10, now the default) keeps held-out false alarms at 0.3% and second-site ones at 2.0%
(Mahalanobis: 2.0% / 0.7%) and flags 85% of skin photos (Mahalanobis 50%), 98% of ultrasound (33%), 90% of
brain MRI slices (7%) and 12 of 12 CT/MR corpus images (9 of 12). Its cost: 29% of the NIH films (64 px,
another hospital, upsampled) are flagged (Mahalanobis 9%). The inverted film and the strip are caught only by
the image checks; 1/16 contrast by nothing but 3 of 10 k-NN scores (CLAHE restores the contrast before the
low-contrast check sees the image). With one seed and 10-300 images per set, read these as +-2-5 points.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from medkit.core.checkpoint import load_checkpoint  # noqa: E402
from medkit.data import BatchLoader, ImageDataset, load_source  # noqa: E402
from medkit.data.contrast import contrast_of, equalize_contrast  # noqa: E402
from medkit.data.images import resize_image  # noqa: E402
from medkit.deploy.gate import SanityGate, dataset_shapes, embed_and_predict  # noqa: E402
from medkit.models import get_spec  # noqa: E402

QUANTILE = 0.99
KS = (1, 10)
MAX_TRAIN = 1000  # fit_gate's reference size


def _shared() -> Path:
    """Return ../shared/data beside the checkout (or above a git worktree); MEDKIT_SHARED_DATA overrides."""
    if os.environ.get("MEDKIT_SHARED_DATA"):
        return Path(os.environ["MEDKIT_SHARED_DATA"])
    return next((p / "shared" / "data" for p in ROOT.parents if (p / "shared" / "data").is_dir()),
                ROOT.parent / "shared" / "data")


def _grey_file(path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("L"))


def _window(slice_: np.ndarray) -> np.ndarray:
    """Return an MRI slice as uint8 by its 1st-99th percentile window (what a user exporting PNGs would do)."""
    low, high = np.percentile(slice_, [1, 99])
    return np.clip((slice_ - low) / max(high - low, 1e-9) * 255, 0, 255).round().astype(np.uint8)


def ood_sets(shared: Path) -> dict:
    """Return {name: list of raw uint8 grey images} of the real out-of-distribution sets."""
    import nibabel as nib
    from pydicom.data import get_testdata_files

    from medkit.data.dicom import dicom_to_uint8, open_dicom

    sets = {"ISIC dermoscopy": [_grey_file(p) for p in sorted((shared / "isic_550" / "images").glob("*.jpg"))]}
    with np.load(shared / "breastmnist_64.npz") as npz:
        sets["BreastMNIST ultrasound"] = [im for part in ("train", "val", "test") for im in npz[f"{part}_images"]]
    brain = []
    for seq in ("T1", "T2", "FLAIR"):
        volume = np.asarray(nib.load(shared / "brain_mri" / f"{seq}.nii.gz").get_fdata(), np.float32)
        for k in range(0, volume.shape[2], 3):
            if (volume[:, :, k] > 0).mean() > 0.15:  # slices with brain in them, not the empty ends
                brain.append(_window(np.rot90(volume[:, :, k])))
    sets["brain MRI slices"] = brain
    corpus = []
    for path in sorted(set(get_testdata_files("*.dcm"))):
        try:
            if str(open_dicom(path, pixels=False).get("Modality", "")) not in ("CT", "MR"):
                continue
            image = dicom_to_uint8(path)
        except Exception:  # noqa: BLE001 - multi-frame, colour, or refused files: not scored
            continue
        if image.ndim == 2:
            corpus.append(image)
    sets["pydicom CT/MR"] = corpus
    return sets


def hostile_sets(xrays, rng) -> dict:
    """Return {case: images} of synthetic hostile files, one per real test X-ray given."""
    from PIL import Image

    out = {}
    for xray in xrays:
        x = xray.astype(np.float64)
        made = {"black": np.zeros_like(xray), "white": np.full_like(xray, 255), "grey": np.full_like(xray, 128),
                "noise": rng.integers(0, 256, xray.shape).astype(np.uint8), "inverted": 255 - xray,
                "contrast/16": np.clip((x - x.mean()) / 16 + 128, 0, 255).round().astype(np.uint8),
                "1x1": np.asarray(Image.fromarray(xray).resize((1, 1), Image.BILINEAR)),
                "1000x100 strip": np.asarray(Image.fromarray(xray).resize((1000, 100), Image.BILINEAR))}
        for case, image in made.items():
            out.setdefault(f"hostile: {case}", []).append(image)
    return out


def as_dataset(raw: list, size: int, contrast: str) -> tuple[ImageDataset, list]:
    """Return (the images as the checkpoint reads them: resized, contrast step; their raw shapes)."""
    images = equalize_contrast(np.stack([resize_image(np.ascontiguousarray(im), size) for im in raw]), contrast)
    return ImageDataset(images, np.zeros(len(raw), np.int64)), [im.shape[:2] for im in raw]


def _subsample(ds: ImageDataset, shapes, n: int | None, rng):
    """Return (ds, shapes) cut to `n` images drawn at random (all when n is None or larger)."""
    if not n or len(ds) <= n:
        return ds, shapes
    keep = np.sort(rng.choice(len(ds), n, replace=False))
    return ds.subset(keep), None if shapes is None else [shapes[i] for i in keep]


def run_checkpoint(ckpt: Path, data: Path, shared: Path, batch_size: int, max_per_set: int | None) -> dict:
    """Return {set: {check: fraction flagged}} for one checkpoint."""
    model, config = load_checkpoint(ckpt)
    recipe = config.get("recipe", {})
    seed, size, contrast = int(recipe.get("seed", 0)), int(config["image_size"]), contrast_of(config)
    pre = get_spec(config["backbone"]).preprocess(size)
    source = load_source(data, image_size=size, group_by=recipe.get("group_by", "auto"), carve=True,
                         log=lambda *_: None, value_range=tuple(recipe.get("value_range", (0.0, 1.0))), contrast=contrast)
    train, val, test = (source.splits[p] for p in ("train", "val", "test"))
    if len(train) > MAX_TRAIN:  # the same subset fit_gate draws
        train = train.subset(np.sort(np.random.default_rng(seed).choice(len(train), MAX_TRAIN, replace=False)))
    rng = np.random.default_rng(seed)
    # every set is read before the first forward pass: a missing file fails in seconds, not after the embeddings
    external = load_source(shared / "chest_xray_224_external_dev", image_size=size, carve=False, log=lambda *_: None,
                           contrast=contrast).splits["all"]
    sets = {"internal test": _subsample(test, dataset_shapes(test), max_per_set, rng),
            "second site": (external, dataset_shapes(external))}
    nih = [_grey_file(p) for p in sorted((shared / "nih_cxr14_1000" / "images").glob("*.png"))]
    raw_test = [_grey_file(p) for p in test.meta["paths"][:10]]
    for name, raw in {"NIH ChestX-ray14": nih, **ood_sets(shared), **hostile_sets(raw_test, rng)}.items():
        if max_per_set and len(raw) > max_per_set:
            raw = [raw[i] for i in np.sort(rng.choice(len(raw), max_per_set, replace=False))]
        sets[name] = as_dataset(raw, size, contrast)
    print(f"  {ckpt.name}: sets read: {', '.join(f'{k} {len(v[0])}' for k, v in sets.items())}", file=sys.stderr,
          flush=True)

    def embed(ds):
        return embed_and_predict(model, BatchLoader(ds, batch_size, preprocess=pre))[2]

    train_emb, val_emb = embed(train), embed(val)
    shapes = dataset_shapes(train)
    gates = {"mahalanobis": SanityGate.fit(train.images, train_emb, val.images, val_emb, train_shapes=shapes,
                                           quantile=QUANTILE, ood_method="mahalanobis"),
             **{f"knn{k}": SanityGate.fit(train.images, train_emb, val.images, val_emb, train_shapes=shapes,
                                          quantile=QUANTILE, ood_method="knn", k=k) for k in KS}}
    gate = gates["mahalanobis"]  # the image checks are the same in every gate
    out = {"seed": seed, "gate": {k: repr(g) for k, g in gates.items()},
           "thresholds": {k: float(g.ood["threshold"]) for k, g in gates.items()}}
    for name, (ds, shapes) in sets.items():
        emb = embed(ds)
        image_flags = np.array([v.flagged for v in gate.check(ds.images, None, shapes)])
        row = {"n": len(ds), "image checks": float(image_flags.mean())}
        for score, g in gates.items():
            ood = g.ood_scores(emb) > out["thresholds"][score]
            row[score] = float(ood.mean())
            row[f"gate ({score})"] = float((ood | image_flags).mean())
        out[name] = row
        print(f"  {ckpt.name} {name}: {row}", file=sys.stderr, flush=True)
    return out


def table(results: list) -> str:
    """Return the markdown table: per set, each check's flagged fraction as median [min-max] over checkpoints."""
    sets = [k for k in results[0] if isinstance(results[0][k], dict) and "n" in results[0][k]]
    columns = ["image checks", "mahalanobis", *[f"knn{k}" for k in KS], "gate (mahalanobis)", *[f"gate (knn{k})" for k in KS]]
    lines = ["| set | n | " + " | ".join(columns) + " |", "|---|---|" + "---|" * len(columns)]
    for name in sets:
        cells = []
        for col in columns:
            values = [r[name][col] for r in results]
            cells.append(f"{np.median(values):.3f} [{min(values):.3f}-{max(values):.3f}]" if len(values) > 1
                         else f"{values[0]:.3f}")
        lines.append(f"| {name} | {results[0][name]['n']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoints", required=True, help="comma-separated `medkit fit` checkpoint folders")
    parser.add_argument("--data", default=None, help="their training folder (default ../shared/data/chest_xray_224/train)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--max-per-set", type=int, default=None,
                        help="score at most this many images of each set (all of the second site's), drawn at random")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args(argv)
    shared = _shared()
    data = Path(args.data) if args.data else shared / "chest_xray_224" / "train"
    results = []
    for ckpt in args.checkpoints.split(","):
        start = time.perf_counter()
        results.append(run_checkpoint(Path(ckpt), data, shared, args.batch_size, args.max_per_set))
        print(f"{ckpt}: {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=2))
    print(f"{len(results)} checkpoint(s), seeds {[r['seed'] for r in results]}; thresholds at the {QUANTILE} quantile "
          "of each checkpoint's val part")
    print(table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
