"""A result cache: facts of notes already run, keyed by everything that decides what runs.

Facts are cached, not verdicts: verdicts are recomputed by the (pure, fast) judge, so editing a
note's prose or its documented messages never needs a re-run, and a wrong verdict can never be
cached. What the keys hold is :mod:`noteexec.cache.keys`'s job; how a stored entry is moved to
where its blocks are now, :mod:`noteexec.cache.entries`'s; how every row is authenticated with a
key kept outside the vault, :mod:`noteexec.cache.authentication`'s.

This module is the store: one SQLite database in WAL mode. Two runs at once are safe, a killed
run loses at most its own unwritten results, a corrupt file is set aside and rebuilt with a
warning, and a row whose MAC does not verify is ignored with a warning, as if it were absent.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import os
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from noteexec.cache.authentication import CacheKey, entry_mac, load_key
from noteexec.cache.entries import block_spans, cacheable, facts_from_json
from noteexec.cache.keys import SCHEMA_VERSION, environment_fingerprint
from noteexec.display import unicode_path
from noteexec.facts import NoteFacts
from noteexec.sandbox import NoteRun

DATABASE = "results.sqlite3"


@dataclass(frozen=True)
class CacheInfo:
    """What ``noteexec cache info`` shows."""

    path: Path
    entries: int
    size: int
    oldest: float | None
    newest: float | None


class ResultCache:
    """The facts of notes already run, and the parsed notes that say what they run, in one database."""

    BUSY_TIMEOUT = 30.0
    """Seconds to wait for another run's write to finish before going on without the cache."""

    def __init__(self, directory: Path, vault: Path | None = None, key: CacheKey | None = None) -> None:
        """``vault``: the checked folder, where the key file must not lie; ``key``: the key to
        use (by default :func:`load_key`'s, loaded once, on the first read or write)."""
        self.directory = directory
        self.path = directory / DATABASE
        self.vault = vault
        self.warnings: list[str] = []
        """What went wrong, each distinct message once."""
        self._connection: sqlite3.Connection | None = None
        self._disabled = False
        self._key = key
        self._rejected: set[tuple[str, str]] = set()
        self._rejected_warning: int | None = None

    def _warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)

    @property
    def key(self) -> CacheKey:
        """The key, loaded once (not per row): ``cache info`` and ``clear`` never need it."""
        if self._key is None:
            self._key = load_key(self.directory, self.vault)
            if self._key.warning is not None:
                self._warn(self._key.warning)
        return self._key

    def _authentic(self, table: str, key: str, value: object, run_key: object, mac: object) -> bool:
        """Whether this machine's noteexec wrote the row; if not, it is counted and warned of once."""
        secret = self.key
        if (
            isinstance(value, str)
            and (run_key is None or isinstance(run_key, str))
            and isinstance(mac, bytes)
            and hmac.compare_digest(mac, entry_mac(secret.secret, table, key, value, run_key))
        ):
            return True
        if secret.lasting:  # with a per-run key every older row fails: that is said once, already
            self._rejected.add((table, key))
            count = len(self._rejected)
            message = (
                f"cache: {count} {'entry' if count == 1 else 'entries'} not written by this machine's "
                f"noteexec {'was' if count == 1 else 'were'} ignored (edited, copied or committed?); "
                "their notes were parsed or run again"
            )
            if self._rejected_warning is None:
                self._rejected_warning = len(self.warnings)
                self.warnings.append(message)
            else:  # one warning a run, its count kept current
                self.warnings[self._rejected_warning] = message
        return False

    def _connect(self) -> sqlite3.Connection | None:
        if self._connection is not None or self._disabled:
            return self._connection
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._connection = self._open()
        except sqlite3.OperationalError as error:  # locked past the timeout, or not openable: not corrupt
            self._warn(f"cache disabled: {self.path}: {error}")
        except sqlite3.DatabaseError as error:
            self._set_aside(error)
            try:
                self._connection = self._open()
            except sqlite3.Error as again:
                self._warn(f"cache disabled: {self.path}: {again}")
        except (OSError, sqlite3.Error) as error:
            self._warn(f"cache disabled: {self.path}: {error}")
        self._disabled = self._connection is None  # tried once: every later note runs uncached
        return self._connection

    def _open(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self.path, timeout=self.BUSY_TIMEOUT, isolation_level=None)
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            (status,) = connection.execute("PRAGMA quick_check").fetchone()
            if status != "ok":
                raise sqlite3.DatabaseError(f"integrity check failed: {status}")
            connection.execute("BEGIN IMMEDIATE")  # a run opening at once waits: it never drops our tables
            (version,) = connection.execute("PRAGMA user_version").fetchone()
            if version != SCHEMA_VERSION:  # written by another noteexec: its rows could never hit
                connection.execute("DROP TABLE IF EXISTS results")
                connection.execute("DROP TABLE IF EXISTS parsed")
                connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            connection.execute(
                "CREATE TABLE IF NOT EXISTS results (key TEXT PRIMARY KEY,"
                " facts TEXT NOT NULL, note TEXT NOT NULL, stored REAL NOT NULL, mac BLOB NOT NULL)"
            )
            connection.execute(
                "CREATE TABLE IF NOT EXISTS parsed (key TEXT PRIMARY KEY,"
                " data TEXT NOT NULL, run_key TEXT, stored REAL NOT NULL, mac BLOB NOT NULL)"
            )
            connection.execute("COMMIT")
        except sqlite3.Error:
            connection.close()
            raise
        return connection

    def _set_aside(self, error: Exception) -> None:
        """Move a corrupt database (and its WAL files) out of the way, keeping it for a post-mortem."""
        stamp = time.strftime("%Y%m%d-%H%M%S")
        for suffix in ("", "-wal", "-shm"):
            damaged = Path(f"{self.path}{suffix}")
            if damaged.exists():
                damaged.rename(damaged.with_name(f"{damaged.name}.corrupt-{stamp}"))
        self._warn(f"cache {self.path} was corrupt ({error}); set aside and rebuilt")

    def get(self, key: str, spans: list[tuple[int, int]]) -> NoteFacts | None:
        """The facts stored under a run key, for blocks now at ``spans`` (None unless authentic)."""
        connection = self._connect()
        if connection is None:
            return None
        try:
            row = connection.execute("SELECT facts, mac FROM results WHERE key = ?", (key,)).fetchone()
        except sqlite3.Error as error:
            self._warn(f"cache read failed: {error}")
            return None
        if row is None or not self._authentic("results", key, row[0], None, row[1]):
            return None
        return self.decode_facts(row[0], spans)

    def decode_facts(self, text: str, spans: list[tuple[int, int]]) -> NoteFacts | None:
        try:
            return facts_from_json(text, spans)
        except (ValueError, KeyError, TypeError) as error:
            self._warn(f"cache entry unreadable, re-running: {error}")
            return None

    def put(self, key: str, run: NoteRun, facts: NoteFacts) -> None:
        if not cacheable(facts):
            return
        connection = self._connect()
        if connection is None:
            return
        value = {"spans": block_spans((*run.setup, *run.blocks)), "facts": facts.to_json()}
        text = json.dumps(value, ensure_ascii=False)
        name = unicode_path(os.path.basename(run.path))  # for people reading the database
        try:
            connection.execute(
                "INSERT OR REPLACE INTO results (key, facts, note, stored, mac) VALUES (?, ?, ?, ?, ?)",
                (key, text, name, time.time(), entry_mac(self.key.secret, "results", key, text)),
            )
        except sqlite3.Error as error:
            self._warn(f"cache write failed: {error}")

    def get_parsed(self, key: str) -> tuple[str, str | None, str | None] | None:
        """What is known of a note file's bytes, in one lookup: the parsed note and its
        expectations (JSON, see :mod:`noteexec.serialize`), the key of what it runs (None when
        it runs nothing), and that run's stored facts (JSON, for :meth:`decode_facts`), if any.
        Each row is verified on its own: a forged parsed row gives None, forged facts give no facts."""
        connection = self._connect()
        if connection is None:
            return None
        try:
            row = connection.execute(
                "SELECT parsed.data, parsed.run_key, parsed.mac, results.facts, results.mac FROM parsed"
                " LEFT JOIN results ON results.key = parsed.run_key WHERE parsed.key = ?",
                (key,),
            ).fetchone()
        except sqlite3.Error as error:
            self._warn(f"cache read failed: {error}")
            return None
        if row is None:
            return None
        data, run, mac, facts, facts_mac = row
        if not self._authentic("parsed", key, data, run, mac):
            return None
        if facts is not None and not self._authentic("results", run, facts, None, facts_mac):
            facts = None
        return data, run, facts

    def put_parsed(self, key: str, data: str, run_key: str | None) -> None:
        connection = self._connect()
        if connection is None:
            return
        try:
            connection.execute(
                "INSERT OR REPLACE INTO parsed (key, data, run_key, stored, mac) VALUES (?, ?, ?, ?, ?)",
                (key, data, run_key, time.time(), entry_mac(self.key.secret, "parsed", key, data, run_key)),
            )
        except sqlite3.Error as error:
            self._warn(f"cache write failed: {error}")

    def info(self) -> CacheInfo:
        """What the cache holds, read without writing anything: no folder or database is made
        (``cache info`` may be run anywhere, a vault included), none is upgraded or repaired."""
        size = sum(
            path.stat().st_size for path in self.directory.glob(f"{DATABASE}*") if path.is_file()
        ) if self.directory.exists() else 0  # fmt: skip
        if not self.path.is_file():
            return CacheInfo(self.path, 0, size, None, None)
        try:
            read_only = f"{self.path.resolve().as_uri()}?mode=ro"
            with contextlib.closing(sqlite3.connect(read_only, uri=True)) as connection:
                entries, oldest, newest = connection.execute(
                    "SELECT COUNT(*), MIN(stored), MAX(stored) FROM results"
                ).fetchone()
        except sqlite3.Error as error:
            self._warn(f"cache unreadable: {self.path}: {error}")
            return CacheInfo(self.path, 0, size, None, None)
        return CacheInfo(self.path, entries, size, oldest, newest)

    def clear(self) -> int:
        connection = self._connect()
        if connection is None:
            return 0
        (entries,) = connection.execute("SELECT COUNT(*) FROM results").fetchone()
        connection.execute("DELETE FROM results")
        connection.execute("DELETE FROM parsed")
        connection.execute("VACUUM")
        return int(entries)

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def default_cache_dir(vault: Path) -> Path:
    """``.noteexec/`` beside the vault (never inside it: noteexec does not write into a vault)."""
    root = vault.resolve()
    if root.is_file():
        root = root.parent
    return root.parent / ".noteexec"


def open_cache(
    vault: Path, cache_dir: Path | None = None, enabled: bool = True, key_files: Iterable[Path] = ()
) -> tuple[ResultCache | None, str]:
    """The cache a command should use and the environment fingerprint for its keys.

    Precedence: ``--cache-dir``, then ``NOTEEXEC_CACHE_DIR``, then ``.noteexec/`` beside the vault.
    """
    if not enabled:
        return None, ""
    directory = cache_dir or (
        Path(os.environ["NOTEEXEC_CACHE_DIR"]) if os.environ.get("NOTEEXEC_CACHE_DIR") else None
    )
    root = vault.resolve()
    if root.is_file():
        root = root.parent
    cache = ResultCache(directory or default_cache_dir(vault), vault=root)
    return cache, environment_fingerprint(key_files)
