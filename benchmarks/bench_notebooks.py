"""Run each lesson as a Binder student would (one CPU core, one thread) and print wall time and peak RSS.

    python benchmarks/bench_notebooks.py [--profile workshop] [--lessons 00 01 ...]

Each notebook runs in its own child process pinned to one core, so the peak RSS reported (the
largest process among the papermill runner and its kernel) belongs to that notebook alone.
Budget (issue: workshops on Binder): <= 5 min and < 2 GB per notebook.
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
BUDGET_S, BUDGET_MB = 300, 2048


def run_one(path: str, profile: str, out_dir: str) -> None:
    """Child mode: run one notebook with papermill and print its wall time and the kernel's peak RSS as JSON."""
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "papermill", path, str(Path(out_dir) / Path(path).name),
                           "-p", "PROFILE", profile, "-p", "OUTPUT_DIR", out_dir, "--cwd", str(Path(path).parent),
                           "--no-progress-bar"], capture_output=True, text=True)
    wall = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # kB on Linux
    print(json.dumps({"wall_s": wall, "peak_mb": peak_mb, "ok": proc.returncode == 0,
                      "error": proc.stderr.strip().splitlines()[-1] if proc.returncode else ""}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="workshop")
    parser.add_argument("--lessons", nargs="*", help="lesson numbers to run, e.g. 03 05 (default: all)")
    parser.add_argument("--core", type=int, default=0, help="CPU core to pin the notebooks to (default: %(default)s)")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        return run_one(args.one, args.profile, args.out)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MEDKIT_OFFLINE": "1"}
    paths = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    paths = [p for p in paths if not args.lessons or p.stem[:2] in args.lessons]
    if not paths:
        parser.error(f"no lesson numbered {' or '.join(args.lessons)}; pass two-digit numbers such as 03")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for path in paths:
            out = Path(tmp) / path.stem
            cmd = ["taskset", "-c", str(args.core), sys.executable, __file__, "--one", str(path), "--profile", args.profile,
                   "--out", str(out)]
            result = json.loads(subprocess.run(cmd, capture_output=True, text=True, env=env, check=True).stdout.strip().splitlines()[-1])
            rows.append((path.stem, result))
            status = "ok" if result["ok"] else f"FAILED {result['error'][:60]}"
            print(f"{path.stem:<32} {result['wall_s']:>8.1f} s {result['peak_mb']:>8.0f} MB  "
                  f"{'within' if result['wall_s'] <= BUDGET_S and result['peak_mb'] < BUDGET_MB else 'OVER'} budget  {status}",
                  flush=True)
    print(f"\nprofile={args.profile}, 1 core (taskset -c {args.core}), 1 thread; budget {BUDGET_S} s and {BUDGET_MB} MB per notebook")
    print(f"total {sum(r['wall_s'] for _, r in rows):.0f} s, max peak {max(r['peak_mb'] for _, r in rows):.0f} MB")


if __name__ == "__main__":
    main()
