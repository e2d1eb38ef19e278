"""Expectation × facts → verdict. Pure: no I/O, no torch, the same answer every time."""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from noteexec.expect import Expectation
from noteexec.expect.documented import DocumentedError, DocumentedOutput
from noteexec.facts import BlockFacts, Raised
from noteexec.model import CodeBlock
from noteexec.runnable import classify, output_from_a_gpu
from noteexec.textmatch import matches, without_values

Outcome = Literal["passed", "failed", "skipped", "not_runnable"]

BROKEN_EXAMPLE = ("NameError", "ImportError", "SyntaxError")
"""Exceptions that mean a failure demo is broken, not that it demonstrates something."""


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    message: str
    """What a person needs to act on: what was expected and what happened."""
    warnings: tuple[str, ...] = ()
    diff: str | None = None
    """For documented output that did not match: a unified diff, documented → actual."""
    reason: str | None = None
    """For ``not_runnable``: why (``missing_module``, ``needs_cuda``, ``placeholder``,
    ``undefined_name``, ``depends_on_failed``; see :mod:`noteexec.runnable`)."""
    detail: str | None = None
    """For ``not_runnable``: what would make it run (``install torchvision``), as reports group it."""


def not_runnable_here(
    judged: Sequence[tuple[CodeBlock, BlockFacts | None, Verdict]],
    setup: Sequence[CodeBlock] = (),
    elsewhere: Mapping[str, str] | None = None,
) -> list[Verdict]:
    """The note's verdicts, each failure that only says the block cannot run here (a missing
    package or GPU, a placeholder, a name from elsewhere, an earlier failure) turned into
    ``not_runnable`` with its reason; the rest unchanged. ``judged``: the note's blocks in order."""
    earlier: list[tuple[CodeBlock, bool]] = [(block, False) for block in setup]
    verdicts = []
    for block, facts, verdict in judged:
        exception = facts.exception if facts is not None else None
        failed = verdict.outcome == "failed" and exception is not None
        found = classify(block, exception, earlier, elsewhere) if failed and exception else None
        if found is None and verdict.outcome == "failed" and exception is None:
            found = output_from_a_gpu(verdict.diff)
        if found is not None:
            message = f"not runnable here: {found.detail}; it failed with: {verdict.message}"
            verdict = Verdict(
                "not_runnable", message, verdict.warnings, verdict.diff, found.reason, found.detail
            )
        verdicts.append(verdict)
        if verdict.outcome != "skipped":  # a skipped block (another framework's d2l cell) bound nothing
            earlier.append((block, verdict.outcome in ("failed", "not_runnable")))
    return verdicts


def _quote(documented: DocumentedError) -> str:
    text = f'{documented.name} matching "{documented.message}"' if documented.message else documented.name
    return f"{text} at {documented.where()}" if documented.line is not None else text


def _answers_to(raised: Raised, documented: DocumentedError) -> bool:
    return (documented.name in raised.names or documented.name == raised.type) and matches(
        documented.message, raised.message, prefix=True
    )


def _problem_with(raised: Raised, documented: DocumentedError) -> str | None:
    """Why ``raised`` is not what ``documented`` says, or None when it is."""
    if not _answers_to(raised, documented):
        problem = f"expected {_quote(documented)}, got {raised.describe()}"
        named = documented.name in raised.names or documented.name == raised.type
        return f"{problem}{_divergence(documented.message, raised.message)}" if named else problem
    if documented.line is not None and not raised_within(raised, documented.line, documented.end_line):
        return f"expected {_quote(documented)}, got it at line {raised.line}"
    return None


def _divergence(documented: str, actual: str) -> str:
    """Where a long documented message stops matching the real one (the part before any
    ``...``), so that a reader need not compare two long sentences by eye."""
    expected = " ".join(documented.replace("…", "...").split("...")[0].split())
    real = " ".join(actual.split())
    if len(expected) < 40:
        return ""
    at = next(
        (i for i, (a, b) in enumerate(zip(expected, real, strict=False)) if a != b),
        min(len(expected), len(real)),
    )
    start = max(0, at - 20)
    lead = "…" if start else ""
    return (
        f"; the messages differ from character {at + 1}: documented {lead + expected[start : at + 20]!r}, "
        f"actual {lead + real[start : at + 20]!r}"
    )


def raised_within(raised: Raised, first: int, last: int | None) -> bool:
    """Whether the statement at lines ``first``..``last`` raised: in its own code, or in a helper
    it called (the block's top-level line that was running)."""
    last = first if last is None else last
    return any(line is not None and first <= line <= last for line in (raised.line, raised.top_line))


def judge(expectation: Expectation, facts: BlockFacts | None) -> Verdict:
    if expectation.kind == "skip":
        return Verdict("skipped", f"skipped: {expectation.skip_reason}")
    if facts is None or facts.state == "not_run":
        reason = facts.reason if facts is not None and facts.reason else "no result"
        return Verdict("failed", f"not run: {reason}")
    if facts.state == "crashed":
        return Verdict("failed", f"{facts.reason or 'the process ended'} while this block ran")
    verdict = _judge_ran(expectation, facts)
    return replace(verdict, warnings=verdict.warnings + expectation.notes) if expectation.notes else verdict


