"""Sphinx extension: one author–year citation scheme for the text and the bibliography.

sphinxcontrib-bibtex formats the in-text citation (``author_year``: "Laine et al. 2019")
and the bibliography's labels (pybtex's ``alpha``: "[LKLA19a]") separately, so three
different works could all read "Laine et al. 2019" in the text while the list showed
three other labels. This extension registers

* the pybtex label style ``ssid_author_year``: "Laine et al. 2019a", "Lehtinen and Aila
  2018", "Zhang 2017"; works whose author part and year coincide get the suffixes a, b,
  c, … in bibliography order (author, year, title);
* the pybtex formatting style ``ssid_author_year``: pybtex's ``alpha`` entries and sorting
  with that label style (``bibtex_default_style``);
* the sphinxcontrib-bibtex referencing style ``ssid_author_year``
  (``bibtex_reference_style``): ``{cite:p}`` gives "[Laine et al. 2019a]", exactly the
  bibliography's label, and ``{cite:t}`` gives "Laine et al. [2019a]"; the year shown in
  the text is read from the entry's label, so it always carries the same suffix.
"""
from __future__ import annotations

import re
import string
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from pybtex.backends.plaintext import Backend as PlaintextBackend
from pybtex.plugin import register_plugin as register_pybtex_plugin
from pybtex.richtext import Text
from pybtex.style.formatting.alpha import Style as AlphaStyle
from pybtex.style.labels import BaseLabelStyle
from sphinxcontrib.bibtex.plugin import register_plugin as register_bibtex_plugin
from sphinxcontrib.bibtex.style.referencing import BracketStyle, GroupReferenceStyle, PersonStyle
from sphinxcontrib.bibtex.style.referencing.basic_author_year import (
    BasicAuthorYearParentheticalReferenceStyle,
    BasicAuthorYearTextualReferenceStyle,
)
from sphinxcontrib.bibtex.style.referencing.extra_author import ExtraAuthorReferenceStyle
from sphinxcontrib.bibtex.style.referencing.extra_empty import ExtraEmptyReferenceStyle
from sphinxcontrib.bibtex.style.referencing.extra_label import ExtraLabelReferenceStyle
from sphinxcontrib.bibtex.style.referencing.extra_year import ExtraYearReferenceStyle
from sphinxcontrib.bibtex.style.names.last import LastNameStyle
from sphinxcontrib.bibtex.style.template import join, join2, node, post_text, pre_text, reference
from sphinxcontrib.bibtex.style.template import year as plain_year

NAME = "ssid_author_year"
ET_AL = " et al."          # plain text, so that the text and the labels read the same
_YEAR_AT_END = re.compile(r"(\d{4}[a-z]*|n\.d\.[a-z]*)$")


class _PlainText(PlaintextBackend):
    """pybtex's plain-text backend, but a tie stays a no-break space, as in the HTML text."""

    symbols = {**PlaintextBackend.symbols, "nbsp": "\u00a0"}


def _text(rich) -> str:
    return rich.format().render(_PlainText()) if hasattr(rich, "format") else str(rich)


def author_part(entry) -> str:
    """The author part of a label: "Zhang", "Lehtinen and Aila", "Laine et al."."""
    persons = entry.persons.get("author") or entry.persons.get("editor") or []
    if not persons:
        return Text.from_latex(entry.fields.get("title", entry.key)).render_as("text")
    last = [_text(LastNameStyle().format(p)) for p in persons]
    if len(last) == 1:
        return last[0]
    if len(last) == 2:
        return f"{last[0]} and {last[1]}"
    return last[0] + ET_AL


def _suffix(i: int) -> str:
    letters = string.ascii_lowercase
    out = ""
    i += 1
    while i:
        i, r = divmod(i - 1, 26)
        out = letters[r] + out
    return out


class AuthorYearLabelStyle(BaseLabelStyle):
    """Labels "Author[s] YEAR" with a, b, … for works that would share one."""

    def format_labels(self, sorted_entries):
        entries = list(sorted_entries)
        bases = [f"{author_part(e)} {e.fields.get('year', 'n.d.')}" for e in entries]
        shared = Counter(bases)
        seen: defaultdict[str, int] = defaultdict(int)
        for base in bases:
            if shared[base] > 1:
                yield base + _suffix(seen[base])
                seen[base] += 1
            else:
                yield base


class AuthorYearStyle(AlphaStyle):
    """pybtex's ``alpha`` entries and author–year–title sorting, with author–year labels."""

    default_label_style = AuthorYearLabelStyle


@node
def label_year(children, data) -> Text:
    """The year as the bibliography's label writes it ("2019a"); the bare year otherwise."""
    assert not children
    label = getattr(data.get("formatted_entry"), "label", "") or ""
    m = _YEAR_AT_END.search(label)
    return Text(m.group(1)) if m else plain_year.format_data(data)


@dataclass
class _Parenthetical(BasicAuthorYearParentheticalReferenceStyle):
    def inner(self, role_name: str):
        return join2(sep1=self.pre_text_sep, sep2=self.post_text_sep)[
            pre_text,
            reference[join(sep=self.author_year_sep)[
                self.person.author_or_editor_or_title(full="s" in role_name), label_year]],
            post_text,
        ]


@dataclass
class _Textual(BasicAuthorYearTextualReferenceStyle):
    def inner(self, role_name: str):
        return join(sep=self.text_reference_sep)[
            self.person.author_or_editor_or_title(full="s" in role_name),
            join[self.bracket.left,
                 join2(sep1=self.pre_text_sep, sep2=self.post_text_sep)[
                     pre_text, reference[label_year], post_text],
                 self.bracket.right],
        ]


@dataclass
class _Year(ExtraYearReferenceStyle):
    def inner(self, role_name: str):
        return reference[label_year]


def _person() -> PersonStyle:
    return PersonStyle(other=ET_AL)


@dataclass
class AuthorYearReferenceStyle(GroupReferenceStyle):
    """``{cite:p}`` → "[Laine et al. 2019a]" (the bibliography label), ``{cite:t}`` →
    "Laine et al. [2019a]"; the other roles as in sphinxcontrib-bibtex's ``author_year``."""

    bracket: BracketStyle = field(default_factory=BracketStyle)
    person: PersonStyle = field(default_factory=_person)

    def __post_init__(self):
        self.styles.extend([
            _Parenthetical(bracket=self.bracket, person=self.person, author_year_sep=" "),
            _Textual(bracket=self.bracket, person=self.person),
            ExtraAuthorReferenceStyle(bracket=self.bracket, person=self.person),
            ExtraLabelReferenceStyle(bracket=self.bracket),
            _Year(bracket=self.bracket),
            ExtraEmptyReferenceStyle(),
        ])
        super().__post_init__()


def setup(app):
    register_pybtex_plugin("pybtex.style.labels", NAME, AuthorYearLabelStyle)
    register_pybtex_plugin("pybtex.style.formatting", NAME, AuthorYearStyle)
    register_bibtex_plugin("sphinxcontrib.bibtex.style.referencing", NAME, AuthorYearReferenceStyle)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
