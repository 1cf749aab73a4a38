"""Cut a release: check, build the wheel and sdist, install them in a fresh venv, tag, print the links.

    python tools/release.py --dry-run          # every check, build and install; no tag (what CI can run)
    python tools/release.py                    # the same, then `git tag -a vX.Y.Z`; push it yourself
    python tools/release.py --dry-run --quick  # the venv sees this interpreter's packages: seconds, not a 6 GB install

The version is `__version__` in medkit/__init__.py (pyproject.toml reads it); every link comes from pyproject's
[project.urls] through `project_links`, which tests/test_links.py holds README, lesson 00 and binder/ to.
The build runs on `git archive HEAD`, so what is tagged is what was built, whatever the working tree holds.
"""

import argparse
import io
import re
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser as its backport, tomli
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
LESSON_00 = "00_start_here.ipynb"
# What a student's copy of the course needs from the sdist (setup.py copies it into the wheel).
SDIST_MUST_HOLD = ("pyproject.toml", "setup.py", "LICENSE", "CHANGELOG.md", "README.md", f"notebooks/{LESSON_00}",
                   "data_samples/README.md", "medkit/__init__.py")


class ReleaseError(Exception):
    """A release step failed; the message says which and what to do."""


def version() -> str:
    """Return medkit's version as written in medkit/__init__.py, without importing medkit."""
    match = re.search(r'^__version__ = "([^"]+)"$', (ROOT / "medkit" / "__init__.py").read_text(), re.MULTILINE)
    if match is None:
        raise ReleaseError("medkit/__init__.py has no `__version__ = \"X.Y.Z\"` line; pyproject.toml reads it from there.")
    return match.group(1)


def project_links(tag: str | None = None) -> dict:
    """Return the project's links for release `tag` (default: this version's vX.Y.Z), all from [project.urls]."""
    urls = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]
    tag = tag or f"v{version()}"
    return {
        "repo": urls["Source"],
        "issues": urls["Issues"],
        "changelog": urls["Changelog"],
        "binder": f"{urls['Binder']}/{tag}?urlpath=lab/tree/student/{LESSON_00}",
        "colab": f"{urls['Colab']}/blob/{tag}/notebooks/{LESSON_00}",
        "pip": f"medkit[all] @ git+{urls['Source']}@{tag}",
        "image": f"{urls['Image'].removeprefix('https://')}:{tag}",
    }


def _git(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=check)


def problems(tag: str) -> list[str]:
    """Return what stops `tag` from being released now (an empty list when nothing does)."""
    found = []
    if _git("status", "--porcelain", "--untracked-files=no").stdout.strip():
        found.append("the working tree has uncommitted changes: commit them, or they are not in the release")
    if _git("rev-parse", "-q", "--verify", f"refs/tags/{tag}", check=False).returncode == 0:
        found.append(f"tag {tag} exists already: raise __version__ in medkit/__init__.py")
    if not re.search(rf"^## \[{re.escape(tag[1:])}\]", (ROOT / "CHANGELOG.md").read_text(), re.MULTILINE):
        found.append(f"CHANGELOG.md has no '## [{tag[1:]}]' section: say what this release changes")
    lock = subprocess.run([sys.executable, str(ROOT / "binder" / "lock.py"), "--check"], capture_output=True, text=True)
    if lock.returncode != 0:
        found.append("the lock files differ from this install (" + " ".join(lock.stdout.split()) + "): release from "
                     "pip install -e '.[dev]' -c constraints.txt, or rewrite them with python binder/lock.py")
    return found


def build(out: Path) -> tuple[Path, Path]:
    """Build the sdist, then the wheel from it (python -m build), from `git archive HEAD`; return (wheel, sdist)."""
    src = out / "src"
    src.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", "HEAD"], capture_output=True, check=True)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(src, filter="data")
    proc = subprocess.run([sys.executable, "-m", "build", "--outdir", str(out / "dist"), str(src)],
                          capture_output=True, text=True)
    log = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise ReleaseError(f"the build failed:\n{log[-3000:]}")
    if "SetuptoolsDeprecationWarning" in log:
        raise ReleaseError("the build warns of a setuptools deprecation; fix pyproject.toml:\n" +
                           "\n".join(line for line in log.splitlines() if "Deprecat" in line))
    (wheel,), (sdist,) = (out / "dist").glob("medkit-*.whl"), (out / "dist").glob("medkit-*.tar.gz")
    return wheel, sdist


