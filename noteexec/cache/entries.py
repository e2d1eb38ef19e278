"""What a results entry holds: a note's facts with where its blocks were, moved on reading.

A run key holds no fence line, so prose edits that move blocks still hit: the stored facts'
line numbers are moved to where the blocks are now. Facts that depend on the moment (a
timeout, a dead sandbox) are never stored.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import replace
from typing import Protocol

from noteexec.facts import NoteFacts, Raised, SetupFailure


class Located(Protocol):
    """A block of a note (a parsed one or one sent to the sandbox)."""

    @property
    def line(self) -> int: ...
    @property
    def code(self) -> str: ...


def block_spans(executed: Iterable[Located]) -> list[tuple[int, int]]:
    """(fence line, code lines) of the blocks a note executes, in order (setup first)."""
    return [(block.line, block.code.count("\n") + 1) for block in executed]


def facts_from_json(text: str, spans: list[tuple[int, int]]) -> NoteFacts:
    """Stored facts, their lines moved to where the blocks (at ``spans``) are now."""
    stored = json.loads(text)
    return relocate(NoteFacts.from_json(stored["facts"]), [tuple(span) for span in stored["spans"]], spans)


def relocate(facts: NoteFacts, stored: list[tuple[int, int]], current: list[tuple[int, int]]) -> NoteFacts:
    """Move the note lines in cached facts from where the blocks were to where they are now."""
    if stored == current:
        return facts

    def move(line: int | None) -> int | None:
        if line is None:
            return None
        for (old, length), (new, _) in zip(stored, current, strict=True):
            if old < line <= old + length:
                return new + line - old
        return line

    def moved(raised: Raised) -> Raised:
        return replace(raised, line=move(raised.line), top_line=move(raised.top_line))

    blocks = tuple(
        replace(
            block,
            exception=None if block.exception is None else moved(block.exception),
            warnings=tuple(moved(warning) for warning in block.warnings),
            stdout_by_line=tuple((move(line), text) for line, text in block.stdout_by_line),
        )
        for block in facts.blocks
    )
    setup = facts.setup_failure
    if setup is not None:
        setup = SetupFailure(move(setup.line), moved(setup.exception))
    return replace(facts, blocks=blocks, setup_failure=setup)


def cacheable(facts: NoteFacts) -> bool:
    """Timeouts and a sandbox that died depend on the moment, not on the note: never cached."""
    ended = facts.ended or ""
    return not (ended.startswith("timed out") or "sandbox worker died" in ended)
