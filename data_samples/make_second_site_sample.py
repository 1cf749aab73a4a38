"""Rebuild data_samples/chest_xray_external/ from the second-site X-rays (developer tool; the kit never runs it).

    python data_samples/make_second_site_sample.py [--source ../shared/data/chest_xray_224_external_dev]

Takes EVERY image of the external dev half of Kermany et al.'s official test split (301 images, 203 patients,
collected apart from the training split), converts to grey, resizes to 128 x 128 (Lanczos) and re-encodes as JPEG
quality 90 with the original file names, exactly as `make_chest_xray_sample.py` does for the internal sample, then
rewrites the `chest_xray_external/` lines of SHA256SUMS. Same Pillow version, same bytes.
"""

import argparse
import shutil
from pathlib import Path

from make_chest_xray_sample import HERE, replace_sums, write_small

DEFAULT_SOURCE = HERE.parent.parent / "shared" / "data" / "chest_xray_224_external_dev"
FOLDER = "chest_xray_external"  # medkit.data.kermany.SECOND_SITE_SAMPLE


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    args = parser.parse_args()
    if not all((args.source / cls).is_dir() for cls in ("NORMAL", "PNEUMONIA")):
        raise SystemExit(f"{args.source} has no NORMAL/ and PNEUMONIA/ folders; pass --source.")
    out = HERE / FOLDER
    shutil.rmtree(out, ignore_errors=True)
    sums = []
    for cls in ("NORMAL", "PNEUMONIA"):
        (out / cls).mkdir(parents=True)
        for path in sorted((args.source / cls).glob("*.jpeg")):
            sums.append(write_small(path, out / cls / path.name))
    replace_sums(f"{FOLDER}/", sums)
    total = sum(p.stat().st_size for p in out.rglob("*.jpeg"))
    counts = {cls: len(list((out / cls).glob("*.jpeg"))) for cls in ("NORMAL", "PNEUMONIA")}
    print(f"{counts}, {total / 1e6:.2f} MB in {out}")


if __name__ == "__main__":
    main()
