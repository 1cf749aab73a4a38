"""Find the lesson notebooks and execute one with papermill into an output folder."""

import os
from pathlib import Path

from ..base.errors import ConfigError, DataError
from ..base.resources import resource_dir
from . import report

__all__ = ["notebooks_dir", "lesson_paths", "kernel_names", "check_kernel", "run_notebook", "DEFAULT_KERNEL"]

DEFAULT_KERNEL = "python3"  # jupyter_client runs it with the interpreter that runs medkit


def notebooks_dir() -> Path:
    """Return the folder of lesson notebooks ($MEDKIT_NOTEBOOKS, else the checkout's or the wheel's notebooks/)."""
    return Path(os.environ.get("MEDKIT_NOTEBOOKS") or resource_dir("notebooks"))


def lesson_paths() -> list[Path]:
    """Return the lesson notebooks in reading order (00_start_here first)."""
    paths = sorted(notebooks_dir().glob("[0-9][0-9]_*.ipynb"))
    if not paths:
        raise DataError(f"No lesson notebooks found in {notebooks_dir()}.")
    return paths


def kernel_names() -> list[str]:
    """Return the Jupyter kernels installed here (the native python3 kernel is always among them)."""
    from jupyter_client.kernelspec import KernelSpecManager

    return sorted(KernelSpecManager().find_kernel_specs())


def check_kernel(name: str) -> str:
    """Return `name` if a Jupyter kernel of that name is installed, else raise ConfigError listing those that are."""
    names = kernel_names()
    if name not in names and name != DEFAULT_KERNEL:
        raise ConfigError(f"No Jupyter kernel named {name!r}. Installed kernels: {', '.join(names)}. Install one into "
                          f"an environment with `python -m ipykernel install --user --name {name}`.")
    return name


def _kernel_config():
    """Return the kernel manager config: CurveZMQ keys, so the kernel does not warn about plain-text TCP.

    ipykernel logs "Kernel is running over TCP without encryption" unless its manager provisions Curve
    keys; jupyter_client does so with `transport_encryption="auto"` when the kernelspec declares support.
    """
    import zmq
    from traitlets.config import Config

    return Config({"KernelManager": {"transport_encryption": "auto"}}) if zmq.has("curve") else Config()


def run_notebook(path, output_dir, profile: str = "workshop", seed: int = 0, log_output: bool = False,
                 kernel: str = DEFAULT_KERNEL, timeout: float | None = None, **parameters) -> dict:
    """Execute a lesson with papermill into `output_dir` and return the metrics it recorded.

    The executed notebook is written next to its metrics, so a failure can be read cell by cell. The
    kernel runs in `output_dir`, so whatever a lesson writes lands there, even when the notebooks sit
    in a read-only installed package. `timeout` bounds each cell, in seconds (default: none).
    """
    import papermill as pm

    path, output_dir = Path(path), Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    params = {"PROFILE": profile, "SEED": seed, "OUTPUT_DIR": str(output_dir.resolve()), **parameters}
    pm.execute_notebook(str(path), str(output_dir / path.name), parameters=params, cwd=str(output_dir),
                        kernel_name=kernel, language="python", progress_bar=False, log_output=log_output, execution_timeout=timeout,
                        config=_kernel_config())
    return report.load(output_dir)
