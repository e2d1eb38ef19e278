"""Configurations laid over each other: a file over its base, the command line over all.

A file *inside* the checked folder came with the notes (a stranger's pull request, say), so it
is untrusted: it is laid over the trusted base and may tighten the sandbox's limits, never
loosen them. The command line is trusted: :func:`apply_overrides` may loosen.
"""

from __future__ import annotations

import argparse
import fnmatch
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from noteexec.config import NOT_RUNNABLE, Config, ConfigError
from noteexec.config.values import (
    Fail,
    boolean,
    brief,
    callout_families,
    choice,
    env_names,
    file_and_line,
    file_errors,
    format_size,
    isolation_mode,
    prelude_code,
    process_count,
    size_bytes,
    strings,
    timeout_seconds,
)
from noteexec.environment import ENV_ALLOWLIST

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


def config_from_table(table: dict[str, Any], path: Path | None = None, base: Config | None = None) -> Config:
    """Validate a configuration table. With ``base``, the table is untrusted: the keys it leaves
    out come from ``base``, and a limit looser than ``base``'s is an error."""
    fail = file_errors(path)
    unknown = [key for key in table if key not in _KEYS]
    if unknown:
        where = file_and_line(path, unknown[0]) if path is not None else "configuration"
        raise ConfigError(f"{where}: unknown key(s): {', '.join(map(brief, unknown))}")
    parsers: dict[str, Callable[[Any], Any]] = {
        "prelude": lambda value: prelude_code(value, fail),
        "timeout": lambda value: timeout_seconds(value, fail),
        "memory_limit": lambda value: size_bytes(value, "memory_limit", fail, disable=True),
        "tmp_size": lambda value: size_bytes(value, "tmp_size", fail),
        "processes": lambda value: process_count(value, fail),
        "isolation": lambda value: isolation_mode(value, fail),
        "families": lambda value: callout_families(value, fail),
        "exclude": lambda value: strings(value, "exclude", fail),
        "env": lambda value: env_names(value, fail),
        "namespaces": lambda value: boolean(value, "namespaces", fail),
        "publish_css": lambda value: boolean(value, "publish_css", fail),
        "opt_in": lambda value: boolean(value, "opt_in", fail),
        "not_runnable": lambda value: choice(value, "not_runnable", NOT_RUNNABLE, fail),
    }
    values = {key: parsers[key](value) for key, value in table.items()}
    config = replace(base or Config(), **values, source=path)
    if base is not None:
        _refuse_loosening(config, base, table, fail)
    key = "isolation" if "isolation" in table else "namespaces"
    _consistent(config, file_and_line(path, key) if path is not None else "configuration")
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
        values["processes"] = process_count(_number(processes), fail)
    isolation = getattr(arguments, "isolation", None)
    if isolation is not None:
        values["isolation"] = isolation_mode(isolation, fail)
    if getattr(arguments, "namespaces", None) is False:
        values["namespaces"] = False
    if getattr(arguments, "publish_css", None) is True:
        values["publish_css"] = True
    not_runnable = getattr(arguments, "not_runnable", None)
    if not_runnable is not None:
        values["not_runnable"] = choice(not_runnable, "not_runnable", NOT_RUNNABLE, fail)
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


def _number(text: str) -> int | float | str:
    """A command-line number as TOML would have read it (a string if it is not one)."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text
