"""Command-line options shared by every command that checks notes (``check``, ``build``, ...)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_cache_arguments(command: argparse.ArgumentParser) -> None:
    command.add_argument("--no-cache", action="store_true", help="run every note, store nothing")
    command.add_argument(
        "--cache-dir",
        type=Path,
        metavar="DIR",
        help="default: $NOTEEXEC_CACHE_DIR, else .noteexec/ beside the vault",
    )
    command.add_argument(
        "--cache-key-file",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="a file (e.g. a lock file) whose content is part of every cache key",
    )


def add_sandbox_arguments(command: argparse.ArgumentParser) -> None:
    """Options that may loosen the sandbox: the command line is trusted, where a configuration
    inside the checked folder (it came with the notes) may only tighten. Applied by
    :func:`noteexec.config.layers.apply_overrides`; each is bounded like its configuration key."""
    group = command.add_argument_group("sandbox (over the configuration)")
    group.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME",
        help="an environment variable notes may see (a plain name, no wildcard); repeat for several",
    )
    group.add_argument("--timeout", metavar="SECONDS", help="seconds per block (at most 86400)")
    group.add_argument(
        "--memory-limit", metavar="SIZE", help='memory per note, such as "4GiB" (16MiB to 1TiB), or "none"'
    )
    group.add_argument(
        "--tmp-size", metavar="SIZE", help='space a note may write in its folder and /tmp, such as "512MiB"'
    )
    group.add_argument("--processes", metavar="N", help="processes and threads per note (1 to 65536)")
    group.add_argument(
        "--isolation", choices=("auto", "strict"), help="strict: refuse to run notes without the full sandbox"
    )
    group.add_argument(
        "--not-runnable",
        choices=("fail", "report"),
        help="whether blocks that cannot run here (a missing package, no GPU, ...) fail the run",
    )
    group.add_argument(
        "--opt-in",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="check only notes whose frontmatter says noteexec: true (or has a noteexec: mapping)",
    )
    group.add_argument(
        "--no-namespaces",
        dest="namespaces",
        action="store_const",
        const=False,
        default=None,
        help="no Linux namespaces: only limits and watching",
    )
