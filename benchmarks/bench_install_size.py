"""Measure the disk size of each install route: core, medkit[all], medkit[dev], with the CPU or the default torch.

    python benchmarks/bench_install_size.py [--cpu-torch-wheel PATH]

Sizes are what the route puts in site-packages: every distribution in the route's dependency closure
(walked through this machine's installed metadata, as binder/lock.py does), each counted by the file
sizes its RECORD lists. The torch installed here is PyPI's default (CUDA) build; the CPU rows count the
CPU wheel's unpacked size instead (its zip directory, no install needed) and leave out the CUDA runtime
wheels (nvidia-*, triton, cuda-*), which only the CUDA build pulls in.
"""

import argparse
import glob
import importlib.metadata
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "binder"))
from lock import CUDA_ONLY, installed_closure  # noqa: E402

ROUTES = {"core": (), "all": ("all",), "dev": ("dev",)}


def installed_mb(name: str) -> float:
    """Return the size in MB of the files an installed distribution's RECORD lists."""
    files = importlib.metadata.distribution(name).files or []
    return sum(f.size or 0 for f in files) / 2**20


def wheel_mb(path: str) -> float:
    """Return the unpacked size in MB of a wheel."""
    with zipfile.ZipFile(path) as wheel:
        return sum(info.file_size for info in wheel.infolist()) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu-torch-wheel", default=next(iter(sorted(glob.glob("/opt/wheels/torch-*+cpu-*.whl"))), None),
                        help="a torch CPU wheel to size the CPU routes with (default: the one in /opt/wheels)")
    args = parser.parse_args()
    cpu_torch = wheel_mb(args.cpu_torch_wheel) if args.cpu_torch_wheel else None
    print(f"{'route':<8} {'torch':<6} {'packages':>8} {'MB':>8}  torch MB  CUDA runtime MB")
    for route, extras in ROUTES.items():
        closure = installed_closure(extras)
        sizes = {name: installed_mb(name) for name in closure}
        cuda = sum(mb for name, mb in sizes.items() if CUDA_ONLY.match(name))
        rest = sum(mb for name, mb in sizes.items() if not CUDA_ONLY.match(name) and name != "torch")
        n_cuda = sum(1 for name in closure if CUDA_ONLY.match(name))
        print(f"{route:<8} {'cuda':<6} {len(closure):>8} {rest + sizes['torch'] + cuda:>8.0f}  {sizes['torch']:>8.0f}  "
              f"{cuda:>15.0f}")
        if cpu_torch is not None:
            print(f"{route:<8} {'cpu':<6} {len(closure) - n_cuda:>8} {rest + cpu_torch:>8.0f}  {cpu_torch:>8.0f}  {0:>15}")
    print(f"\nCUDA torch: the {importlib.metadata.version('torch')} installed here; CPU torch: "
          f"{Path(args.cpu_torch_wheel).name if args.cpu_torch_wheel else 'none given'} (unpacked). "
          "Everything else at the versions in constraints.txt.")


if __name__ == "__main__":
    main()
