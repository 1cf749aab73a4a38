"""`medkit serve` under load: 500 DX images from 10 concurrent associations, against `medkit predict` on the same files.

The node runs as `medkit serve` in its own process (onnxruntime --threads 1: the associations are the
parallelism); the senders are pynetdicom SCUs in this process, so they share the cores with the node, as a
PACS on the same box would. `medkit predict` runs in one process on the same 500 files, the way the CLI does
(one `predict_gated` call over them all, onnxruntime on every core), and once per file (the per-image latency
without a network). Both are pinned to the same cores (`--cores`, default 0,1). Images/s counts from the first
C-STORE to the last answer (the node started and warm) and from the first file read (the predictor loaded). The
node also writes each Secondary Capture and result line; the ratio of images/s is the node's overhead. On a box
other processes load, the scheduler's share decides images/s (ten busy threads get more of it than one), so the
CPU seconds each process spent per image (node: /proc utime + stime over the run; predict: process_time) are
shown too: that ratio is the overhead independent of the neighbours. Latency is the C-STORE round trip per image
as the sender sees it; peak memory is the process's VmHWM (both import torch with medkit.deploy).

The model is a random-init resnet18 taking the 128 px films and resizing to 64 px inside the graph, with a
sanity gate fitted on 48 bundled X-rays (`_serve.export_model`): random weights cost what trained ones do.

    python benchmarks/bench_serve.py            # about 3 minutes on 2 free cores

Measured 2026-12-08 on the shared 2-core development box while other sessions held its load average at 22-28
(wall-clock numbers are pessimistic and the images/s ratio favours the node's ten threads; read the CPU column):

    500 DX images (128 px, 12 bit), cores 0,1, model resnet18 -> 64 px, gated
                                         images  images/s vs predict CPU ms/image vs predict  p50 ms  p95 ms  peak MB
    medkit serve, 10 associations           500       7.2       1.45         75.5       4.44    1170    2373     1109
    medkit predict, one call                500       5.0       1.00         17.0       1.00       -       -     1139
    medkit predict, one call per file       500       3.2       0.63            -          -     311     443     1139

Per image the node spends about 4.4x the CPU of a batched `medkit predict`. A profile of the node in one thread
puts ~40% in the shared predict path run one image at a time (`read_for_model` opens each file five times:
modality, body part, pixels, raw shape), ~60% in the result: the display image decoded again, highdicom's
Secondary Capture (its IOD checks), the 512 px banner render, and the fsyncs of the capture and the result line.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _serve  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

_PREDICT = textwrap.dedent("""
    import json, resource, sys, time
    from medkit.deploy import OnnxPredictor
    from medkit.deploy.gate import onnx_gate, predict_gated
    model, files = sys.argv[1], sys.argv[2:]
    predictor = OnnxPredictor(model)
    gate = onnx_gate(predictor)
    predict_gated(predictor, files[:1], gate=gate)  # warm, as the node is
    start, cpu = time.perf_counter(), time.process_time()
    rows = predict_gated(predictor, files, gate=gate)
    batch, cpu = time.perf_counter() - start, time.process_time() - cpu
    each = []
    for f in files:
        t = time.perf_counter()
        predict_gated(predictor, [f], gate=gate)
        each.append(time.perf_counter() - t)
    print(json.dumps({"batch_s": batch, "cpu_s": cpu, "each": each, "n": len(rows),
                      "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
""")


def _peak_mb(pid: int) -> float:
    """Return a live process's peak resident memory (VmHWM) in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _cpu_s(pid: int) -> float:
    """Return the CPU seconds (user + system) a live process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_node(model: Path, files, out: Path, n_associations: int, cores: str) -> dict:
    """Start `medkit serve`, send `files` over `n_associations` at once, stop it; return the measures."""
    ready = out / "port"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(["taskset", "-c", cores, sys.executable, "-m", "medkit.cli", "serve", "--model", str(model),
                             "--out", str(out), "--port", "0", "--threads", "1", "--ready-file", str(ready)],
                            env=env, stderr=subprocess.DEVNULL)
    try:
        while not ready.is_file():
            if proc.poll() is not None:
                raise SystemExit("medkit serve exited before it was ready")
            time.sleep(0.1)
        start, cpu = time.perf_counter(), _cpu_s(proc.pid)
        statuses, latencies = _serve.send_concurrently(files, int(ready.read_text()), n_associations)
        wall, cpu = time.perf_counter() - start, _cpu_s(proc.pid) - cpu
        peak = _peak_mb(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    ok = sum(s == 0 for s in statuses)
    return {"what": f"medkit serve, {n_associations} associations", "n": ok, "images_s": ok / wall,
            "cpu_ms": 1000 * cpu / max(ok, 1),
            "p50_ms": 1000 * float(np.median(latencies)), "p95_ms": 1000 * float(np.quantile(latencies, 0.95)),
            "peak_mb": peak}


def run_predict(model: Path, files, cores: str) -> list[dict]:
    """Run `predict_gated` on `files` in one process (all at once, then one by one); return the two rows."""
    proc = subprocess.run(["taskset", "-c", cores, sys.executable, "-c", _PREDICT, str(model), *map(str, files)],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, check=True)
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    each = np.asarray(got["each"])
    return [{"what": "medkit predict, one call", "n": got["n"], "images_s": got["n"] / got["batch_s"],
             "cpu_ms": 1000 * got["cpu_s"] / got["n"],
             "p50_ms": None, "p95_ms": None, "peak_mb": got["peak_mb"]},
            {"what": "medkit predict, one call per file", "n": len(each), "images_s": len(each) / each.sum(), "cpu_ms": None,
             "p50_ms": 1000 * float(np.median(each)), "p95_ms": 1000 * float(np.quantile(each, 0.95)),
             "peak_mb": got["peak_mb"]}]


def table(rows) -> str:
    """Return the rows as a fixed-width table, with images/s and CPU per image relative to `medkit predict`'s."""
    base = next(r for r in rows if r["what"] == "medkit predict, one call")
    lines = [f"{'':36} {'images':>6} {'images/s':>9} {'vs predict':>10} {'CPU ms/image':>12} {'vs predict':>10} "
             f"{'p50 ms':>7} {'p95 ms':>7} {'peak MB':>8}"]
    for r in rows:
        p50, p95, cpu, cpu_ratio = (f"{v:.{d}f}" if v is not None else "-" for v, d in (
            (r["p50_ms"], 0), (r["p95_ms"], 0), (r["cpu_ms"], 1),
            (r["cpu_ms"] / base["cpu_ms"] if r["cpu_ms"] is not None else None, 2)))
        lines.append(f"{r['what']:36} {r['n']:>6} {r['images_s']:>9.1f} {r['images_s'] / base['images_s']:>10.2f} "
                     f"{cpu:>12} {cpu_ratio:>10} {p50:>7} {p95:>7} {r['peak_mb']:>8.0f}")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--associations", type=int, default=10)
    parser.add_argument("--cores", default="0,1", help="CPU cores both runs are pinned to (taskset -c)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = _serve.export_model(tmp / "model", backbone="resnet18", input_size=128, image_size=64)
        files = _serve.dx_study(tmp / "dx", args.images)
        rows = run_predict(model, files, args.cores)
        rows.insert(0, run_node(model, files, tmp / "out", args.associations, args.cores))
    print(f"{args.images} DX images (128 px, 12 bit), cores {args.cores}, model resnet18 -> 64 px, gated")
    print(table(rows))


if __name__ == "__main__":
    main()
