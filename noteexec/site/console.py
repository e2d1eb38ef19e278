"""What ``build``, ``render`` and ``serve`` share on the command line: the build options their
arguments ask for, and what is printed after a build.

Its own module so that the commands (:mod:`noteexec.site.commands`) and the server
(:mod:`noteexec.site.serve`) both import it, and not each other.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TextIO

from noteexec.config import Config
from noteexec.display import printable, shown_path
from noteexec.site.build import BuildOptions, BuildReport


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
