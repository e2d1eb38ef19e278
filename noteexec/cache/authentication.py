"""Cache entries are authenticated: a row this machine's noteexec did not write decides nothing.

Rows decide verdicts, and the database is a file anyone may commit, copy or edit: every row
carries an HMAC-SHA256 under a key kept outside the vault and the cache (``NOTEEXEC_CACHE_SECRET``,
else a per-user key file), and a row whose MAC does not verify is ignored with a warning, as if
it were absent (:class:`noteexec.cache.ResultCache` checks).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

SECRET_VARIABLE = "NOTEEXEC_CACHE_SECRET"
"""A secret shared by the machines that share a cache (CI runners restoring ``actions/cache``)."""
KEY_BYTES = 32
SHORT_SECRET = 16
"""A secret of fewer characters is used, with a warning: it may be guessed."""
_MAC_DOMAIN = b"noteexec cache entry\0"


class KeyFileError(Exception):
    """The key file exists but cannot be trusted or used."""


@dataclass(frozen=True)
class CacheKey:
    """The key that authenticates cache entries, and where it came from."""

    secret: bytes = field(repr=False)
    source: str
    """``NOTEEXEC_CACHE_SECRET``, the key file's path, or ``this run``."""
    lasting: bool
    """False for a per-run key: entries of earlier runs cannot verify (nothing hits across runs)."""
    warning: str | None = None


def key_file_path() -> Path:
    """``$XDG_STATE_HOME/noteexec/cache.key`` (``~/.local/state/noteexec/cache.key`` by default):
    per user, where no vault or cache a stranger hands over can bring its own."""
    state = os.environ.get("XDG_STATE_HOME", "")  # XDG: a relative path is ignored
    base = Path(state) if os.path.isabs(state) else Path.home() / ".local" / "state"
    if not base.is_absolute():
        raise RuntimeError("no home directory")
    return base / "noteexec" / "cache.key"


def load_key(cache_dir: Path, vault: Path | None = None) -> CacheKey:
    """The key for a cache: ``NOTEEXEC_CACHE_SECRET``, else the key file (made on first use).

    A key file inside the cache folder or the vault would travel with them (committed, copied),
    so it is refused; then, or when the file cannot be made, the key is random for this run only.
    """
    value = os.environ.get(SECRET_VARIABLE, "")
    if value:  # empty is unset: GitHub gives pull requests from forks an empty secret
        raw = value.encode("utf-8", "surrogateescape")
        warning = None
        if len(value) < SHORT_SECRET:
            warning = (
                f"cache: {SECRET_VARIABLE} is shorter than {SHORT_SECRET} characters: whoever guesses "
                "it can forge cache entries (make one with `python3 -c 'import secrets; "
                "print(secrets.token_hex(32))'`)"
            )
        secret = hashlib.sha256(b"noteexec cache secret\0" + raw).digest()  # any string, hex or not
        return CacheKey(secret, SECRET_VARIABLE, True, warning)
    try:
        path = key_file_path()
        for folder, what in ((cache_dir, "cache folder"), (vault, "checked vault")):
            if folder is not None and _inside(path, folder):
                return _per_run_key(f"the key file {path} would lie inside the {what} {folder}")
        return CacheKey(_read_or_create_key(path), str(path), True)
    except (OSError, RuntimeError, KeyFileError) as error:
        return _per_run_key(str(error))


def _per_run_key(reason: str) -> CacheKey:
    return CacheKey(
        secrets.token_bytes(KEY_BYTES),
        "this run",
        False,
        f"cache: no lasting key ({reason}); entries are authenticated with a key for this run only, so "
        f"the cache will not hit across runs (set {SECRET_VARIABLE}, or XDG_STATE_HOME to a folder of yours)",
    )


def _inside(path: Path, folder: Path) -> bool:
    """Whether ``path`` resolves into ``folder`` (symlinks followed, as opening it would)."""
    return Path(os.path.realpath(path)).is_relative_to(os.path.realpath(folder))


def _read_key_file(path: Path) -> bytes | None:
    """The key in ``path``; None when there is no file. One that other users could read or
    write, or that is not ours, is refused: whoever can read it can forge entries."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    with os.fdopen(descriptor, "rb") as file:
        status = os.fstat(file.fileno())
        if status.st_uid != os.getuid() or status.st_mode & 0o077:
            raise KeyFileError(f"the key file {path} is not yours alone (chmod 600 it, or remove it)")
        secret = file.read(KEY_BYTES + 1)
    if len(secret) != KEY_BYTES:
        raise KeyFileError(f"the key file {path} does not hold a {KEY_BYTES}-byte key (remove it)")
    return secret


def _read_or_create_key(path: Path) -> bytes:
    """The key file's key, made first if there is none. It is written whole to a temporary file
    (mode 0600) then linked into place, which fails if another run got there first: every run
    reads back the one key that won."""
    secret = _read_key_file(path)
    if secret is not None:
        return secret
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)  # mode 0600
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(secrets.token_bytes(KEY_BYTES))
            file.flush()
            os.fsync(file.fileno())
        try:
            os.link(temporary, path)  # never replaces a key another run made
        except FileExistsError:
            pass
        except OSError:  # a file system without hard links: replace, unless a key appeared meanwhile
            if not path.exists():
                os.replace(temporary, path)
    finally:
        Path(temporary).unlink(missing_ok=True)
    secret = _read_key_file(path)
    if secret is None:
        raise KeyFileError(f"the key file {path} vanished as it was made")
    return secret


def _field(text: str | None) -> bytes:
    """One MAC'd field, length-prefixed so that no two rows share a message."""
    if text is None:
        return b"-"
    data = text.encode("utf-8", "surrogatepass")
    return b"%d:" % len(data) + data


def entry_mac(secret: bytes, table: str, key: str, value: str, run_key: str | None = None) -> bytes:
    """The MAC of a row: everything read back from it (its table, key, value and run key)."""
    message = b"".join((_MAC_DOMAIN, _field(table), _field(key), _field(value), _field(run_key)))
    return hmac.digest(secret, message, "sha256")
