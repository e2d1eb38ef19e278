"""Project configuration: ``noteexec.toml`` or ``[tool.noteexec]`` in ``pyproject.toml``.

The nearest file at or above the checked path wins; every key is optional. A file *inside* the
checked folder came with the notes (a stranger's pull request, say), so it is untrusted: it is laid
over the trusted base (the nearest file strictly above the folder, else the defaults) and may
tighten the sandbox's limits, never loosen them. The command line is trusted: :func:`apply_overrides`.
"""

from __future__ import annotations

import argparse
import contextlib
import fnmatch
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

from noteexec.display import shown_path
from noteexec.environment import ENV_ALLOWLIST
from noteexec.expect import Families
from noteexec.model import CANONICAL_CALLOUT

Isolation = Literal["auto", "strict"]
ISOLATIONS: tuple[Isolation, ...] = ("auto", "strict")
NotRunnable = Literal["fail", "report"]
NOT_RUNNABLE: tuple[NotRunnable, ...] = ("fail", "report")
DEFAULT_PRELUDE = "import torch\nimport torch.nn as nn\nimport torch.nn.functional as F\n"
DEFAULT_TIMEOUT = 60.0
DEFAULT_MEMORY_LIMIT = 4 << 30
DEFAULT_TMP_SIZE = 512 << 20
DEFAULT_PROCESSES = 256
MAX_TIMEOUT = 86400.0
"""One day: longer is a mistake, and far larger values overflow the sandbox's time arithmetic."""
MIN_SIZE, MAX_SIZE = 16 << 20, 1 << 40
"""Below 16 MiB not even the interpreter starts; above 1 TiB is a typo (and overflows rlimits)."""
MAX_PROCESSES = 65536
LIMIT_KEYS = (
    "env",
    "namespaces",
    "timeout",
    "memory_limit",
    "tmp_size",
    "processes",
    "isolation",
    "publish_css",
    "opt_in",
    "not_runnable",
)
"""The keys that loosen the sandbox (or let the vault style its site): an untrusted file may only
tighten them."""
_KEYS = frozenset({"prelude", "families", "exclude", *LIMIT_KEYS})
_SIZE = re.compile(r"^\s*(\d{1,20}(?:\.\d{1,20})?)\s*([KMGT]?i?B?)\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_OPTIONS = {
    "env": "--env",
    "namespaces": "--no-namespaces",
    "timeout": "--timeout",
    "memory_limit": "--memory-limit",
    "tmp_size": "--tmp-size",
    "processes": "--processes",
    "isolation": "--isolation",
    "publish_css": "--publish-css",
    "opt_in": "--no-opt-in",
    "not_runnable": "--not-runnable",
}


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
    tmp_size: int = DEFAULT_TMP_SIZE
    """Bytes of the private tmpfs a note may write: its working folder and /tmp."""
    processes: int = DEFAULT_PROCESSES
    """Cap on the processes and threads of a note's whole tree (a fork bomb stops here)."""
    isolation: Isolation = "auto"
    """``"strict"``: refuse to run notes without the full sandbox, rather than fall back."""
    publish_css: bool = False
    """The site uses the vault's ``publish.css`` (Obsidian Publish), confined to note bodies."""
    opt_in: bool = False
    """Check only notes whose frontmatter opts in (``noteexec: true`` or a ``noteexec:`` mapping)."""
    not_runnable: NotRunnable = "fail"
    """Whether blocks that cannot run here (see :mod:`noteexec.runnable`) fail the run, or are
    only reported (``report``: adopting a vault whose snippets were never meant to run alone)."""
    source: Path | None = None


Fail = Callable[[str, str], ConfigError]
"""Builds the error for a key and the rest of a sentence about it (``"must be ..."``)."""


def find_config_file(start: Path) -> tuple[Path, dict[str, Any]] | None:
    """The nearest configuration at or above ``start`` (a file stands for its folder)."""
    return next(_config_files(_checked_folder(start)), None)


