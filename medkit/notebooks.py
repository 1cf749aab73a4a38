"""Find the lesson notebooks and execute one with papermill into an output folder."""

import os
from pathlib import Path

from . import report
from .errors import DataError

__all__ = ["notebooks_dir", "lesson_paths", "run_notebook"]


def notebooks_dir() -> Path:
    """Return the folder of lesson notebooks ($MEDKIT_NOTEBOOKS, else the repository's notebooks/)."""
    return Path(os.environ.get("MEDKIT_NOTEBOOKS") or Path(__file__).resolve().parents[1] / "notebooks")


def lesson_paths() -> list[Path]:
    """Return the lesson notebooks in reading order (00_start_here first)."""
    paths = sorted(notebooks_dir().glob("[0-9][0-9]_*.ipynb"))
    if not paths:
        raise DataError(f"No lesson notebooks found in {notebooks_dir()}.")
    return paths


def run_notebook(path, output_dir, profile: str = "workshop", seed: int = 0, log_output: bool = False, **parameters) -> dict:
    """Execute a lesson with papermill into `output_dir` and return the metrics it recorded.

    The executed notebook is written next to its metrics, so a failure can be read cell by cell.
    """
    import papermill as pm

    path, output_dir = Path(path), Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    params = {"PROFILE": profile, "SEED": seed, "OUTPUT_DIR": str(output_dir.resolve()), **parameters}
    pm.execute_notebook(str(path), str(output_dir / path.name), parameters=params, cwd=str(path.parent),
                        kernel_name="python3", progress_bar=False, log_output=log_output)
    return report.load(output_dir)
