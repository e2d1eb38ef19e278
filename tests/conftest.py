"""Shared fixtures: one warm sandbox per test session, and helpers to write fixture notes."""

from __future__ import annotations

import importlib.util
import os
import shlex
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from noteexec.check import check
from noteexec.config import Config
from noteexec.results import NoteFile, NoteResult
from noteexec.sandbox import Sandbox

REPO = Path(__file__).resolve().parent.parent
SEED_NOTE = REPO / "tests" / "fixtures" / "seed-note.md"
"""The original note this project was created from, byte for byte (``../shared/seed-note.md`` in
the workspace; see tests/test_notes.py), kept here so that a clone anywhere can run the tests."""
WORKSPACE_SEED_NOTE = REPO.parent / "shared" / "seed-note.md"


def noteexec(
    *arguments: str | Path, cwd: Path = REPO, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the command line as a user does: a new process, output captured."""
    return subprocess.run(
        [sys.executable, "-m", "noteexec", *map(str, arguments)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
        env={**os.environ, **env} if env else None,
    )


def callout(kind: str, code: str, title: str = "", body: str = "", lang: str = "python") -> str:
    """A callout holding one fenced block, every line prefixed with '> '."""
    lines = [f"[!{kind}] {title}".rstrip()]
    if body:
        lines.append(body)
    lines.append(f"```{lang}")
    lines.extend(textwrap.dedent(code).strip("\n").splitlines())
    lines.append("```")
    return "\n".join(f"> {line}".rstrip() for line in lines) + "\n"


def fence(code: str, lang: str = "python") -> str:
    return f"```{lang}\n{textwrap.dedent(code).strip(chr(10))}\n```\n"


@pytest.fixture(scope="session")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(parallel=2) as shared:
        yield shared


RunNote = Callable[..., NoteResult]


@pytest.fixture
def run_note(tmp_path: Path, sandbox: Sandbox) -> RunNote:
    """Write ``text`` as a note in a fresh vault and check it with the shared sandbox."""

    def run(text: str, name: str = "note.md", config: Config | None = None) -> NoteResult:
        vault = tmp_path / "vault"
        vault.mkdir(exist_ok=True)
        path = vault / name
        path.write_text(text, encoding="utf-8")
        [result] = check([NoteFile(path, vault)], config or Config(), sandbox)
        return result

    return run


def outcomes(result: NoteResult) -> list[str]:
    return [block.verdict.outcome for block in result.blocks]


@pytest.fixture
def no_torch(tmp_path: Path) -> dict[str, str]:
    """An environment where importing torch fails (a worker that starts cannot run a note),
    though torch looks the same from outside: the same build, read from its ``version.py``."""
    fake = tmp_path / "fake-torch"
    (fake / "torch").mkdir(parents=True)
    (fake / "torch" / "__init__.py").write_text("raise ImportError('torch is not available in this test')\n")
    real = importlib.util.find_spec("torch")
    assert real is not None and real.origin is not None
    shutil.copy(Path(real.origin).with_name("version.py"), fake / "torch" / "version.py")
    return {"PYTHONPATH": os.pathsep.join([str(fake), str(REPO)])}


@pytest.fixture(autouse=True)
def own_state_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test keeps noteexec's cache key in a folder of its own, never in the real home, and
    never inside a vault it checks (pytester points HOME at the vault)."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("state")))


def _closed_ancestor(path: str) -> Path | None:
    """The highest folder above ``path`` that others cannot enter (``/root`` for pyenv's Python)."""
    for folder in reversed(Path(path).parents):
        if folder != Path("/") and not folder.stat().st_mode & 0o001:
            return folder
    return None


def as_nobody(command: list[str], tmp_path: Path, binds: dict[Path, str]) -> list[str]:
    """``command`` run as nobody (uid 65534; run it as root) in a private mount namespace.

    There nobody reaches this Python (a folder it cannot enter, such as ``/root`` for pyenv,
    gets a fresh open tmpfs holding only the Python, on the same path), this checkout (on
    ``/mnt/src``, first on ``PYTHONPATH``), each of ``binds`` (opened to everyone to read) and a
    state folder of its own (``XDG_STATE_HOME``: the cache key). It starts in ``/mnt``.
    """
    if sys.prefix != sys.base_prefix:
        pytest.fail("the ordinary-user tests need the tests to run in a base Python, not a virtualenv")
    prefix = sys.base_prefix
    state = tmp_path / "nobody-state"
    state.mkdir(mode=0o700)
    os.chown(state, 65534, 65534)
    for host in binds:
        for path in (host, *host.rglob("*")):
            os.chmod(path, 0o755 if path.is_dir() else 0o644)
    steps = ["set -e", "mount -t tmpfs noteexec-test /mnt", "mkdir /mnt/python"]
    steps.append(f"mount --bind {shlex.quote(prefix)} /mnt/python")
    closed = _closed_ancestor(prefix)
    if closed is not None:
        steps.append(f"mount -t tmpfs -o mode=0755 noteexec-test {shlex.quote(str(closed))}")
        steps.append(f"mkdir -p {shlex.quote(prefix)}")
        steps.append(f"mount --move /mnt/python {shlex.quote(prefix)}")
    for host, inside in {REPO: "/mnt/src", state: "/mnt/state", **binds}.items():
        steps.append(f"mkdir -p {shlex.quote(inside)}")
        steps.append(f"mount --bind {shlex.quote(str(host))} {shlex.quote(inside)}")
    nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *command]
    variables = "PYTHONPATH=/mnt/src HOME=/nonexistent XDG_STATE_HOME=/mnt/state"
    steps += ["cd /mnt", f"exec env {variables} {shlex.join(nobody)}"]
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", "; ".join(steps)]


# --- processes, as /proc lists them ------------------------------------------------------------


def processes_with(marker: str) -> list[int]:
    """Processes whose command line holds ``marker``."""
    return [pid for pid in _pids() if marker.encode() in _proc_bytes(pid, "cmdline")]


def processes_named(name: str) -> list[int]:
    """Processes whose name (``comm``, as ``prctl(PR_SET_NAME)`` sets it) is ``name``."""
    return [pid for pid in _pids() if _proc_bytes(pid, "comm").strip() == name.encode()]


def parent_of(pid: int) -> int:
    """``pid``'s parent, or 0 once it is gone."""
    try:
        return int(_proc_bytes(pid, "stat").rsplit(b")", 1)[1].split()[1])
    except (IndexError, ValueError):
        return 0


def ancestors(pid: int) -> list[int]:
    """``pid``'s parent, its parent's, and so on up to PID 1 (short of it if one is gone)."""
    found: list[int] = []
    while pid > 1 and (pid := parent_of(pid)):
        found.append(pid)
    return found


def _pids() -> list[int]:
    return [int(entry) for entry in os.listdir("/proc") if entry.isdigit()]


def _proc_bytes(pid: int, name: str) -> bytes:
    try:
        return Path(f"/proc/{pid}/{name}").read_bytes()
    except OSError:
        return b""
