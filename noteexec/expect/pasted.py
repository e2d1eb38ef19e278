"""Output pasted beside the code rather than written in its comments.

A ``>>>`` transcript (read as doctest reads it), a notebook's output pasted under an expression
as if it were code, and an output fence after the block: each documents outputs or an error,
and the first two also change which code runs.
"""

from __future__ import annotations

import ast
import doctest

from noteexec.expect.documented import DOCUMENTED_ERROR, DocumentedError, DocumentedOutput
from noteexec.expect.syntax import defines, syntax_tree
from noteexec.model import CodeBlock

TRANSCRIPT_LANGUAGES = frozenset({"pycon", "python-repl", "doctest"})


def is_transcript(block: CodeBlock) -> bool:
    """Whether ``block`` is a ``>>>`` session (by its language, or by its first prompt)."""
    return block.lang in TRANSCRIPT_LANGUAGES or block.code.lstrip().startswith(">>>")


def read_transcript(
    block: CodeBlock, notes: list[str]
) -> tuple[str, list[DocumentedError | DocumentedOutput]] | None:
    """A ``>>>`` session read as doctest reads it: the code to run, line for line, and each
    example's output (or exception) as documented. None when doctest cannot read it."""
    try:
        examples = doctest.DocTestParser().get_examples(_blank_output_lines(block.code))
    except ValueError as error:  # a prompt without its space, inconsistent indentation
        notes.append(f"not read as a >>> transcript: {error}")
        return None
    lines = block.code.split("\n")
    runnable = [""] * len(lines)
    documented: list[DocumentedError | DocumentedOutput] = []
    raised_at: int | None = None
    for example in examples:
        first = block.line + example.lineno + 1
        end = first + example.source.count("\n") - 1
        for number in range(example.lineno, example.lineno + example.source.count("\n")):
            runnable[number] = lines[number][example.indent + 4 :]
        if raised_at is not None:
            notes.append(
                f"line {first}: the transcript goes on after the exception documented at line "
                f"{raised_at}, but a block stops at its first exception: not checked"
            )
            continue
        raised = DOCUMENTED_ERROR.match(example.exc_msg.strip().splitlines()[-1]) if example.exc_msg else None
        if raised is not None:
            documented.append(
                DocumentedError(raised["name"], raised["message"].strip(), first, "transcript", end)
            )
            raised_at = first
        else:
            documented.append(DocumentedOutput(example.want.replace(_BLANKLINE, ""), first, end))
    return "\n".join(runnable), documented


_BLANKLINE = "<BLANKLINE>"


def _blank_output_lines(code: str) -> str:
    """A transcript pasted from a REPL keeps the blank lines its output printed (a loop's
    ``print(..., "\\n")``), where doctest wants ``<BLANKLINE>``: a blank line with more output
    after it, before the next ``>>>``, is one (doctest would end the output there)."""
    lines = code.split("\n")
    indent: str | None = None  # the last prompt's, which doctest wants its output lines to keep
    for number, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith(">>>"):
            indent = line[: len(line) - len(line.lstrip())]
        if stripped or indent is None:
            continue
        following = next((later.strip() for later in lines[number + 1 :] if later.strip()), None)
        if following is not None and not following.startswith(">>>"):
            lines[number] = indent + _BLANKLINE
    return "\n".join(lines)


def _is_tensor_call(statement: ast.stmt) -> bool:
    """A top-level ``tensor(...)`` expression: looked for before the whole tree is walked."""
    value = statement.value if isinstance(statement, ast.Expr) else None
    return isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id == "tensor"


def pasted_outputs(
    code: str, tree: ast.Module | None, fence_line: int
) -> tuple[str, ast.Module | None, list[DocumentedOutput]]:
    """Output pasted under an expression as if it were code, as a notebook shows it::

        x.sum(dim=0)
        tensor([5, 7, 9])   # [1+4, 2+5, 3+6]

    A top-level ``tensor(...)`` call right after a bare expression, in a block that never
    defines ``tensor``, is that expression's documented output: it does not run.
    """
    if tree is None or not any(map(_is_tensor_call, tree.body)) or defines(tree, "tensor"):
        return code, tree, []
    lines = code.split("\n")
    found: list[DocumentedOutput] = []
    previous: ast.stmt | None = None
    for statement in tree.body:
        if (
            _is_tensor_call(statement)
            and isinstance(previous, ast.Expr)
            and previous.end_lineno is not None
            and statement.end_lineno is not None
        ):
            text = ast.get_source_segment(code, statement) or ""
            found.append(
                DocumentedOutput(text, fence_line + previous.lineno, fence_line + previous.end_lineno)
            )
            for number in range(statement.lineno, statement.end_lineno + 1):
                lines[number - 1] = ""
            continue  # the expression before it stays the one documented
        previous = statement
    if not found:
        return code, tree, []
    code = "\n".join(lines)
    return code, syntax_tree(code), found


def output_fence_documents(
    block: CodeBlock,
) -> tuple[DocumentedError | None, DocumentedOutput | None]:
    """An output fence documents either the error the block ends with or its whole stdout."""
    if block.output is None:
        return None, None
    text = block.output.text
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return None, DocumentedOutput(text="")
    error = DOCUMENTED_ERROR.match(lines[-1].strip())
    if error is not None:
        return (
            DocumentedError(name=error["name"], message=error["message"].strip(), line=None, form="output"),
            None,
        )
    return None, DocumentedOutput(text=text)
