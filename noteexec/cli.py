"""``noteexec`` command line. Exit codes: 0 all passed, 1 a check failed, 2 bad usage."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import shlex
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TextIO

from noteexec import __version__, update
from noteexec.baseline import Baseline, failures_of, render
from noteexec.cache import open_cache
from noteexec.check import parse
from noteexec.config import Config, ConfigError
from noteexec.config.files import load_config
from noteexec.discover import discover
from noteexec.display import printable, shown_path
from noteexec.exitcodes import (
    EXIT_BROKEN_PIPE,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    UsageError,
)
from noteexec.formats import GithubReporter, JunitReporter
from noteexec.options import add_cache_arguments, add_sandbox_arguments
from noteexec.report import JsonReporter, Reporter, Summary, TextReporter, limits_notice, sandbox_notice
from noteexec.results import NoteFile, NoteResult
from noteexec.sandbox import IsolationRefused
from noteexec.sandbox.isolation import not_dumpable
from noteexec.session import CheckSession, RunOptions, show_warnings
from noteexec.site.arguments import SITE_COMMANDS, add_site_commands

FORMATS = ("text", "json", "junit", "github")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="noteexec",
        description="Check the python blocks of Obsidian notes against what the notes document.",
    )
    parser.add_argument("--version", action="version", version=f"noteexec {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    check_command = commands.add_parser("check", help="run every note's blocks and judge them")
    check_command.add_argument("paths", nargs="*", type=Path, default=[Path("notes")], metavar="PATH")
    check_command.add_argument(
        "--format",
        action="append",
        default=[],
        metavar="FORMAT[:FILE]",
        help=f"one of {', '.join(FORMATS)}, to stdout or to FILE; repeat for several (default: text)",
    )
    check_command.add_argument(
        "-o", "--output", action="append", default=[], metavar="FILE", help="file for the last --format"
    )
    check_command.add_argument(
        "-j", "--jobs", type=int, default=os.cpu_count() or 1, help="notes run at once (default: CPUs)"
    )
    check_command.add_argument(
        "--shard", metavar="K/N", help="check only the K-th of N deterministic shards of the notes"
    )
    check_command.add_argument("-v", "--verbose", action="count", default=0, help="also passing blocks")
    check_command.add_argument("-q", "--quiet", action="count", default=0, help="only failures")
    check_command.add_argument(
        "--baseline",
        type=Path,
        metavar="FILE",
        help="failures recorded in FILE are known: only new ones fail",
    )
    rewrite = check_command.add_mutually_exclusive_group()
    rewrite.add_argument(
        "--update",
        action="store_true",
        help="rewrite documented errors and outputs to what really happened (prints the diff first)",
    )
    rewrite.add_argument(
        "--diff", action="store_true", help="print what --update would change, write nothing"
    )
    add_cache_arguments(check_command)
    add_sandbox_arguments(check_command)

    baseline_command = commands.add_parser(
        "baseline", help="record today's failures in a file that `check --baseline` accepts"
    )
    baseline_command.add_argument("paths", nargs="*", type=Path, default=[Path("notes")], metavar="PATH")
    baseline_command.add_argument("-o", "--output", type=Path, required=True, metavar="FILE")
    baseline_command.add_argument(
        "-j", "--jobs", type=int, default=os.cpu_count() or 1, help="notes run at once (default: CPUs)"
    )
    add_cache_arguments(baseline_command)
    add_sandbox_arguments(baseline_command)

    list_command = commands.add_parser("list", help="show each block's expectation, run nothing")
    list_command.add_argument("paths", nargs="+", type=Path, metavar="NOTE")

    doctor_command = commands.add_parser(
        "doctor", help="show which sandbox protections this machine provides"
    )
    doctor_command.add_argument(
        "--strict", action="store_true", help="exit 1 unless notes get the full sandbox"
    )

    cache_command = commands.add_parser("cache", help="show or clear the result cache")
    cache_command.add_argument("action", choices=("info", "clear"))
    cache_command.add_argument("path", nargs="?", type=Path, default=Path("notes"), metavar="VAULT")
    cache_command.add_argument("--cache-dir", type=Path, metavar="DIR")
    add_site_commands(commands)
    return parser


def _config_for(paths: Sequence[Path], arguments: argparse.Namespace | None = None) -> Config:
    """The configuration for these paths: a file inside any of them is untrusted (it came with the
    notes); the command line's sandbox options, trusted, go over it."""
    return load_config(paths[0] if paths else Path.cwd(), arguments, checked=paths[1:])


