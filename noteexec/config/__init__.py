"""Project configuration: what a :class:`Config` holds, its defaults and its bounds.

Where configurations are found and which of them are trusted is :mod:`noteexec.config.files`'s
job; how one is laid over another (an untrusted one may only tighten the sandbox) is
:mod:`noteexec.config.layers`'s; what each key may hold is :mod:`noteexec.config.values`'s.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from noteexec.expect import Families

Isolation = Literal["auto", "strict"]
ISOLATIONS: tuple[Isolation, ...] = ("auto", "strict")
NotRunnable = Literal["fail", "report"]
NOT_RUNNABLE: tuple[NotRunnable, ...] = ("fail", "report")
DEFAULT_PRELUDE = "import torch\nimport torch.nn as nn\nimport torch.nn.functional as F\n"
DEFAULT_TIMEOUT = 60.0
DEFAULT_MEMORY_LIMIT = 4 << 30
DEFAULT_TMP_SIZE = 512 << 20
DEFAULT_PROCESSES = 256
MAX_TIMEOUT = 86400.0
"""One day: longer is a mistake, and far larger values overflow the sandbox's time arithmetic."""
MIN_SIZE, MAX_SIZE = 16 << 20, 1 << 40
"""Below 16 MiB not even the interpreter starts; above 1 TiB is a typo (and overflows rlimits)."""
MAX_PROCESSES = 65536


class ConfigError(Exception):
    """A configuration file that cannot be used; the message names the file."""


@dataclass(frozen=True)
class Config:
    """How a vault is checked: what runs before its blocks, which notes, and the sandbox's limits."""

    prelude: str = DEFAULT_PRELUDE
    timeout: float = DEFAULT_TIMEOUT
    memory_limit: int | None = DEFAULT_MEMORY_LIMIT
    families: Families = field(default_factory=Families)
    exclude: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    namespaces: bool = True
    """Isolate notes in Linux namespaces when the OS allows (off: only limits and watching)."""
    tmp_size: int = DEFAULT_TMP_SIZE
    """Bytes of the private tmpfs a note may write: its working folder and /tmp."""
    processes: int = DEFAULT_PROCESSES
    """Cap on the processes and threads of a note's whole tree (a fork bomb stops here)."""
    isolation: Isolation = "auto"
    """``"strict"``: refuse to run notes without the full sandbox, rather than fall back."""
    publish_css: bool = False
    """The site uses the vault's ``publish.css`` (Obsidian Publish), confined to note bodies."""
    opt_in: bool = False
    """Check only notes whose frontmatter opts in (``noteexec: true`` or a ``noteexec:`` mapping)."""
    not_runnable: NotRunnable = "fail"
    """Whether blocks that cannot run here (see :mod:`noteexec.runnable`) fail the run, or are
    only reported (``report``: adopting a vault whose snippets were never meant to run alone)."""
    source: Path | None = None
