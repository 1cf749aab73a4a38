"""What the data audit `medkit fit` runs first costs and finds, on the Kermany training folder (5,216 JPEGs, 224 px).

Prints one table of the audit's stages (listing, sha256 + dHash on the audit's threads, pair search, checks;
median of --repeats runs, the file cache warm after the first), then the dHash distance histogram of the closest
pairs, split by whether the two files share a patient key: what NEAR_BITS (6) was chosen from. Other processes
may share the cores (load printed).

    OMP_NUM_THREADS=1 python benchmarks/bench_audit.py [--data ../shared/data/chest_xray_224/train] [--repeats 3]
"""

import argparse
import os
import statistics
import time
from collections import Counter
from pathlib import Path

import numpy as np

from medkit.data import audit
from medkit.data.fingerprints import near_pairs

DEFAULT = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "chest_xray_224" / "train"


def stages(data: Path) -> dict:
    """Return the seconds of each audit stage on `data`, and what they computed."""
    t = [time.perf_counter()]
    items, arrays, kind = audit._list_source(data, "path", "label")
    t.append(time.perf_counter())
    shas, hashes = audit._content(items, arrays, near=True)
    t.append(time.perf_counter())
    audit._check_near(items, shas, hashes, audit.NEAR_BITS)
    t.append(time.perf_counter())
    audit._check_paths(items), audit._check_identical(items, shas, kind), audit._check_parts(items, kind, False)
    audit._check_patients(items), audit._check_labels(items), audit._check_rare(items)
    t.append(time.perf_counter())
    seconds = dict(zip(("list files", "sha256 + dHash", "near pairs", "other checks"), np.diff(t)))
    return {"seconds": seconds, "items": items, "shas": shas, "hashes": hashes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--histogram-bits", type=int, default=20)
    args = parser.parse_args()
    runs = [stages(args.data) for _ in range(args.repeats)]
    last = runs[-1]
    print(f"{args.data}: {len(last['items'])} images, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"{'stage':<16}{'median s':>10}")
    for name in runs[0]["seconds"]:
        print(f"{name:<16}{statistics.median(r['seconds'][name] for r in runs):>10.2f}")
    print(f"{'total':<16}{statistics.median(sum(r['seconds'].values()) for r in runs):>10.2f}")
    items, shas = last["items"], last["shas"]
    pairs = near_pairs(np.stack(last["hashes"]), args.histogram_bits)
    rows = Counter((bits, items[i].patient == items[j].patient, shas[i] == shas[j]) for i, j, bits in pairs)
    print(f"\ndHash bits apart (of 256) for pairs within {args.histogram_bits} bits")
    print(f"{'bits':>5}{'same key':>10}{'other key':>11}{'identical':>11}")
    for bits in sorted({b for b, _, _ in rows}):
        same = sum(n for (b, k, _), n in rows.items() if b == bits and k)
        other = sum(n for (b, k, _), n in rows.items() if b == bits and not k)
        identical = sum(n for (b, _, s), n in rows.items() if b == bits and s)
        print(f"{bits:>5}{same:>10}{other:>11}{identical:>11}")


if __name__ == "__main__":
    main()
