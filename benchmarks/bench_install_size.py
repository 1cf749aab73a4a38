"""Measure the disk size of each install route, one per audience (README, Installing).

    python benchmarks/bench_install_size.py [--cpu-torch-wheel PATH]

Routes: `core` (pip install medkit), `laptop` (medkit[all,lab] with CPU torch), `gpu` (the same with PyPI's
CUDA torch), `colab` (medkit[all] on a host that already has torch, torchvision, Jupyter and the scientific
stack: only what medkit adds is counted), `binder` (binder/requirements.txt: medkit[all,lab], CPU torch, pinned)
and `dev` (medkit[dev], the Quick start's).

Sizes are what the route puts in site-packages: every distribution in the route's dependency closure
(walked through this machine's installed metadata, as binder/lock.py does), each counted by the file
sizes its RECORD lists. The torch installed here is PyPI's default (CUDA) build; the CPU rows count the
CPU wheel's unpacked size instead (its zip directory, no install needed) and leave out the CUDA runtime
wheels (nvidia-*, triton, cuda-*), which only the CUDA build pulls in. torchvision is counted as installed
(its CPU build is a few MB smaller). Install times depend on the network; README gives those measured.
"""

import argparse
import glob
import importlib.metadata
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "binder"))
from lock import CUDA_ONLY, Requirement, installed_closure, walk_installed  # noqa: E402

# route -> (extras, torch build, what the host already has)
COLAB_HOST = ("torch", "torchvision", "ipykernel", "ipywidgets", "nbformat", "numpy", "scipy", "pandas", "scikit-learn",
              "scikit-image", "matplotlib", "tqdm")  # preinstalled on Colab: pip keeps them when they fit the bounds
ROUTES = {
    "core": ((), ("cpu", "cuda"), ()),
    "laptop": (("all", "lab"), ("cpu",), ()),
    "gpu": (("all", "lab"), ("cuda",), ()),
    "colab": (("all",), ("cuda",), COLAB_HOST),
    "binder": (("all", "lab"), ("cpu",), ()),  # the same closure as laptop, every version pinned
    "dev": (("dev",), ("cuda", "cpu"), ()),
}


def installed_mb(name: str) -> float:
    """Return the size in MB of the files an installed distribution's RECORD lists."""
    files = importlib.metadata.distribution(name).files or []
    return sum(f.size or 0 for f in files) / 2**20


def wheel_mb(path: str) -> float:
    """Return the unpacked size in MB of a wheel."""
    with zipfile.ZipFile(path) as wheel:
        return sum(info.file_size for info in wheel.infolist()) / 2**20


def _host_closure(host: tuple[str, ...]) -> set[str]:
    """Return every distribution that the packages a host preinstalls pull in (those not installed here left out)."""
    return set(walk_installed([Requirement(name) for name in host], missing="skip"))


def route_row(extras, torch, host, cpu_torch) -> tuple[int, float, float, float]:
    """Return (packages, MB, torch MB, CUDA runtime MB) that a route installs."""
    on_host = _host_closure(host)
    closure = [name for name in installed_closure(extras) if name not in on_host]
    if torch == "cpu":
        closure = [name for name in closure if not CUDA_ONLY.match(name)]
    sizes = {name: installed_mb(name) for name in closure}
    if torch == "cpu" and "torch" in sizes:
        sizes["torch"] = cpu_torch
    cuda = sum(mb for name, mb in sizes.items() if CUDA_ONLY.match(name))
    return len(closure), sum(sizes.values()), sizes.get("torch", 0.0), cuda


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu-torch-wheel", default=next(iter(sorted(glob.glob("/opt/wheels/torch-*+cpu-*.whl"))), None),
                        help="a torch CPU wheel to size the CPU routes with (default: the one in /opt/wheels)")
    args = parser.parse_args()
    cpu_torch = wheel_mb(args.cpu_torch_wheel) if args.cpu_torch_wheel else None
    print(f"{'route':<8} {'torch':<6} {'packages':>8} {'MB':>8}  torch MB  CUDA runtime MB")
    for route, (extras, builds, host) in ROUTES.items():
        for torch in builds:
            if torch == "cpu" and cpu_torch is None:
                continue
            n, mb, torch_mb, cuda = route_row(extras, torch, host, cpu_torch)
            print(f"{route:<8} {torch:<6} {n:>8} {mb:>8.0f}  {torch_mb:>8.0f}  {cuda:>15.0f}")
    print(f"\nCUDA torch: the {importlib.metadata.version('torch')} installed here; CPU torch: "
          f"{Path(args.cpu_torch_wheel).name if args.cpu_torch_wheel else 'none given'} (unpacked). "
          "Everything else at the versions in constraints.txt. colab counts only what medkit adds to "
          f"{', '.join(COLAB_HOST)} and what they pull in.")


if __name__ == "__main__":
    main()
