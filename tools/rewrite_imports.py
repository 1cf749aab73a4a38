"""Rewrite imports of moved medkit modules (tools/module_moves.tsv) in .py and .ipynb files; safe to rerun.

    python tools/rewrite_imports.py [PATH ...]   (default: medkit tests benchmarks tools notebooks)

Inside the package a relative import is resolved from the file's place; one that names no module there is
resolved from where the file was before it moved, mapped through the table and written relative to its new
place. Elsewhere `medkit.OLD` becomes `medkit.NEW` (imports, `mock.patch` strings, attribute chains) and
`from medkit import a, b` is split by where each name now lives. In notebooks only import lines and
`medkit.OLD` names change.
"""

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MOVES = dict(line.split("\t") for line in (ROOT / "tools/module_moves.tsv").read_text().splitlines()
             if line and not line.startswith("#"))
BACK = {new: old for old, new in MOVES.items()}
RELATIVE = re.compile(r"^(\s*from\s+)(\.+)([\w.]*)(\s+import\b)", re.M)
FROM_DOTS = re.compile(r"^(\s*)from\s+(\.+)\s+import\s+([\w, ]+?)(\s*#.*)?$", re.M)  # from . import a, b
FROM_MEDKIT = re.compile(r"^(\s*)from medkit import ([\w, ]+?)(\s*(#.*)?)$", re.M)
OLD_NAMES = re.compile(r"\bmedkit\.(" + "|".join(re.escape(o.split(".", 1)[1]) for o in MOVES) + r")\b")


def mapped(name: str) -> str:
    """Return `name` with its longest moved prefix replaced."""
    for old in sorted(MOVES, key=len, reverse=True):
        if name == old or name.startswith(old + "."):
            return MOVES[old] + name[len(old):]
    return name


def exists(name: str) -> bool:
    """Return whether dotted `name` is a module or package in this checkout."""
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def module_of(path: Path) -> str:
    """Return the dotted module name of a file inside the package."""
    parts = path.resolve().relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def resolve(package: str, dots: str, rest: str) -> str:
    """Return the absolute name of `from <dots><rest> import` written in `package`."""
    base = package.split(".")[: len(package.split(".")) - len(dots) + 1]
    return ".".join(base + ([rest] if rest else []))


def relative(package: str, target: str) -> str:
    """Return `target` written relative to `package` (both dotted)."""
    here, there = package.split("."), target.split(".")
    common = 0
    while common < min(len(here), len(there)) and here[common] == there[common]:
        common += 1
    return "." * (len(here) - common + 1) + ".".join(there[common:])


def rewrite_package_file(path: Path, text: str) -> str:
    """Fix the relative imports of a file inside medkit/."""
    module = module_of(path)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    old_module = BACK.get(module, module)
    old_package = old_module if path.name == "__init__.py" else old_module.rsplit(".", 1)[0]

    def fix(match):
        head, dots, rest, tail = match.groups()
        if exists(resolve(package, dots, rest)):
            return match.group(0)
        target = mapped(resolve(old_package, dots, rest))
        if not exists(target):
            print(f"{path}: cannot place {dots}{rest}", file=sys.stderr)
            return match.group(0)
        return head + relative(package, target) + tail

    def split(match):  # `from . import a, b`: a moved module is imported from where it now lives
        indent, dots, names, comment = match.group(1), match.group(2), match.group(3), match.group(4) or ""
        here = resolve(package, dots, "")
        groups: dict[str, list[str]] = {}
        for name in (n.strip() for n in names.split(",") if n.strip()):
            base = name.split()[0]
            target = mapped(f"{resolve(old_package, dots, '')}.{base}")
            if exists(f"{here}.{base}") or not exists(target):
                groups.setdefault(here, []).append(name)
                continue
            parent, new = target.rsplit(".", 1)
            groups.setdefault(parent, []).append(name if new == base else f"{new} as {base}" if name == base
                                                 else new + name[len(base):])
        if list(groups) == [here] and groups[here] == [n.strip() for n in names.split(",") if n.strip()]:
            return match.group(0)
        lines = [f"{indent}from {relative(package, src) if src != package else '.'} import {', '.join(items)}"
                 for src, items in groups.items()]
        lines[0] += comment
        return "\n".join(lines)

    return FROM_DOTS.sub(split, RELATIVE.sub(fix, text))


def split_from_medkit(match) -> str:
    """Split `from medkit import a, b` by the package each name now lives in."""
    indent, names, comment = match.group(1), match.group(2), match.group(3) or ""
    groups: dict[str, list[str]] = {}
    for item in (n.strip() for n in names.split(",") if n.strip()):
        name = item.split()[0]
        new = MOVES.get(f"medkit.{name}")
        package, new_name = new.rsplit(".", 1) if new else ("medkit", name)
        if new_name != name:  # a renamed module keeps its old name in the file that imports it
            item = f"{new_name} as {name}" if item == name else new_name + item[len(name):]
        groups.setdefault(package, []).append(item)
    if list(groups) == ["medkit"]:
        return match.group(0)
    lines = [f"{indent}from {package} import {', '.join(items)}" for package, items in sorted(groups.items())]
    lines[0] += comment
    return "\n".join(lines)


def rewrite_outside(text: str) -> str:
    """Rewrite absolute medkit names in a file outside the package."""
    text = FROM_MEDKIT.sub(split_from_medkit, text)
    return OLD_NAMES.sub(lambda m: mapped(m.group(0)), text)


def rewrite_notebook(path: Path, text: str) -> str:
    """Rewrite a notebook's import lines and its `medkit.OLD.name` chains (code and prose); nothing else changes."""
    nb = json.loads(text)
    for cell in nb["cells"]:
        source = "".join(cell["source"])
        if cell["cell_type"] == "code":
            lines = [rewrite_outside(line) if re.match(r"\s*(from|import)\s+medkit\b", line) else
                     OLD_NAMES.sub(lambda m: mapped(m.group(0)), line) for line in source.split("\n")]
            new = "\n".join(lines)
        else:
            new = OLD_NAMES.sub(lambda m: mapped(m.group(0)), source)
        if new != source:
            cell["source"] = new.splitlines(keepends=True)
    return json.dumps(nb, indent=1, ensure_ascii=False) + "\n"


def rewrite(path: Path) -> bool:
    """Rewrite one file in place; return whether it changed."""
    text = path.read_text()
    if path.suffix == ".ipynb":
        new = rewrite_notebook(path, text)
    elif path.resolve().is_relative_to(ROOT / "medkit"):
        new = rewrite_outside(rewrite_package_file(path, text)) if path.suffix == ".py" else text
    else:
        new = rewrite_outside(text)
    if new != text:
        path.write_text(new)
    return new != text


def main(argv=None) -> None:
    """Rewrite every .py and .ipynb file under the given paths."""
    roots = [Path(p) for p in (argv or ["medkit", "tests", "benchmarks", "tools", "notebooks"])]
    files = [f for r in roots for f in ([r] if r.is_file() else sorted(r.rglob("*"))) if f.suffix in (".py", ".ipynb")]
    changed = [f for f in files if f.resolve() != Path(__file__).resolve() and rewrite(f)]
    print(f"{len(changed)} files rewritten", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1:])
