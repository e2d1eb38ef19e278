"""Reporters: turn check results into text for people and JSON for tools."""

from __future__ import annotations

import json
import textwrap
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, TextIO

from noteexec.display import printable, shown_path, unicode_path
from noteexec.results import NOT_OPTED_IN, BlockResult, NoteResult

_CONTEXT = 2


@dataclass(frozen=True)
class Summary:
    notes: int = 0
    blocks: int = 0
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    errors: int = 0
    cached: int = 0
    """Notes whose facts came from the result cache."""
    reduced: int = 0
    """Notes that ran without the full sandbox."""
    sandbox_warning: str = ""
    """What those notes ran without, and why: every report says it once."""
    limits_warning: str = ""
    """Why memory and processes were capped per process, not per note's tree."""
    known: int = 0
    """Failures accepted by a baseline (reported as skips that say so)."""
    not_opted_in: int = 0
    """Notes with python blocks that were not run because they do not opt in (``opt_in``)."""
    not_runnable: int = 0
    """Blocks that failed only because they cannot run here (see :mod:`noteexec.runnable`)."""
    not_runnable_failing: int = 0
    """Of those, the ones that fail the run (the ``not_runnable`` setting; set by the front end)."""

    @classmethod
    def of(cls, results: Sequence[NoteResult]) -> Summary:
        outcomes = [block.verdict.outcome for result in results for block in result.blocks]
        lost = [text for result in results if (text := sandbox_lost(result))]
        limits = [text for result in results if (text := limits_lost(result))]
        return cls(
            notes=len(results),
            blocks=len(outcomes),
            passed=outcomes.count("passed"),
            failed=outcomes.count("failed"),
            skipped=outcomes.count("skipped"),
            not_runnable=outcomes.count("not_runnable"),
            errors=sum(result.status == "error" for result in results),
            cached=sum(result.cached for result in results),
            reduced=len(lost),
            sandbox_warning=lost[0] if lost else "",
            limits_warning=limits[0] if limits else "",
            not_opted_in=sum(
                bool(result.blocks)
                and all(block.expectation.skip_reason == NOT_OPTED_IN for block in result.blocks)
                for result in results
            ),
        )

    def __add__(self, other: Summary) -> Summary:
        """Counts add up; a warning is the first one seen."""
        pairs = zip(vars(self).values(), vars(other).values(), strict=True)
        return Summary(
            *(mine + theirs if isinstance(mine, int) else mine or theirs for mine, theirs in pairs)
        )

    @property
    def ok(self) -> bool:
        return self.failed == 0 and self.errors == 0 and self.not_runnable_failing == 0


def sandbox_lost(result: NoteResult) -> str:
    """What this note ran without, if it did not get the full sandbox ("" when it did, or
    when no code of it ran)."""
    isolation = result.facts.isolation if result.facts is not None else {}
    if not isolation or (isolation.get("level") == "full" and not isolation.get("missing")):
        return ""
    missing = "; ".join(str(item) for item in isolation.get("missing", ()))
    reason = isolation.get("reason")
    return missing + (f" (because: {reason})" if reason else "")


def limits_lost(result: NoteResult) -> str:
    """Why this note's memory and process caps held per process, not for its whole tree."""
    isolation = result.facts.isolation if result.facts is not None else {}
    limits = str(isolation.get("limits", ""))
    return limits.removeprefix("per process (").removesuffix(")") if limits.startswith("per process") else ""


def sandbox_notice(summary: Summary, which: str = "") -> str:
    """The one loud sentence every report carries when notes ran without the full sandbox;
    ``which`` says which notes (default: how many of how many)."""
    if not summary.reduced:
        return ""
    return (
        f"{which or f'{summary.reduced} of {summary.notes} notes'} ran without part of the sandbox "
        f"here: {summary.sandbox_warning}. See `noteexec doctor`; "
        "`--isolation strict` refuses to run notes without it."
    )


def limits_notice(summary: Summary) -> str:
    """The quieter sentence for caps that hold per process only."""
    if not summary.limits_warning:
        return ""
    return (
        "memory and process limits held per process, not for each note's whole tree "
        f"(no cgroup: {summary.limits_warning}). See `noteexec doctor`."
    )


class Reporter(Protocol):
    """A front end's output, fed one note at a time in file order: nothing has to be kept."""

    def note(self, result: NoteResult) -> None: ...
    def finish(self, summary: Summary, duration: float) -> None: ...


