"""Project configuration: ``noteexec.toml`` or ``[tool.noteexec]`` in ``pyproject.toml``.

The nearest file at or above the checked path wins; every key is optional.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from noteexec.expect import Families
from noteexec.model import CANONICAL_CALLOUT

DEFAULT_PRELUDE = "import torch\nimport torch.nn as nn\nimport torch.nn.functional as F\n"
DEFAULT_TIMEOUT = 60.0
DEFAULT_MEMORY_LIMIT = 4 << 30
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?i?B?)\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


class ConfigError(Exception):
    """A configuration file that cannot be used; the message names the file."""


@dataclass(frozen=True)
class Config:
    prelude: str = DEFAULT_PRELUDE
    timeout: float = DEFAULT_TIMEOUT
    memory_limit: int | None = DEFAULT_MEMORY_LIMIT
    families: Families = field(default_factory=Families)
    exclude: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    namespaces: bool = True
    """Isolate notes in Linux namespaces when the OS allows (off: only limits and watching)."""
    source: Path | None = None


def find_config_file(start: Path) -> tuple[Path, dict[str, Any]] | None:
    directory = start.resolve()
    if not directory.is_dir():
        directory = directory.parent
    for candidate in (directory, *directory.parents):
        own = candidate / "noteexec.toml"
        if own.is_file():
            return own, _read_toml(own)
        project = candidate / "pyproject.toml"
        if project.is_file():
            table = _read_toml(project).get("tool", {}).get("noteexec")
            if table is not None:
                return project, table
    return None


def _read_toml(path: Path) -> dict[str, Any]:
    import tomllib  # loaded only where a configuration file is found

    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise ConfigError(f"{path}: {error}") from None


def load_config(start: Path) -> Config:
    found = find_config_file(start)
    if found is None:
        return Config()
    path, table = found
    return config_from_table(table, path)


def config_from_table(table: dict[str, Any], path: Path | None = None) -> Config:
    where = str(path) if path else "configuration"

    def fail(message: str) -> ConfigError:
        return ConfigError(f"{where}: {message}")

    unknown = sorted(
        set(table) - {"prelude", "timeout", "memory_limit", "families", "exclude", "env", "namespaces"}
    )
    if unknown:
        raise fail(f"unknown key(s): {', '.join(unknown)}")
    prelude = table.get("prelude", DEFAULT_PRELUDE)
    if isinstance(prelude, list) and all(isinstance(line, str) for line in prelude):
        prelude = "\n".join(prelude) + "\n"
    if not isinstance(prelude, str):
        raise fail("'prelude' must be a string or a list of lines")
    timeout = table.get("timeout", DEFAULT_TIMEOUT)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
        raise fail(f"'timeout' must be a positive number of seconds, not {timeout!r}")
    return Config(
        prelude=prelude,
        timeout=float(timeout),
        memory_limit=_memory_limit(table.get("memory_limit", DEFAULT_MEMORY_LIMIT), fail),
        families=_families(table.get("families", {}), fail),
        exclude=_strings(table.get("exclude", []), "exclude", fail),
        env=_strings(table.get("env", []), "env", fail),
        namespaces=_boolean(table.get("namespaces", True), "namespaces", fail),
        source=path,
    )


def _boolean(value: Any, key: str, fail: Any) -> bool:
    if not isinstance(value, bool):
        raise fail(f"'{key}' must be true or false")
    return value


def _strings(value: Any, key: str, fail: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise fail(f"'{key}' must be a list of strings")
    return tuple(value)


def _memory_limit(value: Any, fail: Any) -> int | None:
    if value in (None, False, "none", 0):
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    if isinstance(value, str):
        match = _SIZE.match(value)
        if match:
            return int(float(match[1]) * _UNITS[match[2][:1].lower()])
    raise fail(f"'memory_limit' must be a size such as \"4GiB\" or a number of bytes, not {value!r}")


def _families(value: Any, fail: Any) -> Families:
    if not isinstance(value, dict) or set(value) - {"failure", "success"}:
        raise fail("'families' must be a table with 'failure' and/or 'success' lists")
    defaults = Families()

    def canonical(key: str, fallback: frozenset[str]) -> frozenset[str]:
        if key not in value:
            return fallback
        names = _strings(value[key], f"families.{key}", fail)
        return frozenset(CANONICAL_CALLOUT.get(name.lower(), name.lower()) for name in names)

    return Families(
        failure=canonical("failure", defaults.failure),
        success=canonical("success", defaults.success),
    )
