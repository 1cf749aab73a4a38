import json

import pytest

from medkit.base.errors import DataError
from medkit.fit.table import load_table, recipe_table, table_from_markdown, update_from_markdown

RECIPE_MD = """# Recipe

Some words.

| size | config | val AUC |
|---|---|---|
| 224 | head 10 ep | 0.9512 |
| 160 | head 1 + top1 5 ep | 0.9733 |

More words.
"""


def test_bundled_table_is_the_measured_one():
    # lesson 03 shows the bundled copy: it must be the table benchmarks/RECIPE.md holds now, not an older one
    from pathlib import Path

    measured = table_from_markdown((Path(__file__).parents[1] / "benchmarks" / "RECIPE.md").read_text())
    table = recipe_table()
    assert list(table.columns) == load_table()["columns"] == measured["columns"]
    assert table.values.tolist() == measured["rows"] and "medkit fit" in table.iloc[-1, 0]


def test_markdown_table_round_trips(tmp_path):
    md = tmp_path / "RECIPE.md"
    md.write_text(RECIPE_MD)
    stored = tmp_path / "table.json"
    update_from_markdown(md, stored, note="seed 0")
    table = recipe_table(stored)
    assert list(table.columns) == ["size", "config", "val AUC"]
    assert table["config"].tolist() == ["head 10 ep", "head 1 + top1 5 ep"]
    assert load_table(stored)["note"] == "seed 0"


def test_bad_input(tmp_path):
    with pytest.raises(DataError, match="No markdown pipe table"):
        table_from_markdown("no table here")
    with pytest.raises(DataError, match="does not have 3 cells"):
        table_from_markdown("| a | b | c |\n|---|---|---|\n| 1 | 2 |\n")
    with pytest.raises(DataError, match="does not exist"):
        update_from_markdown(tmp_path / "missing.md", tmp_path / "t.json")
    with pytest.raises(DataError, match="No recipe table"):
        load_table(tmp_path / "missing.json")
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(DataError, match="not valid JSON"):
        load_table(tmp_path / "broken.json")
    (tmp_path / "short.json").write_text(json.dumps({"source": "", "note": "", "columns": ["a"], "rows": [[1, 2]]}))
    with pytest.raises(DataError, match="one cell per column"):
        load_table(tmp_path / "short.json")
