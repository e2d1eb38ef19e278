"""What a note documents about each python block, as pure data (no torch, no execution).

A block's expectation comes from its callout (failure family: must raise; success family:
must produce gradients; anything else: must run) and from what its author wrote: error
comments, trailing comments on the raising line, output fences, and documented output.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Literal

from noteexec.model import CodeBlock

Kind = Literal["raises", "gradients", "runs", "skip"]

DEFAULT_FAILURE_FAMILY = ("failure",)
DEFAULT_SUCCESS_FAMILY = ("success",)

# `Name: message` where Name looks like an exception or warning class, optionally dotted.
_DOCUMENTED_ERROR = re.compile(
    r"(?<![\w.])(?P<name>(?:[A-Za-z_]\w*\.)*(?:[A-Z]\w*(?:Error|Exception|Warning|Exit|Interrupt)"
    r"|StopIteration|Exception))\s*[:：]\s*(?P<message>.*)$"
)
_OUTPUT_PREFIX = re.compile(r"^(?:=>|->|Output\s*[:：]|输出\s*[:：])\s*", re.IGNORECASE)
_LOOKS_PRINTED = re.compile(r"^(?:tensor\(|Parameter containing|[-+]?\.?\d|\[|\(|True\b|False\b|None\b)")


@dataclass(frozen=True)
class DocumentedError:
    """An exception or warning the note says a block raises or emits."""

    name: str
    message: str
    line: int | None
    """The note line it must come from, or None when the note pins no line."""
    form: Literal["comment", "trailing", "output"]

    @property
    def is_warning(self) -> bool:
        return self.name.endswith("Warning")

    def describe(self) -> str:
        text = f"{self.name}: {self.message}" if self.message else self.name
        return f"{text} at line {self.line}" if self.line is not None else text


@dataclass(frozen=True)
class DocumentedOutput:
    """Text a block (``line`` None) or one statement (lines ``line``..``end_line``) prints."""

    text: str
    line: int | None = None
    end_line: int | None = None


@dataclass(frozen=True)
class Families:
    """Which callout types demonstrate a failure and which a working fix (configurable)."""

    failure: frozenset[str] = frozenset(DEFAULT_FAILURE_FAMILY)
    success: frozenset[str] = frozenset(DEFAULT_SUCCESS_FAMILY)


@dataclass(frozen=True)
class Expectation:
    kind: Kind
    error: DocumentedError | None = None
    warnings: tuple[DocumentedError, ...] = ()
    outputs: tuple[DocumentedOutput, ...] = ()
    echo_lines: tuple[int, ...] = ()
    """Lines of bare expressions whose value the note documents: the sandbox prints them."""
    skip_reason: str | None = None

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
        if self.outputs:
            extras.append("prints the documented output")
        return "; ".join([text, *extras])


def expect(block: CodeBlock, families: Families = Families(), note_skip: bool = False) -> Expectation:
    if note_skip:
        return Expectation(kind="skip", skip_reason="the note sets noteexec: {skip: true}")
    if block.skip:
        return Expectation(kind="skip", skip_reason="%% noteexec: skip %%")

    tree = _syntax_tree(block.code)
    documented = list(_comment_documents(block, tree))
    output_error, block_output = _output_fence_documents(block)
    if output_error is not None:
        documented.append(output_error)
    errors = [doc for doc in documented if isinstance(doc, DocumentedError) and not doc.is_warning]
    warnings = tuple(doc for doc in documented if isinstance(doc, DocumentedError) and doc.is_warning)
    outputs = [doc for doc in documented if isinstance(doc, DocumentedOutput)]
    if block_output is not None:
        outputs.append(block_output)
    echo_lines = _bare_expression_lines(block, outputs, tree)

    callout = block.callout.kind if block.callout else None
    kind: Kind
    if errors or (callout in families.failure and not warnings):
        kind = "raises"
    elif callout in families.success:
        kind = "gradients"
    else:
        kind = "runs"
    return Expectation(
        kind=kind,
        error=errors[0] if errors else None,
        warnings=warnings,
        outputs=tuple(outputs),
        echo_lines=echo_lines,
    )


def _syntax_tree(code: str) -> ast.Module | None:
    try:
        return ast.parse(code)
    except (SyntaxError, ValueError):
        return None


def _comments(code: str) -> Iterable[tuple[int, int, str]]:
    """(code line, column, text after '#') of every comment; tokenize knows strings from comments."""
    if "#" not in code:
        return
    try:
        for token in tokenize.generate_tokens(io.StringIO(code).readline):
            if token.type == tokenize.COMMENT:
                yield token.start[0], token.start[1], token.string[1:].strip()
    except (tokenize.TokenError, SyntaxError, IndentationError):
        # Code that does not tokenize will fail with a SyntaxError; its full-line comments still
        # say what the author meant.
        for number, text in enumerate(code.splitlines(), start=1):
            stripped = text.lstrip()
            if stripped.startswith("#"):
                yield number, len(text) - len(stripped), stripped[1:].strip()


def _comment_documents(
    block: CodeBlock, tree: ast.Module | None
) -> Iterable[DocumentedError | DocumentedOutput]:
    lines = block.code.splitlines()
    statements = _statement_spans(tree)
    for number, column, text in _comments(block.code):
        trailing = bool(lines[number - 1][:column].strip())
        error = _DOCUMENTED_ERROR.search(text)
        if error is not None:
            target = number if trailing else _next_code_line(lines, number)
            yield DocumentedError(
                name=error["name"],
                message=error["message"].strip(),
                line=block.line + target if target is not None else None,
                form="trailing" if trailing else "comment",
            )
        elif trailing:
            expected = _documented_value(text)
            span = statements.get(number)
            if expected is not None and span is not None:
                yield DocumentedOutput(
                    text=expected, line=block.line + span[0], end_line=block.line + span[1]
                )


def _documented_value(comment: str) -> str | None:
    prefixed = _OUTPUT_PREFIX.match(comment)
    if prefixed:
        return comment[prefixed.end() :]
    return comment if _LOOKS_PRINTED.match(comment) else None


def _next_code_line(lines: list[str], after: int) -> int | None:
    for number in range(after + 1, len(lines) + 1):
        stripped = lines[number - 1].strip()
        if stripped and not stripped.startswith("#"):
            return number
    return None


def _statement_spans(tree: ast.Module | None) -> dict[int, tuple[int, int]]:
    """Last code line of each printing statement → (first, last) line: where its output is from.

    A statement prints when it is a bare expression (a ``print(...)`` call or a value that the
    sandbox echoes like a REPL would).
    """
    if tree is None:
        return {}
    spans: dict[int, tuple[int, int]] = {}
    for node in _statements(tree):
        if isinstance(node, ast.Expr) and node.end_lineno is not None:
            spans[node.end_lineno] = (node.lineno, node.end_lineno)
    return spans


def _statements(tree: ast.Module) -> Iterator[ast.AST]:
    """Every statement, nested ones included, without visiting expressions (``ast.walk`` visits
    every name and constant too, and statements never sit inside an expression)."""
    pending: list[ast.AST] = list(tree.body)
    while pending:
        node = pending.pop()
        yield node
        for value in vars(node).values():
            if isinstance(value, list) and value and isinstance(value[0], _HOLDS_STATEMENTS):
                pending.extend(value)


_HOLDS_STATEMENTS = (ast.stmt, ast.excepthandler, ast.match_case)


def _bare_expression_lines(
    block: CodeBlock, outputs: list[DocumentedOutput], tree: ast.Module | None
) -> tuple[int, ...]:
    """Documented expressions that are not ``print`` calls: their values must be shown."""
    documented = {output.line for output in outputs if output.line is not None}
    if tree is None or not documented:
        return ()
    lines = []
    for node in _statements(tree):
        if (
            isinstance(node, ast.Expr)
            and block.line + node.lineno in documented
            and not (
                isinstance(node.value, ast.Call)
                and isinstance(node.value.func, ast.Name)
                and node.value.func.id == "print"
            )
        ):
            lines.append(block.line + node.lineno)
    return tuple(sorted(lines))


def _output_fence_documents(
    block: CodeBlock,
) -> tuple[DocumentedError | None, DocumentedOutput | None]:
    """An output fence documents either the error the block ends with or its whole stdout."""
    if block.output is None:
        return None, None
    text = block.output.text
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return None, DocumentedOutput(text="")
    error = _DOCUMENTED_ERROR.match(lines[-1].strip())
    if error is not None:
        return (
            DocumentedError(name=error["name"], message=error["message"].strip(), line=None, form="output"),
            None,
        )
    return None, DocumentedOutput(text=text)