def _outputs(arguments: argparse.Namespace) -> list[tuple[str, Path | None]]:
    """Pair each --format with its file: ``junit:report.xml``, or the next --output."""
    requested = arguments.format or ["text"]
    outputs: list[tuple[str, Path | None]] = []
    files = list(arguments.output)
    for item in requested:
        name, _, file = item.partition(":")
        if name not in FORMATS:
            raise UsageError(f"unknown format {name!r} (choose from {', '.join(FORMATS)})")
        outputs.append((name, Path(file) if file else None))
    for index in range(len(outputs) - 1, -1, -1):
        if files and outputs[index][1] is None:
            outputs[index] = (outputs[index][0], Path(files.pop()))
    if files:
        raise UsageError("--output given without a --format to go with it")
    if sum(file is None for _, file in outputs) > 1:
        raise UsageError("only one format can go to stdout; give the others a file (FORMAT:FILE)")
    files_given = [file.resolve() for _, file in outputs if file is not None]
    if len(set(files_given)) < len(files_given):
        raise UsageError("two formats cannot go to the same file")
    for file in files_given:
        if file.is_dir():
            raise UsageError(f"{file} is a folder; give a report file")
    return outputs


def _shard(files: list[NoteFile], shard: str | None) -> list[NoteFile]:
    if shard is None:
        return files
    index, _, count = shard.partition("/")
    if not (index.isdigit() and count.isdigit() and 1 <= int(index) <= int(count)):
        raise UsageError(f"--shard must look like K/N with 1 <= K <= N, not {shard!r}")
    return [file for position, file in enumerate(files) if position % int(count) == int(index) - 1]


def _reporter(name: str, stream: TextIO, arguments: argparse.Namespace) -> Reporter:
    if name == "json":
        return JsonReporter(stream)
    if name == "junit":
        return JunitReporter(stream)
    if name == "github":
        return GithubReporter(stream)
    terminal = stream.isatty()
    return TextReporter(
        stream,
        verbosity=arguments.verbose - arguments.quiet,
        colour=terminal and "NO_COLOR" not in os.environ,
        progress=sys.stderr if terminal and sys.stderr.isatty() and not arguments.quiet else None,
    )


@contextlib.contextmanager
def _report_file(path: Path) -> Iterator[TextIO]:
    """A report file, written beside its name and renamed into place once complete: an
    interrupted run leaves the previous report (or none), never half of one for CI to misread."""
    partial = path.with_name(f".{path.name}.partial")
    try:
        stream = open(partial, "w", encoding="utf-8")  # noqa: SIM115 - closed below
    except OSError as error:
        raise UsageError(f"cannot write {path}: {error.strerror or error}") from None
    try:
        with stream:
            yield stream
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    try:
        os.replace(partial, path)
    except OSError as error:
        partial.unlink(missing_ok=True)
        raise UsageError(f"cannot write {path}: {error.strerror or error}") from None


def _notes(arguments: argparse.Namespace) -> tuple[CheckSession, list[NoteFile]]:
    """The session of a command that checks notes, and the notes it checks (all, or its --shard)."""
    options = RunOptions.from_arguments(arguments)
    config = _config_for(arguments.paths, arguments)
    found = discover(arguments.paths, config.exclude)
    if not found:  # nothing failed, so exit 0; but a vault with no notes is likely a wrong path
        where = ", ".join(map(str, arguments.paths))
        print(f"noteexec: warning: no notes (*.md) found in {where}", file=sys.stderr)
    vault = arguments.paths[0] if arguments.paths else Path.cwd()
    return CheckSession(config, vault, options), _shard(found, getattr(arguments, "shard", None))


def _results(session: CheckSession, files: list[NoteFile]) -> Iterator[NoteResult]:
    """Each note's result in file order, from the cache or the sandbox; the session's warnings after."""
    try:
        with session:
            yield from session.iter_check(files)
    finally:
        show_warnings(session.take_warnings())


