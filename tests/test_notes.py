"""The bundled vault: every note holds, and shows a documented failure and a working fix.

A torch upgrade that changes one of the documented messages fails here, naming the note.
"""

from __future__ import annotations

import hashlib
import re

import pytest

from noteexec.check import check
from noteexec.config.files import load_config
from noteexec.discover import discover
from noteexec.results import NoteResult
from noteexec.sandbox import Sandbox
from tests.conftest import REPO, SEED_NOTE, WORKSPACE_SEED_NOTE

NOTES = REPO / "notes"
INDEX = NOTES / "README.md"


@pytest.fixture(scope="module")
def results(sandbox: Sandbox) -> dict[str, NoteResult]:
    config = load_config(NOTES)
    return {result.note.path.name: result for result in check(discover([NOTES]), config, sandbox)}


def lesson_notes(results: dict[str, NoteResult]) -> list[NoteResult]:
    return [result for name, result in results.items() if name != INDEX.name]


def test_vault_has_the_seed_and_at_least_ten_more_notes(results: dict[str, NoteResult]) -> None:
    assert len(lesson_notes(results)) >= 11
    seed_copy = results["autograd-计算图与梯度.md"].note.source
    assert seed_copy.startswith(SEED_NOTE.read_text(encoding="utf-8"))
    assert results["autograd-计算图与梯度.md"].note.setup


SEED_NOTE_SHA256 = "ea2d0a9342a2a32935a082394aff3fde38968a0f4b37d23c4f25e2e60a49c572"
"""Of ``../shared/seed-note.md``, the original: a clone outside the workspace checks the copy by it."""


def test_the_tests_seed_note_is_the_workspace_original() -> None:
    assert hashlib.sha256(SEED_NOTE.read_bytes()).hexdigest() == SEED_NOTE_SHA256
    if WORKSPACE_SEED_NOTE.is_file():  # in the workspace: the original itself has not changed
        assert SEED_NOTE.read_bytes() == WORKSPACE_SEED_NOTE.read_bytes()


def test_every_note_passes(results: dict[str, NoteResult]) -> None:
    failures = {
        name: [block.verdict.message for block in result.blocks if block.verdict.outcome != "passed"]
        or result.error
        for name, result in results.items()
        if result.status != "passed"
    }
    assert failures == {}


def test_every_documented_error_matches_what_torch_raises(results: dict[str, NoteResult]) -> None:
    documented = [
        (name, block)
        for name, result in results.items()
        for block in result.blocks
        if block.expectation.error is not None or block.expectation.warnings
    ]
    assert len(documented) >= 12
    wrong = [
        (name, block.block.line, block.verdict.message)
        for name, block in documented
        if block.verdict.outcome != "passed"
    ]
    assert wrong == []
    forms = {block.expectation.error.form for _, block in documented if block.expectation.error}
    assert forms == {"comment", "trailing", "output"}


def test_each_lesson_shows_a_documented_failure_and_a_fix_with_gradients(
    results: dict[str, NoteResult],
) -> None:
    for result in lesson_notes(results):
        failures = [
            block
            for block in result.blocks
            if block.expectation.kind == "raises"
            and block.verdict.outcome == "passed"
            and block.facts.exception
        ]
        fixes = [
            block
            for block in result.blocks
            if block.expectation.kind == "gradients"
            and block.verdict.outcome == "passed"
            and block.facts.gradients
            and all(gradient.finite for gradient in block.facts.gradients)
        ]
        assert failures, f"{result.note.path.name} has no failure block that raises as documented"
        assert fixes, f"{result.note.path.name} has no success block with finite gradients"


def test_notes_follow_the_seed_style(results: dict[str, NoteResult]) -> None:
    english = 0
    for result in lesson_notes(results):
        note = result.note
        assert {"title", "date", "tags"} <= set(note.frontmatter), note.path.name
        assert "```mermaid" in note.source, note.path.name
        if note.path.name != "autograd-计算图与梯度.md":  # the seed's text stays as written
            assert "[[" in note.source, note.path.name
        if not re.search(r"[\u4e00-\u9fff]", note.frontmatter["title"]):
            english += 1
    assert english >= 3


def test_index_links_every_note() -> None:
    index = INDEX.read_text(encoding="utf-8")
    linked = set(re.findall(r"\[\[([^\]|#]+)", index))
    stems = {path.stem for path in NOTES.glob("*.md") if path != INDEX}
    assert stems <= linked, stems - linked


def test_mermaid_diagrams_name_the_graph_nodes_the_code_builds(results: dict[str, NoteResult]) -> None:
    """Each recorded backward graph's operations appear in the note's own diagrams."""
    checked = 0
    for result in lesson_notes(results):
        text = result.note.source
        for block in result.blocks:
            for graph in block.facts.graphs if block.facts else ():
                operations = {label.split(" ")[0] for _, label in graph.nodes} - {"AccumulateGrad"}
                if operations and any(operation in text for operation in operations):
                    checked += 1
    assert checked >= 8