def block_json(result: BlockResult) -> dict[str, Any]:
    callout = result.block.callout
    return {
        "line": result.block.line,
        "callout": callout.kind if callout else None,
        "expect": result.expectation.kind,
        "outcome": result.verdict.outcome,
        "message": result.verdict.message,
        "expectation": result.expectation.describe(),
        "warnings": list(result.verdict.warnings),
        "diff": result.verdict.diff,
        "reason": result.verdict.reason,
        "stdout": result.facts.stdout if result.facts else "",
        "output_truncated": result.facts.truncated if result.facts else False,
        "duration": result.facts.duration if result.facts else 0.0,
    }


def note_json(result: NoteResult) -> dict[str, Any]:
    return {
        "path": unicode_path(result.note.path),
        "status": result.status,
        "error": result.error,
        "cached": result.cached,
        "isolation": result.facts.isolation if result.facts is not None and result.facts.isolation else None,
        "blocks": [block_json(block) for block in result.blocks],
    }


def summary_json(summary: Summary, duration: float | None = None) -> dict[str, Any]:
    document: dict[str, Any] = {
        key: getattr(summary, key) for key in ("notes", "blocks", "passed", "failed", "skipped", "errors")
    }
    document["not_runnable"] = summary.not_runnable
    document["known"] = summary.known
    document["not_opted_in"] = summary.not_opted_in
    document["isolation"] = "reduced" if summary.reduced else "full"
    document["reduced_isolation_notes"] = summary.reduced
    document["sandbox_warning"] = sandbox_notice(summary) or None
    document["limits_warning"] = limits_notice(summary) or None
    if duration is not None:
        document["duration"] = round(duration, 3)
    return document


