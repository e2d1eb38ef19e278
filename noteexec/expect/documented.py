"""What a note can document about a block, as data: an error, an output, and the random draw
that makes an output's numbers not the author's.

These are what :mod:`noteexec.judge` compares facts with and :mod:`noteexec.serialize` caches;
the readers that find them are :mod:`~noteexec.expect.comments` and :mod:`~noteexec.expect.pasted`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

# `Name: message` where Name looks like an exception or warning class, optionally dotted.
ERROR_NAME = (
    r"(?P<name>(?:[A-Za-z_]\w*\.)*"
    r"(?:[A-Z]\w*(?:Error|Exception|Warning|Exit|Interrupt)|StopIteration|Exception))"
)
DOCUMENTED_ERROR = re.compile(rf"(?<![\w.]){ERROR_NAME}\s*[:：]\s*(?P<message>.*)$")


@dataclass(frozen=True)
class DocumentedError:
    """An exception or warning the note says a block raises or emits."""

    name: str
    message: str
    line: int | None
    """The note line it must come from, or None when the note pins no line."""
    form: Literal["comment", "trailing", "output", "transcript"]
    end_line: int | None = None
    """The last line of the statement at ``line``: any line of it counts."""

    @property
    def is_warning(self) -> bool:
        return self.name.endswith("Warning")

    def describe(self) -> str:
        text = f"{self.name}: {self.message}" if self.message else self.name
        return f"{text} at {self.where()}" if self.line is not None else text

    def where(self) -> str:
        """``line 5``, or ``lines 5-7`` for a statement written over several lines."""
        if self.end_line is None or self.end_line == self.line:
            return f"line {self.line}"
        return f"lines {self.line}-{self.end_line}"


@dataclass(frozen=True)
class RandomDraw:
    """Where a note first draws random numbers without a seed, and whether any are integers."""

    where: str
    """``torch.randn at line 12``."""
    integers: bool = False


@dataclass(frozen=True)
class DocumentedOutput:
    """Text a block (``line`` None) or one statement (lines ``line``..``end_line``) prints."""

    text: str
    line: int | None = None
    end_line: int | None = None
    tail: bool = False
    """The text may be the end of what was printed: the print adds a label before the value
    (``print(f"grad = {w.grad}")  # tensor([15.])``)."""
    prose: str = ""
    """Words the author wrote after the value (``# True -> w 是叶子``), exactly as written, so
    that ``text + prose`` is the whole comment: either matching what was printed passes."""
    random: RandomDraw | None = None
    """Set when the block prints after an unseeded random draw: its numbers need not be the
    author's, so only what is deterministic (shape, dtype, structure) must match."""
