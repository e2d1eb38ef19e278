"""The site commands' arguments, registered without importing the site itself.

``noteexec check`` builds the same parser; keeping this module light keeps its start-up fast.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from noteexec.options import add_cache_arguments, add_sandbox_arguments
from noteexec.site.mermaid import DEFAULT_MERMAID_URL

SITE_COMMANDS = ("build", "render", "serve")


def _common(command: argparse.ArgumentParser, jobs: bool = True) -> None:
    command.add_argument(
        "--no-run", action="store_true", help="render without executing (blocks show 'not run')"
    )
    command.add_argument(
        "--mermaid-url",
        default=DEFAULT_MERMAID_URL,
        metavar="URL",
        help="where pages load mermaid.js from (a local file is copied into the site); "
        f"default {DEFAULT_MERMAID_URL}",
    )
    command.add_argument(
        "--offline", action="store_true", help="load nothing from the network: diagrams show their source"
    )
    command.add_argument(
        "--no-remote-images",
        action="store_true",
        help="show a note's https: images as links: pages load nothing from other sites but Mermaid",
    )
    command.add_argument(
        "--verdicts",
        choices=("closed", "open"),
        default="closed",
        help="verdict panels start closed (the badge shows; details on demand) or open (for CI review)",
    )
    command.add_argument("--title", help="the site's title (default: the vault folder's name)")
    command.add_argument(
        "--css",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="custom CSS for note bodies (repeatable); it cannot restyle verdicts, headers or the index",
    )
    command.add_argument(
        "--publish-css",
        action="store_true",
        default=None,
        help="also style note bodies with the vault's publish.css (Obsidian Publish)",
    )
    if jobs:
        command.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 1, help="notes run at once")
    add_cache_arguments(command)
    add_sandbox_arguments(command)


def _home(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--home",
        metavar="NOTE",
        help="the note shown on the landing page, as a path in the vault "
        "(default: Home.md, index.md or README.md at its root)",
    )


def add_site_commands(commands: Any) -> None:
    """Register the site's subcommands on the CLI's subparsers."""
    build = commands.add_parser("build", help="check a vault and write it as a static site")
    build.add_argument("vault", type=Path, metavar="VAULT")
    build.add_argument("-o", "--out", type=Path, default=Path("site"), metavar="OUT", help="default: ./site")
    build.add_argument("--site-url", help="public address of the site, for absolute URLs in sitemap.xml")
    _home(build)
    _common(build)

    render = commands.add_parser("render", help="one note as one self-contained HTML page")
    render.add_argument("note", type=Path, metavar="NOTE")
    render.add_argument("-o", "--out", type=Path, metavar="FILE.html", help="default: the note's name .html")
    render.add_argument(
        "--vault",
        type=Path,
        metavar="DIR",
        help="the vault its links resolve in (default: the nearest folder holding .obsidian/, "
        "else the note's folder)",
    )
    _common(render)

    serve = commands.add_parser("serve", help="build, serve on 127.0.0.1, rebuild and reload on save")
    serve.add_argument("vault", type=Path, metavar="VAULT")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument(
        "-o", "--out", type=Path, help="where the site is written (default: a temporary folder)"
    )
    _home(serve)
    _common(serve)
