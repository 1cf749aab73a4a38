"""Peak memory of every `medkit fit` path at 224 px, each in its own process so peaks do not mix.

Rows: the cached default ("top"); --no-cache with augmentation; --no-cache --no-augment; --freeze all and
gradual (they train the lower groups, so nothing can be cached); a multi-label CSV (the NIH subset, `|`-separated
findings); a MedMNIST npz (PneumoniaMNIST, upsampled to 224 px). Columns: wall seconds and the child's peak RSS
(`ru_maxrss` from `os.wait4`, that child alone). The first fit of a source decodes its images into medkit's
cache; the later ones read that cache.

    python benchmarks/bench_fit_memory.py                      # the full sources (one fit at a time)
    python benchmarks/bench_fit_memory.py --subset 100         # 100 images per class / 200 rows: a quick run
    python benchmarks/bench_fit_memory.py --repo /work/main    # another checkout's medkit (a baseline)
    python benchmarks/bench_fit_memory.py --only no-cache,all  # some rows

A subset keeps the per-step memory (batches of 64 at 224 px), not the full data's resident images (~50 KB each).
"""

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
# ../shared/data beside the checkout, or further up from a git worktree (as tests/conftest.py finds it)
SHARED = Path(os.environ.get("MEDKIT_SHARED_DATA") or next(
    (p / "shared" / "data" for p in ROOT.parents if (p / "shared" / "data").is_dir()), ROOT.parent / "shared" / "data"))
KERMANY = SHARED / "chest_xray_224" / "train"
NIH = SHARED / "nih_cxr14_1000"
NPZ = SHARED / "pneumoniamnist_28_trainval.npz"

# name -> (source kind, extra `medkit fit` flags)
PATHS = {
    "cached": ("folder", []),
    "no-cache": ("folder", ["--no-cache"]),
    "no-cache-no-augment": ("folder", ["--no-cache", "--no-augment"]),
    "all": ("folder", ["--freeze", "all"]),
    "gradual": ("folder", ["--freeze", "gradual"]),
    "multilabel-csv": ("csv", []),
    "medmnist-npz": ("npz", []),
}


def subset_folder(folder: Path, per_class: int | None, tmp: Path) -> Path:
    """Return `folder`, or a tree of links to every k-th image of each class (`per_class` of them)."""
    if per_class is None:
        return folder
    out = tmp / "folder"
    for cls in sorted(p for p in folder.iterdir() if p.is_dir()):
        files = sorted(cls.iterdir())
        (out / cls.name).mkdir(parents=True)
        for f in files[::max(1, len(files) // per_class)][:per_class]:
            (out / cls.name / f.name).symlink_to(f)
    return out


def findings_csv(rows: int | None, tmp: Path) -> Path:
    """Write the NIH subset as a `medkit fit` CSV (path, label with `|`-separated findings, patient)."""
    with open(NIH / "metadata.csv", newline="") as f:
        table = list(csv.DictReader(f))[:rows]
    out = tmp / "findings.csv"
    with open(out, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "label", "patient"])
        writer.writerows([str(NIH / "images" / r["image"]), r["findings"], r["patient_id"]] for r in table)
    return out


def subset_npz(rows: int | None, tmp: Path) -> Path:
    """Return the PneumoniaMNIST file, or a copy holding `rows` evenly spaced images of each split."""
    if rows is None:
        return NPZ
    with np.load(NPZ) as z:
        arrays = {k: z[k][::max(1, len(z[k]) // rows)][:rows] for k in z.files}  # spaced: both classes
    out = tmp / "pneumoniamnist_subset.npz"
    np.savez(out, **arrays)
    return out


def run_child(cmd, env, cwd=None) -> tuple[float, float, int]:
    """Run `cmd`; return (wall seconds, peak RSS in MB of that child alone, exit status)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    # wait4 gives this child's own rusage; RUSAGE_CHILDREN would be the max over every child so far
    stderr = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        sys.stderr.write(stderr.decode(errors="replace")[-2000:])
    return time.perf_counter() - start, usage.ru_maxrss / 1024, proc.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subset", type=int, default=None, help="images per class (CSV / npz: rows) for a quick run")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per fit (gradual needs 3 for all its stages)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repo", default=str(ROOT), help="checkout whose medkit runs")
    parser.add_argument("--only", default=None, help="comma-separated row names (default: all of them)")
    parser.add_argument("--extra", default="", help="more `medkit fit` flags for every row, e.g. '--micro-batch 64'")
    args = parser.parse_args()
    names = args.only.split(",") if args.only else list(PATHS)
    env = {**os.environ, "PYTHONPATH": args.repo, "OMP_NUM_THREADS": str(args.threads)}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        sources = {"folder": subset_folder(KERMANY, args.subset, tmp),
                   "csv": findings_csv(None if args.subset is None else 2 * args.subset, tmp),
                   "npz": subset_npz(args.subset, tmp)}
        for name in names:
            kind, flags = PATHS[name]
            cmd = [sys.executable, "-m", "medkit.cli", "fit", "--data", str(sources[kind]), "--out", str(tmp / name),
                   "--quiet", "--overwrite", "--epochs", str(args.epochs), "--threads", str(args.threads), *flags,
                   *args.extra.split()]
            # `python -m` puts the working folder first on sys.path: run in --repo so its medkit is the one imported
            seconds, peak, code = run_child(cmd, env, cwd=args.repo)
            rows.append((name, " ".join(flags) or "(defaults)", seconds, peak, code))
            print(f"{name:<22} {seconds:7.0f} s {peak:7.0f} MB{'' if code == 0 else f'  FAILED ({code})'}",
                  file=sys.stderr, flush=True)
    load = os.getloadavg()[0]
    print(f"\nmedkit from {args.repo}; {args.subset or 'all'} images per class; {args.epochs} epochs; "
          f"{args.threads} threads; 224 px; load average {load:.1f}\n")
    print(f"| {'path':<22} | {'flags':<27} | wall s | peak RSS MB |")
    print(f"|{'-' * 24}|{'-' * 29}|-------:|------------:|")
    for name, flags, seconds, peak, code in rows:
        print(f"| {name:<22} | {flags:<27} | {seconds:6.0f} | {peak:11.0f} |" + ("" if code == 0 else " failed"))


if __name__ == "__main__":
    main()
