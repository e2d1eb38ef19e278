"""Doctest-style comparison of documented text with what really happened.

Both sides are split into tokens (numbers, words, single symbols); whitespace between tokens
never matters, ``...``/``…`` in the documented text matches any run of tokens, and numbers are
equal within a tolerance, so ``tensor([2., 4.])`` matches ``tensor([2.0000, 4.0000])``. An object's
address (``<MulBackward0 object at 0x7f3a2c1d5e80>``) differs on every run, so any address
matches any other (``0x...`` too); the class name before it still counts. IPython shows such an
object without the word ``object`` (``<MulBackward0 at 0x7f3a2c1d5e80>``): both forms are one.
"""

from __future__ import annotations

import math
import re

RTOL = 1e-4
ATOL = 1e-6

_NUMBER = r"(?<![\w.])[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?(?![\w])"
_TOKEN = re.compile(
    r"(?P<address>(?<=at )0x(?:[0-9a-fA-F]+|\.\.\.|…))"
    r"|(?P<wild>\.\.\.|…)"
    rf"|(?P<number>{_NUMBER})"
    r"|(?P<word>\w+)"
    r"|(?P<symbol>\S)"
)

_FLOAT = re.compile(r"(?<![\w.])[-+]?(?:(?:\d+\.\d*|\.\d+)(?:[eE][-+]?\d+)?|\d+[eE][-+]?\d+|nan|inf)(?![\w])")
_ANY_NUMBER = re.compile(rf"{_NUMBER}|(?<!\w)[-+]?(?:nan|inf)(?!\w)")

WILDCARD = object()
ADDRESS = object()
_OBJECT_AT = re.compile(r"\bobject at (?=0x|\.\.\.|…)")
"""``repr``'s ``<X object at 0x…>``, which IPython (Jupyter) shows as ``<X at 0x…>``."""


def _tokens(text: str) -> list[object]:
    """Numbers become floats, the wildcard and addresses sentinels, everything else its text."""
    return [
        ADDRESS if address else WILDCARD if wild else float(number) if number else word or symbol
        for address, wild, number, word, symbol in _TOKEN.findall(_OBJECT_AT.sub("at ", text))
    ]


def _same(expected: object, actual: object) -> bool:
    if isinstance(expected, float) and isinstance(actual, float):
        if math.isnan(expected) or math.isnan(actual):
            return math.isnan(expected) and math.isnan(actual)
        return math.isclose(expected, actual, rel_tol=RTOL, abs_tol=ATOL)
    return expected == actual


def _run_at(segment: list[object], words: list[object], start: int) -> bool:
    """Whether ``segment`` matches the actual tokens from ``start`` on."""
    return start + len(segment) <= len(words) and all(
        _same(token, words[start + offset]) for offset, token in enumerate(segment)
    )


def matches(expected: str, actual: str, *, prefix: bool = False) -> bool:
    """True when ``actual`` is what ``expected`` documents.

    With ``prefix``, ``expected`` only has to match the start of ``actual`` (error messages,
    whose tails change between torch versions).
    """
    if expected == actual:
        return True
    flat_expected, flat_actual = " ".join(expected.split()), " ".join(actual.split())
    if flat_expected == flat_actual or (prefix and flat_actual.startswith(flat_expected)):
        return True  # the common case, without tokenizing
    segments: list[list[object]] = [[]]  # the documented tokens between wildcards
    for token in _tokens(expected):
        if token is WILDCARD:
            segments.append([])
        else:
            segments[-1].append(token)
    if prefix:
        segments.append([])
    words = [token for token in _tokens(actual) if token is not WILDCARD]
    first, last = segments[0], segments[-1]
    if len(segments) == 1:
        return len(first) == len(words) and _run_at(first, words, 0)
    if not _run_at(first, words, 0):
        return False
    # Between wildcards, the earliest place a segment matches leaves the most room for the rest.
    position = len(first)
    for segment in segments[1:-1]:
        starts = range(position, len(words) - len(segment) + 1)
        found = next((start for start in starts if _run_at(segment, words, start)), None)
        if found is None:
            return False
        position = found + len(segment)
    return len(words) - len(last) >= position and _run_at(last, words, len(words) - len(last))


def without_values(text: str, integers: bool = False) -> str:
    """``text`` with every floating-point number (every number, with ``integers``) replaced by
    one placeholder: what is left of a random tensor's output that the draw does not decide.

    Integers stay unless asked: ``torch.Size([4, 3])`` and ``dtype=torch.int64`` are not drawn.
    """
    return (_ANY_NUMBER if integers else _FLOAT).sub(" ¤ ", text)
