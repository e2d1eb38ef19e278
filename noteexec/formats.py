"""Machine formats for CI: JUnit XML and GitHub Actions annotations."""

from __future__ import annotations

import shutil
import tempfile
from typing import TextIO

from noteexec.display import printable, shown_path
from noteexec.report import Summary, limits_notice, sandbox_notice, summary_json
from noteexec.results import BlockResult, NoteResult


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


class JunitReporter:
    """One testcase per block; a note-level error is an <error> on each of its blocks.

    The schema is the common denominator that GitLab, Jenkins and GitHub test reporters read.
    The suite's counts come first in the file, so testcases wait in a temporary file, not in
    memory, until the last note is in.
    """

    def __init__(self, stream: TextIO) -> None:
        import xml.etree.ElementTree as ElementTree  # loaded only when a JUnit report is asked for

        self.tree = ElementTree
        self.stream = stream
        self.cases = tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115 - closed in finish()
        self.tests = self.failures = self.errors = 0

    def note(self, result: NoteResult) -> None:
        element = self.tree.SubElement
        classname = shown_path(result.note.path.as_posix())
        error = printable(result.error) if result.error else None
        cases = []
        if result.status == "error" and not result.blocks:
            case = self.tree.Element("testcase", classname=classname, name=classname, time="0")
            element(case, "error", message=error or "error").text = error
            cases.append(case)
            self.errors += 1
        for block in result.blocks:
            seconds = block.facts.duration if block.facts is not None else 0.0
            case = self.tree.Element(
                "testcase",
                classname=classname,
                name=block_id(result, block),
                file=classname,
                line=str(block.block.line),
                time=f"{seconds:.3f}",
            )
            if result.status == "error":
                element(case, "error", message=error or "error").text = error
                self.errors += 1
            elif block.verdict.outcome == "failed":
                element(case, "failure", message=printable(block.verdict.message)).text = _details(block)
                self.failures += 1
            elif block.verdict.outcome in ("skipped", "not_runnable"):
                element(case, "skipped", message=printable(block.verdict.message))
            if block.facts is not None and block.facts.stdout:
                element(case, "system-out").text = printable(block.facts.stdout)
            cases.append(case)
        self.tests += len(cases)
        for case in cases:
            self.tree.indent(case, "  ", level=2)
            self.cases.write("    " + self.tree.tostring(case, encoding="unicode").rstrip() + "\n")

    def finish(self, summary: Summary, duration: float) -> None:
        seconds = f"{duration:.3f}"
        suite = self.tree.Element(
            "testsuite",
            name="noteexec",
            tests=str(self.tests),
            failures=str(self.failures),
            errors=str(self.errors),
            skipped=str(summary.skipped),
            time=seconds,
        )
        opening = self.tree.tostring(suite, encoding="unicode").removesuffix(" />")
        self.stream.write('<?xml version="1.0" encoding="utf-8"?>\n')
        self.stream.write(f'<testsuites name="noteexec" time="{seconds}">\n  {opening}>\n')
        properties = self.tree.Element("properties")
        self.tree.SubElement(
            properties, "property", name="noteexec.isolation", value=summary_json(summary)["isolation"]
        )
        for name, notice in (
            ("sandbox_warning", sandbox_notice(summary)),
            ("limits_warning", limits_notice(summary)),
        ):
            if notice:
                self.tree.SubElement(properties, "property", name=f"noteexec.{name}", value=printable(notice))
        self.tree.indent(properties, "  ", level=2)
        self.stream.write("    " + self.tree.tostring(properties, encoding="unicode").rstrip() + "\n")
        self.cases.seek(0)
        shutil.copyfileobj(self.cases, self.stream)
        self.cases.close()
        self.stream.write("  </testsuite>\n</testsuites>\n")


def _escape_data(text: str) -> str:
    return printable(text).replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


class GithubReporter:
    """``::error file=…,line=…::reason`` workflow commands: failures show on the pull request diff."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def note(self, result: NoteResult) -> None:
        path = _escape_property(shown_path(result.note.path.as_posix()))
        if result.error:
            reason = _escape_data(result.error)
            self.stream.write(f"::error file={path},line={_error_line(result)},title=noteexec::{reason}\n")
        for block in result.blocks:
            if block.verdict.outcome == "failed" and result.status != "error":
                line = (
                    block.facts.exception.line
                    if block.facts and block.facts.exception and block.facts.exception.line
                    else block.block.line
                )
                title = _escape_property(f"noteexec: {block.expectation.describe()}")
                self.stream.write(
                    f"::error file={path},line={line},title={title}::{_escape_data(_details(block))}\n"
                )
            if block.verdict.outcome == "not_runnable":
                title = _escape_property("noteexec: not runnable here")
                message = _escape_data(block.verdict.message)
                self.stream.write(f"::notice file={path},line={block.block.line},title={title}::{message}\n")
            for warning in block.verdict.warnings:
                self.stream.write(f"::warning file={path},line={block.block.line}::{_escape_data(warning)}\n")

    def finish(self, summary: Summary, duration: float) -> None:
        for title, notice in (("sandbox", sandbox_notice(summary)), ("limits", limits_notice(summary))):
            if notice:
                self.stream.write(f"::warning title=noteexec {title}::{_escape_data(notice)}\n")
        self.stream.flush()


def _error_line(result: NoteResult) -> int:
    problems = result.note.problems
    if problems:
        return max(1, problems[0].line)
    facts = result.facts
    if facts is not None and facts.setup_failure is not None and facts.setup_failure.line is not None:
        return facts.setup_failure.line
    return 1
