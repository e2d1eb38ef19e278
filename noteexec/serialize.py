"""JSON round trips for parsed notes and their expectations, so warm runs need no parsing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from noteexec.expect import Expectation
from noteexec.expect.documented import DocumentedError, DocumentedOutput, RandomDraw
from noteexec.model import CalloutHeader, CodeBlock, Note, NoteOptions, OutputFence, Problem


def _block_json(block: CodeBlock) -> dict[str, Any]:
    return {
        "line": block.line,
        "code": block.code,
        "lang": block.lang,
        "callouts": [[c.kind, c.raw_type, c.title, c.fold, c.metadata, c.known] for c in block.callouts],
        "skip": block.skip,
        "output": [block.output.line, block.output.info, block.output.text] if block.output else None,
        "tabs": list(block.tabs),
    }


def _block(data: dict[str, Any]) -> CodeBlock:
    return CodeBlock(
        line=data["line"],
        code=data["code"],
        lang=data["lang"],
        callouts=tuple(CalloutHeader(*callout) for callout in data["callouts"]),
        skip=data["skip"],
        output=OutputFence(*data["output"]) if data["output"] else None,
        tabs=tuple(data["tabs"]),
    )


def _documented_json(error: DocumentedError) -> list[Any]:
    return [error.name, error.message, error.line, error.form, error.end_line]


def expectation_json(expectation: Expectation) -> dict[str, Any]:
    return {
        "kind": expectation.kind,
        "error": _documented_json(expectation.error) if expectation.error else None,
        "warnings": [_documented_json(warning) for warning in expectation.warnings],
        "outputs": [
            [
                output.text,
                output.line,
                output.end_line,
                output.tail,
                output.prose,
                [output.random.where, output.random.integers] if output.random else None,
            ]
            for output in expectation.outputs
        ],
        "echo_lines": list(expectation.echo_lines),
        "skip_reason": expectation.skip_reason,
        "code": expectation.code,
        "notes": list(expectation.notes),
    }


def expectation_from_json(data: dict[str, Any]) -> Expectation:
    return Expectation(
        kind=data["kind"],
        error=DocumentedError(*data["error"]) if data["error"] else None,
        warnings=tuple(DocumentedError(*warning) for warning in data["warnings"]),
        outputs=tuple(
            DocumentedOutput(text, line, end_line, tail, prose, RandomDraw(*random) if random else None)
            for text, line, end_line, tail, prose, random in data["outputs"]
        ),
        echo_lines=tuple(data["echo_lines"]),
        skip_reason=data["skip_reason"],
        code=data["code"],
        notes=tuple(data["notes"]),
    )


def parsed_json(note: Note, expectations: tuple[Expectation, ...]) -> str:
    """A note without its path and text (both are known when it is read back)."""
    return json.dumps(
        {
            "frontmatter": note.frontmatter,
            "blocks": [_block_json(block) for block in note.blocks],
            "setup": [_block_json(block) for block in note.setup],
            "options": [note.options.skip, note.options.timeout],
            "problems": [[problem.line, problem.message] for problem in note.problems],
            "expectations": [expectation_json(expectation) for expectation in expectations],
        },
        ensure_ascii=False,
        default=str,  # frontmatter dates come back as ISO strings
    )


def parsed_from_json(text: str, path: Path, utf8: bytes) -> tuple[Note, tuple[Expectation, ...]]:
    data = json.loads(text)
    note = Note(
        path=path,
        utf8=utf8,
        frontmatter=data["frontmatter"],
        blocks=tuple(_block(block) for block in data["blocks"]),
        setup=tuple(_block(block) for block in data["setup"]),
        options=NoteOptions(*data["options"]),
        problems=tuple(Problem(*problem) for problem in data["problems"]),
    )
    return note, tuple(expectation_from_json(item) for item in data["expectations"])
