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
