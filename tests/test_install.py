"""medkit as a user installs it: a wheel in a fresh venv, the core without extras, and the lock files."""

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
SKIP_COPY = shutil.ignore_patterns(".git", ".venv", "outputs", "build", "dist", "*.egg-info", "__pycache__", ".*_cache",
                                   ".hypothesis", ".ipynb_checkpoints", "*.onnx", "*.pt")
EXTRA_MODULES = ("fastai", "pytorch_grad_cam", "onnx", "onnxruntime", "flwr", "jupyterlab", "ipykernel", "papermill")
# What the core lessons (00, 01, 02, 05, 07, 08, 11) import from medkit.
CORE_MODULES = ("medkit.data", "medkit.models", "medkit.core.features", "medkit.core.freeze", "medkit.core.losses", "medkit.core.train",
                "medkit.evaluation.metrics", "medkit.evaluation.evaluate", "medkit.evaluation.calibration", "medkit.evaluation.fairness", "medkit.data.sites",
                "medkit.segmentation", "medkit.methods.ssl", "medkit.methods.vit", "medkit.course.viz", "medkit.course.check", "medkit.course.profiles",
                "medkit.course.report", "medkit.course", "medkit.cli.doctor", "medkit.volumes")


def _clean_env(**extra) -> dict:
    """The environment of a user who has not cloned medkit: no PYTHONPATH to this checkout."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MEDKIT_NOTEBOOKS", "MEDKIT_SAMPLES")}
    return {**env, "MEDKIT_OFFLINE": "1", **extra}


def _venv_seeing_this_interpreter(venv: Path) -> None:
    """Make a venv whose packages are its own first, then those of the interpreter running the tests.

    `--system-site-packages` would expose the *base* interpreter's packages, which inside a venv (the README's
    Quick start) hold no torch. A path line in a .pth file adds this interpreter's site-packages after the venv's
    own, without running that folder's .pth files, so an editable medkit installed there stays out of sight.
    """
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    own = Path(sysconfig.get_path("purelib", vars={"base": str(venv), "platbase": str(venv)}))
    paths = dict.fromkeys(sysconfig.get_path(key) for key in ("purelib", "platlib"))
    (own / "_running_interpreter.pth").write_text("".join(f"{path}\n" for path in paths))


@pytest.mark.notebooks
@pytest.mark.timeout(600)  # a hang guard: 208 s alone, over 300 s beside other tests on 2 busy cores
def test_wheel_in_a_fresh_venv_runs_lesson_00(tmp_path):
    src, dist, venv = tmp_path / "src", tmp_path / "dist", tmp_path / "venv"
    shutil.copytree(ROOT, src, ignore=SKIP_COPY)  # build from a clean copy: the checkout keeps no build/ folder
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "--no-build-isolation", "-w",
                            str(dist), str(src)], check=True, capture_output=True, text=True)
    assert "SetuptoolsDeprecationWarning" not in build.stdout + build.stderr  # e.g. a license table, not SPDX
    (wheel,) = dist.glob("medkit-*.whl")
    _venv_seeing_this_interpreter(venv)
    python, bindir = venv / "bin" / "python", venv / "bin"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", "--no-index", "--ignore-installed",
                    str(wheel)], check=True, capture_output=True)
    env = _clean_env(PATH=f"{bindir}{os.pathsep}{os.environ['PATH']}", MEDKIT_CACHE=str(tmp_path / "cache"))
    work = tmp_path / "work"
    work.mkdir()
    where = subprocess.run([str(python), "-c", "import medkit.course.notebooks as n, medkit.data as d, medkit.fit.table as r; "
                            "print(n.notebooks_dir()); print(d.samples_dir()); print(r.load_table()['source'])"],
                           capture_output=True, text=True, env=env, cwd=work, check=True).stdout.split()
    assert all(str(venv) in path and "_resources" in path for path in where[:2]), where
    assert where[2].endswith("RECIPE.md")  # lesson 03's measured table travels as package data

    proc = subprocess.run([str(bindir / "medkit"), "student", "--out", "students", "--json"], capture_output=True,
                          text=True, env=env, cwd=work)
    assert proc.returncode == 0, proc.stderr
    assert len(json.loads(proc.stdout)["written"]) == len(list((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")))

    proc = subprocess.run([str(bindir / "medkit"), "course", "--profile", "smoke", "--lessons", "00", "--out", "out",
                           "--json"], capture_output=True, text=True, env=env, cwd=work)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (result,) = json.loads(proc.stdout)["results"]
    assert result["error"] is None and result["metrics"]["n_test"] > 0
    assert "without encryption" not in proc.stderr


_BLOCKER = """
import sys
class Hide:  # every finder answers "not installed" for the extras' modules, as in a core install
    def __init__(self, finder):
        self.finder = finder
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
            return None
        return self.finder.find_spec(name, path, target) if hasattr(self.finder, "find_spec") else None
    def __getattr__(self, attr):
        return getattr(self.finder, attr)
