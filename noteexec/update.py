"""``check --update``: rewrite what a note documents to what really happened, and nothing else.

Like pytest-examples' ``--update-examples`` or a snapshot tool accepting new output: a documented
error message that no longer matches (the same exception type, raised where documented), an
output comment or an output fence whose text differs, become what the block really raised or
printed. Every other byte of the note stays: callout ``> `` prefixes, CRLF line endings, a BOM,
indentation, prose after a value. A block whose outcome class changed (a failure demo that
stopped raising, or raises another type) and a note whose blocks cannot run here are reported,
never rewritten. A note that changed since it ran is refused.
"""

from __future__ import annotations

import difflib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from noteexec.expect.documented import DocumentedError, DocumentedOutput
from noteexec.judge import output_matches, printed_by, raised_within
from noteexec.results import BlockResult, NoteResult
from noteexec.source import normalize_source
from noteexec.textmatch import matches


@dataclass(frozen=True)
class Edit:
    """Replace ``old`` by ``new`` in note line ``line`` (1-based), once."""

    line: int
    old: str
    new: str


@dataclass(frozen=True)
class FenceEdit:
    """Replace the body of the output fence opened at ``line`` by ``text``."""

    line: int
    text: str


@dataclass(frozen=True)
class LinesEdit:
    """Replace ``count`` note lines from ``line`` by ``text``'s lines, each after ``prefix``
    (a transcript's expected output, under its ``>>>`` line)."""

    line: int
    count: int
    text: str
    prefix: str


@dataclass(frozen=True)
class NotePlan:
    """What ``--update`` would do to one note, and what it leaves to the author."""

    path: Path
    edits: tuple[Edit | FenceEdit | LinesEdit, ...]
    left: tuple[str, ...]
    """Failures it does not rewrite, each with why (``file:line: ...``)."""


def plan(result: NoteResult) -> NotePlan:
    """The edits that make a note document what really happened (pure)."""
    edits: list[Edit | FenceEdit | LinesEdit] = []
    left: list[str] = []
    for block in result.blocks:
        if block.verdict.outcome == "not_runnable":
            left.append(f"{block.block.line}: not runnable here, not rewritten")
        elif block.verdict.outcome == "failed":
            found, why = _block_edits(result, block)
            edits.extend(found)
            if why:
                left.append(f"{block.block.line}: {why}")
    return NotePlan(result.note.path, tuple(edits), tuple(left))


def _block_edits(
    result: NoteResult, block: BlockResult
) -> tuple[list[Edit | FenceEdit | LinesEdit], str | None]:
    facts, expectation = block.facts, block.expectation
    if facts is None or facts.state != "ran":
        return [], "did not run to the end: nothing to take its output from"
    edits: list[Edit | FenceEdit | LinesEdit] = []
    raised = facts.exception
    if expectation.kind == "raises":
        documented = expectation.error
        named = (
            raised is not None
            and documented is not None
            and (documented.name in raised.names or documented.name == raised.type)
        )
        if raised is None or documented is None or not named:
            return [], "its outcome changed (it no longer raises what it documents): fix it by hand"
        if documented.line is not None and not raised_within(raised, documented.line, documented.end_line):
            return [], f"it raises at line {raised.line}, not where documented: fix it by hand"
        if not matches(documented.message, raised.message, prefix=True):
            edit = _error_edit(result, block, documented, raised.message)
            if edit is None:
                return [], "its documented message cannot be located: fix it by hand"
            edits.append(edit)
    elif raised is not None:
        return [], f"it now raises {raised.type}: fix it by hand"
    for documented_output in expectation.outputs:
        actual = printed_by(documented_output, facts)
        if output_matches(documented_output, actual) or documented_output.random is not None:
            continue
        output_edit = _output_edit(result, block, documented_output, actual)
        if output_edit is None:
            return edits, "an output it documents cannot be rewritten in place: fix it by hand"
        edits.append(output_edit)
    return edits, None


def _error_edit(
    result: NoteResult, block: BlockResult, documented: DocumentedError, message: str
) -> Edit | None:
    """The line documenting ``documented`` with its message replaced by ``message``'s first line."""
    actual = message.strip().splitlines()[0] if message.strip() else ""
    lines = result.note.lines
    for number in _block_lines(block):
        text = lines[number - 1]
        for colon, space in ((":", " "), ("：", "")):
            marker = f"{documented.name}{colon}"
            at = text.find(marker)
            if at >= 0 and documented.message in text[at:]:
                return Edit(number, text[at:], f"{marker}{space}{actual}")
    return None


