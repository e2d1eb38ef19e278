"""pytest plugin: ``pytest --noteexec`` (or ``noteexec = true`` in the ini file) checks notes.

Every ``*.md`` under the given paths is a pytest file and each of its visible python blocks an
item, ``path/note.md::L39`` (39: the opening fence's line). A note is parsed once, to collect
it; the first of its items to run checks that parse of the whole note in the checked folder's
:class:`noteexec.session.CheckSession`, in a warm sandbox worker (one per pytest process, started
on first use); the note's other items reuse that result, so ``-k``, ``-x``, ``--lf``,
``--junitxml`` and pytest-xdist work. Blocks of a note share one namespace, so a note always runs
in full, even when some of its items are deselected.

Loaded through the ``pytest11`` entry point into every pytest run: unless enabled it only adds
its option and ini key. The pytest process never imports torch; only the sandbox worker does.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from noteexec.display import printable, shown_path

if TYPE_CHECKING:  # the plugin loads into every pytest run: the pipeline only once enabled
    from noteexec.check import Parsed
    from noteexec.config import Config
    from noteexec.expect import Expectation
    from noteexec.model import CodeBlock
    from noteexec.results import BlockResult, NoteResult
    from noteexec.sandbox import Sandbox
    from noteexec.session import CheckSession

_OUTPUT_LINES = 60
"""At most this many of a block's last stdout/stderr lines in a failure."""
_BLOCK_LINES = 12
"""A failure without a line to point at shows this many of the block's first lines."""


class NoteexecWarning(UserWarning):
    """What a passing block's verdict warns about (e.g. a failure demo that documents no error)."""


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("noteexec", "check the python blocks of Obsidian notes (noteexec)")
    group.addoption(
        "--noteexec",
        action="store_true",
        default=False,
        help="collect *.md notes and check each visible python block in the noteexec sandbox",
    )
    parser.addini(
        "noteexec",
        type="bool",
        default=False,
        help="collect *.md notes and check their python blocks, as with --noteexec",
    )
    group.addoption(
        "--noteexec-cache",
        action="store_true",
        default=False,
        help="take unchanged notes' facts from noteexec's result cache and store new ones "
        "(.noteexec/ beside the checked folder, or $NOTEEXEC_CACHE_DIR), as `noteexec check` does",
    )
    parser.addini("noteexec_cache", type="bool", default=False, help="as --noteexec-cache")


def pytest_configure(config: pytest.Config) -> None:
    if not (config.getoption("noteexec") or config.getini("noteexec")):
        return
    runner = _Runner(config)
    config.pluginmanager.register(runner, "noteexec-runner")
    config.add_cleanup(runner.close)


