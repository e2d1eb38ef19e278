"""How every command ends: one set of exit codes, shared by ``check`` and the site's commands."""

from __future__ import annotations

EXIT_OK = 0
"""Everything checked passed (or, for the site, was written and passed)."""
EXIT_FAILED = 1
"""A check failed (or the site was written with problems)."""
EXIT_USAGE = 2
"""The command could not be carried out: nothing was checked or written."""
EXIT_INTERRUPTED = 130
"""Ctrl-C, as a shell reports a process ended by SIGINT."""
EXIT_BROKEN_PIPE = 128 + 13
"""The reader of the output left (``noteexec check | head``), as a process killed by SIGPIPE."""


class UsageError(Exception):
    """A command line that cannot be carried out (exit code :data:`EXIT_USAGE`)."""
