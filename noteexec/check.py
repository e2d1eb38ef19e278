"""The scheduler: each note read → parsed → expected → run in the sandbox → judged, in file order.

Notes load ahead of the one being reported while the sandbox runs those that must run; notes
whose facts are cached are judged without running. Front ends reach this through
:class:`noteexec.session.CheckSession`; discovery is :mod:`noteexec.discover`, the result types
:mod:`noteexec.results`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from noteexec.cache import ResultCache
from noteexec.cache.entries import block_spans
from noteexec.cache.keys import parsed_keys, run_key
from noteexec.config import Config, ConfigError
from noteexec.config.files import folder_config
from noteexec.display import shown_path
from noteexec.expect import Expectation, expect_note
from noteexec.facts import BlockFacts, NoteFacts
from noteexec.judge import Verdict, judge, not_runnable_here
from noteexec.memory import collector_paused
from noteexec.model import CodeBlock, Note, Problem
from noteexec.results import NOT_OPTED_IN, BlockResult, NoteFile, NoteResult, NoteStatus
from noteexec.sandbox import BlockRun, NoteRun, Sandbox
from noteexec.serialize import parsed_from_json, parsed_json
from noteexec.source import decode_source, normalize_utf8, read_source


def opted_in(note: Note) -> bool:
    """``noteexec: true``, or any ``noteexec:`` mapping, in the note's frontmatter."""
    return note.frontmatter.get("noteexec") is True or isinstance(note.frontmatter.get("noteexec"), dict)


def expectations(note: Note, config: Config) -> tuple[Expectation, ...]:
    if config.opt_in and not opted_in(note):  # never run: every block a skip that says why
        return tuple(Expectation(kind="skip", skip_reason=NOT_OPTED_IN) for _ in note.blocks)
    return expect_note(note.blocks, config.families, note.options.skip, note.setup)


def note_run(note: Note, expected: Sequence[Expectation], root: Path, config: Config) -> NoteRun:
    """What to execute: the visible blocks that are not skipped, after the hidden setup.

    A note's own timeout may shorten the configuration's, never lengthen it: the note is untrusted."""
    timeout = config.timeout if note.options.timeout is None else min(note.options.timeout, config.timeout)
    return NoteRun(
        path=str(note.path.resolve()),
        blocks=tuple(
            BlockRun(block.line, expectation.runs(block), expectation.echo_lines)
            for block, expectation in zip(note.blocks, expected, strict=True)
            if expectation.kind != "skip"
        ),
        setup=tuple(BlockRun(block.line, block.code) for block in note.setup),
        prelude=config.prelude,
        timeout=timeout,
        memory_limit=config.memory_limit,
        readonly=(str(root.resolve()),),
        namespaces=config.namespaces,
        tmp_size=config.tmp_size,
        processes=config.processes,
        strict=config.isolation == "strict",
    )


def _note_error(note: Note, facts: NoteFacts | None) -> str | None:
    if note.problems:
        return "; ".join(
            f"{shown_path(note.path)}{f':{problem.line}' if problem.line else ''}: {problem.message}"
            for problem in note.problems
        )
    if facts is None:
        return None
    if facts.setup_failure is not None:
        return f"{shown_path(note.path)}: {facts.setup_failure.describe()}"
    if facts.vault_changes:
        changed = ", ".join(map(shown_path, facts.vault_changes))
        return f"{shown_path(note.path)}: the note changed files in the vault: {changed}"
    return None


def assemble(
    note: Note,
    expected: Sequence[Expectation],
    facts: NoteFacts | None,
    cached: bool = False,
    elsewhere: Callable[[], Mapping[str, str]] | None = None,
) -> NoteResult:
    """Pair each block with its facts and judge it; the note's status follows.

    ``elsewhere``: names other notes of the vault define (asked for only when a block uses a
    name its note never defines), so a verdict can say where the name comes from."""
    ran = iter(facts.blocks) if facts is not None else iter(())
    error = _note_error(note, facts)
    judged = []
    for block, expectation in zip(note.blocks, expected, strict=True):
        block_facts = None if expectation.kind == "skip" else next(ran, None)
        if block_facts is None and expectation.kind != "skip":
            block_facts = BlockFacts(state="not_run", reason=_why_not_run(note, facts))
        judged.append((block, block_facts, judge(expectation, block_facts)))
    names = elsewhere() if elsewhere is not None and _uses_foreign_names(judged) else None
    verdicts = not_runnable_here(judged, note.setup, names)
    results = [
        BlockResult(block, expectation, block_facts, verdict)
        for (block, block_facts, _), expectation, verdict in zip(judged, expected, verdicts, strict=True)
    ]
    status: NoteStatus
    outcomes = {result.verdict.outcome for result in results}
    if error is not None:
        status = "error"
    elif "failed" in outcomes:
        status = "failed"
    elif "not_runnable" in outcomes:
        status = "not_runnable"
    else:
        status = "passed"
    return NoteResult(note, tuple(results), status, error, facts, cached)


