"""What a comment says a statement prints: the value, split from the words after it.

``print(f"grad = {w.grad}")  # grad = tensor([99.]) -> 25 / 175`` documents the value
``grad = tensor([99.])``; the arrow and what follows are prose. A comment that describes the
output (``# (更新参数)``, ``# [batch, seq_len]``) rather than showing it documents nothing.
"""

from __future__ import annotations

import ast
import re

from noteexec.expect.documented import DocumentedOutput
from noteexec.expect.syntax import is_print

_OUTPUT_WORD = r"(?:out(?:put)?|输出(?:结果)?|运行结果|打印结果|结果)\s*[:：]"
_OUTPUT_PREFIX = re.compile(rf"^(?:=>|->|{_OUTPUT_WORD})\s*", re.IGNORECASE)
OWN_LINE_OUTPUT = re.compile(rf"^(?:=>|{_OUTPUT_WORD})\s*", re.IGNORECASE)
"""An own-line comment after a printing statement documents its output only with a prefix:
without one, ``# tensor(...)`` may as well be commented-out code or a note on the next line."""
LOOKS_PRINTED = re.compile(
    r"^(?:tensor\(|Parameter containing|array\(|torch\.\w|<[A-Za-z_]|[-+]?\.?\d|[-+]?(?:nan|inf)\b"
    r"|\[|\(|\{|True\b|False\b|None\b)"
)
_VALUE_WORDS = frozenset(
    {"tensor", "torch", "Parameter", "containing", "array", "True", "False", "None", "nan", "inf"}
    | {"device", "dtype", "cpu", "cuda", "grad_fn", "requires_grad", "object", "at"}
)
"""Words that may follow a value in what torch prints, so they do not start prose."""
_PROSE_AFTER_VALUE = re.compile(
    r"\s*(?:->|=>|→|⇒|<-|←|--|—|#|//)"  # an arrow or another comment
    r"|[（(]?[\u3000-\u9fff\uff00-\uffef]"  # CJK text (or a full-width bracket)
    r"|\s*[,;:，；：。]\s*(?P<after_mark>[^\W\d_]+)"  # punctuation, then a word
    r"|\s+\(?(?P<after_space>[^\W\d_]+)"  # a space, then a word
)
_OPENING, _CLOSING = "([{<", ")]}>"
DESCRIBES = re.compile(
    r"^[(（][^'\"]*[\u3000-\u9fff][^'\"]*[)）]\s*$"  # (更新参数): words in brackets, no quotes
    r"|^[\[(]\s*(?!(?:True|False|None|nan|inf)\b)[A-Za-z_]\w*"  # [batch, seq_len], (N, C, H, W)
    r"(?:\s*[,x×*]\s*(?!(?:True|False|None|nan|inf)\b)[A-Za-z_]\w*)*\s*[\])]\s*$"
)
"""A value-like comment that describes rather than shows what is printed: Python never prints
CJK words in brackets without quotes, nor a list or tuple of bare names."""


def documented_output(comment: str, statement: ast.Expr, fence_line: int) -> DocumentedOutput | None:
    """What a comment on a printing statement says it prints, or None for a description."""
    prefixed = _OUTPUT_PREFIX.match(comment)
    text = comment[prefixed.end() :] if prefixed else comment
    label = _print_label(statement)
    after_label = _after_prefix(text, label) if label.strip() else None
    if after_label is not None:
        value, prose = _value_and_prose(text[after_label:])
        value = text[:after_label] + value
        tail = False
    elif (prefixed or LOOKS_PRINTED.match(text)) and not DESCRIBES.match(text):
        value, prose = _value_and_prose(text)
        tail = bool(label.strip()) or _prints_several(statement)
    else:
        return None
    assert statement.end_lineno is not None
    return DocumentedOutput(
        text=value,
        line=fence_line + statement.lineno,
        end_line=fence_line + statement.end_lineno,
        tail=tail,
        prose=prose,
    )


def _prints_several(statement: ast.Expr) -> bool:
    """Whether a ``print`` writes several values on its line (``print(y, y.requires_grad)``):
    a comment after it often shows only the last one (``# True``), so it may be the line's end."""
    call = statement.value
    return (
        is_print(statement)
        and isinstance(call, ast.Call)
        and (len(call.args) > 1 or any(isinstance(arg, ast.Starred) for arg in call.args))
    )


def _print_label(statement: ast.Expr) -> str:
    """The literal text a ``print`` call writes before its first value, if it starts with one:
    ``print(f"grad = {w.grad}")`` → ``grad = ``; ``print("grad:", w.grad)`` → ``grad: ``."""
    call = statement.value
    if not is_print(statement) or not isinstance(call, ast.Call) or not call.args:
        return ""
    first = call.args[0]
    if isinstance(first, ast.JoinedStr) and len(first.values) > 1:
        head = first.values[0]
        return head.value if isinstance(head, ast.Constant) and isinstance(head.value, str) else ""
    if isinstance(first, ast.Constant) and isinstance(first.value, str) and len(call.args) > 1:
        separator = next((k.value for k in call.keywords if k.arg == "sep"), ast.Constant(" "))
        if isinstance(separator, ast.Constant) and isinstance(separator.value, str):
            return first.value + separator.value
    return ""


def _after_prefix(text: str, prefix: str) -> int | None:
    """Where ``text`` goes on after ``prefix``, whitespace ignored on both; None if it does not
    start with it."""
    position = 0
    for character in prefix:
        if character.isspace():
            continue
        while position < len(text) and text[position].isspace():
            position += 1
        if position == len(text) or text[position] != character:
            return None
        position += 1
    return position


def _value_and_prose(text: str) -> tuple[str, str]:
    """Split ``tensor(0.1429) -> 25 / 175`` into the value and the words after it.

    Prose starts, outside brackets, at an arrow, CJK text, or a word that is not part of what
    torch prints (``None, because ...``, ``True w is a leaf``).
    """
    depth = 0
    for position, character in enumerate(text):
        if character in _OPENING and (character != "<" or text[position + 1 : position + 2].isalpha()):
            depth += 1
        elif character in _CLOSING and depth and (character != ">" or text[position - 1 : position] != "-"):
            depth -= 1
        elif depth == 0 and position > 0:
            prose = _PROSE_AFTER_VALUE.match(text, position)
            if prose is None:
                continue
            word = prose["after_mark"] or prose["after_space"]
            if word is None or word not in _VALUE_WORDS:
                return text[:position].rstrip(), text[position:]
    return text, ""