sys.meta_path[:] = [Hide(f) for f in sys.meta_path]
"""


@pytest.mark.timeout(180)
def test_core_lessons_import_without_extras():
    """The core install (no fastai, grad-cam, onnx, flwr) imports everything lessons 00-02, 05, 07, 08 use."""
    code = _BLOCKER.format(blocked=set(EXTRA_MODULES)) + f"""
import importlib
for name in {CORE_MODULES!r}:
    importlib.import_module(name)
from medkit.base._optional import MissingExtraError, missing_extras, require
assert missing_extras(["cam", "deploy"]) == ["cam", "deploy"]
try:
    require("pytorch_grad_cam", "cam", "Lesson 04's library CAMs")
except MissingExtraError as exc:
    print(exc)
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == ("Lesson 04's library CAMs needs 'pytorch_grad_cam', which is not installed. Install "
                                   "the 'cam' extra: pip install \"medkit[cam]\" (or medkit[all] for the whole course).")


def test_course_without_the_lab_extra_names_it(monkeypatch, tmp_path):
    from medkit.base._optional import MissingExtraError
    from medkit.course import run_course

    monkeypatch.setitem(sys.modules, "papermill", None)  # as in a core install on a Jupyter host
    with pytest.raises(MissingExtraError, match=r'medkit course .*papermill.*pip install "medkit\[lab\]"\.$'):
        run_course(tmp_path, profile="smoke", lessons=["00"])


def test_require_returns_the_module_and_names_unknown_extras():
    from medkit.base._optional import EXTRAS, LESSON_EXTRAS, missing_extras, require

    assert require("json", "cam") is json
    with pytest.raises(KeyError, match="unknown extra"):
        require("json", "gpu")
    # every extra but serve (the `medkit serve` node) and lab (Jupyter itself, for `medkit course`) belongs to a lesson
    assert set(e for extras in LESSON_EXTRAS.values() for e in extras) == set(EXTRAS) - {"serve", "lab"}
    assert missing_extras(EXTRAS) == []  # the dev install (CI's) has every extra


def _pins(path: Path) -> dict:
    lines = [line.strip() for line in path.read_text().splitlines()]
    return dict(line.split("==") for line in lines if line and not line.startswith(("#", "--")))


def test_lock_files_pin_every_dependency_within_its_bounds():
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: its backport
        import tomli as tomllib

    constraints, binder = _pins(ROOT / "constraints.txt"), _pins(ROOT / "binder" / "requirements.txt")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    # The lock covers what CI installs: the core and the course's extras (`all`). Opt-in extras outside the
    # course, such as `dicom`'s compiled decoders, are left to the user's resolver.
    course = Requirement(extras["all"][0]).extras | {"lab"}
    wanted = project["dependencies"] + [r for name in course for r in extras[name]]
    for text in wanted:
        req = Requirement(text)
        name = canonicalize_name(req.name)
        if name == "medkit":
            continue
        assert name in constraints and name in binder, f"{name} is not locked: run python binder/lock.py"
        assert req.specifier.contains(constraints[name]), f"{name}=={constraints[name]} is outside {req.specifier}"
    for name, version in binder.items():  # Binder runs the locked versions: constraints.txt's, CPU builds of torch
        assert constraints[name] == version.removesuffix("+cpu"), name
    assert binder["torch"].endswith("+cpu") and binder["torchvision"].endswith("+cpu")
    assert not any(name.startswith("nvidia-") for name in binder), "the CPU torch needs no CUDA runtime"