class _Runner:
    """The enabled plugin: collects notes and runs each note once per pytest process."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.sessions: dict[Path, CheckSession | str] = {}
        """The checking session of each checked folder (its configuration and, with
        --noteexec-cache, its result cache), or why its configuration cannot be loaded."""
        self.results: dict[Path, NoteResult | Exception] = {}
        self.sandboxes: dict[tuple[str, ...], Sandbox] = {}
        self.use_cache = bool(config.getoption("noteexec_cache") or config.getini("noteexec_cache"))
        self.told_sandbox = False
        """Whether pytest was told that notes ran without the full sandbox (once per process)."""
        self.folders, self.files = self._arguments()

    def _arguments(self) -> tuple[list[Path], set[Path]]:
        """The folders and files pytest was asked to collect, absolute: the checked folders."""
        base = self.config.invocation_params.dir
        folders, files = [], set()
        for argument in self.config.args:
            path = Path(os.path.abspath(base / argument.split("::")[0]))
            if path.is_dir():
                folders.append(path)
            else:
                files.add(path)
        return folders, files

    def root_for(self, path: Path) -> tuple[Path, bool]:
        """The checked folder a note belongs to (as ``noteexec check`` would see it), and
        whether the note was named on the command line."""
        if path in self.files:
            return path.parent, True
        containing = [folder for folder in self.folders if path.is_relative_to(folder)]
        if containing:
            return max(containing, key=lambda folder: len(folder.parts)), False
        rootpath = self.config.rootpath
        return (rootpath if path.is_relative_to(rootpath) else path.parent), False

    def session_for(self, root: Path) -> CheckSession:
        """The checked folder's session, its configuration loaded the first time it is asked for."""
        if root not in self.sessions:
            from noteexec.config import ConfigError
            from noteexec.config.files import load_config
            from noteexec.session import CheckSession, RunOptions

            try:
                settings = load_config(root)
            except ConfigError as error:
                self.sessions[root] = f"noteexec: {error}"
            else:
                options = RunOptions(cache=self.use_cache)  # the cache: .noteexec/ beside the folder
                self.sessions[root] = CheckSession(settings, root, options, self.sandbox_for(settings))
        session = self.sessions[root]
        if isinstance(session, str):
            raise pytest.Collector.CollectError(session)
        return session

    def pytest_collect_file(self, file_path: Path, parent: pytest.Collector) -> NoteFile | None:
        if file_path.suffix.lower() != ".md":
            return None
        from noteexec.discover import is_note

        root, named = self.root_for(file_path)
        session = self.session_for(root)
        if not named and not is_note(file_path, root, session.config.exclude):
            return None
        return NoteFile.from_parent(parent, path=file_path, root=root, checks=session, runner=self)

    def result_for(self, note: NoteFile) -> NoteResult:
        """The note's result, checking the whole note (as collected) the first time one of its
        items asks."""
        if note.path not in self.results:
            try:
                [self.results[note.path]] = note.checks.check([note.parsed()])
            except Exception as error:
                self.results[note.path] = error
        known = self.results[note.path]
        if isinstance(known, Exception):
            raise known
        return known

    def sandbox_warning(self, result: NoteResult) -> str | None:
        """The first time a note ran without the full sandbox: what it lacked (as ``check`` says it)."""
        from noteexec.report import Summary, sandbox_notice

        notice = sandbox_notice(Summary.of([result]), which="notes")
        if not notice or self.told_sandbox:
            return None
        self.told_sandbox = True
        return notice

    def sandbox_for(self, settings: Config) -> Sandbox:
        """One warm worker per pytest process (per set of passed-through environment variables);
        it starts when a note first has something to run."""
        if settings.env not in self.sandboxes:
            from noteexec.sandbox import Sandbox

            # One note runs at a time; under pytest-xdist, share the CPUs between the workers.
            workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
            self.sandboxes[settings.env] = Sandbox(parallel=max(1, workers), env_passthrough=settings.env)
        return self.sandboxes[settings.env]

    def close(self) -> None:
        sandboxes, self.sandboxes = self.sandboxes, {}
        sessions, self.sessions = self.sessions, {}
        try:
            for sandbox in sandboxes.values():
                sandbox.close()
        finally:
            for session in sessions.values():
                if not isinstance(session, str):
                    session.close()  # its cache; the sandbox it borrowed is closed above


