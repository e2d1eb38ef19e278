"""Text from a vault made safe to print: file names and note text can hold control characters.

A file name with a newline would split a one-line error in two, and an escape sequence in a
name, a note line, an exception message or captured output would restyle (or retitle, or
scroll) the terminal of whoever checks a vault they did not write.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
"""Control characters; lone surrogates (a file name that is not UTF-8) and the two non-characters
that XML refuses."""
_UNPRINTABLE_BUT_LINES = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _escape(match: re.Match[str]) -> str:
    character = match.group()
    code = ord(character)
    return _NAMED.get(character) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def shown_path(path: Path | str) -> str:
    """A path as one line of printable text: every control character escaped (``a\\nb.md``)."""
    return _UNPRINTABLE.sub(_escape, str(path))


def printable(text: str) -> str:
    """Text with its lines and tabs kept and every other control character (ESC above all) escaped."""
    return _UNPRINTABLE_BUT_LINES.sub(_escape, text)


def unicode_path(path: Path | str) -> str:
    """A path as valid Unicode for formats that must be (JSON, SQLite, a UTF-8 site): bytes of a
    name that are not UTF-8 are spelled ``\\xff``; everything else stays as it is."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")
