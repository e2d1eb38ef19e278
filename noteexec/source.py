"""A note file's text as every stage sees it: read safely, decoded, line endings normalised.

Kept apart from parsing so that a warm run, which finds every parsed note in the cache, never
loads markdown-it or YAML.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from noteexec.model import Problem


def read_source(path: Path) -> bytes | Problem:
    """A note file's bytes, or the problem that keeps it from being read.

    Only regular files are read: a FIFO or a device named ``.md`` is reported, never waited on.
    Decoding is left to parsing: bytes found in the cache were decoded when they were parsed.
    """
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as error:
        return Problem(0, f"cannot read: {error.strerror or error}")
    try:
        status = os.fstat(descriptor)
        if not stat.S_ISREG(status.st_mode):
            return Problem(0, "cannot read: not a regular file")
        chunks: list[bytes] = []  # one read when the size is right; more if the file grew meanwhile
        while chunk := os.read(descriptor, status.st_size + 1 if not chunks else 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError as error:
        return Problem(0, f"cannot read: {error.strerror or error}")
    finally:
        os.close(descriptor)


def decode_source(data: bytes) -> str | Problem:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        return Problem(line, "not valid UTF-8 (a binary file?)")


def normalize_source(text: str) -> str:
    """What markdown-it sees: no BOM, LF line endings (CRLF and lone CR both end a line)."""
    return text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")


def normalize_utf8(data: bytes) -> bytes:
    """:func:`normalize_source` on UTF-8 bytes, without decoding them (CR and LF bytes never
    occur inside a multi-byte character)."""
    return data.removeprefix(b"\xef\xbb\xbf").replace(b"\r\n", b"\n").replace(b"\r", b"\n")
