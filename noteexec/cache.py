"""A result cache: facts of notes already run, keyed by everything that decides what runs.

Facts are cached, not verdicts: verdicts are recomputed by the (pure, fast) judge, so editing a
note's prose or its documented messages never needs a re-run, and a wrong verdict can never be
cached. The key holds what the note executes (prelude, hidden setup, visible blocks, limits),
the Python, torch and noteexec versions, the machine type, and optional lock-file hashes; it
holds no absolute path, so a cache restored on another machine (a CI cache) still hits.

Storage is one SQLite database in WAL mode: two runs at once are safe, a killed run loses at
most its own unwritten results, and a corrupt file is set aside and rebuilt with a warning.

Rows decide verdicts, and the database is a file anyone may commit, copy or edit: every row
carries an HMAC-SHA256 under a key kept outside the vault and the cache (``NOTEEXEC_CACHE_SECRET``,
else a per-user key file), and a row whose MAC does not verify is ignored with a warning, as if
it were absent.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import importlib.util
import io
import json
import os
import re
import secrets
import sqlite3
import sys
import tempfile
import time
import tokenize
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Protocol

from noteexec import __version__
from noteexec.display import unicode_path
from noteexec.facts import NoteFacts, Raised, SetupFailure
from noteexec.sandbox import BlockRun, NoteRun

DATABASE = "results.sqlite3"
SCHEMA_VERSION = 4
"""Also the database's ``user_version``: tables of another version are dropped and made anew."""

SECRET_VARIABLE = "NOTEEXEC_CACHE_SECRET"
"""A secret shared by the machines that share a cache (CI runners restoring ``actions/cache``)."""
KEY_BYTES = 32
SHORT_SECRET = 16
"""A secret of fewer characters is used, with a warning: it may be guessed."""
_MAC_DOMAIN = b"noteexec cache entry\0"


class CacheWarning(UserWarning):
    """Something went wrong with the cache; checking goes on without it."""


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


@cache
def _torch_build() -> str:
    """torch's ``version.py`` (its version and the commit it was built from), found without
    importing torch: the CLI process never imports it, and a warm run cannot wait for
    ``importlib.metadata`` either."""
    spec = importlib.util.find_spec("torch")
    if spec is None or spec.origin is None:
        return "absent"
    try:
        return Path(spec.origin).with_name("version.py").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return "unknown"


def environment_fingerprint(key_files: Iterable[Path] = ()) -> str:
    digest = hashlib.sha256()
    for part in (
        f"schema {SCHEMA_VERSION}",
        f"python {sys.version}",
        f"torch {_torch_build()}",
        f"noteexec {__version__} {_source_digest()}",
        f"machine {os.uname().machine}",
    ):
        digest.update(part.encode() + b"\0")
    for path in sorted(key_files):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def run_key(run: NoteRun, fingerprint: str) -> str:
    """What the note executes and under which limits.

    No path, so the key travels; no fence line either, so prose edits that move blocks still
    hit (the cached facts' line numbers are moved along, see :func:`relocate`).
    """

    def block(item: BlockRun) -> list[object]:
        return [without_comments(item.code), [line - item.line for line in item.echo_lines]]

    executed = [
        [block(item) for item in run.blocks],
        [block(item) for item in run.setup],
        run.prelude,
        run.timeout,
        run.memory_limit,
        run.file_size_limit,
        run.namespaces,
        local_modules("\n".join([run.prelude, *(item.code for item in (*run.setup, *run.blocks))])),
    ]
    payload = json.dumps(executed, ensure_ascii=False)
    return hashlib.sha256((fingerprint + "\0" + payload).encode()).hexdigest()


def without_comments(code: str) -> str:
    """``code`` with its comments cut off, line for line: what a comment says (a documented
    message or output) changes no fact, so editing it must not run the note again."""
    cuts: dict[int, int] = {}
    try:
        for token in tokenize.generate_tokens(io.StringIO(code).readline):
            if token.type == tokenize.COMMENT:
                cuts[token.start[0]] = token.start[1]
    except (tokenize.TokenError, SyntaxError):  # code that does not tokenize: keyed as it is
        return code
    lines = code.split("\n")
    return "\n".join(line[: cuts[number]] if number in cuts else line for number, line in enumerate(lines, 1))


def parsed_keys(config: object, fingerprint: str) -> Callable[[bytes], str]:
    """Keys of note files' bytes under one configuration: what parsing and expectations depend on."""
    prefix = hashlib.sha256(f"{fingerprint}\0{config!r}\0".encode())

    def key(content: bytes) -> str:
        digest = prefix.copy()
        digest.update(content)
        digest.update(local_modules(content.decode("utf-8", "replace")).encode())
        return digest.hexdigest()

    return key


_IMPORT = re.compile(r"^[\s>]*(?:from\s+([A-Za-z_]\w*)[\w.]*\s+import\b|import\s+([^#;\n]+))", re.MULTILINE)
LOCAL_MODULE_FILES = 1000
"""At most this many files of local modules are read for one key."""