def _check(arguments: argparse.Namespace) -> int:
    """Results stream through the reporters note by note: memory stays level however large the vault."""
    started = time.perf_counter()
    outputs = _outputs(arguments)
    baseline = Baseline.load(arguments.baseline) if arguments.baseline is not None else None
    session, files = _notes(arguments)
    summary = Summary()
    plans: list[tuple[NoteResult, update.NotePlan]] = []
    with contextlib.ExitStack() as files_open:
        streams = [
            sys.stdout if file is None else files_open.enter_context(_report_file(file))
            for _, file in outputs
        ]
        reporters = [
            _reporter(name, stream, arguments) for (name, _), stream in zip(outputs, streams, strict=True)
        ]
        for reporter in reporters:
            if isinstance(reporter, TextReporter):
                reporter.start(len(files))
        for result in _results(session, files):
            if baseline is not None:
                result = baseline.apply(result)
            summary += Summary.of([result])
            for reporter in reporters:
                reporter.note(result)
            if arguments.update or arguments.diff:
                note_plan = update.plan(result)
                if note_plan.edits or note_plan.left:
                    plans.append((result, note_plan))
        if notice := sandbox_notice(summary):
            print(f"noteexec: WARNING: {notice}", file=sys.stderr)
        if notice := limits_notice(summary):
            print(f"noteexec: warning: {notice}", file=sys.stderr)
        if session.config.not_runnable == "fail":
            summary = dataclasses.replace(summary, not_runnable_failing=summary.not_runnable)
        if session.config.source is None and baseline is None and summary.not_runnable > summary.failed:
            _adoption_hint(summary, arguments.paths)
        if baseline is not None:
            summary = dataclasses.replace(summary, known=baseline.known)
            _tell_fixed(baseline, arguments)
        duration = time.perf_counter() - started
        for reporter in reporters:
            reporter.finish(summary, duration)
    if plans:
        to_stdout = all(name == "text" or file is not None for name, file in outputs)
        _rewrite(plans, write_files=arguments.update, stream=sys.stdout if to_stdout else sys.stderr)
    return EXIT_OK if summary.ok else EXIT_FAILED


def _rewrite(plans: list[tuple[NoteResult, update.NotePlan]], write_files: bool, stream: TextIO) -> None:
    """Show (and with ``write_files``, make) the edits; say what is left to the author."""
    for result, note_plan in plans:
        shown = shown_path(note_plan.path)
        for why in note_plan.left:
            print(f"noteexec: {shown}:{printable(why)}", file=sys.stderr)
        if not note_plan.edits:
            continue
        try:
            before, after = update.apply(note_plan.path, note_plan, result.note.source)
        except (OSError, ValueError) as error:
            print(f"noteexec: not updated: {printable(str(error))}", file=sys.stderr)
            continue
        stream.write(printable(update.diff(note_plan.path, before, after)))
        if write_files:
            try:
                update.write(note_plan.path, after)
            except OSError as error:
                print(f"noteexec: {shown}: cannot write: {error.strerror or error}", file=sys.stderr)
                continue
            print(f"noteexec: updated {shown}", file=sys.stderr)


def _adoption_hint(summary: Summary, paths: Sequence[Path]) -> None:
    """On a vault with no configuration where most failures are snippets that cannot run on
    their own: the ways to adopt noteexec, once."""
    where = " ".join(shlex.quote(str(path)) for path in paths) or "notes"
    total = summary.not_runnable + summary.failed
    print(
        f"noteexec: hint: {summary.not_runnable} of {total} failures are blocks that cannot run here "
        "on their own (a missing package, a name from another note, a placeholder...). To adopt "
        "noteexec on this vault, check only the notes meant to run (opt_in = true in noteexec.toml, "
        f"and noteexec: true in their frontmatter), or accept today's failures (noteexec baseline "
        f"{where} -o noteexec-baseline.json, then check --baseline noteexec-baseline.json), or "
        "report such blocks without failing (--not-runnable report).",
        file=sys.stderr,
    )


