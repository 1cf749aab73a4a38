"""Run each lesson as a Binder student would (one CPU core, one thread) and print wall time and the kernel's peak RSS.

    python benchmarks/bench_notebooks.py [--profile workshop] [--lessons 00 01 ...]
    python benchmarks/bench_notebooks.py --threads default --times medkit/course/lesson_times.json --lessons 03

`--threads default` leaves OMP/MKL threads and the core mask as a student's laptop has them (not pinned, not
one thread). `--times FILE` adds each lesson's time per `##` section (from papermill's per-cell durations in
the executed notebook) to that JSON, one lesson at a time, keeping the lessons already in it; then
`python -m medkit.course.blocks` renders the file into each lesson's header cell and the README's lesson list.

Wall time on a shared machine says more about the other users than about the lesson, so the kernel's CPU time
(user + sys from /proc, its waited-for children included) is sampled with the wall clock, and each section's CPU
seconds are read off that timeline at its cells' papermill start and end times. When the machine's mean 1-minute
load over the run is above its cores, the JSON's `basis` is "cpu": the times rendered are CPU seconds divided by
the threads the kernel could run at once (1 when pinned, else the cores it may use), an estimate of an idle
machine's wall time, and a lower bound (low for code that runs on one thread only, and waiting for the disk is
not CPU time); otherwise `basis` is "wall".

Each notebook runs in its own papermill process pinned to one core. The memory that counts is the
kernel's, where the lesson's code runs (the papermill client is a separate process of ~100 MB that a
student's JupyterLab does not have): the peak is the kernel's own high-water mark (VmHWM in
/proc/PID/status, kept by Linux, read until the kernel exits), not the largest of all child processes.
Budget (issue 16, mybinder guarantees 1 GB): <= 5 min and <= 1 GB per notebook, each in its own kernel.

Run it where torch is the CPU build, as on Binder: PyPI's default (CUDA) build loads its CUDA libraries and
triton into every kernel, about 350 MB that Binder never holds (the lesson imports peak at 838 MB with
2.14.1+cu130 against 492 MB with 2.13.0+cpu, measured here). The script prints which build it ran. A CPU
build beside a CUDA install, without touching it:

    python -m venv --system-site-packages /tmp/cpu
    /tmp/cpu/bin/pip install torch==2.14.1+cpu torchvision==0.29.1+cpu --index-url https://download.pytorch.org/whl/cpu
    /tmp/cpu/bin/python benchmarks/bench_notebooks.py --keep /tmp/lessons   # then check the claims on the kept runs
"""

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy

ROOT = Path(__file__).resolve().parents[1]
BUDGET_S, BUDGET_MB = 300, 1024


def _children() -> dict[int, list[int]]:
    """Return {parent pid: child pids} for every process, from /proc."""
    tree = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue  # exited meanwhile
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def _descendants(pid: int) -> list[int]:
    tree, out, todo = _children(), [], [pid]
    while todo:
        kids = tree.get(todo.pop(), [])
        out += kids
        todo += kids
    return out


def _hwm_mb(pid: int) -> float | None:
    """Return a process's peak resident memory so far (VmHWM) in MB, or None once it has exited."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _cpu_s(pid: int) -> float | None:
    """Return a process's CPU seconds so far (user + sys, its waited-for children included), or None once it has exited."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")  # utime stime cutime cstime


def _is_kernel(pid: int) -> bool:
    try:
        return b"ipykernel" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def torch_build() -> str:
    """Return one line naming the torch build this Python (and so every kernel it starts) imports."""
    probe = ("import importlib.util, torch\ncuda = torch.version.cuda\n"
             "try:\n    triton = importlib.util.find_spec('triton') is not None\n"
             "except ImportError:  # an import hook that hides it\n    triton = False\n"
             "print(torch.__version__, 'CUDA ' + cuda if cuda else 'CPU', triton, sep='|')")
    try:
        version, kind, triton = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                                               check=True).stdout.strip().split("|")
    except (subprocess.CalledProcessError, ValueError):
        return "torch: could not be imported"
    if kind == "CPU" and triton == "False":
        return f"torch {version} (CPU build, as on Binder)"
    return (f"torch {version} ({kind} build{', triton importable' if triton == 'True' else ''}): peaks include "
            "CUDA libraries or triton that Binder's CPU build never loads (about 350 MB); see the docstring")