def _uses_foreign_names(judged: Sequence[tuple[CodeBlock, BlockFacts | None, Verdict]]) -> bool:
    return any(
        verdict.outcome == "failed" and facts is not None and facts.exception is not None
        and facts.exception.type == "NameError"
        for _, facts, verdict in judged
    )  # fmt: skip


def vault_names(files: Sequence[NoteFile]) -> Callable[[], Mapping[str, str]]:
    """The names each note of ``files`` defines, read the first time they are asked for."""

    @functools.cache
    def names() -> Mapping[str, str]:
        from noteexec.parse import read_note
        from noteexec.runnable import vault_definitions

        def blocks(file: NoteFile) -> tuple[CodeBlock, ...]:
            try:
                note = read_note(file.path)
            except (OSError, ValueError):
                return ()
            return (*note.setup, *note.blocks)

        return vault_definitions((file.path.stem, blocks(file)) for file in files)

    return names


def _fully_isolated(facts: NoteFacts) -> bool:
    return facts.isolation.get("level") == "full"


def _why_not_run(note: Note, facts: NoteFacts | None) -> str:
    if note.problems:
        return "the note has an error"
    if facts is not None and facts.setup_failure is not None:
        return "the hidden setup failed"
    return "no result"


@dataclass(frozen=True)
class Loaded:
    """A note ready to judge or run: parsed, with expectations, and what the cache knows of it."""

    note: Note
    expected: tuple[Expectation, ...]
    run_key: str | None = None
    """The key of what the note runs; None when it runs nothing or nothing is cached."""
    facts: NoteFacts | None = None
    """Facts stored under ``run_key``, their lines where the note's blocks are now."""


@dataclass(frozen=True)
class Parsed:
    """A note its front end loaded already (the pytest plugin, to collect its blocks): it is
    checked as it was loaded, not read again."""

    file: NoteFile
    loaded: Loaded

    @property
    def note(self) -> Note:
        return self.loaded.note

    @property
    def expected(self) -> tuple[Expectation, ...]:
        return self.loaded.expected


def executed_blocks(note: Note, expected: Sequence[Expectation]) -> tuple[CodeBlock, ...]:
    """The blocks a note's run executes, in order: the hidden setup, then what is not skipped."""
    visible = (block for block, e in zip(note.blocks, expected, strict=True) if e.kind != "skip")
    return (*note.setup, *visible)


def runs_nothing(note: Note, expected: Sequence[Expectation]) -> bool:
    return bool(note.problems) or all(e.kind == "skip" for e in expected)


def _parse(text: str, path: Path) -> Note:
    from noteexec.parse import parse_note  # markdown-it and YAML load only when a note is parsed

    return parse_note(text, path)


def _unreadable(path: Path, problem: Problem, config: Config) -> Loaded:
    note = Note(path=path, utf8=b"", problems=(problem,))
    return Loaded(note, expectations(note, config))


_PYTHON_FENCE = re.compile(
    rb"(?m)^[ \t>]*(?:```|~~~)[ \t]*(?:i?python3?|py|pycon|python-repl|doctest|\{\.python)\b"
)
"""A look at a note's bytes before parsing them: a fence that may hold python."""


def _load(
    file: NoteFile,
    config: Config,
    cache: ResultCache | None,
    fingerprint: str,
    key_of: Callable[[bytes], str],
    before_parsing: Callable[[bytes], None] = lambda content: None,
) -> Loaded:
    """Parse a note and derive its expectations, or take both from the cache (same bytes),
    together with the facts of its last run when they are cached. ``before_parsing`` sees the
    bytes of a note that must be parsed, first."""
    content = read_source(file.path)
    if isinstance(content, Problem):
        return _unreadable(file.path, content, config)
    key = key_of(content) if cache is not None else ""
    known = cache.get_parsed(key) if cache is not None else None
    if cache is not None and known is not None:  # the same bytes were parsed (so decoded) before
        data, key_of_run, stored_facts = known
        note, expected = parsed_from_json(data, file.path, normalize_utf8(content))
        facts = None
        if key_of_run is not None and stored_facts is not None:
            facts = cache.decode_facts(stored_facts, block_spans(executed_blocks(note, expected)))
        return Loaded(note, expected, key_of_run, facts)
    before_parsing(content)
    text = decode_source(content)
    if isinstance(text, Problem):
        return _unreadable(file.path, text, config)
    note = _parse(text, file.path)
    if cache is None:
        return Loaded(note, expectations(note, config))
    expected = expectations(note, config)
    key_of_run = facts = None
    if not runs_nothing(note, expected):
        key_of_run = run_key(note_run(note, expected, file.root, config), fingerprint)
        facts = cache.get(key_of_run, block_spans(executed_blocks(note, expected)))
    try:
        data = parsed_json(note, expected)
    except (TypeError, ValueError, RecursionError):  # frontmatter JSON cannot hold: parse it again next time
        return Loaded(note, expected, key_of_run, facts)
    cache.put_parsed(key, data, key_of_run)
    return Loaded(note, expected, key_of_run, facts)


