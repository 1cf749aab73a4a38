"""medkit off Linux: no POSIX-only call without a fallback, and `medkit doctor` on a faked Windows; the torch build."""

import ast
import os
import sys
import types
from pathlib import Path

import pytest

from medkit.core import env

ROOT = Path(__file__).resolve().parents[1]
# os functions that Windows lacks, and modules it cannot import.
POSIX_ONLY_OS = {"statvfs", "fstatvfs", "sched_getaffinity", "getuid", "geteuid", "getgid", "fork", "uname", "killpg",
                 "setsid", "getpgid", "mkfifo", "getloadavg", "sync"}
POSIX_ONLY_MODULES = {"fcntl", "pwd", "grp", "resource", "termios", "tty", "pty", "posix"}
# The uses that are guarded, and how; any other use fails the test.
GUARDED = {("medkit/core/env.py", "sched_getaffinity"): "hasattr(os, 'sched_getaffinity'), else os.cpu_count()",
           ("medkit/core/checkpoint.py", "fcntl"): "except ImportError: no lock on Windows"}


def _posix_only_uses(path: Path) -> set[str]:
    """Return the POSIX-only os functions and modules a source file names."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "os":
            found |= {node.attr} & POSIX_ONLY_OS
        elif isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names} & POSIX_ONLY_MODULES
        elif isinstance(node, ast.ImportFrom) and node.module:
            found |= {node.module.split(".")[0]} & POSIX_ONLY_MODULES
    return found


def test_no_unguarded_posix_only_calls():
    for path in sorted((ROOT / "medkit").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        for name in _posix_only_uses(path):
            assert (rel, name) in GUARDED, f"{rel} uses {name}, which Windows lacks; guard it and list it in GUARDED"


class _WindowsOS(types.ModuleType):
    """`os` as Windows has it: the POSIX-only functions missing, `name` 'nt'."""

    def __init__(self):
        super().__init__("os")
        self.name = "nt"

    def __getattr__(self, attr):
        if attr in POSIX_ONLY_OS:
            raise AttributeError(f"module 'os' has no attribute {attr!r}")
        return getattr(os, attr)


def test_doctor_runs_on_windows(monkeypatch, tmp_path):
    monkeypatch.setattr(env, "os", _WindowsOS())
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setattr(env, "memory_gb", lambda: {"total": None, "available": None})  # no /proc/meminfo there
    monkeypatch.setattr(env, "torch_probe", lambda: {"torch": "2.14.1+cpu", "device": "cpu (4 threads)",
                                                     "build": {"kind": "cpu", "version": None, "mps": False,
                                                               "gpu": False}})
    monkeypatch.setattr(env, "_nvidia_gpu_present", lambda: False)
    monkeypatch.setenv("MEDKIT_CACHE", str(tmp_path / "not" / "made" / "yet"))
    rows, warnings = env.doctor_report()
    rows = dict(rows)
    assert rows["cpus"] == str(os.cpu_count()) and rows["ram"] == "unknown"
    assert rows["disk free (cache)"].endswith(" GB") and rows["torch build"] == "CPU"
    assert not [w for w in warnings if "torch" in w]


def test_disk_free_of_a_folder_not_made_yet(tmp_path):
    assert env.disk_free_gb(tmp_path / "a" / "b") == pytest.approx(env.disk_free_gb(tmp_path), rel=0.01)


def _fake_torch(cuda=None, hip=None, cuda_available=False, mps_built=False, mps_available=False):
    mps = types.SimpleNamespace(is_built=lambda: mps_built, is_available=lambda: mps_available)
    return types.SimpleNamespace(version=types.SimpleNamespace(cuda=cuda, hip=hip),
                                 cuda=types.SimpleNamespace(is_available=lambda: cuda_available),
                                 backends=types.SimpleNamespace(mps=mps))


def test_torch_build_names_cuda_rocm_cpu_and_mps():
    assert env.torch_build(_fake_torch(cuda="13.0")) == {"kind": "cuda", "version": "13.0", "mps": False, "gpu": False}
    assert env.torch_build(_fake_torch(hip="6.4", cuda_available=True))["kind"] == "rocm"
    mac = env.torch_build(_fake_torch(mps_built=True, mps_available=True))
    assert mac == {"kind": "cpu", "version": None, "mps": True, "gpu": True}
    assert env._build_row(mac) == "CPU (MPS built)" and env._build_row(env.torch_build(_fake_torch(cuda="12.8"))) == "CUDA 12.8"


def test_build_problem_warns_for_a_gpu_build_without_a_gpu_and_the_reverse():
    cuda_no_gpu = env.torch_build(_fake_torch(cuda="13.0"))
    warning = env.build_problem(cuda_no_gpu, "2.14.1+cu130", nvidia_present=False)
    assert "CUDA 13.0 build" in warning and "torch sees no GPU" in warning and "+cpu" in warning
    assert env.build_problem(env.torch_build(_fake_torch(cuda="13.0", cuda_available=True)), "2.14.1", False) is None
    cpu = env.torch_build(_fake_torch())
    assert env.build_problem(cpu, "2.14.1+cpu", nvidia_present=False) is None
    assert "NVIDIA GPU" in env.build_problem(cpu, "2.14.1+cpu", nvidia_present=True)
    mac = env.torch_build(_fake_torch(mps_built=True, mps_available=True))
    assert env.build_problem(mac, "2.14.1", nvidia_present=False) is None


def test_cpu_torch_command_pins_torch_and_torchvision_both():
    command = env.cpu_torch_command("2.14.1+cu130", "0.29.1")
    assert command == ("pip install --force-reinstall torch==2.14.1+cpu torchvision==0.29.1+cpu "
                       "--index-url https://download.pytorch.org/whl/cpu")