def _tell_fixed(baseline: Baseline, arguments: argparse.Namespace) -> None:
    """Recorded failures that no longer happen: the baseline can shrink."""
    fixed = baseline.fixed()
    if not fixed:
        return
    paths = " ".join(shlex.quote(str(path)) for path in arguments.paths)
    print(
        f"noteexec: {len(fixed)} failures recorded in {shown_path(baseline.path)} no longer happen; "
        f"shrink it: noteexec baseline {paths} -o {shlex.quote(str(baseline.path))}",
        file=sys.stderr,
    )
    for failure in fixed:
        print(f"  fixed: {shown_path(failure.note)}:{failure.line}", file=sys.stderr)


def _baseline(arguments: argparse.Namespace) -> int:
    """Run every note and record its failures; what is recorded is accepted, so exit 0."""
    session, files = _notes(arguments)
    folder = arguments.output.resolve().parent
    failures, notes = [], 0
    for result in _results(session, files):
        failures.extend(failures_of(result, folder))
        notes += 1
    text, count = render(failures)
    with _report_file(arguments.output) as stream:  # whole or not at all, like a report
        stream.write(text)
    print(f"noteexec: recorded {count} failures of {notes} notes in {shown_path(arguments.output)}")
    return EXIT_OK


def _cache(arguments: argparse.Namespace) -> int:
    if not arguments.path.exists():  # as `check` says: another folder would show another cache
        raise UsageError(f"{arguments.path}: no such file or directory")
    cache, _ = open_cache(arguments.path, arguments.cache_dir)
    assert cache is not None
    if arguments.action == "clear":
        removed = cache.clear()
        print(f"removed {removed} cached note results from {cache.path}")
    else:
        info = cache.info()
        print(f"cache: {info.path}")
        print(f"entries: {info.entries}")
        print(f"size: {info.size / 1024:.1f} KiB")
        if info.newest is not None:
            print(f"newest: {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(info.newest))}")
    show_warnings(cache.warnings)
    cache.close()
    return EXIT_OK


def _list(arguments: argparse.Namespace) -> int:
    config = _config_for(arguments.paths)
    status = EXIT_OK
    for file in discover(arguments.paths, config.exclude):
        loaded = parse(file, config)  # as `check` loads it: its folder's configuration included
        note = loaded.note
        path = shown_path(note.path)
        print(path)
        for problem in note.problems:
            where = f"{path}:{problem.line}" if problem.line else path
            print(f"  {where}: error: {printable(problem.message)}")
            status = EXIT_FAILED
        for block, expectation in zip(note.blocks, loaded.expected, strict=True):
            callout = block.callout.kind if block.callout else "-"
            described = printable(expectation.describe())
            print(f"  {path}:{block.line}  {printable(callout):9} {expectation.kind:9} {described}")
            for note_text in expectation.notes:  # what looks documented but is not checked, and why
                print(f"    note: {printable(note_text)}")
        if note.setup:
            lines = ", ".join(str(block.line) for block in note.setup)
            print(f"  hidden setup at line(s) {lines}")
    return status


def main(argv: Sequence[str] | None = None) -> int:
    not_dumpable()  # the checker's secrets stay out of /proc for every other process of its user
    arguments = _parser().parse_args(argv)
    try:
        if arguments.command == "check":
            return _check(arguments)
        if arguments.command == "baseline":
            return _baseline(arguments)
        if arguments.command == "cache":
            return _cache(arguments)
        if arguments.command == "doctor":
            from noteexec.doctor import diagnose, exit_code, report

            findings = diagnose()
            print(report(findings))
            return exit_code(findings, strict=arguments.strict)
        if arguments.command in SITE_COMMANDS:
            from noteexec.site.commands import run_site_command  # the site loads only when used

            return run_site_command(arguments)
        return _list(arguments)
    except (UsageError, ConfigError) as error:
        print(f"noteexec: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except IsolationRefused as error:
        print(f"noteexec: error: --isolation strict: notes cannot get the full sandbox here: {error}. "
              "See `noteexec doctor`.", file=sys.stderr)  # fmt: skip
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("noteexec: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `noteexec check | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE  # as a process killed by SIGPIPE, like git or cat in the same pipe


if __name__ == "__main__":
    sys.exit(main())
