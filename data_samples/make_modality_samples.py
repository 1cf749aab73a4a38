"""Rebuild lesson 10's samples from ../shared/data (developer tool; the kit never runs it).

    python data_samples/make_modality_samples.py [--source ../shared/data]

- `breastmnist_64.npz`: BreastMNIST at 64 px (MedMNIST+), copied byte for byte.
- `isic_dermoscopy/`: the 550 ISIC dermoscopy images resized to 128 x 128 RGB (Lanczos), JPEG quality 90, with the
  original file names, and `metadata.csv` (image, benign_malignant, diagnosis, age_approx, sex).

Rewrites the matching lines of SHA256SUMS. Same Pillow version, same bytes.
"""

import argparse
import csv
import hashlib
import shutil
from pathlib import Path

from PIL import Image

HERE = Path(__file__).resolve().parent
DEFAULT_SOURCE = HERE.parent.parent / "shared" / "data"
BREAST = "breastmnist_64.npz"
ISIC = "isic_dermoscopy"
COLUMNS = ["image", "benign_malignant", "diagnosis", "age_approx", "sex"]
SIZE, QUALITY = 128, 90


def _sha(path: Path) -> str:
    return f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {path.relative_to(HERE).as_posix()}"


def build_isic(source: Path) -> list:
    """Resize the ISIC images into data_samples/isic_dermoscopy/ and return their SHA256SUMS lines."""
    out = HERE / ISIC
    shutil.rmtree(out, ignore_errors=True)
    (out / "images").mkdir(parents=True)
    with open(source / "metadata.csv", newline="") as f:
        rows = [{k: row[k] for k in COLUMNS} for row in csv.DictReader(f)]
    for row in rows:
        with Image.open(source / "images" / row["image"]) as img:
            small = img.convert("RGB").resize((SIZE, SIZE), Image.LANCZOS)
        small.save(out / "images" / row["image"], "JPEG", quality=QUALITY, optimize=True)
    with open(out / "metadata.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(sorted(rows, key=lambda r: r["image"]))
    return [_sha(p) for p in sorted(out.rglob("*")) if p.is_file()]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    args = parser.parse_args()
    shutil.copyfile(args.source / BREAST, HERE / BREAST)
    sums = [_sha(HERE / BREAST), *build_isic(args.source / "isic_550")]
    sums_file = HERE / "SHA256SUMS"
    kept = [line for line in sums_file.read_text().splitlines()
            if line and line.split()[-1] != BREAST and not line.split()[-1].startswith(f"{ISIC}/")]
    sums_file.write_text("\n".join(sorted(kept + sums, key=lambda line: line.split()[-1])) + "\n")
    total = sum(p.stat().st_size for p in (HERE / ISIC).rglob("*") if p.is_file())
    print(f"{BREAST}: {(HERE / BREAST).stat().st_size / 1e6:.1f} MB; {ISIC}/: {total / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
