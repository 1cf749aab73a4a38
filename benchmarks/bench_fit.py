"""Benchmark `medkit fit` with its defaults on PneumoniaMNIST 28 px: held-out AUC / ACC, wall time, peak RSS.

The shared file holds only train and val, so `medkit fit` trains on train minus the fixed held-out
carve (624 images, seed 20240) and `medkit evaluate --split test` scores exactly those unseen images.
Targets (issue 4): AUC >= 0.97, ACC >= 0.90, wall <= 5 min on the 2-core machine, peak RSS <= 2 GB.
The load average is printed before and after: on a shared machine, wall time is inflated by contention.

    python benchmarks/bench_fit.py [--data PATH] [--out DIR] [--repeats 1]
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "pneumoniamnist_28_trainval.npz"


def _run(cmd):
    """Run a medkit command; return (stdout, wall seconds, peak RSS MB of that child)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "medkit.cli", *cmd], capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - start
    if proc.returncode:
        sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    # ru_maxrss of children is the max over all children so far: fine when fit, the biggest, runs first
    return proc.stdout, wall, max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--out", default=None, help="checkpoint folder (default: a temporary one)")
    parser.add_argument("--repeats", type=int, default=1, help="seeds 0..N-1")
    args = parser.parse_args()
    rows = []
    for seed in range(args.repeats):
        out = args.out or tempfile.mkdtemp(prefix="bench_fit_")
        load0 = os.getloadavg()[0]
        _, fit_wall, rss = _run(["fit", "--data", args.data, "--out", out, "--seed", str(seed), "--quiet"])
        text, eval_wall, _ = _run(["evaluate", "--checkpoint", out, "--data", args.data, "--split", "test"])
        result = json.loads(text.strip().splitlines()[-1])
        val = json.loads((Path(out) / "metrics.json").read_text())["val"]
        rows.append({"seed": seed, "test_auc": result["auc"], "test_acc": result["acc"],
                     "sens": result["sensitivity"], "spec": result["specificity"], "n_test": result["n"],
                     "val_auc": val["auc"], "fit_s": fit_wall, "eval_s": eval_wall, "peak_rss_mb": rss,
                     "load_before": load0, "load_after": os.getloadavg()[0]})
    print(f"medkit fit defaults on {Path(args.data).name}; test = the held-out carve fit never saw")
    header = list(rows[0])
    print(" | ".join(f"{h:>11}" for h in header))
    for row in rows:
        print(" | ".join(f"{v:>11.4g}" if isinstance(v, float) else f"{v:>11}" for v in row.values()))
    if len(rows) > 1:
        import statistics

        print("median:", {k: round(statistics.median(r[k] for r in rows), 4) for k in header[1:]})
    ok = all(r["test_auc"] >= 0.97 and r["test_acc"] >= 0.90 and r["fit_s"] + r["eval_s"] <= 300
             and r["peak_rss_mb"] <= 2048 for r in rows)
    print("targets (AUC >= 0.97, ACC >= 0.90, <= 300 s, <= 2048 MB):", "met" if ok else "NOT met",
          f"(cpus={os.cpu_count()}; load average > cpus means the wall time is inflated by other processes)")


if __name__ == "__main__":
    main()
