"""The expect stage: what a note documents about each python block, as pure data (no torch, no
execution, no I/O).

A block's expectation comes from its callout (failure family: must raise; success family:
must produce gradients; anything else: must run) and from what its author wrote: error
comments, trailing comments on the raising line, output fences, and documented output. This
module puts an :class:`Expectation` together; the readers it asks live beside it:

- :mod:`~noteexec.expect.documented`: the documented errors and outputs, as data;
- :mod:`~noteexec.expect.syntax`: the block's code made to parse, its comments and statements;
- :mod:`~noteexec.expect.comments`: errors and outputs documented in comments;
- :mod:`~noteexec.expect.printed`: the value a comment says a statement prints;
- :mod:`~noteexec.expect.pasted`: ``>>>`` transcripts, notebook output, output fences;
- :mod:`~noteexec.expect.unseeded`: random draws that make printed numbers not the author's.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Literal

from noteexec.expect.comments import comment_documents
from noteexec.expect.documented import DocumentedError, DocumentedOutput, RandomDraw
from noteexec.expect.pasted import is_transcript, output_fence_documents, pasted_outputs, read_transcript
from noteexec.expect.syntax import dedented, is_print, statements, syntax_tree, without_shell_lines
from noteexec.expect.unseeded import merge_draws, unseeded_draw
from noteexec.model import CodeBlock

Kind = Literal["raises", "gradients", "runs", "skip"]

DEFAULT_FAILURE_FAMILY = ("failure",)
DEFAULT_SUCCESS_FAMILY = ("success",)


@dataclass(frozen=True)
class Families:
    """Which callout types demonstrate a failure and which a working fix (configurable)."""

    failure: frozenset[str] = frozenset(DEFAULT_FAILURE_FAMILY)
    success: frozenset[str] = frozenset(DEFAULT_SUCCESS_FAMILY)


@dataclass(frozen=True)
class Expectation:
    """What running one block must do, and what it must raise, warn or print on the way."""

    kind: Kind
    error: DocumentedError | None = None
    warnings: tuple[DocumentedError, ...] = ()
    outputs: tuple[DocumentedOutput, ...] = ()
    echo_lines: tuple[int, ...] = ()
    """Lines of bare expressions whose value the note documents: the sandbox prints them."""
    skip_reason: str | None = None
    code: str | None = None
    """What runs instead of the block's text, line for line: a ``>>>`` transcript without its
    prompts and outputs, IPython's ``%magic`` and ``!shell`` lines blanked. None: the text runs."""
    notes: tuple[str, ...] = ()
    """What the author wrote that looks documented but is not checked, and why: shown with the
    verdict, so that nothing is checked silently."""

    def runs(self, block: CodeBlock) -> str:
        """The code the sandbox runs for ``block``."""
        return block.code if self.code is None else self.code

    def describe(self) -> str:
        """The expectation in words, for reports and the site."""
        if self.kind == "skip":
            return f"skipped ({self.skip_reason})"
        if self.kind == "raises":
            text = (
                f"expects {self.error.describe()}" if self.error else "expects an exception (none documented)"
            )
        elif self.kind == "gradients":
            text = "expects to run and produce finite gradients"
        else:
            text = "expects to run without an exception"
        extras = [f"warns {warning.describe()}" for warning in self.warnings]
        lines = sorted({output.line for output in self.outputs if output.line is not None})
        checked = [f"line{'s' if len(lines) > 1 else ''} {', '.join(map(str, lines))}"] if lines else []
        if any(output.line is None for output in self.outputs):
            checked.append("the block")
        if checked:
            extras.append(f"checks the output of {' and '.join(checked)}")
        return "; ".join([text, *extras])


def expect(block: CodeBlock, families: Families = Families(), note_skip: bool = False) -> Expectation:
    """One block's expectation, as if it were the only block of its note."""
    return _expect(block, families, note_skip, None)[0]