def check_sdist(sdist: Path) -> None:
    """Raise ReleaseError unless the sdist holds what a wheel is built from (SDIST_MUST_HOLD)."""
    with tarfile.open(sdist) as tar:
        names = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
    missing = [name for name in SDIST_MUST_HOLD if name not in names]
    if missing:
        raise ReleaseError(f"{sdist.name} lacks {', '.join(missing)}; add them to MANIFEST.in.")


def _venv(folder: Path, quick: bool) -> Path:
    """Make a fresh venv and return its python; `quick`: it also sees this interpreter's packages, after its own."""
    subprocess.run([sys.executable, "-m", "venv", *(["--without-pip"] if quick else []), str(folder)], check=True)
    python = folder / ("Scripts" if sys.platform == "win32" else "bin") / ("python.exe" if sys.platform == "win32"
                                                                            else "python")
    if quick:  # a path line, so this interpreter's .pth files (an editable medkit) stay out of sight
        own = Path(sysconfig.get_path("purelib", vars={"base": str(folder), "platbase": str(folder)}))
        paths = dict.fromkeys(sysconfig.get_path(key) for key in ("purelib", "platlib"))
        (own / "_running_interpreter.pth").write_text("".join(f"{path}\n" for path in paths))
    return python


def check_wheel(wheel: Path, folder: Path, quick: bool) -> str:
    """Install `wheel` in a fresh venv, run medkit from it outside any checkout, and return what it said."""
    python = _venv(folder / "venv", quick)
    install = [sys.executable, "-m", "pip", "--python", str(python), "install", "-q"]
    install += ["--no-deps", "--ignore-installed", str(wheel)] if quick else [f"{wheel}[lab]"]
    proc = subprocess.run(install, capture_output=True, text=True)
    if proc.returncode != 0:
        raise ReleaseError(f"pip could not install {wheel.name} in a fresh venv:\n{proc.stderr[-3000:]}")
    work = folder / "work"
    work.mkdir()
    code = ("import medkit, medkit.base.resources as r; print(medkit.__version__, medkit.__file__); "
            "print(r.resource_dir('notebooks'))")
    proc = subprocess.run([str(python), "-c", code], capture_output=True, text=True, cwd=work)
    if proc.returncode != 0:
        raise ReleaseError(f"medkit from {wheel.name} does not import:\n{proc.stderr[-3000:]}")
    found_version, where, notebooks = proc.stdout.split()
    if found_version != version() or str(folder / "venv") not in where or not Path(notebooks, LESSON_00).is_file():
        raise ReleaseError(f"the installed wheel is not this release: {proc.stdout}")
    proc = subprocess.run([str(python), "-m", "medkit.cli", "student", "--out", "students"], capture_output=True,
                          text=True, cwd=work)
    if proc.returncode != 0 or not (work / "students" / LESSON_00).is_file():
        raise ReleaseError(f"medkit student fails from the wheel:\n{proc.stderr[-3000:]}")
    return f"medkit {found_version} from {where}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="check, build and install, but tag nothing")
    parser.add_argument("--quick", action="store_true",
                        help="the test venv sees this interpreter's packages (no dependency install)")
    parser.add_argument("--out", type=Path, help="where the wheel and sdist go (default: a temporary folder)")
    args = parser.parse_args(argv)
    tag = f"v{version()}"
    try:
        found = problems(tag)
        for problem in found:
            print(f"{'would stop: ' if args.dry_run else 'stop: '}{problem}", file=sys.stderr)
        if found and not args.dry_run:
            return 1
        out = args.out or Path(tempfile.mkdtemp(prefix=f"medkit-{tag}-"))
        wheel, sdist = build(out)
        check_sdist(sdist)
        print(f"built {wheel}\nbuilt {sdist}\ninstalled: {check_wheel(wheel, out / 'check', args.quick)}")
        if args.dry_run:
            print(f"dry run: {tag} not tagged")
        else:
            _git("tag", "-a", tag, "-m", f"medkit {tag[1:]}")
            print(f"tagged {tag}: push it with git push origin {tag}, then upload {wheel.name} and {sdist.name}")
    except ReleaseError as exc:
        print(f"release.py: {exc}", file=sys.stderr)
        return 1
    for name, link in project_links(tag).items():
        print(f"{name:<9} {link}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
