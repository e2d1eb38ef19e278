"""``noteexec build``, ``render`` and ``serve``: the command-line side of the site.

Exit codes: 0 the site was written and every check passed; 1 it was written but a check
failed or a link is broken (the summary says which); 2 nothing could be written.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TextIO

from noteexec.check import NoteFile, NoteResult, UsageError, assemble, check, discover, expectations
from noteexec.config import Config, load_config
from noteexec.display import printable, shown_path
from noteexec.parse import read_note
from noteexec.site.build import BuildOptions, BuildReport, build_site, custom_css
from noteexec.site.write import BuildError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _results(
    files: Sequence[NoteFile],
    config: Config,
    arguments: argparse.Namespace,
    vault: Path,
    on_result: Callable[[NoteResult], None] = lambda result: None,
) -> list[NoteResult]:
    """Check results: reused from the result cache where it has them, else run in the sandbox."""
    if arguments.no_run:
        results = []
        for file in files:
            note = read_note(file.path)
            result = assemble(note, expectations(note, config), None)
            on_result(result)
            results.append(result)
        return results
    if arguments.jobs < 1:
        raise UsageError("--jobs must be at least 1")
    from noteexec.cache import open_cache
    from noteexec.sandbox import Sandbox

    cache, fingerprint = open_cache(
        vault, arguments.cache_dir, not arguments.no_cache, arguments.cache_key_file
    )
    try:
        with Sandbox(parallel=arguments.jobs, env_passthrough=config.env) as sandbox:
            return check(files, config, sandbox, on_result, cache, fingerprint)
    finally:
        if cache is not None:
            for warning in cache.warnings:
                print(f"noteexec: warning: {warning}", file=sys.stderr)
            cache.close()


def options_from(arguments: argparse.Namespace, config: Config) -> BuildOptions:
    return BuildOptions(
        title=arguments.title,
        mermaid_url=arguments.mermaid_url or None,
        offline=arguments.offline,
        ran=not arguments.no_run,
        verdicts_open=getattr(arguments, "verdicts", "closed") == "open",
        remote_images=not getattr(arguments, "no_remote_images", False),
        home=getattr(arguments, "home", None),
        site_url=getattr(arguments, "site_url", None),
        exclude=config.exclude,
        css=tuple(getattr(arguments, "css", None) or ()),
        publish_css=config.publish_css,
        not_runnable_fails=config.not_runnable == "fail",
    )


def print_summary(report: BuildReport, root: Path, stream: TextIO, duration: float | None = None) -> None:
    notes = len(report.pages)
    counts: dict[str, int] = {}
    for page in report.pages:
        for block in page.blocks:
            counts[block.outcome] = counts.get(block.outcome, 0) + 1
    took = f" in {duration:.2f}s" if duration is not None else ""
    stream.write(f"wrote {report.files} files to {report.out}{took}\n")
    parts = [
        f"{counts.get(outcome, 0)} {outcome.replace('_', ' ')}" for outcome in ("passed", "failed", "skipped")
    ]
    for outcome in ("not_runnable", "not_run"):
        if counts.get(outcome):
            parts.append(
                f"{counts[outcome]} {'not runnable here' if outcome == 'not_runnable' else 'not run'}"
            )
    stream.write(f"{notes} notes, {sum(counts.values())} blocks: {', '.join(parts)}\n")
    for page in report.failed:
        where = shown_path(root / page.rel)
        if page.error:
            stream.write(f"ERROR {printable(page.error)}\n")
        for block in page.blocks:
            if block.outcome in ("failed", "not_runnable"):
                label = "FAIL" if block.outcome == "failed" else "N/A "
                stream.write(f"{label}  {where}:{block.line}: {printable(block.message)}\n")
    for broken in report.broken:
        stream.write(f"BROKEN LINK {printable(broken.describe(str(root)))}\n")
    for warning in report.warnings:
        print(f"noteexec: warning: {printable(warning)}", file=sys.stderr)
    if report.ok and not report.ran:
        stream.write("site OK: blocks not run (--no-run); every link resolves\n")
    elif report.ok:
        stream.write("site OK: every check passed and every link resolves\n")
    else:
        problems = []
        if report.failed:
            problems.append(f"{len(report.failed)} note(s) failed")
        if report.broken:
            problems.append(f"{len(report.broken)} broken link(s)")
        stream.write(f"site written with problems: {', '.join(problems)}\n")


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
