"""The course's reference table: every inline author-year mention in a lesson has an entry, every entry an id (no network)."""

import json
import re
from pathlib import Path

import pytest

from medkit.base.errors import UnknownNameError
from medkit.course import references
from medkit.course.references import LESSON_REFERENCES, REFERENCES

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
DOI = re.compile(r"^10\.\d{4,9}/[-._;()/:A-Za-z0-9]+$")  # Crossref's recommended pattern
ARXIV = re.compile(r"^\d{4}\.\d{4,5}$")  # post-2007 ids: YYMM.NNNNN
# "Chen et al. 2020", "Howard and Ruder 2018", "Selvaraju et al., 2017", "Adebayo et al. (2018)",
# "Wang et al., CVPR 2017", "Zuiderveld 1994": a capitalised surname, optionally a co-author, then the year.
MENTION = re.compile(r"\b([A-Z][\w'\-]+)(?: et al\.| and [A-Z][\w'\-]+)?(?:'s)?,? \(?(?:[A-Z][A-Za-z]{1,7} )?((?:19|20)\d\d)\b")
_NOT_NAMES = {"In", "The", "December", "ICML", "CVPR", "ICCV", "NeurIPS", "MICCAI", "Cell", "Nature", "Since", "Python",
              "Binder", "PS3", "January", "October", "July", "June", "March"}


def _prose(path) -> str:
    """Return a lesson's markdown, rendered reference blocks left out (they list the entries, not mention them)."""
    text = "\n".join("".join(c["source"]) for c in json.loads(Path(path).read_text())["cells"]
                     if c["cell_type"] == "markdown")
    return re.sub(r"<!-- medkit:references \d\d -->.*?<!-- /medkit:references \d\d -->", "", text, flags=re.DOTALL)


def mentions(text: str) -> set[tuple[str, int]]:
    """Return the (first author's surname, year) of every inline citation in `text`."""
    return {(m.group(1), int(m.group(2))) for m in MENTION.finditer(text) if m.group(1) not in _NOT_NAMES
            and (" et al." in m.group(0) or " and " in m.group(0) or m.group(1) in _SURNAMES)}


_SURNAMES = {ref.surname for ref in REFERENCES.values()}
_BY_MENTION = {(ref.surname, ref.year): key for key, ref in REFERENCES.items()}


@pytest.mark.parametrize("key", sorted(REFERENCES))
def test_every_entry_has_a_valid_identifier_and_a_consistent_cite(key):
    ref = REFERENCES[key]
    assert ref.doi or ref.arxiv, f"{key}: no DOI and no arXiv id"
    assert ref.doi is None or DOI.match(ref.doi), f"{key}: {ref.doi!r} is not a DOI"
    assert ref.arxiv is None or ARXIV.match(ref.arxiv), f"{key}: {ref.arxiv!r} is not an arXiv id"
    assert ref.cite.endswith(str(ref.year)) and ref.authors.startswith(ref.surname), key
    assert ref.link.startswith(("https://doi.org/10.", "https://arxiv.org/abs/"))


def test_no_two_entries_share_a_mention():
    assert len(_BY_MENTION) == len(REFERENCES), "two entries have the same first author and year: add a letter"


def test_the_works_issue_27_names_are_in_the_table():
    named = {"chen2020", "dosovitskiy2021", "lin2017", "ronneberger2015", "hardt2016", "bonawitz2017", "yosinski2014",
             "raghu2019", "he2019", "selvaraju2017", "li2016", "zuiderveld1994", "kermany2018", "wang2017", "zech2018",
             "yang2023"}
    assert named <= set(REFERENCES)
    listed = {key for keys in LESSON_REFERENCES.values() for key in keys}
    assert named <= listed, f"cited by no lesson: {named - listed}"


@pytest.mark.parametrize("path", sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")), ids=lambda p: p.stem[:2])
def test_every_inline_mention_has_an_entry_the_lesson_lists(path):
    lesson = path.stem[:2]
    found = mentions(_prose(path))
    missing = sorted(m for m in found if m not in _BY_MENTION)
    assert not missing, f"{path.name} cites {missing}, which medkit/course/references.py lacks"
    unlisted = sorted(_BY_MENTION[m] for m in found if _BY_MENTION[m] not in LESSON_REFERENCES[lesson])
    assert not unlisted, f"{path.name} mentions {unlisted} but LESSON_REFERENCES[{lesson!r}] does not list them"


def test_the_mention_scan_finds_what_is_missing():
    text = "as Doe et al. (2031) and Roe and Poe, 2030 showed, unlike Chen et al. 2020 or Wang et al., CVPR 2017"
    found = mentions(text)
    assert {("Doe", 2031), ("Roe", 2030), ("Chen", 2020), ("Wang", 2017)} <= found
    assert sorted(m for m in found if m not in _BY_MENTION) == [("Doe", 2031), ("Roe", 2030)]


def test_reference_lists_render_and_unknown_names_are_refused():
    text = references.references_markdown("08")
    assert "arXiv:2002.05709" in text and text.count("\n- ") == len(LESSON_REFERENCES["08"]) - 1
    with pytest.raises(UnknownNameError, match="references.py"):
        references.get_reference("nobody1900")
    with pytest.raises(UnknownNameError, match="lessons are"):
        references.lesson_references("99")
