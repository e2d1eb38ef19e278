"""Text from a vault made safe to print: file names and note text can hold control characters.

A file name with a newline would split a one-line error in two, and an escape sequence in a
name, a note line, an exception message or captured output would restyle (or retitle, or
scroll) the terminal of whoever checks a vault they did not write.
"""

from __future__ import annotations

from pathlib import Path

_ESCAPES = (
    {code: f"\\x{code:02x}" for code in (*range(0x20), *range(0x7F, 0xA0))}
    | {code: f"\\u{code:04x}" for code in (*range(0xD800, 0xE000), 0xFFFE, 0xFFFF)}
    | {0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r"}
)
"""Control characters; lone surrogates (a file name that is not UTF-8) and the two non-characters
that XML refuses."""
_ESCAPES_BUT_LINES = {code: escape for code, escape in _ESCAPES.items() if code not in (0x09, 0x0A)}


def shown_path(path: Path | str) -> str:
    """A path as one line of printable text: every control character escaped (``a\\nb.md``)."""
    return str(path).translate(_ESCAPES)


def printable(text: str) -> str:
    """Text with its lines and tabs kept and every other control character (ESC above all) escaped."""
    return text.translate(_ESCAPES_BUT_LINES)
