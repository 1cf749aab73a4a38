"""Benchmark `medkit fit` with its defaults on the 224 px Kermany X-rays: held-out AUC / ACC with 95% CIs, time, RSS.

The folder holds only the official training images, so `medkit fit` carves a patient-grouped test part
(20%, seed 20240) and val (10%) out of it, and `medkit evaluate` on the same folder scores exactly that
test part, which fit never trained or tuned on. Targets (issue 13): AUC >= 0.97, ACC >= 0.93, fit <= 10 min
on the 2-core machine, peak RSS <= 2.5 GB (ru_maxrss of the fit process: what `/usr/bin/time -v` reports).
The load average and the fit's CPU seconds are printed: on a shared machine, wall time is inflated by contention.

    python benchmarks/bench_fit.py [--data PATH] [--out DIR] [--repeats 1] [-- extra medkit fit flags]
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
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "chest_xray_224" / "train"


def _run(cmd):
    """Run a medkit command; return (stdout, wall seconds, peak RSS MB so far, CPU seconds of that child)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "medkit.cli", *cmd], capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - start
    if proc.returncode:
        sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    # ru_maxrss of children is the max over all children so far: fine when fit, the biggest, runs first
    return proc.stdout, wall, after.ru_maxrss / 1024, cpu


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--out", default=None, help="checkpoint folder (default: a temporary one)")
    parser.add_argument("--repeats", type=int, default=1, help="seeds 0..N-1")
    parser.add_argument("extra", nargs="*", help="more `medkit fit` flags, after --")
    args = parser.parse_args()
    rows = []
    for seed in range(args.repeats):
        out = args.out or tempfile.mkdtemp(prefix="bench_fit_")
        load0 = os.getloadavg()[0]
        _, fit_wall, rss, fit_cpu = _run(["fit", "--data", args.data, "--out", out, "--seed", str(seed), "--quiet",
                                          "--overwrite", *args.extra])
        text, eval_wall, _, _ = _run(["evaluate", "--checkpoint", out, "--data", args.data])
        result = json.loads(text.strip().splitlines()[-1])
        val = json.loads((Path(out) / "metrics.json").read_text())["val"]
        ci = result.get("ci95", {})
        rows.append({"seed": seed, "test_auc": result["auc"], "auc_low": ci.get("auc", [float("nan")])[0],
                     "auc_high": ci.get("auc", [0, float("nan")])[1], "test_acc": result["acc"],
                     "acc_low": ci.get("acc", [float("nan")])[0], "acc_high": ci.get("acc", [0, float("nan")])[1],
                     "sens": result["sensitivity"], "spec": result["specificity"], "n_test": result["n"],
                     "patients": result.get("patients"), "val_auc": val["auc"], "fit_s": fit_wall,
                     "fit_cpu_s": fit_cpu, "eval_s": eval_wall, "peak_rss_mb": rss,
                     "load_before": load0, "load_after": os.getloadavg()[0]})
    print(f"medkit fit defaults on {args.data} {' '.join(args.extra)}; test = the held-out carve fit never saw")
    header = list(rows[0])
    print(" | ".join(f"{h:>11}" for h in header))
    for row in rows:
        print(" | ".join(f"{v:>11.4g}" if isinstance(v, float) else f"{v:>11}" for v in row.values()))
    if len(rows) > 1:
        import statistics

        print("median:", {k: round(statistics.median(r[k] for r in rows), 4) for k in header[1:]})
    ok = all(r["test_auc"] >= 0.97 and r["test_acc"] >= 0.93 and r["fit_s"] <= 600
             and r["peak_rss_mb"] <= 2560 for r in rows)
    print("targets (AUC >= 0.97, ACC >= 0.93, fit <= 600 s, <= 2560 MB):", "met" if ok else "NOT met",
          f"(cpus={os.cpu_count()}; load average > cpus means the wall time is inflated by other processes)")


if __name__ == "__main__":
    main()
