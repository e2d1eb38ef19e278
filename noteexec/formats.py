"""Machine formats for CI: JUnit XML and GitHub Actions annotations."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TextIO

from noteexec.check import BlockResult, NoteResult
from noteexec.display import printable, shown_path
from noteexec.report import Summary


def block_id(result: NoteResult, block: BlockResult) -> str:
    """``path/note.md::L39``: the id a block has everywhere (JUnit, pytest, annotations)."""
    return f"{shown_path(result.note.path.as_posix())}::L{block.block.line}"


def _details(block: BlockResult) -> str:
    lines = [block.verdict.message, block.expectation.describe()]
    if block.verdict.diff:
        lines.append(block.verdict.diff.rstrip())
    if block.facts is not None and block.facts.stderr.strip():
        lines.append("stderr:\n" + block.facts.stderr.rstrip())
    return printable("\n".join(lines))


def write_junit(results: Sequence[NoteResult], stream: TextIO, duration: float) -> None:
    """One testcase per block; a note-level error is an <error> on each of its blocks.

    The schema is the common denominator that GitLab, Jenkins and GitHub test reporters read.
    """
    import xml.etree.ElementTree as ElementTree  # loaded only when a JUnit report is asked for

    summary = Summary.of(results)
    failures = sum(
        block.verdict.outcome == "failed"
        for result in results
        if result.status != "error"
        for block in result.blocks
    )
    errors = sum(len(result.blocks) or 1 for result in results if result.status == "error")
    root = ElementTree.Element("testsuites", name="noteexec", time=f"{duration:.3f}")
    suite = ElementTree.SubElement(
        root,
        "testsuite",
        name="noteexec",
        tests=str(summary.blocks + sum(not r.blocks for r in results if r.status == "error")),
        failures=str(failures),
        errors=str(errors),
        skipped=str(summary.skipped),
        time=f"{duration:.3f}",
    )
    for result in results:
        classname = shown_path(result.note.path.as_posix())
        error = printable(result.error) if result.error else None
        if result.status == "error" and not result.blocks:
            case = ElementTree.SubElement(suite, "testcase", classname=classname, name=classname, time="0")
            ElementTree.SubElement(case, "error", message=error or "error").text = error
        for block in result.blocks:
            seconds = block.facts.duration if block.facts is not None else 0.0
            case = ElementTree.SubElement(
                suite,
                "testcase",
                classname=classname,
                name=block_id(result, block),
                file=classname,
                line=str(block.block.line),
                time=f"{seconds:.3f}",
            )
            if result.status == "error":
                ElementTree.SubElement(case, "error", message=error or "error").text = error
            elif block.verdict.outcome == "failed":
                failure = ElementTree.SubElement(case, "failure", message=printable(block.verdict.message))
                failure.text = _details(block)
            elif block.verdict.outcome == "skipped":
                ElementTree.SubElement(case, "skipped", message=printable(block.verdict.message))
            if block.facts is not None and block.facts.stdout:
                ElementTree.SubElement(case, "system-out").text = printable(block.facts.stdout)
    ElementTree.indent(root)
    stream.write('<?xml version="1.0" encoding="utf-8"?>\n')
    stream.write(ElementTree.tostring(root, encoding="unicode"))
    stream.write("\n")


def _escape_data(text: str) -> str:
    return printable(text).replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def write_github(results: Sequence[NoteResult], stream: TextIO) -> None:
    """``::error file=…,line=…::reason`` workflow commands: failures show on the pull request diff."""
    for result in results:
        path = _escape_property(shown_path(result.note.path.as_posix()))
        if result.error:
            line = _error_line(result)
            stream.write(f"::error file={path},line={line},title=noteexec::{_escape_data(result.error)}\n")
        for block in result.blocks:
            if block.verdict.outcome == "failed" and result.status != "error":
                line = (
                    block.facts.exception.line
                    if block.facts and block.facts.exception and block.facts.exception.line
                    else block.block.line
                )
                title = _escape_property(f"noteexec: {block.expectation.describe()}")
                stream.write(
                    f"::error file={path},line={line},title={title}::{_escape_data(_details(block))}\n"
                )
            for warning in block.verdict.warnings:
                stream.write(f"::warning file={path},line={block.block.line}::{_escape_data(warning)}\n")


def _error_line(result: NoteResult) -> int:
    problems = result.note.problems
    if problems:
        return max(1, problems[0].line)
    facts = result.facts
    if facts is not None and facts.setup_failure is not None and facts.setup_failure.line is not None:
        return facts.setup_failure.line
    return 1
