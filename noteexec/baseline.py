"""Accepted failures: adopt noteexec on a vault with today's failures known, fail on new ones.

Like mypy's or PHPStan's baselines: ``noteexec baseline PATH -o FILE`` records every failure;
``noteexec check PATH --baseline FILE`` reports those as known (a skip that says so) and fails
only on new ones, and says which recorded failures are gone so the file can shrink.

A failure is keyed by its note (relative to the baseline file's folder) and its block's content
(language, callout and code), not by line: editing prose around a block keeps the key, editing
the block drops it. A note-level error (bad frontmatter, a failing hidden setup) is keyed by its
message with the numbers taken out. The file is JSON, sorted, one failure per entry: reviewable
in a pull request.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from noteexec.display import unicode_path
from noteexec.exitcodes import UsageError
from noteexec.judge import Verdict
from noteexec.results import BlockResult, NoteResult, NoteStatus

FORMAT_VERSION = 1
FAILING = ("failed", "not_runnable")
"""Outcomes a baseline records: a block that cannot run here may fail a run too."""


@dataclass(frozen=True, order=True)
class Failure:
    """One failure as a baseline records it; ``line`` and ``message`` are for the reader only."""

    note: str
    key: str
    line: int = dataclasses.field(compare=False)
    message: str = dataclasses.field(compare=False)

    @property
    def identity(self) -> tuple[str, str]:
        return self.note, self.key


def failures_of(result: NoteResult, folder: Path) -> list[Failure]:
    """Every failure of a note: its note-level error, or each failed block."""
    note = _note_name(result, folder)
    if result.status == "error":
        error = result.error or "error"
        return [Failure(note, "note:" + _digest(re.sub(r"\d+", "N", error)), 1, error)]
    keys = _block_keys(result.blocks)
    return [
        Failure(note, key, block.block.line, block.verdict.message)
        for block, key in zip(result.blocks, keys, strict=True)
        if block.verdict.outcome in FAILING
    ]


def _note_name(result: NoteResult, folder: Path) -> str:
    """A note as a baseline names it: its path relative to the baseline's folder, with ``/``."""
    return unicode_path(Path(os.path.relpath(result.note.path, folder)).as_posix())


def _block_keys(blocks: Iterable[BlockResult]) -> list[str]:
    """A key per block from its content; the same block twice in a note gets ``#2``, ``#3``."""
    seen: Counter[str] = Counter()
    keys = []
    for block in blocks:
        callout = block.block.callout.kind if block.block.callout else ""
        key = "block:" + _digest(f"{block.block.lang}\0{callout}\0{block.block.code}")
        seen[key] += 1
        keys.append(key if seen[key] == 1 else f"{key}#{seen[key]}")
    return keys


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def render(failures: Iterable[Failure]) -> tuple[str, int]:
    """A baseline file's text (sorted, one entry per failure) and how many failures it holds."""
    entries = sorted(set(failures))
    document = {
        "noteexec_baseline": FORMAT_VERSION,
        "failures": [
            {"note": item.note, "key": item.key, "line": item.line, "message": item.message}
            for item in entries
        ],
    }
    return json.dumps(document, ensure_ascii=False, indent=2) + "\n", len(entries)


@dataclass
class Baseline:
    """The accepted failures of a baseline file, and what a run found of them."""

    path: Path
    accepted: dict[tuple[str, str], Failure]
    seen: set[tuple[str, str]] = dataclasses.field(default_factory=set)
    checked_notes: set[str] = dataclasses.field(default_factory=set)

    @classmethod
    def load(cls, path: Path) -> Baseline:
        """Read a baseline file; a clear error naming the file (and line) when it is not one."""
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            reason = getattr(error, "strerror", None) or error
            raise UsageError(f"{path}: cannot read the baseline: {reason}") from None
        try:
            document = json.loads(text)
        except json.JSONDecodeError as error:
            raise UsageError(f"{path}:{error.lineno}: not a noteexec baseline: {error.msg}") from None
        if not isinstance(document, dict) or document.get("noteexec_baseline") != FORMAT_VERSION:
            raise UsageError(f"{path}: not a noteexec baseline (write one with `noteexec baseline`)")
        accepted = {}
        for entry in document.get("failures", []):
            if not (
                isinstance(entry, dict)
                and isinstance(entry.get("note"), str)
                and isinstance(entry.get("key"), str)
            ):
                raise UsageError(f"{path}: every failure needs a 'note' and a 'key': {entry!r:.80}")
            line, message = entry.get("line", 0), entry.get("message", "")
            failure = Failure(entry["note"], entry["key"], line if isinstance(line, int) else 0, str(message))
            accepted[failure.identity] = failure
        return cls(path, accepted)

    def apply(self, result: NoteResult) -> NoteResult:
        """The result with its known failures turned into skips that say so; new ones stay."""
        folder = self.path.parent
        found = failures_of(result, folder)
        self.checked_notes.add(_note_name(result, folder))
        known = {failure.identity for failure in found if failure.identity in self.accepted}
        self.seen |= known
        if not known:
            return result
        if result.status == "error":  # its one failure is the note's error, and it is known
            reason = f"known failure (in {self.path.name}): {result.error}"
            blocks = tuple(
                dataclasses.replace(block, verdict=Verdict("skipped", reason)) for block in result.blocks
            )
            return dataclasses.replace(result, blocks=blocks, status="passed", error=None)
        keys = _block_keys(result.blocks)
        note = found[0].note
        blocks = tuple(
            dataclasses.replace(
                block,
                verdict=Verdict(
                    "skipped",
                    f"known failure (in {self.path.name}): {block.verdict.message}",
                    block.verdict.warnings,
                    block.verdict.diff,
                ),
            )
            if block.verdict.outcome in FAILING and (note, key) in known
            else block
            for block, key in zip(result.blocks, keys, strict=True)
        )
        outcomes = {block.verdict.outcome for block in blocks}
        status: NoteStatus = (
            "failed" if "failed" in outcomes else "not_runnable" if "not_runnable" in outcomes else "passed"
        )
        return dataclasses.replace(result, blocks=blocks, status=status)

    @property
    def known(self) -> int:
        """Accepted failures that this run met again."""
        return len(self.seen)

    def fixed(self) -> list[Failure]:
        """Accepted failures of the notes this run checked that did not happen: the baseline can
        lose them."""
        return sorted(
            failure
            for identity, failure in self.accepted.items()
            if failure.note in self.checked_notes and identity not in self.seen
        )
