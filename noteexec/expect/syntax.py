"""A block's code as Python: made to parse, then asked where its comments and statements are.

Code that does not parse as written may still run once IPython's ``%magic`` and ``!shell``
lines are blanked or a whole-block indent is removed (line numbers never change). The readers
of comments and pasted output ask the syntax tree which statement a line belongs to and whether
it prints.
"""

from __future__ import annotations

import ast
import functools
import io
import re
import textwrap
import tokenize
from collections.abc import Iterator

_SHELL_LINE = re.compile(r"^\s*[%!]")
_D2L_TAB_MAGIC = re.compile(r"^\s*%%tab\b")
"""d2l-en's framework line (``%%tab pytorch``): the parser already chose the cell by it, so it goes
silently, where any other magic is named in the verdict."""


def without_shell_lines(code: str, fence_line: int, notes: list[str]) -> tuple[str, ast.Module | None]:
    """IPython's ``%magic`` and ``!shell`` lines are not Python: code that does not parse
    otherwise runs without them, and the verdict names each one."""
    tree = syntax_tree(code)
    if tree is not None or not any(_SHELL_LINE.match(line) for line in code.split("\n")):
        return code, tree
    kept = []
    for number, line in enumerate(code.split("\n"), start=1):
        if number == 1 and _D2L_TAB_MAGIC.match(line):
            line = ""
        elif _SHELL_LINE.match(line):
            kind = "IPython magic" if line.lstrip().startswith("%") else "shell command"
            notes.append(f"line {fence_line + number}: {kind} '{line.strip()}' skipped: not Python")
            line = ""
        kept.append(line)
    code = "\n".join(kept)
    return code, syntax_tree(code)


def dedented(code: str, tree: ast.Module | None) -> tuple[str, ast.Module | None]:
    """A snippet indented as a whole (copied out of a function body or a list item) is meant to
    run as it reads: dedented, lines unchanged. A block that documents an IndentationError is
    left as written, as it may demonstrate one."""
    if tree is not None or "IndentationError" in code:
        return code, tree
    dedented = textwrap.dedent(code)
    dedented_tree = syntax_tree(dedented) if dedented != code else None
    return (dedented, dedented_tree) if dedented_tree is not None else (code, tree)


def syntax_tree(code: str) -> ast.Module | None:
    """The syntax tree of ``code``, or None when it does not parse (it will fail when run)."""
    try:
        return ast.parse(code)
    except (SyntaxError, ValueError):
        return None


@functools.lru_cache(maxsize=512)
def comment_tokens(code: str) -> tuple[tuple[int, int, str], ...] | None:
    """(code line, column, text with its '#') of every comment; None when the code does not
    tokenize. Tokenize knows strings from comments. Cached: a block's expectations and its cache
    key both read its comments."""
    if "#" not in code:
        return ()
    try:
        return tuple(
            (token.start[0], token.start[1], token.string)
            for token in tokenize.generate_tokens(io.StringIO(code).readline)
            if token.type == tokenize.COMMENT
        )
    except (tokenize.TokenError, SyntaxError):
        return None


def code_comments(code: str) -> list[tuple[int, int, str]]:
    """(code line, column, text after '#') of every comment."""
    tokens = comment_tokens(code)
    if tokens is not None:
        return [(line, column, text[1:].strip()) for line, column, text in tokens]
    # Code that does not tokenize will fail with a SyntaxError; its full-line comments still say
    # what the author meant.
    found = []
    for number, text in enumerate(code.splitlines(), start=1):
        stripped = text.lstrip()
        if stripped.startswith("#"):
            found.append((number, len(text) - len(stripped), stripped[1:].strip()))
    return found


def defines(tree: ast.Module, name: str) -> bool:
    """Whether the code assigns or imports ``name`` anywhere."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id == name and isinstance(node.ctx, ast.Store):
            return True
        if isinstance(node, ast.alias) and (node.asname or node.name.split(".")[0]) == name:
            return True
        if isinstance(node, ast.FunctionDef | ast.ClassDef) and node.name == name:
            return True
    return False


def previous_code_line(lines: list[str], before: int) -> int | None:
    for number in range(before - 1, 0, -1):
        stripped = lines[number - 1].strip()
        if stripped and not stripped.startswith("#"):
            return number
    return None


def next_code_line(lines: list[str], after: int) -> int | None:
    for number in range(after + 1, len(lines) + 1):
        stripped = lines[number - 1].strip()
        if stripped and not stripped.startswith("#"):
            return number
    return None


def statement_spans(tree: ast.Module | None) -> dict[int, ast.Expr]:
    """Last code line of each printing statement → the statement: where its output is from.

    A statement prints when it is a bare expression (a ``print(...)`` call or a value that the
    sandbox echoes like a REPL would).
    """
    if tree is None:
        return {}
    return {
        node.end_lineno: node
        for node in statements(tree)
        if isinstance(node, ast.Expr) and node.end_lineno is not None
    }


def statement_extents(tree: ast.Module | None) -> tuple[dict[int, int], dict[int, int]]:
    """Where statements written over several lines begin and end: the first line of the
    innermost statement ending at each line, and the last line of the outermost one starting
    at each line (a comment above a loop documents the whole loop)."""
    ending: dict[int, int] = {}
    starting: dict[int, int] = {}
    if tree is None:
        return ending, starting
    for node in statements(tree):
        assert isinstance(node, ast.stmt | ast.excepthandler | ast.match_case)
        first = getattr(node, "lineno", None) or getattr(getattr(node, "pattern", None), "lineno", None)
        last = getattr(node, "end_lineno", None) or getattr(
            getattr(node, "body", [None])[-1], "end_lineno", None
        )
        if first is None or last is None:
            continue
        if last not in ending or first > ending[last]:
            ending[last] = first
        starting[first] = max(starting.get(first, last), last)
    return ending, starting


def statements(tree: ast.Module) -> Iterator[ast.AST]:
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


def is_print(statement: ast.Expr) -> bool:
    call = statement.value
    return isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "print"
