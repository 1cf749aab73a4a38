"""The table of what was tried for `medkit fit`'s recipe, as data a lesson renders (lesson 03).

Also the second-site lever table (lesson 12): `benchmarks/bench_second_site.py` writes `second_site_table.json`
next to this module, one row per lever measured at 224 px on the external dev folder; `second_site_table` reads it.

The recipe sweep (`benchmarks/sweep_recipe.py`) writes its results as a markdown table into
`benchmarks/RECIPE.md`. `update_from_markdown` copies that table into `recipe_table.json` next to
this module, so lessons show measured numbers without anyone typing them into a notebook:

    python -m medkit.fit.table benchmarks/RECIPE.md
"""

import json
import sys
from pathlib import Path

from ..base.errors import DataError
from ..base.paths import check_file

__all__ = ["TABLE_FILE", "load_table", "recipe_table", "table_from_markdown", "update_from_markdown",
           "SECOND_SITE_FILE", "SECOND_SITE_COLUMNS", "second_site_table"]

TABLE_FILE = Path(__file__).with_name("recipe_table.json")
SECOND_SITE_FILE = Path(__file__).with_name("second_site_table.json")
# one row per lever: the schema benchmarks/bench_second_site.py writes (intervals are [low, high])
SECOND_SITE_COLUMNS = ("lever", "seeds", "internal_auc", "external_auc", "external_auc_ci", "external_acc",
                       "external_acc_ci", "external_sens", "external_spec", "fit_seconds", "peak_gb")


def load_table(path=TABLE_FILE) -> dict:
    """Return the stored table: {"source", "note", "columns", "rows"} (rows are lists of cells)."""
    path = Path(path)
    try:
        table = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(f"No recipe table at {path}; write one with `python -m medkit.fit.table RECIPE.md`.") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{path} is not valid JSON ({exc}); regenerate it from benchmarks/RECIPE.md.") from None
    missing = {"source", "note", "columns", "rows"} - set(table)
    if missing:
        raise DataError(f"{path} lacks {sorted(missing)}; regenerate it from benchmarks/RECIPE.md.")
    if any(len(row) != len(table["columns"]) for row in table["rows"]):
        raise DataError(f"{path}: every row needs one cell per column {table['columns']}.")
    return table


def recipe_table(path=TABLE_FILE):
    """Return the recipe table as a pandas DataFrame (empty, with its columns, until the sweep has run)."""
    import pandas as pd

    table = load_table(path)
    return pd.DataFrame(table["rows"], columns=table["columns"])


def second_site_table(path=SECOND_SITE_FILE):
    """Return the 224 px lever table of lesson 12 as a DataFrame, one row per lever.

    When the file is not there yet the table is empty (with its columns) and `attrs["note"]` says why and how to
    make it, so a lesson can show the note instead of failing. A file that is there but malformed is an error.
    """
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        empty = pd.DataFrame(columns=list(SECOND_SITE_COLUMNS))
        empty.attrs["note"] = (f"No lever table at {path} yet: it is measured at 224 px on the full training folder by "
                               "`benchmarks/bench_second_site.py --json`, which writes this file. Skipped.")
        return empty
    try:
        rows = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DataError(f"{path} is not valid JSON ({exc}); rewrite it with benchmarks/bench_second_site.py.") from None
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise DataError(f"{path} must hold a list of rows (one object per lever); got {type(rows).__name__}.")
    for row in rows:
        missing = [c for c in SECOND_SITE_COLUMNS if c not in row]
        if missing:
            raise DataError(f"{path}: the row of lever {row.get('lever')!r} lacks {missing}; columns are "
                            f"{list(SECOND_SITE_COLUMNS)}.")
    table = pd.DataFrame(rows)[list(SECOND_SITE_COLUMNS)]
    table.attrs["note"] = f"{len(table)} levers from {path.name}"
    return table


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def table_from_markdown(text: str) -> dict:
    """Return {"columns", "rows"} of the first pipe table in a markdown text (cells kept as text)."""
    lines = [line for line in text.splitlines()]
    for i in range(len(lines) - 1):
        head, rule = lines[i].strip(), lines[i + 1].strip()
        if head.startswith("|") and rule.startswith("|") and set(rule) <= set("|-: "):
            columns = _cells(head)
            rows = []
            for line in lines[i + 2:]:
                if not line.strip().startswith("|"):
                    break
                rows.append(_cells(line))
            if any(len(row) != len(columns) for row in rows):
                raise DataError(f"A row of the table under {head!r} does not have {len(columns)} cells.")
            return {"columns": columns, "rows": rows}
    raise DataError("No markdown pipe table (a header line, then a |---| line) found in the text.")


def update_from_markdown(markdown_path, path=TABLE_FILE, note: str = "") -> dict:
    """Copy the first table of `markdown_path` (e.g. benchmarks/RECIPE.md) into the stored table; return it."""
    markdown_path = check_file(markdown_path, "Recipe table", hint="Run benchmarks/sweep_recipe.py to write it first.")
    table = {"source": str(markdown_path), "note": note, **table_from_markdown(markdown_path.read_text())}
    Path(path).write_text(json.dumps(table, indent=1) + "\n")
    return table


if __name__ == "__main__":
    print(update_from_markdown(sys.argv[1], note=" ".join(sys.argv[2:])))
