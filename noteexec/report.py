"""Reporters: turn check results into text for people and JSON for tools."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TextIO

from noteexec.check import BlockResult, NoteResult

_CONTEXT = 2


@dataclass(frozen=True)
class Summary:
    notes: int
    blocks: int
    passed: int
    failed: int
    skipped: int
    errors: int

    @classmethod
    def of(cls, results: Sequence[NoteResult]) -> Summary:
        outcomes = [block.verdict.outcome for result in results for block in result.blocks]
        return cls(
            notes=len(results),
            blocks=len(outcomes),
            passed=outcomes.count("passed"),
            failed=outcomes.count("failed"),
            skipped=outcomes.count("skipped"),
            errors=sum(result.status == "error" for result in results),
        )

    @property
    def ok(self) -> bool:
        return self.failed == 0 and self.errors == 0


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
        "stdout": result.facts.stdout if result.facts else "",
        "duration": result.facts.duration if result.facts else 0.0,
    }


def to_json(results: Sequence[NoteResult], duration: float | None = None) -> dict[str, Any]:
    summary = Summary.of(results)
    document: dict[str, Any] = {
        "notes": [
            {
                "path": str(result.note.path),
                "status": result.status,
                "error": result.error,
                "blocks": [block_json(block) for block in result.blocks],
            }
            for result in results
        ],
        "summary": {
            "notes": summary.notes,
            "blocks": summary.blocks,
            "passed": summary.passed,
            "failed": summary.failed,
            "skipped": summary.skipped,
            "errors": summary.errors,
        },
    }
    if duration is not None:
        document["summary"]["duration"] = round(duration, 3)
    return document


def write_json(results: Sequence[NoteResult], stream: TextIO, duration: float | None = None) -> None:
    json.dump(to_json(results, duration), stream, ensure_ascii=False, indent=2)
    stream.write("\n")


class TextReporter:
    """A line per note as results arrive; details of every failure; a summary line."""

    LABELS: ClassVar[dict[str, str]] = {"passed": "PASS", "failed": "FAIL", "error": "ERROR"}

    def __init__(self, stream: TextIO, verbose: int = 0) -> None:
        self.stream = stream
        self.verbose = verbose

    def note(self, result: NoteResult) -> None:
        counts = Summary.of([result])
        parts = [f"{counts.passed} passed"]
        if counts.failed:
            parts.append(f"{counts.failed} failed")
        if counts.skipped:
            parts.append(f"{counts.skipped} skipped")
        label = self.LABELS[result.status]
        self.stream.write(f"{label:5} {result.note.path} ({', '.join(parts)})\n")
        if result.error:
            self.stream.write(f"  error: {result.error}\n")
        for block in result.blocks:
            if block.verdict.outcome == "failed":
                self._failure(result, block)
            elif self.verbose and block.verdict.outcome == "passed":
                self.stream.write(f"  {result.note.path}:{block.block.line}: ok: {block.verdict.message}\n")
            for warning in block.verdict.warnings if self.verbose else ():
                self.stream.write(f"  {result.note.path}:{block.block.line}: warning: {warning}\n")
        self.stream.flush()

    def _failure(self, result: NoteResult, block: BlockResult) -> None:
        callout = f" [{block.block.callout.kind}]" if block.block.callout else ""
        self.stream.write(f"  {result.note.path}:{block.block.line}{callout} {block.verdict.message}\n")
        self.stream.write(f"    {block.expectation.describe()}\n")
        focus = _focus_line(block)
        if focus is not None:
            lines = result.note.lines
            for number in range(max(block.block.line + 1, focus - _CONTEXT), focus + _CONTEXT + 1):
                if number > len(lines) or number > block.block.line + len(block.block.code.splitlines()):
                    break
                marker = ">" if number == focus else " "
                self.stream.write(f"    {marker}{number:5} | {lines[number - 1]}\n")
        if block.verdict.diff:
            for line in block.verdict.diff.splitlines():
                self.stream.write(f"    {line}\n")

    def summary(self, results: Sequence[NoteResult], duration: float) -> None:
        counts = Summary.of(results)
        self.stream.write(
            f"{counts.notes} notes, {counts.blocks} blocks: {counts.passed} passed, "
            f"{counts.failed} failed, {counts.skipped} skipped, {counts.errors} errors "
            f"in {duration:.2f}s\n"
        )


def _focus_line(block: BlockResult) -> int | None:
    """The note line a reader should look at: where it raised, or where it was meant to."""
    facts = block.facts
    if facts is not None and facts.exception is not None and facts.exception.line is not None:
        return facts.exception.line
    if block.expectation.error is not None and block.expectation.error.line is not None:
        return block.expectation.error.line
    return None
