"""What checking a note produces: the types every reporter and renderer reads.

Kept apart from :mod:`noteexec.check` (which runs notes) so that rendering results loads neither
the sandbox nor the cache.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from noteexec.expect import Expectation
from noteexec.facts import BlockFacts, NoteFacts
from noteexec.judge import Verdict
from noteexec.model import CodeBlock, Note

NoteStatus = Literal["passed", "failed", "not_runnable", "error"]
"""``not_runnable``: no block failed, but some cannot run here (see :mod:`noteexec.runnable`)."""

NOT_OPTED_IN = "not opted in: the configuration says opt_in = true; add noteexec: true to its frontmatter"
"""The skip reason of every block of a note that is not opted in: reports count such notes apart."""


@dataclass(frozen=True)
class NoteFile:
    path: Path
    root: Path
    """The folder given on the command line (or the note's own folder): the vault to protect."""


@dataclass(frozen=True)
class BlockResult:
    block: CodeBlock
    expectation: Expectation
    facts: BlockFacts | None
    verdict: Verdict


@dataclass(frozen=True)
class NoteResult:
    note: Note
    blocks: tuple[BlockResult, ...]
    status: NoteStatus
    error: str | None
    facts: NoteFacts | None = None
    cached: bool = False
