"""Rendered blocks in the lessons and the README: measured times and reference lists, written from their tables.

A block sits between `<!-- medkit:NAME -->` and `<!-- /medkit:NAME -->` in a markdown cell (or the README), and
is rewritten from `lesson_times.json` (written by `benchmarks/bench_notebooks.py --times`) and
`references.REFERENCES`, so neither a time nor a citation is typed by hand:

    python -m medkit.course.blocks           # rewrite every block
    python -m medkit.course.blocks --check   # list the files whose blocks are stale (exit 1), as a test does
"""

import argparse
import json
import re
from pathlib import Path

from ..base.atomic import write_text
from ..base.errors import DataError
from .notebooks import lesson_paths
from .references import references_markdown

__all__ = ["TIMES_FILE", "load_times", "times_markdown", "readme_times_markdown", "replace_block", "sync", "main"]

TIMES_FILE = Path(__file__).with_name("lesson_times.json")
_BLOCK = r"(<!-- medkit:{name} -->\n)(.*?)(<!-- /medkit:{name} -->)"


def load_times(path=TIMES_FILE) -> dict:
    """Return {lesson number: measurement} from the times JSON (empty when nothing was measured yet)."""
    path = Path(path)
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())["lessons"]
    except (ValueError, KeyError) as exc:
        raise DataError(f"{path} is not a lesson times file ({exc}). Rewrite it with "
                        "`python benchmarks/bench_notebooks.py --times {path}`.") from exc


def _how(run: dict) -> str:
    torch = run["torch"].split(" (")[0]
    cuda = "" if "CPU build" in run["torch"] else " (a CUDA build: about 350 MB more kernel memory than Binder's CPU one)"
    threads = "the libraries' default threads" if run["threads"] == "default" else "one thread on one core"
    return (f"{run['profile']} profile, commit {run['commit']}, {run['date']}, {run['cpus']} CPU cores with {threads}, {torch}{cuda}; the "
            f"machine's mean load was {run['load_avg']:.1f}")


def _seconds(run: dict, part: dict) -> float:
    """Return the time shown for a run or one of its sections: wall seconds, or CPU seconds per usable thread."""
    if run.get("basis", "wall") == "wall":
        return part["wall_s" if part is run else "seconds"]
    return part["cpu_s"] / run["usable_threads"]


def _basis(run: dict) -> str:
    if run.get("basis", "wall") == "wall":
        return "wall time"
    threads = run["usable_threads"]
    return (f"estimated from the kernel's CPU time, {run['cpu_s']:.0f} CPU-s on {threads} thread{'s' * (threads > 1)}, "
            f"because the machine was busier than its cores (its wall time, {run['wall_s']:.0f} s, measured the others)")


def times_markdown(lesson: str, times: dict | None = None) -> str:
    """Return lesson `lesson`'s time block: total, per `##` section, and how it was measured (or that it was not)."""
    run = (load_times() if times is None else times).get(lesson)
    if run is None:
        return (f"**Time:** not yet measured. `python benchmarks/bench_notebooks.py --times "
                f"medkit/course/lesson_times.json --lessons {lesson}` measures it.")
    total = _seconds(run, run)
    sections = [(s["title"], _seconds(run, s)) for s in run["sections"]]
    sections = [(title, seconds) for title, seconds in sections if seconds >= 0.05]
    start = max(0.0, total - sum(seconds for _, seconds in sections))
    rows = [f"| {title} | {seconds:.0f} s |" for title, seconds in sections]
    return "\n".join([
        f"**Time:** about {max(1, round(total / 60))} min ({total:.0f} s, kernel start {start:.0f} s; {_basis(run)}), "
        f"peak kernel memory {run['peak_mb']} MB. Measured by `benchmarks/bench_notebooks.py`: {_how(run)}.", "",
        "| section | time |", "|---|---|", *rows])


def readme_times_markdown(times: dict | None = None) -> str:
    """Return the README's table of every lesson's measured time and peak memory, and what each was measured on."""
    times = load_times() if times is None else times
    rows = []
    for path in lesson_paths():
        run = times.get(path.stem[:2])
        if run is None:
            rows.append(f"| {path.stem} | not yet measured | | | | |")
            continue
        basis = "wall" if run.get("basis", "wall") == "wall" else f"CPU-s / {run['usable_threads']}"
        rows.append(f"| {path.stem} | {_seconds(run, run) / 60:.1f} min | {basis} | {run['peak_mb']} MB | "
                    f"{run['torch'].split(' (')[0]} | {run['date']}, {run['cpus']} cores, load {run['load_avg']:.1f} |")
    return "\n".join(["| lesson | time (workshop) | time from | peak kernel memory | torch | measured |",
                      "|---|---|---|---|---|---|", *rows])


def replace_block(text: str, name: str, body: str) -> str:
    """Return `text` with block `name`'s content replaced by `body`; DataError when the block is absent."""
    pattern = re.compile(_BLOCK.format(name=re.escape(name)), flags=re.DOTALL)
    if not pattern.search(text):
        raise DataError(f"No block {name!r}: add `<!-- medkit:{name} -->` and `<!-- /medkit:{name} -->` on lines "
                        "of their own where it should go.")
    return pattern.sub(lambda m: m.group(1) + body.rstrip("\n") + "\n" + m.group(3), text, count=1)


def _sync_notebook(path: Path, times: dict) -> dict | None:
    """Return the notebook with its blocks rendered, or None when they already are."""
    nb, lesson = json.loads(path.read_text()), path.stem[:2]
    renders = {f"times {lesson}": times_markdown(lesson, times), f"references {lesson}": references_markdown(lesson)}
    changed = False
    for cell in nb["cells"]:
        text = "".join(cell["source"])
        new = text
        for name, body in renders.items():
            if f"<!-- medkit:{name} -->" in new:
                new = replace_block(new, name, body)
        if new != text:
            cell["source"], changed = new.splitlines(keepends=True), True
    return nb if changed else None


def sync(paths=None, readme=None, times: dict | None = None, check: bool = False) -> list[Path]:
    """Render every block of the lessons (and the README when given); return the files that were (or would be) changed."""
    times = load_times() if times is None else times
    stale = []
    for path in [Path(p) for p in (paths or lesson_paths())]:
        nb = _sync_notebook(path, times)
        if nb is not None:
            stale.append(path)
            if not check:
                write_text(path, json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    if readme is not None:
        readme = Path(readme)
        text = readme.read_text()
        new = replace_block(text, "lesson-times", readme_times_markdown(times))
        if new != text:
            stale.append(readme)
            if not check:
                write_text(readme, new)
    return stale


def main(argv=None) -> int:
    """Rewrite (or, with --check, list) the stale blocks of the lessons and the README."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only list stale files; exit 1 if any")
    parser.add_argument("--readme", default="README.md", help="the README with the lesson-times block")
    args = parser.parse_args(argv)
    stale = sync(readme=args.readme, check=args.check)
    for path in stale:
        print(f"{'stale' if args.check else 'rewrote'}: {path}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    raise SystemExit(main())