def _output_edit(
    result: NoteResult, block: BlockResult, documented: DocumentedOutput, actual: str
) -> Edit | FenceEdit | LinesEdit | None:
    fence = block.block.output
    prompt = result.note.lines[documented.line - 1] if documented.line is not None else ""
    if ">>> " in prompt or prompt.rstrip().endswith(">>>"):  # a transcript: the lines after the example
        end = documented.end_line or documented.line or 0
        wanted = documented.text.count("\n")
        return LinesEdit(end + 1, wanted, actual, prompt[: prompt.index(">>>")])
    if documented.line is None and fence is not None and fence.text.strip() == documented.text.strip():
        return FenceEdit(fence.line, actual)
    printed = actual.strip()
    if documented.line is None or "\n" in printed or not printed:
        return None  # many lines cannot go into one comment
    lines = result.note.lines
    for number in _block_lines(block, start=documented.line):
        text = lines[number - 1]
        hash_at = text.find("#")
        at = text.find(documented.text, hash_at) if hash_at >= 0 else -1
        if at >= 0:
            return Edit(number, text[at:], printed + text[at + len(documented.text) :])
    return None


def _block_lines(block: BlockResult, start: int | None = None) -> range:
    first = block.block.line + 1 if start is None else start
    return range(first, block.block.line + len(block.block.code.splitlines()) + 1)


def apply(path: Path, note_plan: NotePlan, source: str) -> tuple[str, str]:
    """The note's file text before and after the edits, every other byte kept (BOM, line
    endings, callout prefixes). ``source``: the normalised text the note was checked as; a file
    that no longer reads as it raises ``ValueError``."""
    raw = path.read_bytes().decode("utf-8", "surrogateescape")
    if normalize_source(raw) != source:
        raise ValueError(f"{path}: changed since it was checked; run check --update again")
    bom = "\ufeff" if raw.startswith("\ufeff") else ""
    lines = raw.removeprefix("\ufeff").splitlines(keepends=True)
    for edit in sorted(note_plan.edits, key=lambda item: item.line, reverse=True):
        if isinstance(edit, FenceEdit):
            _replace_fence(lines, edit)
        elif isinstance(edit, LinesEdit):
            ending = _split_ending(lines[edit.line - 2])[1] or "\n"
            body = [f"{edit.prefix}{text}{ending}" for text in edit.text.rstrip("\n").split("\n")]
            lines[edit.line - 1 : edit.line - 1 + edit.count] = body if edit.text.strip() else []
        else:
            text, ending = _split_ending(lines[edit.line - 1])
            lines[edit.line - 1] = text.replace(edit.old, edit.new, 1) + ending
    return raw, bom + "".join(lines)


def _split_ending(line: str) -> tuple[str, str]:
    for ending in ("\r\n", "\n", "\r"):
        if line.endswith(ending):
            return line[: -len(ending)], ending
    return line, ""


def _replace_fence(lines: list[str], edit: FenceEdit) -> None:
    """The fence opened at ``edit.line`` gets ``edit.text`` as its body, with the opening's
    prefix (a callout's ``> ``) and line ending."""
    opening, ending = _split_ending(lines[edit.line - 1])
    prefix = opening[: len(opening) - len(opening.lstrip("> \t"))]
    marker = opening[len(prefix) :][:3]
    close = edit.line
    while close < len(lines) and not _split_ending(lines[close])[0][len(prefix) :].startswith(marker):
        close += 1
    body = [f"{prefix}{text}{ending or chr(10)}" for text in edit.text.rstrip("\n").split("\n")]
    lines[edit.line : close] = body


def diff(path: Path, before: str, after: str) -> str:
    return "".join(
        difflib.unified_diff(
            before.splitlines(keepends=True), after.splitlines(keepends=True), f"a/{path}", f"b/{path}"
        )
    )


def write(path: Path, text: str) -> None:
    """Atomically: a temporary file beside the note, renamed over it, with the note's mode."""
    mode = path.stat().st_mode & 0o7777
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(text.encode("utf-8", "surrogateescape"))
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