def cpu_between(timeline: list[list[float]], start: float, end: float) -> float:
    """Return the CPU seconds a [[unix time, CPU seconds], ...] timeline spent from `start` to `end` (interpolated)."""
    times, cpus = [t for t, _ in timeline], [c for _, c in timeline]
    return float(numpy.interp(end, times, cpus) - numpy.interp(start, times, cpus))


def section_times(executed, timeline: list[list[float]] | None = None) -> list[dict]:
    """Return [{"title", "seconds"(, "cpu_s")}] of an executed notebook: code cells' papermill durations per `##` heading.

    Code before the first `##` heading counts as "Setup"; a markdown cell holding several `##` headings opens the
    last of them (the code after it belongs there). With the kernel's CPU `timeline`, each section also gets the
    CPU seconds the kernel spent between its cells' start and end times.
    """
    sections = [{"title": "Setup", "seconds": 0.0, "cpu_s": 0.0}]
    for cell in json.loads(Path(executed).read_text())["cells"]:
        source = "".join(cell["source"])
        if cell["cell_type"] == "markdown":
            heads = [line[3:].strip() for line in source.splitlines() if line.startswith("## ")]
            if heads:
                sections.append({"title": heads[-1], "seconds": 0.0, "cpu_s": 0.0})
            continue
        run = cell.get("metadata", {}).get("papermill", {})
        sections[-1]["seconds"] += float(run.get("duration") or 0.0)
        if timeline and run.get("start_time") and run.get("end_time"):
            start, end = (datetime.datetime.fromisoformat(run[k]).timestamp() for k in ("start_time", "end_time"))
            sections[-1]["cpu_s"] += cpu_between(timeline, start, end)
    rounded = [dict(s, seconds=round(s["seconds"], 1), cpu_s=round(s["cpu_s"], 1)) for s in sections]
    if not timeline:
        rounded = [{k: v for k, v in s.items() if k != "cpu_s"} for s in rounded]
    return [s for s in rounded if s["seconds"] > 0 or s["title"] != "Setup"]


def _commit() -> str:
    try:
        return subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def usable_threads(threads: str) -> int:
    """Return how many threads a lesson's kernel can run at once: 1 when pinned, else the cores it may use."""
    return 1 if threads == "1" else len(os.sched_getaffinity(0))


def write_times(path: Path, stem: str, result: dict, sections: list[dict], profile: str, threads: str, build: str) -> None:
    """Add (or replace) one lesson's measured times in the JSON that medkit.course.blocks renders.

    `basis` says which number the lesson's header shows: "wall" (the machine was not busier than its cores) or
    "cpu" (CPU seconds / `usable_threads`, the estimate for a machine that was).
    """
    table = json.loads(path.read_text()) if path.exists() else {"lessons": {}}
    load, cpus = result.get("load_avg", 0.0), os.cpu_count()
    table["lessons"][stem[:2]] = {
        "notebook": stem, "wall_s": round(result["wall_s"], 1), "cpu_s": round(result["cpu_s"], 1),
        "basis": "cpu" if load > cpus else "wall", "usable_threads": usable_threads(threads),
        "peak_mb": round(result["peak_mb"]), "sections": sections, "profile": profile, "threads": threads,
        "torch": build, "cpus": cpus, "load_avg": round(load, 2), "machine": platform.machine(), "commit": _commit(),
        "date": datetime.date.today().isoformat()}
    table["lessons"] = dict(sorted(table["lessons"].items()))
    path.write_text(json.dumps(table, indent=1, ensure_ascii=False) + "\n")


