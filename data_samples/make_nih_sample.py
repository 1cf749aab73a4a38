"""Rebuild data_samples/nih_cxr14/ from the NIH ChestX-ray14 development subset (developer tool; the kit never runs it).

    python data_samples/make_nih_sample.py [--source ../shared/data/nih_cxr14_1000]

Takes EVERY image of the 1,000-image subset (64 x 64, stored RGB with grey content), writes it as an 8-bit grey PNG
(lossless: the three channels are equal, so the pixels are unchanged) under its original NIH file name, copies
`metadata.csv` unchanged, and rewrites the `nih_cxr14/` lines of SHA256SUMS. Same Pillow version, same bytes.
"""

import argparse
import hashlib
import shutil
from pathlib import Path

import numpy as np
from make_chest_xray_sample import HERE, replace_sums
from PIL import Image

DEFAULT_SOURCE = HERE.parent.parent / "shared" / "data" / "nih_cxr14_1000"
FOLDER = "nih_cxr14"  # medkit.data.findings.NIH_SAMPLE


def _line(dest: Path) -> str:
    """Return the SHA256SUMS line of `dest` (relative to data_samples/)."""
    return f"{hashlib.sha256(dest.read_bytes()).hexdigest()}  {dest.relative_to(HERE).as_posix()}"


def write_grey(path: Path, dest: Path) -> str:
    """Write `path` as an 8-bit grey PNG at `dest`, refusing a colour image; return its SHA256SUMS line."""
    with Image.open(path) as img:
        rgb = np.asarray(img.convert("RGB"))
    if not (rgb == rgb[..., :1]).all():
        raise SystemExit(f"{path} has colour content; the grey conversion would change its pixels.")
    Image.fromarray(rgb[..., 0], "L").save(dest, "PNG", optimize=True)
    return _line(dest)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    args = parser.parse_args()
    if not (args.source / "metadata.csv").is_file() or not (args.source / "images").is_dir():
        raise SystemExit(f"{args.source} has no metadata.csv and images/; pass --source.")
    out = HERE / FOLDER
    shutil.rmtree(out, ignore_errors=True)
    (out / "images").mkdir(parents=True)
    sums = [write_grey(path, out / "images" / path.name) for path in sorted((args.source / "images").glob("*.png"))]
    shutil.copyfile(args.source / "metadata.csv", out / "metadata.csv")
    sums.append(_line(out / "metadata.csv"))
    replace_sums(f"{FOLDER}/", sums)
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"{len(sums) - 1} images, {total / 1e6:.2f} MB in {out}")


if __name__ == "__main__":
    main()
