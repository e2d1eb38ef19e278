"""What a block's comments document: an error on the line that raises, or what a statement prints.

``x.backward()  # RuntimeError: element 0 ...`` documents an error (a comment line above the
statement does too); ``print(x)  # tensor([1.])`` and ``# Output:`` under a print document its
output. A comment that only looks documented is not checked, and the expectation's notes say so.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable

from noteexec.expect.documented import DOCUMENTED_ERROR, ERROR_NAME, DocumentedError, DocumentedOutput
from noteexec.expect.printed import DESCRIBES, LOOKS_PRINTED, OWN_LINE_OUTPUT, documented_output
from noteexec.expect.syntax import (
    code_comments,
    next_code_line,
    previous_code_line,
    statement_extents,
    statement_spans,
)
from noteexec.model import CodeBlock

_ERROR_NAME_ONLY = re.compile(
    rf"^(?:(?:报错|错误|异常|抛出|引发|raises?|throws?|error)\s*[!！:：]?|->|=>|→)?\s*{ERROR_NAME}\s*[!！.。]?$",
    re.IGNORECASE,
)
"""A comment that is only an exception's name (``# RuntimeError``, ``# 报错! RuntimeError``): in a
failure block, the next line (or this one) must raise that type, with any message."""


def comment_documents(
    block: CodeBlock, tree: ast.Module | None, failure: bool, notes: list[str]
) -> Iterable[DocumentedError | DocumentedOutput]:
    """The errors and outputs documented in ``block``'s comments (``failure``: a comment that
    only names an exception documents one); what looks documented but is not checked goes to
    ``notes``."""
    lines = block.code.splitlines()
    statements = statement_spans(tree)
    ending, starting = statement_extents(tree)
    comments = code_comments(block.code)
    own_lines = {number: text for number, column, text in comments if not lines[number - 1][:column].strip()}
    for number, _, text in comments:
        trailing = number not in own_lines
        error = DOCUMENTED_ERROR.search(text) or (_ERROR_NAME_ONLY.match(text) if failure else None)
        if error is not None:
            # A trailing comment ends the statement it documents; a comment line starts it.
            first = ending.get(number, number) if trailing else next_code_line(lines, number)
            last = number if trailing else starting.get(first or 0)
            yield DocumentedError(
                name=error["name"],
                message=(error.groupdict().get("message") or "").strip(),
                line=block.line + first if first is not None else None,
                form="trailing" if trailing else "comment",
                end_line=block.line + last if first is not None and last not in (None, first) else None,
            )
        elif trailing:
            statement = statements.get(number)
            if statement is not None:
                output = documented_output(text, statement, block.line)
                if output is not None:
                    yield output
        else:
            yield from _own_line_output(block, number, text, lines, own_lines, statements, notes)


def _own_line_output(
    block: CodeBlock,
    number: int,
    text: str,
    lines: list[str],
    own_lines: dict[int, str],
    statements: dict[int, ast.Expr],
    notes: list[str],
) -> Iterable[DocumentedOutput]:
    """``# 输出：tensor([6.])`` / ``# Output:`` on its own line, after the statement it documents.

    With nothing after the prefix, the comment lines that follow hold the output, up to a code
    line or an empty ``#`` line (after which the author may go on explaining).
    """
    prefixed = OWN_LINE_OUTPUT.match(text)
    if prefixed is None:
        _note_unchecked_output(block, number, text, lines, own_lines, statements, notes)
        return
    previous = previous_code_line(lines, number)
    if previous is None:  # comments before any code: a problem statement's example, not this block's
        return
    statement = statements.get(previous)
    if statement is None:
        notes.append(
            f"line {block.line + number}: '# {text}' follows no print or bare expression: not checked"
        )
        return
    shown = text[prefixed.end() :]
    if not shown.strip():
        following = []
        for later in range(number + 1, len(lines) + 1):
            if later not in own_lines or not own_lines[later]:  # code, or a bare '#': the output ends
                break
            following.append(lines[later - 1].strip()[1:].removeprefix(" "))
        shown = "\n".join(following)
    output = documented_output(shown, statement, block.line)
    if output is None and DESCRIBES.match(shown.strip()):
        notes.append(
            f"line {block.line + number}: '# {text}' describes the output, it does not show it: not checked"
        )
        return
    if output is None:  # after an explicit prefix, even text that reads like words is the output
        assert statement.end_lineno is not None
        output = DocumentedOutput(shown, block.line + statement.lineno, block.line + statement.end_lineno)
    yield output


def _note_unchecked_output(
    block: CodeBlock,
    number: int,
    text: str,
    lines: list[str],
    own_lines: dict[int, str],
    statements: dict[int, ast.Expr],
    notes: list[str],
) -> None:
    """A value pasted as a comment under a print, without a prefix (``print(w.grad)`` then
    ``# tensor([1.])``), is not checked (it may be commented-out code); say so, so that a wrong
    value there does not pass silently."""
    if number - 1 in own_lines or not LOOKS_PRINTED.match(text) or DESCRIBES.match(text):
        return  # a continuation of a comment run, or no value
    previous = previous_code_line(lines, number)
    if previous is None or previous not in statements:
        return
    if any(lines[between - 1].strip() for between in range(previous + 1, number)):
        return
    notes.append(
        f"line {block.line + number}: '# {_shorten(text)}' looks like the output of line"
        f" {block.line + previous} but is not checked: write '# Output:' before it to check it"
    )


def _shorten(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
