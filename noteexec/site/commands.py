"""``noteexec build``, ``render`` and ``serve``: the command-line side of the site.

Exit codes: 0 the site was written and every check passed; 1 it was written but a check
failed or a link is broken (the summary says which); 2 nothing could be written.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from noteexec.config import Config
from noteexec.config.files import load_config
from noteexec.discover import discover
from noteexec.display import printable, shown_path
from noteexec.exitcodes import EXIT_FAILED, EXIT_OK, EXIT_USAGE, UsageError
from noteexec.results import NoteFile, NoteResult
from noteexec.session import CheckSession, RunOptions, show_warnings
from noteexec.site.build import build_site, custom_css
from noteexec.site.console import options_from, print_summary
from noteexec.site.write import BuildError


def _results(
    files: Sequence[NoteFile], config: Config, arguments: argparse.Namespace, vault: Path
) -> list[NoteResult]:
    """Check results: reused from the result cache where it has them, else run in the sandbox
    (or, ``--no-run``, judged with nothing run); the session's warnings after."""
    session = CheckSession(config, vault, RunOptions.from_arguments(arguments))
    try:
        with session:
            return session.check(files)
    finally:
        show_warnings(session.take_warnings())


def _build(arguments: argparse.Namespace) -> int:
    started = time.perf_counter()
    root: Path = arguments.vault
    if not root.is_dir():
        raise UsageError(f"{root}: not a folder")
    config = load_config(root, arguments)
    files = discover([root], config.exclude)
    out = Path(arguments.out)
    if out.resolve() == root.resolve():
        raise UsageError("the site cannot be written over the vault")
    options = options_from(arguments, config)
    custom_css(root, options)  # a missing --css file stops the build before any note runs
    if not arguments.no_run:
        print(f"checking {len(files)} notes…", file=sys.stderr)
    results = _results(files, config, arguments, root)
    report = build_site(root, results, out, options)
    print_summary(report, root, sys.stdout, time.perf_counter() - started)
    return EXIT_OK if report.ok else EXIT_FAILED


def _vault_of(note: Path) -> Path:
    for folder in note.resolve().parents:
        if (folder / ".obsidian").is_dir():
            return folder
    return note.parent


def _render(arguments: argparse.Namespace) -> int:
    from noteexec.site.single import render_single

    note_path: Path = arguments.note
    if not note_path.is_file():
        raise UsageError(f"{note_path}: no such file")
    vault = arguments.vault or _vault_of(note_path)
    if note_path.resolve().parent != vault.resolve() and vault.resolve() not in note_path.resolve().parents:
        raise UsageError(f"{note_path} is not inside the vault {vault}")
    config = load_config(note_path, arguments)
    file = NoteFile(note_path, vault)
    results = _results([file], config, arguments, note_path)
    out = arguments.out or Path(note_path.stem + ".html")
    options = options_from(arguments, config)
    html, page = render_single(vault, results[0], options)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        temporary = out.with_name(f".{out.name}.tmp")
        temporary.write_text(html, encoding="utf-8")
        os.replace(temporary, out)
    except OSError as error:
        raise BuildError(f"cannot write {out}: {error.strerror or error}") from None
    failed = [block for block in page.blocks if block.outcome == "failed"]
    print(f"wrote {out} ({page.status.replace('_', ' ')})")
    for block in failed:
        print(f"FAIL  {shown_path(note_path)}:{block.line}: {printable(block.message)}")
    for broken in page.broken:
        print(f"BROKEN LINK {printable(broken.describe(str(vault)))}")
    for warning in custom_css(vault, options).warnings:
        print(f"noteexec: warning: {printable(warning)}", file=sys.stderr)
    for item in page.withheld:
        print(f"noteexec: warning: {printable(item.describe(str(vault)))}", file=sys.stderr)
    return EXIT_OK if page.status not in ("failed", "error") and not page.broken else EXIT_FAILED


def _serve(arguments: argparse.Namespace) -> int:
    from noteexec.site.serve import serve

    root: Path = arguments.vault
    if not root.is_dir():
        raise UsageError(f"{root}: not a folder")
    return serve(root, arguments)


def run_site_command(arguments: argparse.Namespace) -> int:
    """Run ``build``/``render``/``serve``; errors that leave no site give exit code 2."""
    try:
        if arguments.command == "build":
            return _build(arguments)
        if arguments.command == "render":
            return _render(arguments)
        return _serve(arguments)
    except BuildError as error:
        print(f"noteexec: error: {error}", file=sys.stderr)
        return EXIT_USAGE