class JsonReporter:
    """``{"notes": [...], "summary": {...}}``, written note by note."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.first = True
        self.reasons: Counter[str] = Counter()

    def note(self, result: NoteResult) -> None:
        self.reasons.update(block.verdict.reason for block in result.blocks if block.verdict.reason)
        text = json.dumps(note_json(result), ensure_ascii=False, indent=2).replace("\n", "\n    ")
        self.stream.write(('{\n  "notes": [\n    ' if self.first else ",\n    ") + text)
        self.first = False

    def finish(self, summary: Summary, duration: float) -> None:
        self.stream.write('{\n  "notes": [' if self.first else "\n  ")
        document = summary_json(summary, duration)
        document["not_runnable_reasons"] = dict(sorted(self.reasons.items()))
        text = json.dumps(document, indent=2).replace("\n", "\n  ")
        self.stream.write(f'],\n  "summary": {text}\n}}\n')


WARNING_WIDTH = 160
"""A warning is shown on one line of at most this many characters (``--format json`` has it all)."""


class TextReporter:
    """A line per note as results arrive, details of every failure, a summary line.

    On a terminal: colours (never with ``NO_COLOR``) and a progress line on stderr.
    ``verbosity`` -1 shows only failing notes (no warnings), 1 adds passing blocks. Warnings
    (something documented that is not checked, a failure with nothing documented) are shown by
    default under their note, one short line each: they say where a note checks less than it
    seems to.
    """

    LABELS: ClassVar[dict[str, str]] = {
        "passed": "PASS",
        "failed": "FAIL",
        "not_runnable": "N/A",
        "error": "ERROR",
    }
    COLOURS: ClassVar[dict[str, str]] = {
        "passed": "32", "failed": "31", "not_runnable": "35", "error": "33", "dim": "2",
    }  # fmt: skip

    def __init__(
        self,
        stream: TextIO,
        verbosity: int = 0,
        colour: bool = False,
        progress: TextIO | None = None,
    ) -> None:
        self.stream = stream
        self.verbosity = verbosity
        self.colour = colour
        self.progress = progress
        self.total = 0
        self.done = 0
        self.failures = 0
        self.started = time.perf_counter()
        self.not_runnable: Counter[str] = Counter()
        """How many blocks cannot run here, by what would make them run."""

    def _paint(self, text: str, style: str) -> str:
        return f"\033[{self.COLOURS[style]}m{text}\033[0m" if self.colour else text

    def start(self, total: int) -> None:
        self.total = total
        self.started = time.perf_counter()
        self._draw_progress()

    def note(self, result: NoteResult) -> None:
        self.done += 1
        self.failures += result.status != "passed"
        self._clear_progress()
        if result.status != "passed" or self.verbosity >= 0:
            self._note_lines(result)
        self.stream.flush()
        self._draw_progress()

    def _note_lines(self, result: NoteResult) -> None:
        counts = Summary.of([result])
        parts = [f"{counts.passed} passed"]
        if counts.failed:
            parts.append(f"{counts.failed} failed")
        if counts.skipped:
            parts.append(f"{counts.skipped} skipped")
        if counts.not_runnable:
            parts.append(f"{counts.not_runnable} not runnable here")
        if result.cached:
            parts.append("cached")
        label = self._paint(f"{self.LABELS[result.status]:5}", result.status)
        path = shown_path(result.note.path)
        self.stream.write(f"{label} {path} ({', '.join(parts)})\n")
        if result.error:
            self.stream.write(f"  error: {printable(result.error)}\n")
        for block in result.blocks:
            if block.verdict.outcome == "failed" and result.status != "error":
                self._failure(result, block, path)
            elif block.verdict.outcome == "not_runnable":
                self.not_runnable[block.verdict.detail or block.verdict.message] += 1
                if result.status != "error":
                    self._failure(result, block, path)
            elif self.verbosity > 0 and block.verdict.outcome == "passed":
                self.stream.write(f"  {path}:{block.block.line}: ok: {printable(block.verdict.message)}\n")
            for warning in block.verdict.warnings if self.verbosity >= 0 else ():
                short = textwrap.shorten(warning, WARNING_WIDTH, placeholder=" …")
                self.stream.write(f"  {path}:{block.block.line}: warning: {printable(short)}\n")

    def _failure(self, result: NoteResult, block: BlockResult, path: str) -> None:
        callout = f" [{block.block.callout.kind}]" if block.block.callout else ""
        self.stream.write(f"  {path}:{block.block.line}{callout} {printable(block.verdict.message)}\n")
        self.stream.write(self._paint(f"    {printable(block.expectation.describe())}", "dim") + "\n")
        for number, text, focused in excerpt(result, block):
            marker = ">" if focused else " "
            self.stream.write(f"    {marker}{number:5} | {printable(text)}\n")
        if block.verdict.diff:
            for line in block.verdict.diff.splitlines():
                self.stream.write(f"    {printable(line)}\n")

    def _draw_progress(self) -> None:
        if self.progress is None or not self.total:
            return
        elapsed = time.perf_counter() - self.started
        failed = f", {self.failures} failed" if self.failures else ""
        width = 24
        filled = width * self.done // self.total
        bar = "#" * filled + "-" * (width - filled)
        self.progress.write(f"\r[{bar}] {self.done}/{self.total} notes{failed} {elapsed:.1f}s")
        self.progress.flush()

    def _clear_progress(self) -> None:
        if self.progress is not None and self.total:
            self.progress.write("\r\033[K")
            self.progress.flush()

    def finish(self, summary: Summary, duration: float) -> None:
        self._clear_progress()
        line = (
            f"{summary.notes} notes, {summary.blocks} blocks: {summary.passed} passed, "
            f"{summary.failed} failed, {summary.skipped} skipped"
            + (f", {summary.not_runnable} not runnable here" if summary.not_runnable else "")
            + (f" ({summary.known} of them known failures from the baseline)" if summary.known else "")
            + f", {summary.errors} errors"
            + (f", {summary.not_opted_in} notes not opted in" if summary.not_opted_in else "")
            + (f", {summary.cached} notes from cache" if summary.cached else "")
            + f" in {duration:.2f}s"
            + (f"; {summary.reduced} notes WITHOUT THE FULL SANDBOX" if summary.reduced else "")
        )
        if self.not_runnable:
            groups = "; ".join(
                f"{printable(detail)}: {count} block{'s' if count > 1 else ''}"
                for detail, count in self.not_runnable.most_common()
            )
            self.stream.write(f"not runnable here: {groups}\n")
        self.stream.write(self._paint(line, "passed" if summary.ok else "failed") + "\n")
        self.stream.flush()


def excerpt(result: NoteResult, block: BlockResult) -> list[tuple[int, str, bool]]:
    """The note's lines around where a block failed: (line number, text, is the focus)."""
    focus = _focus_line(block)
    if focus is None:
        return []
    lines = result.note.lines
    last = min(len(lines), block.block.line + len(block.block.code.splitlines()))
    first = max(block.block.line + 1, focus - _CONTEXT)
    return [
        (number, lines[number - 1], number == focus)
        for number in range(first, min(last, focus + _CONTEXT) + 1)
    ]


def _focus_line(block: BlockResult) -> int | None:
    """The note line a reader should look at: where it raised, or where it was meant to."""
    facts = block.facts
    if facts is not None and facts.exception is not None and facts.exception.line is not None:
        return facts.exception.line
    if block.expectation.error is not None and block.expectation.error.line is not None:
        return block.expectation.error.line
    return None