class NoteFile(pytest.File):
    """A note: one item per visible python block, plus one for a note error with no block."""

    def __init__(self, *, root: Path, checks: CheckSession, runner: _Runner, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.root = root
        self.checks = checks
        """The checked folder's session (pytest calls its own ``session``)."""
        self.runner = runner
        self._parsed: Parsed | None = None

    def parsed(self) -> Parsed:
        """The note as parsed to collect it: the run checks this parse, not another."""
        if self._parsed is None:
            from noteexec import results

            self._parsed = self.checks.parse(results.NoteFile(self.path, self.root))
        return self._parsed

    def collect(self) -> Iterator[NoteItem]:
        parsed = self.parsed()
        note, expected = parsed.note, parsed.expected
        for block, expectation in zip(note.blocks, expected, strict=True):
            item = NoteItem.from_parent(self, name=f"L{block.line}", block=block, expectation=expectation)
            if expectation.kind == "skip":
                item.add_marker(pytest.mark.skip(reason=expectation.skip_reason or "skipped"))
            yield item
        if note.problems and all(expectation.kind == "skip" for expectation in expected):
            # Nothing else would fail for this note: report its error on an item of its own.
            yield NoteItem.from_parent(self, name="note", block=None, expectation=None)


class NoteFailure(Exception):
    """A block (or, with ``block`` None, a note) that did not do what the note documents."""

    def __init__(self, result: NoteResult, block: BlockResult | None, problem: str | None = None) -> None:
        super().__init__(problem or result.error or (block.verdict.message if block else "failed"))
        self.result = result
        self.block = block
        self.problem = problem


class NoteItem(pytest.Item):
    """One visible python block of a note, judged against what the note documents."""

    def __init__(
        self,
        *,
        block: CodeBlock | None,
        expectation: Expectation | None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.block = block
        self.expectation = expectation

    @property
    def note(self) -> NoteFile:
        assert isinstance(self.parent, NoteFile)
        return self.parent

    def runtest(self) -> None:
        result = self.note.runner.result_for(self.note)
        for warning in self.note.checks.take_warnings():  # pytest (and xdist) report it
            warnings.warn(f"noteexec cache: {warning}", NoteexecWarning, stacklevel=1)
        if notice := self.note.runner.sandbox_warning(result):
            warnings.warn(f"noteexec: WARNING: {notice}", NoteexecWarning, stacklevel=1)
        if self.block is None:
            if result.error:
                raise NoteFailure(result, None)
            return
        found = next((block for block in result.blocks if block.block.line == self.block.line), None)
        if found is None:
            raise NoteFailure(
                result, None, f"the note changed while pytest ran: no python block at line {self.block.line}"
            )
        if found.verdict.outcome == "skipped":
            pytest.skip(found.expectation.skip_reason or found.verdict.message)
        if found.verdict.outcome == "not_runnable" and self.note.checks.config.not_runnable == "report":
            pytest.skip(found.verdict.message)
        if found.verdict.outcome == "not_runnable":
            raise NoteFailure(result, found)
        if found.verdict.outcome == "failed" or result.error:
            raise NoteFailure(result, found)
        for warning in found.verdict.warnings:
            warnings.warn_explicit(warning, NoteexecWarning, str(self.path), found.block.line)
        if result.cached:
            self.add_report_section("call", "noteexec", "facts from the result cache (--noteexec-cache)")
        if found.facts is not None:
            for name, text in (("stdout", found.facts.stdout), ("stderr", found.facts.stderr)):
                if text:
                    self.add_report_section("call", name, printable(text))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, NoteFailure):
            return failure_text(excinfo.value, self.note.nodeid)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        if self.block is None:
            return self.path, None, f"{self.note.nodeid}: note error"
        return self.path, self.block.line - 1, f"{self.note.nodeid}:{self.block.line}"


def failure_text(failure: NoteFailure, name: str) -> str:
    """What went wrong, most important first (the first line is pytest's short summary);
    ``name`` is the note's path as pytest shows it."""
    from noteexec.report import excerpt

    result, block = failure.result, failure.block
    lines = []
    if failure.problem:
        lines.append(failure.problem)
    if result.error:
        lines.append(f"note error: {result.error.replace(shown_path(result.note.path), name)}")
    if block is None:
        return printable("\n".join(lines))
    if block.verdict.outcome in ("failed", "not_runnable"):
        lines.append(block.verdict.message)
    callout = f" in a [!{block.block.callout.kind}] callout" if block.block.callout else ""
    lines.append(f"block:    {name}:{block.block.line}{callout}")
    lines.append(f"expected: {block.expectation.describe()}")
    lines.extend(f"warning:  {warning}" for warning in block.verdict.warnings)
    shown = [
        f"{'>' if focused else ' '}{number:5} | {text}" for number, text, focused in excerpt(result, block)
    ]
    if not shown:
        code, note_lines = block.block.code.splitlines(), result.note.lines
        shown = [
            f" {number:5} | {note_lines[number - 1]}"
            for number in range(block.block.line, block.block.line + min(len(code), _BLOCK_LINES) + 1)
            if number <= len(note_lines)
        ]
        if len(code) > _BLOCK_LINES:
            shown.append(f"        | ... ({len(code) - _BLOCK_LINES} more lines)")
    lines.extend(["", f"{name}:", *shown])
    if block.verdict.diff:
        lines.extend(["", "documented → actual output:", *block.verdict.diff.rstrip("\n").splitlines()])
    if block.facts is not None:
        for label, text in (("stdout", block.facts.stdout), ("stderr", block.facts.stderr)):
            if text.strip():
                lines.extend(["", f"--- {label} of the block ---", *_tail(text)])
        if block.facts.truncated:
            lines.append("(the block's output was truncated by the sandbox)")
    return printable("\n".join(lines))  # nothing from the vault reaches the terminal as a control sequence


def _tail(text: str) -> list[str]:
    lines = text.rstrip("\n").splitlines()
    if len(lines) <= _OUTPUT_LINES:
        return lines
    return [f"... ({len(lines) - _OUTPUT_LINES} earlier lines)", *lines[-_OUTPUT_LINES:]]