def run_one(path: str, profile: str, out_dir: str) -> None:
    """Child mode: run one notebook with papermill and print wall time and the kernel's and client's peak RSS as JSON."""
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    log = Path(out_dir) / "papermill.log"  # a file, not a pipe: a chatty lesson cannot fill it and stall the run
    with open(log, "w") as log_file:
        proc = subprocess.Popen([sys.executable, "-m", "papermill", path, str(Path(out_dir) / Path(path).name),
                                 "-p", "PROFILE", profile, "-p", "OUTPUT_DIR", out_dir, "--cwd", out_dir,
                                 "--no-progress-bar"], stdout=log_file, stderr=subprocess.STDOUT)
        kernel_mb, client_mb, kernel_cpu, kernels, timeline, loads = 0.0, 0.0, {}, set(), [], []
        while proc.poll() is None:
            client_mb = max(client_mb, _hwm_mb(proc.pid) or 0.0)
            for pid in _descendants(proc.pid):
                if _is_kernel(pid):
                    kernels.add(pid)
                    kernel_mb = max(kernel_mb, _hwm_mb(pid) or 0.0)
                    kernel_cpu[pid] = _cpu_s(pid) or kernel_cpu.get(pid, 0.0)  # the last reading before it exits
            timeline.append([time.time(), sum(kernel_cpu.values())])
            loads.append(os.getloadavg()[0])
            time.sleep(0.2)
    wall = time.perf_counter() - start
    stderr = log.read_text()
    load_avg = sum(loads) / max(1, len(loads))  # mean 1-minute load over the run: how busy the machine was
    print(json.dumps({"wall_s": wall, "cpu_s": sum(kernel_cpu.values()), "peak_mb": kernel_mb, "client_mb": client_mb,
                      "kernels": len(kernels), "load_avg": load_avg, "timeline": timeline, "ok": proc.returncode == 0,
                      "error": stderr.strip().splitlines()[-1] if proc.returncode else ""}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="workshop")
    parser.add_argument("--lessons", nargs="*", help="lesson numbers to run, e.g. 03 05 (default: all)")
    parser.add_argument("--core", type=int, default=0, help="CPU core to pin the notebooks to (default: %(default)s)")
    parser.add_argument("--keep", help="keep each run's outputs (metrics.json, executed notebook) under this folder")
    parser.add_argument("--threads", choices=["1", "default"], default="1",
                        help="1: one thread pinned to --core (Binder); default: the libraries' own threads, unpinned")
    parser.add_argument("--times", type=Path, help="add each lesson's per-section times to this JSON")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        return run_one(args.one, args.profile, args.out)
    env = {**os.environ, "MEDKIT_OFFLINE": "1"}
    if args.threads == "1":
        env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    else:
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env.pop(name, None)
    paths = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    paths = [p for p in paths if not args.lessons or p.stem[:2] in args.lessons]
    if not paths:
        parser.error(f"no lesson numbered {' or '.join(args.lessons)}; pass two-digit numbers such as 03")
    rows, build = [], torch_build()
    print(build, flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for path in paths:
            out = Path(args.keep or tmp).resolve() / path.stem
            pin = ["taskset", "-c", str(args.core)] if args.threads == "1" else []
            cmd = [*pin, sys.executable, __file__, "--one", str(path), "--profile", args.profile, "--out", str(out)]
            result = json.loads(subprocess.run(cmd, capture_output=True, text=True, env=env, check=True).stdout.strip().splitlines()[-1])
            rows.append((path.stem, result))
            executed = out / path.name
            if result["ok"] and executed.exists():
                sections = section_times(executed, result["timeline"])
                for section in sections:
                    print(f"    {section['seconds']:>7.1f} s {section['cpu_s']:>7.1f} CPU-s  {section['title']}", flush=True)
                if args.times:
                    write_times(args.times, path.stem, result, sections, args.profile, args.threads, build)
            status = "ok" if result["ok"] else f"FAILED {result['error'][:60]}"
            within = result["wall_s"] <= BUDGET_S and result["peak_mb"] <= BUDGET_MB
            print(f"{path.stem:<32} {result['wall_s']:>8.1f} s {result['cpu_s']:>7.1f} CPU-s (load {result['load_avg']:.1f}) "
                  f"{result['peak_mb']:>8.0f} MB kernel "
                  f"{result['client_mb']:>6.0f} MB client  {'within' if within else 'OVER'} budget  {status}",
                  flush=True)
    where = f"1 core (taskset -c {args.core}), 1 thread" if args.threads == "1" else "default threads, unpinned"
    print(f"\nprofile={args.profile}, {where}; budget {BUDGET_S} s and {BUDGET_MB} MB "
          f"of kernel memory per notebook; {build}")
    print(f"total {sum(r['wall_s'] for _, r in rows):.0f} s, max kernel peak {max(r['peak_mb'] for _, r in rows):.0f} MB")


if __name__ == "__main__":
    main()
