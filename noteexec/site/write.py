"""Writing a site: into a fresh folder beside the output, swapped in whole, so a failed or
interrupted build leaves the previous site as it was, and builds into one folder take turns."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

MARKER = ".noteexec-site"
"""Written into every site: only a folder holding it (or an empty one) is ever replaced."""


class BuildError(Exception):
    """No site could be written (exit code 2)."""


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux ``renameat2(RENAME_EXCHANGE)``); False where unsupported."""
    if not hasattr(os, "uname") or os.uname().sysname != "Linux":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    result: int = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange)
    return result == 0


def _check_replaceable(out: Path) -> None:
    if not out.exists() and not out.is_symlink():
        return
    if not out.is_dir() or out.is_symlink():
        raise BuildError(f"{out} exists and is not a folder; not replacing it")
    if (out / MARKER).exists() or not any(out.iterdir()):
        return
    raise BuildError(f"{out} is not empty and was not written by noteexec; not replacing it")


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` (the output's parent): one build writes there at a time.

    ``flock`` on the folder itself, so no lock file is left behind, and a build killed while it
    holds the lock releases it with its last file descriptor. Where folders cannot be locked,
    builds are not serialised.
    """
    try:
        import fcntl

        descriptor = os.open(folder, os.O_RDONLY)
    except (ImportError, OSError):
        yield
        return
    try:
        with contextlib.suppress(OSError):
            fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # releases the lock


def _recover(out: Path) -> None:
    """Undo what a killed build left beside ``out`` (call with the lock held).

    ``.OUT.*.tmp``: a staging folder, or the previous site being deleted: removed.
    ``.OUT.*.old``: the previous site moved aside by the rename fallback; if the build died
    before the new site took its place, it is put back.
    """
    for old in sorted(out.parent.glob(f".{out.name}.*.old")):
        if not out.exists() and not out.is_symlink() and (old / MARKER).exists():
            os.rename(old, out)
        else:
            shutil.rmtree(old, ignore_errors=True)
    for stale in out.parent.glob(f".{out.name}.*.tmp"):
        shutil.rmtree(stale, ignore_errors=True)


def write_site(files: Mapping[str, bytes | Path], out: Path) -> None:
    """Write the site into a fresh folder beside ``out``, then swap it in.

    Builds into the same folder at once take turns (a lock on its parent), so one never deletes
    another's staging folder; a build killed at any moment leaves ``out`` the old site or the new.
    """
    out = Path(os.path.abspath(out))
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise BuildError(f"cannot write {out}: {error.strerror or error}") from None
    with _locked(out.parent):
        try:
            _recover(out)
        except OSError as error:
            raise BuildError(f"cannot write {out}: {error.strerror or error}") from None
        _check_replaceable(out)
        _write_and_swap(files, out)


def _write_and_swap(files: Mapping[str, bytes | Path], out: Path) -> None:
    try:
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    except OSError as error:
        raise BuildError(f"cannot write {out}: {error.strerror or error}") from None
    try:
        os.chmod(staging, 0o755)
        for rel in sorted(files):
            target = staging / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            data = files[rel]
            if isinstance(data, Path):
                shutil.copyfile(data, target)
            else:
                target.write_bytes(data)
        (staging / MARKER).write_text("Written by noteexec build; replaced on every build.\n")
        if not out.exists():
            os.rename(staging, out)
        elif _exchange(staging, out):
            shutil.rmtree(staging, ignore_errors=True)  # now the previous site
        else:
            previous = staging.with_name(staging.name[:-4] + ".old")
            os.rename(out, previous)
            try:
                os.rename(staging, out)
            except OSError:
                os.rename(previous, out)
                raise
            shutil.rmtree(previous, ignore_errors=True)
    except BaseException as error:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(error, OSError):
            raise BuildError(f"cannot write {out}: {error.strerror or error}") from None
        raise
