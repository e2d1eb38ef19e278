"""Property tests over generated Obsidian-flavoured Markdown (issue 6).

Notes are built from frontmatter, callouts (random types, folds, titles, nesting), fences
(random languages and lengths, nested fences, unterminated ones), ``%%`` comments, skip
directives, wikilinks, lists and mixed line endings. Whatever the text:

- parsing never raises;
- every python block (visible or hidden setup) has a line inside the file, and that line is
  its opening fence (the text there, without quote and list markers, starts with ``` or ~~~);
- the page ``noteexec render --no-run`` writes for the note never raises, and rendering the
  note twice gives the same bytes.

CI runs a bounded number of examples; ``NOTEEXEC_FUZZ_EXAMPLES=5000`` (see ``bench/fuzz.sh``)
runs a longer search.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, example, find, given, settings
from hypothesis import strategies as st

from noteexec.check import assemble, expectations
from noteexec.config import Config
from noteexec.parse import parse_note, read_note
from noteexec.site.build import BuildOptions
from noteexec.site.single import render_single

EXAMPLES = int(os.environ.get("NOTEEXEC_FUZZ_EXAMPLES", "150"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

Lines = list[str]

# --------------------------------------------------------------------------------------------
# Strategies: each element is a list of lines, without line endings.

_CHARS = [*"abcxyz ABC 中文注释 _*`~#%[]!|^=>-:$\\<&\"'(){}.,0123456789", "é", "\t", "\u00a0", "\ufeff"]
words = st.text(alphabet=st.sampled_from(_CHARS), max_size=24)
names = st.sampled_from(["note", "Note B", "folder/c", "../x", "/etc/hostname", "笔记", "a#b", "", " "])
wikilinks = st.builds(
    lambda embed, name, heading, alias: f"{'!' if embed else ''}[[{name}{heading}{alias}]]",
    st.booleans(),
    names,
    st.sampled_from(["", "#Heading", "#^block-1", "#"]),
    st.sampled_from(["", "|alias", "|100x20", "|"]),
)
inline = st.lists(
    st.one_of(words, wikilinks, st.sampled_from(["#tag", "==mark==", "%%c%%", "$x^2$", "`code`"])), max_size=5
)
paragraph = st.builds(lambda parts: ["".join(parts) or "text"], inline)
heading = st.builds(lambda level, text: ["#" * level + " " + text], st.integers(1, 7), words)
blank = st.just([""])
code_line = st.one_of(
    st.sampled_from(
        [
            "x = 1",
            "print(x)  # 1",
            "int('x')  # ValueError: invalid literal",
            "# 报错! RuntimeError: boom",
            "    return x",
            "%%",
            "> [!fail]",
            "",
        ]
    ),
    words,
)
LANGUAGES = [
    "python",
    "py",
    "python3",
    "Python",
    "PY {.cls}",
    "",
    "text",
    "pytb",
    "output",
    "mermaid",
    "js",
    "python title=a",
]


@st.composite
def fences(draw: st.DrawFn) -> Lines:
    char = draw(st.sampled_from("`~"))
    size = draw(st.integers(3, 5))
    body = draw(st.lists(code_line, max_size=6))
    if size > 3 and draw(st.booleans()):  # a shorter fence inside a longer one is content
        inner = char * draw(st.integers(3, size - 1))
        at = draw(st.integers(0, len(body)))
        body[at:at] = [
            inner + draw(st.sampled_from(LANGUAGES)),
            *draw(st.lists(code_line, max_size=2)),
            inner,
        ]
    closing = draw(st.sampled_from([char * size, char * (size + 1), " " + char * size + "  ", None]))
    indent = draw(st.sampled_from(["", "", " ", "   "]))
    lines = [indent + char * size + draw(st.sampled_from(LANGUAGES)), *body]
    return lines + ([closing] if closing is not None else [])


def _callout(children: list[Lines], kind: str, meta: str, fold: str, title: str, marker: str) -> Lines:
    header = f"[!{kind}{meta}]{fold}{(' ' + title) if title else ''}"
    lines = [header] + [line for child in children for line in child]
    return [(marker + line) if line else marker.rstrip() for line in lines]


def callouts(children: st.SearchStrategy[Lines]) -> st.SearchStrategy[Lines]:
    return st.builds(
        _callout,
        st.lists(children, max_size=4),
        st.sampled_from(["fail", "FAIL", "success", "check", "note", "bug", "Custom-Type", "x_y"]),
        st.sampled_from(["", "|meta", "|"]),
        st.sampled_from(["", "+", "-"]),
        words,
        st.sampled_from(["> ", ">", ">  "]),
    )


def _item(children: list[Lines], marker: str) -> Lines:
    lines = [line for child in children for line in child] or ["item"]
    pad = " " * len(marker)
    return [marker + lines[0]] + [(pad + line) if line else "" for line in lines[1:]]


def items(children: st.SearchStrategy[Lines]) -> st.SearchStrategy[Lines]:
    return st.builds(
        _item, st.lists(children, min_size=1, max_size=3), st.sampled_from(["- ", "* ", "+ ", "1. ", "2) "])
    )


def _comment(children: list[Lines], closed: bool) -> Lines:
    lines = ["%%", *(line for child in children for line in child)]
    return lines + (["%%"] if closed else [])


def comments(children: st.SearchStrategy[Lines]) -> st.SearchStrategy[Lines]:
    return st.one_of(
        st.builds(_comment, st.lists(children, max_size=3), st.booleans()),
        st.builds(lambda text: [f"%% {text} %%"], words),
        st.just(["%% noteexec: skip %%"]),
    )


leaves = st.one_of(paragraph, heading, blank, fences(), fences(), st.just(["%% noteexec: skip %%"]))
elements = st.recursive(
    leaves, lambda children: st.one_of(callouts(children), items(children), comments(children)), max_leaves=16
)

properties = st.dictionaries(
    st.sampled_from(["title", "tags", "aliases", "date", "cssclasses", "lang", "noteexec", "x", "1"]),
    st.recursive(
        st.one_of(
            st.none(), st.booleans(), st.integers(-5, 10**6), st.floats(allow_nan=True), words, st.dates()
        ),
        lambda inner: st.one_of(
            st.lists(inner, max_size=3),
            st.dictionaries(st.sampled_from(["skip", "timeout", "k"]), inner, max_size=2),
        ),
        max_leaves=6,
    ),
    max_size=5,
)
frontmatters = st.one_of(
    st.just([]),
    st.builds(
        lambda data: ["---", *yaml.safe_dump(data, allow_unicode=True).splitlines(), "---"], properties
    ),
    st.builds(lambda text: ["---", text, "---"], words),  # often not YAML at all
    st.just(["---", "a: &a [x, x]", "b: [*a, *a]", "---"]),
    st.just(["---", "title: unclosed"]),
)


@st.composite
def notes(draw: st.DrawFn) -> str:
    lines = list(draw(frontmatters))  # a copy: ``st.just`` hands out the same list every time
    for element in draw(st.lists(elements, max_size=8)):
        lines += element
        if draw(st.booleans()):
            lines.append("")
    ending = draw(st.sampled_from(["\n", "\r\n", "\r", "mixed"]))
    if ending != "mixed":
        return ending.join(lines) + draw(st.sampled_from(["", ending]))
    return "".join(line + draw(st.sampled_from(["\n", "\r\n", "\r"])) for line in lines)


# --------------------------------------------------------------------------------------------
# Properties

_CONTAINER = re.compile(r"^(?:[ \t]*(?:>|[-*+](?=[ \t]|$)|\d{1,9}[.)](?=[ \t]|$)))+[ \t]*")


def fence_text(line: str) -> str:
    """A line without its quote and list markers and indentation."""
    return _CONTAINER.sub("", line).lstrip(" \t")


@FUZZ
@given(notes())
@example(">  %%\n>  ```python\n>  x = 1\n>  ```\n>")  # found by this test: markdown-it-py read past the end
@example("> [!fail]\n> - ```python\n>   x = 1\n>   ```\n")
def test_parse_never_raises_and_every_block_line_is_its_opening_fence(text: str) -> None:
    note = parse_note(text, Path("fuzz.md"))
    lines = note.lines
    for block in (*note.setup, *note.blocks):
        assert 1 <= block.line <= len(lines), (block.line, len(lines))
        opening = fence_text(lines[block.line - 1])
        assert opening.startswith(("```", "~~~")), (block.line, lines[block.line - 1])
    for problem in note.problems:
        assert 0 <= problem.line <= len(lines)
        assert "\n" not in problem.message


@pytest.fixture(scope="module")
def vault() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "Note B.md").write_text("# Heading\n\ntext ^block-1\n")
        yield Path(folder)


def _render(path: Path, root: Path) -> bytes:
    note = read_note(path)
    result = assemble(note, expectations(note, Config()), None)
    html, _ = render_single(root, result, BuildOptions(ran=False))
    return html.encode()


@FUZZ
@given(text=notes())
def test_rendering_never_raises_and_is_deterministic(vault: Path, text: str) -> None:
    path = vault / "fuzz.md"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    first = _render(path, vault)
    assert first == _render(path, vault)
    assert first.startswith(b"<!DOCTYPE html>") or first.lower().startswith(b"<!doctype html>")


REACHED: dict[str, Callable[[str], bool]] = {
    "python": lambda text: bool(parse_note(text).blocks),
    "in a callout": lambda text: any(block.callouts for block in parse_note(text).blocks),
    "hidden setup": lambda text: bool(parse_note(text).setup),
    "skipped": lambda text: any(block.skip for block in parse_note(text).blocks),
    "problem": lambda text: bool(parse_note(text).problems),
    "crlf": lambda text: "\r\n" in text,
}


@pytest.mark.parametrize("kind", REACHED)
def test_the_strategies_reach_what_they_should(kind: str) -> None:
    """A guard against a strategy that silently stopped producing python blocks or containers:
    each kind is searched for until found. (A sample of 400 notes once held no skipped block, in
    CI: ``notes`` grew the list ``st.just([])`` hands out, so each draw depended on the ones
    before, and Hypothesis now says so.)"""
    found = find(
        notes(),
        REACHED[kind],
        settings=settings(
            max_examples=2000, deadline=None, database=None, suppress_health_check=list(HealthCheck)
        ),
    )
    assert REACHED[kind](found)
