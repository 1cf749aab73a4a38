"""Build step: copy the lesson notebooks and bundled samples into the wheel as package data.

Everything else is in pyproject.toml. An installed medkit finds them through `medkit.base.resources`;
an editable install reads the checkout's folders instead, so nothing is copied for it.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
BUNDLED = ("notebooks", "data_samples")  # the same folders as medkit.base.resources.BUNDLED
SKIP = shutil.ignore_patterns("outputs", ".ipynb_checkpoints", "__pycache__", "*.pyc")


class BuildPyWithResources(build_py):
    """`build_py` that also copies BUNDLED into `medkit/_resources/` of the build tree."""

    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return
        target = Path(self.build_lib) / "medkit" / "_resources"
        for name in BUNDLED:
            if not (ROOT / name).is_dir():
                raise SystemExit(f"setup.py: {ROOT / name} is missing; build medkit from a full checkout or sdist.")
            shutil.copytree(ROOT / name, target / name, ignore=SKIP, dirs_exist_ok=True)


setup(cmdclass={"build_py": BuildPyWithResources})
