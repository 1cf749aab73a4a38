"""The project's links, version and licence are written once, and README, lesson 00, binder/ and CI follow them."""

import importlib.util
import json
import re
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser as its backport, tomli
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("release", ROOT / "tools" / "release.py")
release = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(release)

PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
# Hosts whose links name this repository; any such link must start with one of [project.urls].
REPO_HOSTS = re.compile(r"(?:https?://)?(?:github\.com|mybinder\.org|colab\.research\.google\.com|ghcr\.io)/[^\s)\"'`>\]]+")
# Links to other projects on those hosts (a cited paper's code), not to this one.
OTHER_PROJECTS = ("github.com/Tencent/",)


def _lesson_00_text() -> str:
    nb = json.loads((ROOT / "notebooks" / "00_start_here.ipynb").read_text())
    return "\n".join("".join(cell["source"]) for cell in nb["cells"])


def _texts() -> dict:
    texts = {"README.md": (ROOT / "README.md").read_text(), "lesson 00": _lesson_00_text()}
    texts.update({f"binder/{p.name}": p.read_text() for p in sorted((ROOT / "binder").iterdir()) if p.is_file()})
    return texts


def test_no_placeholders_left():
    for name, text in _texts().items():
        assert not re.search(r"YOUR-[A-Z-]+", text), f"{name} still has a placeholder"


def test_every_repository_link_comes_from_project_urls():
    prefixes = tuple(url.removeprefix("https://") for url in PROJECT["urls"].values())
    tag = f"v{release.version()}"
    for name, text in _texts().items():
        for link in REPO_HOSTS.findall(text):
            bare = link.removeprefix("https://")
            if bare.startswith(OTHER_PROJECTS) or bare.startswith("mybinder.org/badge"):
                continue
            assert bare.startswith(prefixes), f"{name}: {link} is not under any [project.urls] entry"
            tags = set(re.findall(r"v\d+\.\d+\.\d+", link))
            assert tags <= {tag}, f"{name}: {link} names {tags}, but this release is {tag}"


def test_readme_and_lesson_00_use_this_release_links():
    links = release.project_links()
    readme, lesson = (ROOT / "README.md").read_text(), _lesson_00_text()
    for key in ("repo", "binder", "colab", "pip", "image"):
        assert links[key] in readme, f"README lacks the {key} link {links[key]}"
    for key in ("repo", "binder", "colab"):
        assert links[key] in lesson, f"lesson 00 lacks the {key} link {links[key]}"


def test_version_and_licence_are_written_once():
    assert "version" not in PROJECT and PROJECT["dynamic"] == ["version"]
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert setuptools["dynamic"]["version"] == {"attr": "medkit.__version__"}
    assert "version=" not in (ROOT / "setup.py").read_text()
    import medkit

    assert medkit.__version__ == release.version()
    assert f"## [{release.version()}]" in (ROOT / "CHANGELOG.md").read_text()
    assert PROJECT["license"] == "MIT" and (ROOT / "LICENSE").read_text().startswith("MIT License")


def _commands(text: str) -> list[str]:
    """Return the command lines of a shell text, comments and blank lines left out."""
    lines = (line.split("  #")[0].strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def test_ci_runs_the_quick_start_as_written():
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"## Quick start\n.*?```bash\n(.*?)```", readme, re.DOTALL).group(1)
    ci = _commands((ROOT / ".ci" / "run").read_text())
    for line in _commands(block):
        if line.startswith(("git clone", "medkit course")):  # CI is a clone already; the course takes an hour
            continue
        assert line.replace(".venv", '"$venv"') in ci or line in ci, f"CI does not run the Quick start's {line!r}"
    assert "-c constraints.txt" not in block.split("pip install", 1)[1].splitlines()[0]


def test_release_refuses_a_version_without_a_changelog_section():
    found = release.problems("v9.9.9")
    assert any("CHANGELOG.md has no '## [9.9.9]' section" in problem for problem in found), found
    assert not any("tag v9.9.9 exists" in problem for problem in found)
