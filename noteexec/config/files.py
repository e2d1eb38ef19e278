"""Where configurations are found: ``noteexec.toml`` or ``[tool.noteexec]`` in ``pyproject.toml``.

The nearest file at or above the checked path wins; every key is optional. A file *inside* the
checked folder came with the notes, so it is untrusted: it is laid over the trusted base (the
nearest file strictly above the folder, else the defaults; see :mod:`noteexec.config.layers`).
A folder inside the checked folder may have a configuration of its own, untrusted too.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from noteexec.config import Config, ConfigError
from noteexec.config.layers import apply_overrides, config_from_table
from noteexec.config.values import file_and_line, shown_file


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
    """Whether ``directory`` is one of ``folders`` or lies inside one."""
    return any(directory == folder or folder in directory.parents for folder in folders)


def _read_toml(path: Path) -> dict[str, Any]:
    import tomllib  # loaded only where a configuration file is found

    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise ConfigError(f"{shown_file(path)}: {error}") from None


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
                f"{file_and_line(path, run_wide[0])}: '{run_wide[0]}' applies to the whole run; "
                "set it in the configuration of the checked folder, not in a subfolder's"
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
                raise ConfigError(f"{shown_file(project)}: [tool.noteexec] must be a table")
            return project, table
    return None