def _judge_ran(expectation: Expectation, facts: BlockFacts) -> Verdict:
    verdict = _judge_outcome(expectation, facts)
    if verdict.outcome == "failed":
        return verdict
    for warning in expectation.warnings:
        problem = _missing_warning(warning, facts.warnings)
        if problem is not None:
            return Verdict("failed", problem, verdict.warnings)
    notes: list[str] = []
    wrong: list[tuple[str, str]] = []  # (where, diff) of every documented output that differs
    for documented in expectation.outputs:
        where = f"line {documented.line}" if documented.line is not None else "the block"
        actual = printed_by(documented, facts)
        if output_matches(documented, actual):
            continue
        random = documented.random
        if random is not None and output_matches(documented, actual, random.integers):
            notes.append(
                f"output of {where}: numbers differ from the documented ones, but {random.where} draws "
                "random numbers without a seed, so only shape, dtype and structure were compared"
            )
            continue
        wrong.append((where, _diff(documented.text, actual, where)))
    if wrong:
        places = ", ".join(where for where, _ in wrong)
        verb = "differs" if len(wrong) == 1 else "differ"
        message = f"output of {places} {verb} from the documented output"
        return Verdict("failed", message, verdict.warnings + tuple(notes), "".join(diff for _, diff in wrong))
    return replace(verdict, warnings=verdict.warnings + tuple(notes)) if notes else verdict


def _judge_outcome(expectation: Expectation, facts: BlockFacts) -> Verdict:
    raised = facts.exception
    if expectation.kind == "raises":
        documented = expectation.error
        if raised is None:
            wanted = _quote(documented) if documented else "an exception"
            return Verdict("failed", f"expected {wanted}, but the block raised nothing")
        if documented is None:
            if any(name in raised.names for name in BROKEN_EXAMPLE):
                return Verdict(
                    "failed",
                    f"expected the failure this block demonstrates, got {raised.describe()}: "
                    "a broken example, not a demonstrated failure",
                )
            return Verdict(
                "passed",
                f"raised {raised.describe()}",
                ("nothing documented: add a comment such as '# RuntimeError: ...' above the line",),
            )
        problem = _problem_with(raised, documented)
        if problem is not None:
            return Verdict("failed", problem)
        return Verdict("passed", f"raised {raised.describe()} as documented")

    if raised is not None:
        wanted = "to run and produce gradients" if expectation.kind == "gradients" else "to run"
        return Verdict("failed", f"expected {wanted}, got {raised.describe()}")
    if expectation.kind == "runs":
        return Verdict("passed", "ran without an exception")

    notes: tuple[str, ...] = ()
    if facts.leaves_without_grad:
        notes = (f"tensors that require grad got none: {', '.join(facts.leaves_without_grad)}",)
    if not facts.gradients:
        return Verdict("failed", "expected gradients, but the block produced none", notes)
    bad = [f"{gradient.name} = {gradient.preview}" for gradient in facts.gradients if not gradient.finite]
    if bad:
        return Verdict("failed", f"non-finite gradients (nan or inf): {'; '.join(bad)}", notes)
    names = ", ".join(gradient.name for gradient in facts.gradients)
    return Verdict("passed", f"produced finite gradients: {names}", notes)


def _missing_warning(documented: DocumentedError, seen: tuple[Raised, ...]) -> str | None:
    problems = [_problem_with(warning, documented) for warning in seen]
    if any(problem is None for problem in problems):
        return None
    if not seen:
        return f"expected {_quote(documented)}, but no warning was emitted"
    return problems[0]


def printed_by(documented: DocumentedOutput, facts: BlockFacts) -> str:
    """What the block (or the documented statement's lines) printed."""
    if documented.line is None:
        return facts.stdout
    end = documented.end_line if documented.end_line is not None else documented.line
    return "".join(
        text for line, text in facts.stdout_by_line if line is not None and documented.line <= line <= end
    )


_BARE_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
"""A documented value that is only a number also documents a one-element tensor holding it."""
_SHAPE = re.compile(r"\(\s*(?:\d+\s*,\s*)*(?:\d+\s*,?\s*)?\)")
"""A documented tuple of sizes also documents the ``torch.Size`` with those sizes."""


def output_matches(documented: DocumentedOutput, actual: str, loose: bool | None = None) -> bool:
    """Whether ``actual`` is the value alone or the whole comment (prose too); with ``loose``
    set, numbers are not compared (integers too when it is True)."""
    readings = {documented.text, documented.text + documented.prose}
    value = documented.text.strip()
    if _BARE_NUMBER.fullmatch(value):  # `print(w.grad)  # -12` for tensor(-12.)
        readings |= {f"tensor({value} ...)", f"tensor([{value}] ...)"}
    elif _SHAPE.fullmatch(value):  # `print(x.shape)  # (4, 3)` for torch.Size([4, 3])
        readings.add(f"torch.Size([{value[1:-1].rstrip(', ')}])")
    if loose is not None:
        readings = {without_values(text, loose) for text in readings}
        actual = without_values(actual, loose)
    return any(matches(f"... {text}" if documented.tail else text, actual) for text in readings)


def _diff(documented: str, actual: str, where: str) -> str:
    return "".join(
        difflib.unified_diff(
            [line + "\n" for line in documented.strip().splitlines()],
            [line + "\n" for line in actual.strip().splitlines()],
            f"documented ({where})",
            f"actual ({where})",
        )
    )