def local_modules(text: str) -> str:
    """A digest of the local modules ``text`` imports, by content, and the ones they import.

    A note that does ``from helpers import compute_loss`` with its vault on ``PYTHONPATH``
    depends on ``helpers.py``: editing it must run the note again (a module's file, or every
    ``.py`` file of a package, found on ``PYTHONPATH`` as the note's Python finds it).
    """
    roots = [
        Path(entry)
        for entry in os.environ.get("PYTHONPATH", "").split(os.pathsep)
        if entry and not {"site-packages", "dist-packages"} & set(Path(entry).parts)  # torch's build is keyed
    ]
    digest = hashlib.sha256()
    pending, seen = _imported_names(text), set()
    read = 0
    while pending and read < LOCAL_MODULE_FILES:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        for root in roots:
            for file in _module_files(root, name):
                try:
                    data = file.read_bytes()
                except OSError:
                    continue
                read += 1
                digest.update(f"{file.relative_to(root).as_posix()}\0{len(data)}\0".encode() + data)
                pending |= _imported_names(data.decode("utf-8", "replace"))
    return digest.hexdigest() if read else ""


def _imported_names(text: str) -> set[str]:
    """Top-level module names of the ``import`` and ``from ... import`` lines in ``text``."""
    names = set()
    for module, modules in _IMPORT.findall(text):
        if module:
            names.add(module)
        for part in modules.split(","):
            words = part.split()
            if words and words[0].split(".")[0].isidentifier():
                names.add(words[0].split(".")[0])
    return names


def _module_files(root: Path, name: str) -> list[Path]:
    """``name.py`` in ``root``, or the ``.py`` files of the package ``name``, in a stable order."""
    module = root / f"{name}.py"
    if module.is_file():
        return [module]
    package = root / name
    if (package / "__init__.py").is_file():
        return sorted(path for path in package.rglob("*.py") if path.is_file())
    return []


class Located(Protocol):
    """A block of a note (a parsed one or one sent to the sandbox)."""

    @property
    def line(self) -> int: ...
    @property
    def code(self) -> str: ...


def block_spans(executed: Iterable[Located]) -> list[tuple[int, int]]:
    """(fence line, code lines) of the blocks a note executes, in order (setup first)."""
    return [(block.line, block.code.count("\n") + 1) for block in executed]


def facts_from_json(text: str, spans: list[tuple[int, int]]) -> NoteFacts:
    """Stored facts, their lines moved to where the blocks (at ``spans``) are now."""
    stored = json.loads(text)
    return relocate(NoteFacts.from_json(stored["facts"]), [tuple(span) for span in stored["spans"]], spans)


def relocate(facts: NoteFacts, stored: list[tuple[int, int]], current: list[tuple[int, int]]) -> NoteFacts:
    """Move the note lines in cached facts from where the blocks were to where they are now."""
    if stored == current:
        return facts

    def move(line: int | None) -> int | None:
        if line is None:
            return None
        for (old, length), (new, _) in zip(stored, current, strict=True):
            if old < line <= old + length:
                return new + line - old
        return line

    def moved(raised: Raised | None) -> Raised | None:
        return (
            None
            if raised is None
            else replace(raised, line=move(raised.line), top_line=move(raised.top_line))
        )

    blocks = tuple(
        replace(
            block,
            exception=moved(block.exception),
            warnings=tuple(moved(warning) for warning in block.warnings),
            stdout_by_line=tuple((move(line), text) for line, text in block.stdout_by_line),
        )
        for block in facts.blocks
    )
    setup = facts.setup_failure
    if setup is not None:
        setup = SetupFailure(move(setup.line), moved(setup.exception))
    return replace(facts, blocks=blocks, setup_failure=setup)


def cacheable(facts: NoteFacts) -> bool:
    """Timeouts and a sandbox that died depend on the moment, not on the note: never cached."""
    ended = facts.ended or ""
    return not (ended.startswith("timed out") or "sandbox worker died" in ended)


@dataclass(frozen=True)
class CacheInfo:
    path: Path
    entries: int
    size: int
    oldest: float | None
    newest: float | None


class ResultCache:
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
        return entries

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


_CACHED_STAGES = (
    "source.py",
    "markdown.py",
    "model.py",
    "parse.py",
    "expect",
    "serialize.py",
    "facts.py",
    "cache.py",
    "sandbox",
)
"""The modules, and packages (every ``.py`` file in them), whose output is cached."""


def _source_digest() -> str:
    """The code of the stages whose output is cached: a cache written by other code is never used.

    (Front ends such as reporters and the site are left out: changing them changes no fact.)
    """
    digest = hashlib.sha256()
    package = Path(__file__).parent
    stages = [package / name for name in _CACHED_STAGES]
    files = [path for stage in stages for path in (stage.glob("*.py") if stage.is_dir() else [stage])]
    for path in sorted(files):
        digest.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()