def _note_config(file: NoteFile, config: Config) -> Config:
    """The note's configuration: its subfolders' files over the run's (raises :class:`ConfigError`)."""
    return folder_config(config, file.root, file.path.parent) if file.root.is_dir() else config


def parse(file: NoteFile, config: Config, cache: ResultCache | None = None, fingerprint: str = "") -> Parsed:
    """Load a note as checking it would: parsed (or taken from ``cache``) with its expectations
    under its folder's configuration, and its cached facts; a note that cannot be read (or
    configured) is one whose problem says why."""
    try:
        own = _note_config(file, config)
    except ConfigError as error:
        return Parsed(file, _unreadable(file.path, Problem(0, str(error)), config))
    key_of = parsed_keys(replace(own, source=None), fingerprint)
    return Parsed(file, _load(file, own, cache, fingerprint, key_of))


def _file_of(item: NoteFile | Parsed) -> NoteFile:
    return item.file if isinstance(item, Parsed) else item


@collector_paused()  # every note's result is kept to the end
def check(
    files: Sequence[NoteFile | Parsed],
    config: Config,
    sandbox: Sandbox,
    on_result: Callable[[NoteResult], None] = lambda result: None,
    cache: ResultCache | None = None,
    fingerprint: str = "",
) -> list[NoteResult]:
    """Every note's result, in file order; ``on_result`` sees each one as soon as it is known."""
    results = []
    for result in iter_check(files, config, sandbox, cache, fingerprint):
        on_result(result)
        results.append(result)
    return results


LOOKAHEAD = 256
"""Notes loaded (and queued in the sandbox) ahead of the next one to report: enough to keep
every worker slot busy, few enough that memory does not grow with the vault."""


def iter_check(
    files: Sequence[NoteFile | Parsed],
    config: Config,
    sandbox: Sandbox,
    cache: ResultCache | None = None,
    fingerprint: str = "",
    lookahead: int = LOOKAHEAD,
) -> Iterator[NoteResult]:
    """Check notes, yielding each note's result in file order as soon as it is known.

    Notes whose facts are in ``cache`` are judged without running; the sandbox starts its
    worker only if some note still has something to run. A result is not kept once yielded.
    A :class:`Parsed` note is not read again.
    """
    if lookahead < 1:
        raise ValueError("lookahead must be at least 1")
    elsewhere = vault_names([_file_of(item) for item in files])
    configs: dict[tuple[Path, Path], tuple[Config, Callable[[bytes], str]] | ConfigError] = {}

    def config_of(file: NoteFile) -> tuple[Config, Callable[[bytes], str]] | ConfigError:
        """The note's configuration (its subfolders' files over the run's) and its parse keys."""
        place = (file.root, file.path.parent)
        if place not in configs:
            try:
                own = _note_config(file, config)
                configs[place] = own, parsed_keys(replace(own, source=None), fingerprint)
            except ConfigError as error:
                configs[place] = error
        return configs[place]

    def before_parsing(content: bytes) -> None:
        """A note that must be parsed is new or changed, so it will most likely run if it holds
        python: the worker starts importing torch now, not after parsing (which first loads
        markdown-it and YAML)."""
        if _PYTHON_FENCE.search(content):
            sandbox.start()

    loaded: dict[int, Loaded] = {}  # loaded and not yet reported, by index
    facts: dict[int, NoteFacts | None] = {}  # known facts (None: nothing to run) by index
    tickets: dict[int, tuple[int, NoteRun, str]] = {}  # sandbox ticket → note index, run, key
    next_load = next_report = 0
    while next_report < len(files):
        while next_load < len(files) and next_load - next_report < lookahead:
            item, index = files[next_load], next_load
            file = _file_of(item)
            found = config_of(file)
            if isinstance(found, ConfigError):
                note = loaded[index] = _unreadable(file.path, Problem(0, str(found)), config)
                facts[index] = None
                next_load += 1
                continue
            note_config, key_of = found
            note = loaded[index] = (
                item.loaded
                if isinstance(item, Parsed)
                else _load(file, note_config, cache, fingerprint, key_of, before_parsing)
            )
            if (
                note.facts is not None
                and note_config.isolation == "strict"
                and not _fully_isolated(note.facts)
            ):
                note = loaded[index] = replace(
                    note, facts=None
                )  # strict: facts from a lesser sandbox run again
            if note.facts is not None or runs_nothing(note.note, note.expected):
                facts[index] = note.facts
            else:  # the worker starts with the first note that must run, while loading goes on
                run = note_run(note.note, note.expected, file.root, note_config)
                tickets[sandbox.submit(run)] = (index, run, note.run_key or run_key(run, fingerprint))
            next_load += 1
        if next_report not in facts:  # wait for the sandbox
            ticket, note_facts = sandbox.next_facts()
            index, run, key = tickets.pop(ticket)
            facts[index] = note_facts
            if cache is not None:
                cache.put(key, run, note_facts)
            continue
        note = loaded.pop(next_report)
        cached = note.facts is not None
        yield assemble(note.note, note.expected, facts.pop(next_report), cached, elsewhere)
        next_report += 1
