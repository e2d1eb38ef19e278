"""The Note model: what parsing a note yields, as frozen dataclasses every stage can share."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PYTHON_LANGUAGES = frozenset(
    {"python", "py", "python3", "ipython", "ipython3", "pycon", "python-repl", "doctest"}
)
"""Fences that run; ``pycon`` (and python fences that start with ``>>>``) as doctest transcripts."""
OUTPUT_LANGUAGES = frozenset({"", "text", "output", "console", "pytb", "log"})

# Canonical callout types and their aliases, as Obsidian documents them.
CALLOUT_ALIASES: dict[str, tuple[str, ...]] = {
    "note": (),
    "abstract": ("summary", "tldr"),
    "info": (),
    "todo": (),
    "tip": ("hint", "important"),
    "success": ("check", "done"),
    "question": ("help", "faq"),
    "warning": ("caution", "attention"),
    "failure": ("fail", "missing"),
    "danger": ("error",),
    "bug": (),
    "example": (),
    "quote": ("cite",),
}
CANONICAL_CALLOUT: dict[str, str] = {
    name: canonical for canonical, aliases in CALLOUT_ALIASES.items() for name in (canonical, *aliases)
}


@dataclass(frozen=True)
class CalloutHeader:
    """The first line of a callout: ``[!type|metadata]fold title``."""

    kind: str
    """Canonical type (``failure`` for ``[!FAIL]``); unknown types keep their lowercased name."""
    raw_type: str
    title: str
    """The title as written (inline Markdown), empty when the callout has none."""
    fold: str | None
    metadata: str | None
    known: bool

    @property
    def display_title(self) -> str:
        """Obsidian's default title is the type as written, in title case."""
        return self.title or self.raw_type.replace("-", " ").replace("_", " ").title()


@dataclass(frozen=True)
class Problem:
    """Something wrong with a note's text, at a 1-based line of the file."""

    line: int
    message: str


@dataclass(frozen=True)
class OutputFence:
    """A fence right after a python block that shows what the block printed or raised."""

    line: int
    info: str
    text: str


@dataclass(frozen=True)
class CodeBlock:
    """A python fence of a note. ``line`` is the opening fence's 1-based line in the file;
    code line ``k`` (1-based) is file line ``line + k``."""

    line: int
    code: str
    lang: str
    callouts: tuple[CalloutHeader, ...] = ()
    """Enclosing callouts, outermost first."""
    skip: bool = False
    output: OutputFence | None = None
    tabs: tuple[str, ...] = ()
    """The frameworks of a d2l cell (```` ```{.python .input} ````), from its ``#@tab`` line
    (``mxnet`` when it names none); empty for any other fence."""

    @property
    def callout(self) -> CalloutHeader | None:
        """The innermost enclosing callout, the one that says what the block shows."""
        return self.callouts[-1] if self.callouts else None

    def code_line(self, note_line: int) -> str:
        lines = self.code.splitlines()
        offset = note_line - self.line - 1
        return lines[offset] if 0 <= offset < len(lines) else ""


@dataclass(frozen=True)
class NoteOptions:
    """The ``noteexec:`` mapping of a note's frontmatter."""

    skip: bool = False
    timeout: float | None = None


@dataclass(frozen=True)
class Note:
    path: Path
    utf8: bytes
    """The normalised text (no BOM, LF endings) as UTF-8: a run keeps every note to the end, and
    a ``str`` with one emoji in it takes four bytes for every character."""
    frontmatter: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    blocks: tuple[CodeBlock, ...] = ()
    setup: tuple[CodeBlock, ...] = ()
    options: NoteOptions = NoteOptions()
    problems: tuple[Problem, ...] = ()

    @property
    def source(self) -> str:
        """The normalised text; line ``n`` is ``lines[n - 1]``."""
        return self.utf8.decode("utf-8", "surrogatepass")

    @property
    def lines(self) -> list[str]:
        return self.source.split("\n")