def _config_files(directory: Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    """Every configuration at or above ``directory``, nearest first; read only as far as asked."""
    for candidate in (directory, *directory.parents):
        found = _folder_file(candidate)
        if found is not None:
            yield found


def _checked_folder(path: Path) -> Path:
    """A checked file's folder is its parent: a configuration beside the note came with it."""
    resolved = path.resolve()
    return resolved if resolved.is_dir() else resolved.parent


def _inside(directory: Path, folders: Iterable[Path]) -> bool:
    return any(directory == folder or folder in directory.parents for folder in folders)


def _read_toml(path: Path) -> dict[str, Any]:
    import tomllib  # loaded only where a configuration file is found

    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise ConfigError(f"{_shown(path)}: {error}") from None


def load_config(
    start: Path, overrides: argparse.Namespace | None = None, *, checked: Iterable[Path] = ()
) -> Config:
    """The configuration for checking ``start`` (and the other ``checked`` paths).

    The nearest file wins, as always; but when it lies inside a checked folder, it came with the
    notes and is only laid over the trusted base (see the module's docstring). ``overrides``, the
    parsed command line, are applied last.
    """
    folders = [_checked_folder(path) for path in (start, *checked)]
    found = _config_files(folders[0])
    nearest = next(found, None)
    if nearest is not None and _inside(nearest[0].parent, folders):
        trusted = next(((path, table) for path, table in found if not _inside(path.parent, folders)), None)
        base = config_from_table(trusted[1], trusted[0]) if trusted is not None else Config()
        if overrides is not None:  # `--env NAME` is what lets the untrusted file name NAME
            base = apply_overrides(base, overrides)
        config = config_from_table(nearest[1], nearest[0], base=base)
    else:
        config = config_from_table(nearest[1], nearest[0]) if nearest is not None else Config()
    return apply_overrides(config, overrides) if overrides is not None else config


RUN_WIDE_KEYS = ("env", "exclude")
"""Keys that apply to a whole run (the worker's environment, which notes are found): a
configuration in a subfolder of the checked folder cannot set them."""


def folder_config(config: Config, root: Path, folder: Path) -> Config:
    """The configuration for the notes of ``folder``, a folder inside the checked folder
    ``root``: each configuration file in a subfolder between them, outermost first, laid over
    ``config`` as untrusted (it came with the notes), so it may scope (``prelude``, ``families``,
    ``opt_in``) or tighten, never loosen."""
    try:
        relative = folder.resolve().relative_to(root.resolve())
    except ValueError:
        return config
    current = root.resolve()
    for part in relative.parts:
        current = current / part
        found = _folder_file(current)
        if found is None:
            continue
        path, table = found
        run_wide = [key for key in table if key in RUN_WIDE_KEYS]
        if run_wide:
            raise ConfigError(
                f"{_where(path, run_wide[0])}: '{run_wide[0]}' applies to the whole run; set it in the "
                "configuration of the checked folder, not in a subfolder's"
            )
        config = config_from_table(table, path, base=config)
    return config


def _folder_file(directory: Path) -> tuple[Path, dict[str, Any]] | None:
    """The configuration file of one folder itself (not of its parents), if it has one."""
    own = directory / "noteexec.toml"
    if own.is_file():
        return own, _read_toml(own)
    project = directory / "pyproject.toml"
    if project.is_file():
        tool = _read_toml(project).get("tool")
        table = tool.get("noteexec") if isinstance(tool, dict) else None
        if table is not None:
            if not isinstance(table, dict):
                raise ConfigError(f"{_shown(project)}: [tool.noteexec] must be a table")
            return project, table
    return None


def config_from_table(table: dict[str, Any], path: Path | None = None, base: Config | None = None) -> Config:
    """Validate a configuration table. With ``base``, the table is untrusted: the keys it leaves
    out come from ``base``, and a limit looser than ``base``'s is an error."""
    fail = _file_errors(path)
    unknown = [key for key in table if key not in _KEYS]
    if unknown:
        where = _where(path, unknown[0]) if path is not None else "configuration"
        raise ConfigError(f"{where}: unknown key(s): {', '.join(map(_brief, unknown))}")
    parsers: dict[str, Callable[[Any], Any]] = {
        "prelude": lambda value: _prelude(value, fail),
        "timeout": lambda value: timeout_seconds(value, fail),
        "memory_limit": lambda value: size_bytes(value, "memory_limit", fail, disable=True),
        "tmp_size": lambda value: size_bytes(value, "tmp_size", fail),
        "processes": lambda value: _processes(value, fail),
        "isolation": lambda value: _isolation(value, fail),
        "families": lambda value: _families(value, fail),
        "exclude": lambda value: _strings(value, "exclude", fail),
        "env": lambda value: env_names(value, fail),
        "namespaces": lambda value: _boolean(value, "namespaces", fail),
        "publish_css": lambda value: _boolean(value, "publish_css", fail),
        "opt_in": lambda value: _boolean(value, "opt_in", fail),
        "not_runnable": lambda value: _choice(value, "not_runnable", NOT_RUNNABLE, fail),
    }
    values = {key: parsers[key](value) for key, value in table.items()}
    config = replace(base or Config(), **values, source=path)
    if base is not None:
        _refuse_loosening(config, base, table, fail)
    key = "isolation" if "isolation" in table else "namespaces"
    _consistent(config, _where(path, key) if path is not None else "configuration")
    return config


def apply_overrides(config: Config, arguments: argparse.Namespace) -> Config:
    """The command line's sandbox options (:func:`noteexec.options.add_sandbox_arguments`) over
    ``config``. They are trusted, so they may loosen; they are bounded like the file's keys."""

    def fail(key: str, message: str) -> ConfigError:
        return ConfigError(f"{_OPTIONS[key]} {message}")

    values: dict[str, Any] = {}
    names = getattr(arguments, "env", None) or []
    if names:
        added = env_names(names, fail)
        values["env"] = tuple(dict.fromkeys((*config.env, *added)))
    timeout = getattr(arguments, "timeout", None)
    if timeout is not None:
        values["timeout"] = timeout_seconds(_number(timeout), fail)
    for key in ("memory_limit", "tmp_size"):
        size = getattr(arguments, key, None)
        if size is not None:
            values[key] = size_bytes(size, key, fail, disable=key == "memory_limit")
    processes = getattr(arguments, "processes", None)
    if processes is not None:
        values["processes"] = _processes(_number(processes), fail)
    isolation = getattr(arguments, "isolation", None)
    if isolation is not None:
        values["isolation"] = _isolation(isolation, fail)
    if getattr(arguments, "namespaces", None) is False:
        values["namespaces"] = False
    if getattr(arguments, "publish_css", None) is True:
        values["publish_css"] = True
    not_runnable = getattr(arguments, "not_runnable", None)
    if not_runnable is not None:
        values["not_runnable"] = _choice(not_runnable, "not_runnable", NOT_RUNNABLE, fail)
    opt_in = getattr(arguments, "opt_in", None)
    if opt_in is not None:
        values["opt_in"] = opt_in
    if not values:
        return config
    overridden = replace(config, **values)
    _consistent(overridden, "command line")
    return overridden


def _consistent(config: Config, where: str) -> None:
    if config.isolation == "strict" and not config.namespaces:
        raise ConfigError(
            f"{where}: isolation \"strict\" needs the namespaces sandbox, which 'namespaces = false' or "
            "--no-namespaces turns off; choose one (--no-namespaces goes with --isolation auto)"
        )


def _refuse_loosening(config: Config, base: Config, table: dict[str, Any], fail: Fail) -> None:
    """An untrusted file's limit that is looser than the trusted base's: the first in file order."""
    for key in (key for key in table if key in LIMIT_KEYS):
        why = _looser(key, config, base)
        if why is None:
            continue
        reason, hint = why
        raise fail(
            key,
            f"may not be loosened by a configuration inside the checked folder ({reason}); put it in a "
            f"configuration file above the folder or pass {_OPTIONS[key]}{f' {hint}' if hint else ''}",
        )


def _looser(key: str, config: Config, base: Config) -> tuple[str, str] | None:
    """Why ``config``'s ``key`` is looser than ``base``'s, and the option's value that would allow it."""
    if key == "env":  # the allowlist is always passed: naming its variables again loosens nothing
        allowed = (*ENV_ALLOWLIST, *base.env)
        for name in config.env:
            if not any(fnmatch.fnmatchcase(name, pattern) for pattern in allowed):
                return f"{name} is not allowed by the trusted configuration", name
        return None
    if key == "namespaces":
        if base.namespaces and not config.namespaces:
            return "the trusted configuration isolates notes in namespaces", ""
        return None
    if key == "not_runnable":
        if base.not_runnable == "fail" and config.not_runnable != "fail":
            return "the trusted configuration fails blocks that cannot run here", "report"
        return None
    if key == "opt_in":
        if base.opt_in and not config.opt_in:
            return "the trusted configuration checks only notes that opt in", ""
        return None
    if key == "publish_css":
        if config.publish_css and not base.publish_css:
            return "the vault's own CSS could restyle its verdicts", ""
        return None
    if key == "isolation":
        if base.isolation == "strict" and config.isolation != "strict":
            return f"{config.isolation!r} where the trusted configuration says 'strict'", config.isolation
        return None
    if key == "timeout":
        if config.timeout > base.timeout:
            return f"{config.timeout:g} s is more than the trusted {base.timeout:g} s", f"{config.timeout:g}"
        return None
    if key == "processes":
        if config.processes > base.processes:
            return f"{config.processes} is more than the trusted {base.processes}", str(config.processes)
        return None
    new, old = getattr(config, key), getattr(base, key)
    if old is None or (new is not None and new <= old):
        return None
    if new is None:
        return f"none lifts the trusted {format_size(old)}", "none"
    return f"{format_size(new)} is more than the trusted {format_size(old)}", format_size(new)


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


def _file_errors(path: Path | None) -> Fail:
    def fail(key: str, message: str) -> ConfigError:
        return ConfigError(f"{_where(path, key) if path is not None else 'configuration'}: '{key}' {message}")

    return fail


def _where(path: Path, key: str) -> str:
    """``file:line`` of a key, or the file alone when the key's line cannot be told."""
    line = key_line(path, key)
    return f"{_shown(path)}:{line}" if line is not None else _shown(path)


def _shown(path: Path) -> str:
    """A configuration file as a message shows it: relative to the current folder when inside it."""
    with contextlib.suppress(ValueError, OSError):  # outside it, or the current folder is gone
        path = path.relative_to(Path.cwd().resolve())
    return shown_path(path)


def _brief(value: Any) -> str:
    """A value for a message: repr'd, and cut short (an untrusted file may hold megabytes)."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _number(text: str) -> int | float | str:
    """A command-line number as TOML would have read it (a string if it is not one)."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


def timeout_seconds(value: Any, fail: Fail) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= MAX_TIMEOUT:
        raise fail(
            "timeout",
            f"must be a positive number of seconds, at most {MAX_TIMEOUT:g} (one day), not {_brief(value)}",
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
            f"not {_brief(value)}",
        )
    return int(number)


def _processes(value: Any, fail: Fail) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_PROCESSES:
        raise fail("processes", f"must be a whole number from 1 to {MAX_PROCESSES}, not {_brief(value)}")
    return value


def _choice(value: Any, key: str, choices: tuple[str, ...], fail: Fail) -> Any:
    if value in choices:
        return value
    raise fail(key, f"must be one of {', '.join(map(repr, choices))}, not {_brief(value)}")


def _isolation(value: Any, fail: Fail) -> Isolation:
    for isolation in ISOLATIONS:
        if value == isolation:
            return isolation
    raise fail("isolation", f'must be "auto" or "strict", not {_brief(value)}')


def env_names(value: Any, fail: Fail) -> tuple[str, ...]:
    """Plain variable names: a wildcard such as ``*`` would hand notes every CI secret."""
    names = _strings(value, "env", fail)
    for name in names:
        if any(character in name for character in "*?["):
            raise fail(
                "env",
                f"takes whole variable names, not the pattern {_brief(name)}: a wildcard would hand "
                "notes every matching variable, secrets included; name each variable",
            )
        if not _ENV_NAME.fullmatch(name):
            raise fail(
                "env",
                f"takes environment variable names (letters, digits, underscore), not {_brief(name)}",
            )
        if name.upper().startswith("NOTEEXEC_"):
            raise fail(
                "env",
                f"cannot pass {name} to notes: noteexec's own settings (such as the cache key in "
                "NOTEEXEC_CACHE_SECRET) would let a note forge the results of later runs",
            )
    return names


def _prelude(value: Any, fail: Fail) -> str:
    if isinstance(value, list) and all(isinstance(line, str) for line in value):
        value = "\n".join(value) + "\n"
    if not isinstance(value, str):
        raise fail("prelude", "must be a string or a list of lines")
    return value


def _boolean(value: Any, key: str, fail: Fail) -> bool:
    if not isinstance(value, bool):
        raise fail(key, "must be true or false")
    return value


def _strings(value: Any, key: str, fail: Fail) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or not all(isinstance(item, str) for item in value):
        raise fail(key, "must be a list of strings")
    return tuple(value)


def _families(value: Any, fail: Fail) -> Families:
    if not isinstance(value, dict) or set(value) - {"failure", "success"}:
        raise fail("families", "must be a table with 'failure' and/or 'success' lists")
    defaults = Families()

    def canonical(key: str, fallback: frozenset[str]) -> frozenset[str]:
        if key not in value:
            return fallback
        names = _strings(value[key], "families", fail)
        return frozenset(CANONICAL_CALLOUT.get(name.lower(), name.lower()) for name in names)

    return Families(
        failure=canonical("failure", defaults.failure),
        success=canonical("success", defaults.success),
    )