def expect_note(
    blocks: Iterable[CodeBlock],
    families: Families = Families(),
    note_skip: bool = False,
    setup: Iterable[CodeBlock] = (),
) -> tuple[Expectation, ...]:
    """Every block's expectation. Values drawn at random without a seed, in the hidden setup or
    a block that ran before, may be what a later block prints: its numbers are not the author's."""
    random: RandomDraw | None = None
    for block in setup:
        random = merge_draws(random, unseeded_draw(block.code, syntax_tree(block.code), block.line))
    found = []
    for block in blocks:
        expectation, random = _expect(block, families, note_skip, random)
        found.append(expectation)
    return tuple(found)


def _expect(
    block: CodeBlock, families: Families, note_skip: bool, random: RandomDraw | None
) -> tuple[Expectation, RandomDraw | None]:
    """A block's expectation, and the unseeded random draws once it has run."""
    if note_skip:
        return Expectation(kind="skip", skip_reason="the note sets noteexec: {skip: true}"), random
    if block.skip:
        return Expectation(kind="skip", skip_reason="%% noteexec: skip %%"), random
    if block.tabs and not {"pytorch", "all"} & set(block.tabs):
        return Expectation(
            kind="skip", skip_reason=f"a d2l cell for {', '.join(block.tabs)}, not pytorch"
        ), random

    notes: list[str] = []
    transcript = read_transcript(block, notes) if is_transcript(block) else None
    code = transcript[0] if transcript is not None else block.code
    code, tree = without_shell_lines(code, block.line, notes)
    code, tree = dedented(code, tree)
    pasted: list[DocumentedOutput] = []
    if transcript is None:
        code, tree, pasted = pasted_outputs(code, tree, block.line)
    runnable = replace(block, code=code)
    random = merge_draws(random, unseeded_draw(code, tree, block.line))
    failure = block.callout is not None and block.callout.kind in families.failure
    documented = (
        transcript[1] if transcript is not None else list(comment_documents(runnable, tree, failure, notes))
    )
    documented.extend(pasted)
    output_error, block_output = output_fence_documents(block)
    if output_error is not None:
        documented.append(output_error)
    errors = [doc for doc in documented if isinstance(doc, DocumentedError) and not doc.is_warning]
    warnings = tuple(doc for doc in documented if isinstance(doc, DocumentedError) and doc.is_warning)
    outputs = [doc for doc in documented if isinstance(doc, DocumentedOutput)]
    if block_output is not None:
        outputs.append(block_output)
    echo_lines = _bare_expression_lines(runnable, outputs, tree)
    if random is not None:
        outputs = [replace(output, random=random) for output in outputs]

    callout = block.callout.kind if block.callout else None
    kind: Kind
    if errors or (callout in families.failure and not warnings):
        kind = "raises"
    elif callout in families.success:
        kind = "gradients"
    else:
        kind = "runs"
    expectation = Expectation(
        kind=kind,
        error=errors[0] if errors else None,
        warnings=warnings,
        outputs=tuple(outputs),
        echo_lines=echo_lines,
        code=code if code != block.code else None,
        notes=tuple(notes),
    )
    return expectation, random


def _bare_expression_lines(
    block: CodeBlock, outputs: list[DocumentedOutput], tree: ast.Module | None
) -> tuple[int, ...]:
    """Documented expressions that are not ``print`` calls: their values must be shown.

    With an output fence, the block's last statement is one when it is a bare expression, as
    Jupyter (and d2l's exported notebooks) shows the value of a cell's last line.
    """
    documented = {output.line for output in outputs if output.line is not None}
    if tree is None:
        return ()
    if any(output.line is None for output in outputs) and tree.body and isinstance(tree.body[-1], ast.Expr):
        documented.add(block.line + tree.body[-1].lineno)
    lines = [
        block.line + node.lineno
        for node in statements(tree)
        if isinstance(node, ast.Expr) and block.line + node.lineno in documented and not is_print(node)
    ]
    return tuple(sorted(lines))
