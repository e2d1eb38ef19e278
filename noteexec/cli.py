"""``noteexec`` command line. Exit codes: 0 all passed, 1 a check failed, 2 bad usage."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from noteexec import __version__
from noteexec.check import NoteResult, UsageError, check, discover, expectations
from noteexec.config import Config, ConfigError, load_config
from noteexec.parse import read_note
from noteexec.report import Summary, TextReporter, write_json
from noteexec.sandbox import Sandbox
from noteexec.site.commands import SITE_COMMANDS, add_site_commands, run_site_command

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="noteexec",
        description="Check the python blocks of Obsidian notes against what the notes document.",
    )
    parser.add_argument("--version", action="version", version=f"noteexec {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    check_command = commands.add_parser("check", help="run every note's blocks and judge them")
    check_command.add_argument("paths", nargs="*", type=Path, default=[Path("notes")], metavar="PATH")
    check_command.add_argument("--format", choices=("text", "json"), default="text")
    check_command.add_argument(
        "-j", "--jobs", type=int, default=os.cpu_count() or 1, help="notes run at once"
    )
    check_command.add_argument("-v", "--verbose", action="count", default=0)

    list_command = commands.add_parser("list", help="show each block's expectation, run nothing")
    list_command.add_argument("paths", nargs="+", type=Path, metavar="NOTE")
    add_site_commands(commands)
    return parser


def _config_for(paths: Sequence[Path]) -> Config:
    return load_config(paths[0] if paths else Path.cwd())


def _check(arguments: argparse.Namespace) -> int:
    started = time.perf_counter()
    config = _config_for(arguments.paths)
    files = discover(arguments.paths, config.exclude)
    if arguments.jobs < 1:
        raise UsageError("--jobs must be at least 1")
    reporter = TextReporter(sys.stdout, arguments.verbose) if arguments.format == "text" else None

    def on_result(result: NoteResult) -> None:
        if reporter is not None:
            reporter.note(result)

    with Sandbox(parallel=arguments.jobs, env_passthrough=config.env) as sandbox:
        results = check(files, config, sandbox, on_result)
    duration = time.perf_counter() - started
    if reporter is not None:
        reporter.summary(results, duration)
    else:
        write_json(results, sys.stdout, duration)
    return EXIT_OK if Summary.of(results).ok else EXIT_FAILED


def _list(arguments: argparse.Namespace) -> int:
    config = _config_for(arguments.paths)
    status = EXIT_OK
    for file in discover(arguments.paths, config.exclude):
        note = read_note(file.path)
        print(f"{note.path}")
        for problem in note.problems:
            print(f"  {note.path}:{problem.line}: error: {problem.message}")
            status = EXIT_FAILED
        for block, expectation in zip(note.blocks, expectations(note, config), strict=True):
            callout = block.callout.kind if block.callout else "-"
            print(f"  {note.path}:{block.line}  {callout:9} {expectation.kind:9} {expectation.describe()}")
        if note.setup:
            lines = ", ".join(str(block.line) for block in note.setup)
            print(f"  hidden setup at line(s) {lines}")
    return status


def main(argv: Sequence[str] | None = None) -> int:
    arguments = _parser().parse_args(argv)
    try:
        if arguments.command == "check":
            return _check(arguments)
        if arguments.command in SITE_COMMANDS:
            return run_site_command(arguments)
        return _list(arguments)
    except (UsageError, ConfigError) as error:
        print(f"noteexec: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("noteexec: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
