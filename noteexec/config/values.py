"""What each configuration key may hold, and errors that say which file and line broke it.

Every value is bounded, whoever wrote it: an untrusted file may hold anything (megabytes, a
wildcard that would hand notes every secret), and even the trusted command line must not
overflow the sandbox's arithmetic.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

from noteexec.config import ISOLATIONS, MAX_PROCESSES, MAX_SIZE, MAX_TIMEOUT, MIN_SIZE, ConfigError, Isolation
from noteexec.display import shown_path
from noteexec.expect import Families
from noteexec.model import CANONICAL_CALLOUT

Fail = Callable[[str, str], ConfigError]
"""Builds the error for a key and the rest of a sentence about it (``"must be ..."``)."""


_SIZE = re.compile(r"^\s*(\d{1,20}(?:\.\d{1,20})?)\s*([KMGT]?i?B?)\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def format_size(size: int) -> str:
    """Bytes as the configuration would spell them: ``4GiB``, else a number of bytes."""
    for unit, scale in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size % scale == 0:
            return f"{size // scale}{unit}"
    return str(size)


def key_line(path: Path, key: str) -> int | None:
    """The line of ``key = ...`` (or a ``[key]`` table) in a file's noteexec table, for messages.

    A scan of the text, not a TOML parse: enough for the keys written one per line, as people do.
    """
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    table = "tool.noteexec" if path.name == "pyproject.toml" else ""
    own_table = f"{table}.{key}" if table else key
    assignment = re.compile(rf"""^\s*["']?{re.escape(key)}["']?\s*[=.]""")
    header = re.compile(r"^\s*\[\[?([^\]]*)\]")
    current = ""
    for number, line in enumerate(lines, 1):
        match = header.match(line)
        if match:
            current = re.sub(r"""\s|["']""", "", match[1])
            if current == own_table:
                return number
        elif current == table and assignment.match(line):
            return number
    return None


def file_errors(path: Path | None) -> Fail:
    """Errors that name the file and line of the key (or ``configuration`` for a table from nowhere)."""

    def fail(key: str, message: str) -> ConfigError:
        return ConfigError(
            f"{file_and_line(path, key) if path is not None else 'configuration'}: '{key}' {message}"
        )

    return fail


def file_and_line(path: Path, key: str) -> str:
    """``file:line`` of a key, or the file alone when the key's line cannot be told."""
    line = key_line(path, key)
    return f"{shown_file(path)}:{line}" if line is not None else shown_file(path)


def shown_file(path: Path) -> str:
    """A configuration file as a message shows it: relative to the current folder when inside it."""
    with contextlib.suppress(ValueError, OSError):  # outside it, or the current folder is gone
        path = path.relative_to(Path.cwd().resolve())
    return shown_path(path)


def brief(value: Any) -> str:
    """A value for a message: repr'd, and cut short (an untrusted file may hold megabytes)."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def timeout_seconds(value: Any, fail: Fail) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= MAX_TIMEOUT:
        raise fail(
            "timeout",
            f"must be a positive number of seconds, at most {MAX_TIMEOUT:g} (one day), not {brief(value)}",
        )
    return float(value)


def size_bytes(value: Any, key: str, fail: Fail, disable: bool = False) -> int | None:
    """A size such as ``"4GiB"`` or a number of bytes, from 16 MiB to 1 TiB; ``none`` if ``disable``."""
    if disable and (value is None or value is False or (isinstance(value, str) and value.lower() == "none")):
        return None
    number: int | Fraction | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
        if disable and value == 0:
            return None
    elif isinstance(value, str) and (match := _SIZE.match(value)):
        number = Fraction(match[1]) * _UNITS[match[2][:1].lower()]
    if number is None or not MIN_SIZE <= number <= MAX_SIZE:
        also = ' or "none"' if disable else ""
        raise fail(
            key,
            f'must be a size from 16MiB to 1TiB such as "4GiB", or a number of bytes{also}, '
            f"not {brief(value)}",
        )
    return int(number)


def process_count(value: Any, fail: Fail) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_PROCESSES:
        raise fail("processes", f"must be a whole number from 1 to {MAX_PROCESSES}, not {brief(value)}")
    return value


def choice(value: Any, key: str, choices: tuple[str, ...], fail: Fail) -> Any:
    if value in choices:
        return value
    raise fail(key, f"must be one of {', '.join(map(repr, choices))}, not {brief(value)}")


def isolation_mode(value: Any, fail: Fail) -> Isolation:
    for isolation in ISOLATIONS:
        if value == isolation:
            return isolation
    raise fail("isolation", f'must be "auto" or "strict", not {brief(value)}')


def env_names(value: Any, fail: Fail) -> tuple[str, ...]:
    """Plain variable names: a wildcard such as ``*`` would hand notes every CI secret."""
    names = strings(value, "env", fail)
    for name in names:
        if any(character in name for character in "*?["):
            raise fail(
                "env",
                f"takes whole variable names, not the pattern {brief(name)}: a wildcard would hand "
                "notes every matching variable, secrets included; name each variable",
            )
        if not _ENV_NAME.fullmatch(name):
            raise fail(
                "env",
                f"takes environment variable names (letters, digits, underscore), not {brief(name)}",
            )
        if name.upper().startswith("NOTEEXEC_"):
            raise fail(
                "env",
                f"cannot pass {name} to notes: noteexec's own settings (such as the cache key in "
                "NOTEEXEC_CACHE_SECRET) would let a note forge the results of later runs",
            )
    return names


def prelude_code(value: Any, fail: Fail) -> str:
    if isinstance(value, list) and all(isinstance(line, str) for line in value):
        value = "\n".join(value) + "\n"
    if not isinstance(value, str):
        raise fail("prelude", "must be a string or a list of lines")
    return value


def boolean(value: Any, key: str, fail: Fail) -> bool:
    if not isinstance(value, bool):
        raise fail(key, "must be true or false")
    return value


def strings(value: Any, key: str, fail: Fail) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or not all(isinstance(item, str) for item in value):
        raise fail(key, "must be a list of strings")
    return tuple(value)


def callout_families(value: Any, fail: Fail) -> Families:
    if not isinstance(value, dict) or set(value) - {"failure", "success"}:
        raise fail("families", "must be a table with 'failure' and/or 'success' lists")
    defaults = Families()

    def canonical(key: str, fallback: frozenset[str]) -> frozenset[str]:
        if key not in value:
            return fallback
        names = strings(value[key], "families", fail)
        return frozenset(CANONICAL_CALLOUT.get(name.lower(), name.lower()) for name in names)

    return Families(
        failure=canonical("failure", defaults.failure),
        success=canonical("success", defaults.success),
    )
