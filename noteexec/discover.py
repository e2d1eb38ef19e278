"""Which files are notes: what every front end checks when given folders and files.

A folder is walked without following symlinks out of it, skipping dot-folders and the
configuration's ``exclude`` patterns, in a stable order.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from noteexec.exitcodes import UsageError
from noteexec.results import NoteFile


def discover(paths: Sequence[Path], exclude: Iterable[str] = ()) -> list[NoteFile]:
    """Markdown files under ``paths`` in a stable order, skipping dot-folders and excludes.

    Symlinks are not followed out of the folder they were found in. A folder inside that cannot
    be listed is returned as if it were a note, so that reading it reports why.
    """
    patterns = tuple(exclude)
    found: dict[Path, NoteFile] = {}
    for given in paths:
        if not given.exists() and not given.is_symlink():
            raise UsageError(f"{given}: no such file or directory")
        if not given.is_dir():  # a file, or something that reading it will report (a FIFO)
            if not given.name.lower().endswith(".md"):  # `check script.py` would say PASS for nothing
                raise UsageError(f"{given}: not a Markdown note (noteexec checks .md files)")
            found.setdefault(given, NoteFile(given, given.parent))
            continue
        try:
            entries = _listing(given)
        except OSError as error:
            raise UsageError(f"{given}: cannot read: {error.strerror or error}") from None
        _collect(given, entries, patterns, found)
    return list(found.values())


def _listing(folder: Path) -> list[os.DirEntry[str]]:
    with os.scandir(folder) as entries:
        return sorted(entries, key=lambda entry: entry.name)


def _collect(
    root: Path, entries: list[os.DirEntry[str]], patterns: tuple[str, ...], found: dict[Path, NoteFile]
) -> None:
    """Notes under ``root`` in ``os.walk`` order: a folder's notes, then each subfolder's by name.

    An explicit stack, not recursion: a vault may nest folders deeper than Python recurses.
    """
    stack: list[tuple[Path, str, list[os.DirEntry[str]] | None]] = [(root, "", entries)]
    while stack:
        folder, prefix, listed = stack.pop()  # prefix: the folder relative to root, "a/b/"
        if listed is None:
            try:
                listed = _listing(folder)
            except (FileNotFoundError, NotADirectoryError):  # gone since its parent was listed
                continue
            except OSError:
                found.setdefault(folder, NoteFile(folder, root))  # reading it says why it cannot be checked
                continue
        subfolders = []
        for entry in listed:
            if _is_folder(entry):  # a symlink to a folder is neither a note nor walked into
                if not entry.is_symlink() and not entry.name.startswith("."):
                    subfolders.append((folder / entry.name, f"{prefix}{entry.name}/", None))
            elif entry.name.lower().endswith(".md") and not _excluded(prefix + entry.name, patterns):
                path = folder / entry.name
                if not entry.is_symlink() or _inside(path, root):
                    found.setdefault(path, NoteFile(path, root))
        stack.extend(reversed(subfolders))


def _is_folder(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()
    except OSError:  # a symlink loop: a note that reading will report
        return False


def _excluded(relative: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatch(relative, pattern) for pattern in patterns)


def is_note(path: Path, root: Path, exclude: Iterable[str] = ()) -> bool:
    """Whether checking the folder ``root`` checks the file ``path`` (every front end agrees):
    not in a dot-folder, not excluded, not a symlink out of ``root``."""
    relative = path.relative_to(root)
    if any(part.startswith(".") for part in relative.parts[:-1]):
        return False
    if _excluded(relative.as_posix(), tuple(exclude)):
        return False
    return not path.is_symlink() or _inside(path, root)


def _inside(path: Path, root: Path) -> bool:
    """Whether ``path`` resolves into ``root`` (a symlink loop resolves to itself: inside)."""
    return Path(os.path.realpath(path)).is_relative_to(os.path.realpath(root))
