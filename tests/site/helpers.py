"""Vaults and results for site tests, without a sandbox: facts are written by hand."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path

from noteexec.check import assemble, expectations
from noteexec.config import Config
from noteexec.facts import BlockFacts, NoteFacts
from noteexec.parse import read_note
from noteexec.results import NoteResult


def write_vault(root: Path, notes: Mapping[str, str]) -> Path:
    for name, text in notes.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return root


def results_for(
    root: Path, facts: Mapping[str, Sequence[BlockFacts]] | None = None, ran: bool = True
) -> list[NoteResult]:
    """Every note of ``root`` in path order; notes named in ``facts`` get those block facts."""
    config = Config()
    results = []
    for path in sorted(root.rglob("*.md")):
        note = read_note(path)
        rel = path.relative_to(root).as_posix()
        note_facts = None
        if facts is not None and rel in facts:
            note_facts = NoteFacts(blocks=tuple(facts[rel]))
        elif facts is not None and ran:
            runnable = [e for e in expectations(note, config) if e.kind != "skip"]
            note_facts = NoteFacts(blocks=tuple(BlockFacts(state="ran") for _ in runnable))
        results.append(assemble(note, expectations(note, config), note_facts))
    return results
