"""Rebuild data_samples/chest_xray/ from the Kermany training X-rays (developer tool; the kit never runs it).

    python data_samples/make_chest_xray_sample.py [--source ../shared/data/chest_xray_224/train]

Takes WHOLE patients (patient key from the file name, `medkit.data.patient_key`), seeded, until each
class holds its target count, converts to grey, resizes to 128 x 128 (Lanczos), re-encodes as JPEG
quality 90 with the original file names (they carry the patient keys and the pneumonia type), and
rewrites the `chest_xray/` lines of SHA256SUMS. Same Pillow version, same bytes.
"""

import argparse
import hashlib
import shutil
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image

from medkit.data import patient_key

HERE = Path(__file__).resolve().parent
DEFAULT_SOURCE = HERE.parent.parent / "shared" / "data" / "chest_xray_224" / "train"
TARGETS = {"NORMAL": 520, "PNEUMONIA": 780}  # ~40 % normal (the source has 26 %), so there is enough to teach
SEED, SIZE, QUALITY = 13, 128, 90


def pick_patients(folder: Path, target: int, rng) -> list:
    """Return the files of whole patients, drawn in a seeded order until `target` images are reached."""
    by_patient = defaultdict(list)
    for path in sorted(folder.glob("*.jpeg")):
        by_patient[patient_key(path.name)].append(path)
    chosen = []
    for key in rng.permutation(sorted(by_patient)):
        if len(chosen) >= target:
            break
        chosen += by_patient[key]
    return sorted(chosen)


def write_small(path: Path, dest: Path) -> str:
    """Write `path` as a 128 px grey JPEG at `dest`; return its SHA256SUMS line (relative to data_samples/)."""
    with Image.open(path) as img:
        small = img.convert("L").resize((SIZE, SIZE), Image.LANCZOS)
    small.save(dest, "JPEG", quality=QUALITY, optimize=True)
    return f"{hashlib.sha256(dest.read_bytes()).hexdigest()}  {dest.relative_to(HERE).as_posix()}"


def replace_sums(prefix: str, sums: list) -> None:
    """Rewrite the SHA256SUMS lines under `prefix` ("chest_xray/") with `sums`, every other line kept in place."""
    sums_file = HERE / "SHA256SUMS"
    lines = [line for line in sums_file.read_text().splitlines() if line]
    ours = [i for i, line in enumerate(lines) if line.split()[-1].startswith(prefix)]
    at = ours[0] if ours else len(lines)
    kept = [line for i, line in enumerate(lines) if i not in set(ours)]
    new = sorted(sums, key=lambda line: line.split()[-1])
    sums_file.write_text("\n".join(kept[:at] + new + kept[at:]) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    args = parser.parse_args()
    out = HERE / "chest_xray" / "train"
    shutil.rmtree(out, ignore_errors=True)
    rng = np.random.default_rng(SEED)
    sums = []
    for cls, target in TARGETS.items():
        (out / cls).mkdir(parents=True)
        for path in pick_patients(args.source / cls, target, rng):
            sums.append(write_small(path, out / cls / path.name))
    replace_sums("chest_xray/", sums)
    total = sum(p.stat().st_size for p in out.rglob("*.jpeg"))
    counts = {cls: len(list((out / cls).glob("*.jpeg"))) for cls in TARGETS}
    print(f"{counts}, {total / 1e6:.2f} MB in {out}")


if __name__ == "__main__":
    main()
