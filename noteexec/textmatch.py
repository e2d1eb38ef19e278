"""Doctest-style comparison of documented text with what really happened.

Both sides are split into tokens (numbers, words, single symbols); whitespace between tokens
never matters, ``...``/``…`` in the documented text matches any run of tokens, and numbers are
equal within a tolerance, so ``tensor([2., 4.])`` matches ``tensor([2.0000, 4.0000])``.
"""

from __future__ import annotations

import math
import re

RTOL = 1e-4
ATOL = 1e-6

_TOKEN = re.compile(
    r"(?P<wild>\.\.\.|…)"
    r"|(?P<number>(?<![\w.])[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?(?![\w]))"
    r"|(?P<word>\w+)"
    r"|(?P<symbol>\S)"
)

WILDCARD = object()


def _tokens(text: str) -> list[object]:
    """Numbers become floats, the wildcard a sentinel, everything else its text."""
    result: list[object] = []
    for match in _TOKEN.finditer(text):
        if match["wild"]:
            result.append(WILDCARD)
        elif match["number"]:
            result.append(float(match["number"]))
        else:
            result.append(match.group())
    return result


def _same(expected: object, actual: object) -> bool:
    if isinstance(expected, float) and isinstance(actual, float):
        if math.isnan(expected) or math.isnan(actual):
            return math.isnan(expected) and math.isnan(actual)
        return math.isclose(expected, actual, rel_tol=RTOL, abs_tol=ATOL)
    return expected == actual


def matches(expected: str, actual: str, *, prefix: bool = False) -> bool:
    """True when ``actual`` is what ``expected`` documents.

    With ``prefix``, ``expected`` only has to match the start of ``actual`` (error messages,
    whose tails change between torch versions).
    """
    flat_expected, flat_actual = " ".join(expected.split()), " ".join(actual.split())
    if flat_expected == flat_actual or (prefix and flat_actual.startswith(flat_expected)):
        return True  # the common case, without tokenizing
    pattern = _tokens(expected)
    if prefix:
        pattern.append(WILDCARD)
    words = [token for token in _tokens(actual) if token is not WILDCARD]
    # reachable[j]: the pattern read so far can match exactly the first j actual tokens.
    reachable = [True] + [False] * len(words)
    for token in pattern:
        if token is WILDCARD:
            for j in range(1, len(words) + 1):
                reachable[j] = reachable[j] or reachable[j - 1]
        else:
            for j in range(len(words), 0, -1):
                reachable[j] = reachable[j - 1] and _same(token, words[j - 1])
            reachable[0] = False
    return reachable[len(words)]
