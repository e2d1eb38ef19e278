"""The result cache, through the command line as CI uses it."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from noteexec.cache import ResultCache, open_cache
from noteexec.cache.authentication import SECRET_VARIABLE, CacheKey, entry_mac, key_file_path
from noteexec.cache.keys import environment_fingerprint, run_key
from noteexec.check import check
from noteexec.config import Config
from noteexec.facts import NoteFacts
from noteexec.parse import read_note
from noteexec.results import NoteFile
from noteexec.sandbox import BlockRun, NoteRun, Sandbox, sandbox_environment
from tests.conftest import REPO, callout, fence, noteexec

SUCCESS = callout("success", "w = torch.ones(1, requires_grad=True)\n(w * 2).sum().backward()")
FAILURE = callout(
    "fail", "torch.ones(1).backward()  # RuntimeError: element 0 of tensors does not require grad"
)
WRONG = fence("print(1)  # 2")
"""A note that really fails: it prints 1 where it documents 2."""
FORGED = "not written by this machine's noteexec"


@pytest.fixture(autouse=True)
def state_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test's own key file folder (the runs it starts inherit it): none touches the real home."""
    state = tmp_path / "state"
    monkeypatch.setenv("XDG_STATE_HOME", str(state))
    monkeypatch.delenv(SECRET_VARIABLE, raising=False)
    return state


def check_json(vault: Path, *extra: str | Path, env: dict[str, str] | None = None) -> dict:
    result = noteexec("check", "--format", "json", vault, *extra, env=env)
    assert result.returncode in (0, 1), result.stderr
    return json.loads(result.stdout)


def cached_flags(document: dict) -> list[bool]:
    return [note["cached"] for note in document["notes"]]


@pytest.fixture
def vault(tmp_path: Path) -> Path:
    vault = tmp_path / "project" / "vault"
    vault.mkdir(parents=True)
    (vault / "a.md").write_text("# A\n\nProse.\n\n" + SUCCESS, encoding="utf-8")
    (vault / "b.md").write_text("# B\n\n" + FAILURE, encoding="utf-8")
    return vault


def test_second_run_hits_and_needs_no_worker(vault: Path, no_torch: dict[str, str]) -> None:
    first = check_json(vault)
    assert cached_flags(first) == [False, False]
    assert (vault.parent / ".noteexec" / "results.sqlite3").exists()
    assert not any(path.name.startswith(".noteexec") for path in vault.iterdir())
    second = check_json(vault, env=no_torch)
    assert cached_flags(second) == [True, True]
    assert second["summary"] == {**first["summary"], "duration": second["summary"]["duration"]}
    assert [n["blocks"] for n in second["notes"]] == [
        [{**b, "duration": b["duration"]} for b in n["blocks"]] for n in first["notes"]
    ]


def test_prose_edits_hit_code_edits_miss(vault: Path) -> None:
    check_json(vault)
    note = vault / "a.md"
    note.write_text(note.read_text().replace("Prose.", "Much better prose.\n\nWith more lines."))
    (vault / "b.md").write_text((vault / "b.md").read_text().replace("torch.ones(1)", "torch.zeros(1)"))
    assert cached_flags(check_json(vault)) == [True, False]


def test_editing_a_documented_message_or_output_in_a_comment_hits_and_is_judged_again(vault: Path) -> None:
    a, b = vault / "a.md", vault / "b.md"
    a.write_text(a.read_text() + "\n" + fence("print(2)  # 2"))
    assert [note["status"] for note in check_json(vault)["notes"]] == ["passed", "passed"]
    a.write_text(a.read_text().replace("# 2", "# 3"))
    b.write_text(b.read_text().replace("does not require grad", "requires a miracle"))
    document = check_json(vault)
    assert cached_flags(document) == [True, True]
    assert [note["status"] for note in document["notes"]] == ["failed", "failed"]
    b.write_text(b.read_text().replace("# RuntimeError", "\n> # RuntimeError"))  # a line more: runs again
    assert cached_flags(check_json(vault)) == [True, False]


def test_local_modules_a_note_imports_are_part_of_its_key(vault: Path) -> None:
    shared = vault  # the vault on PYTHONPATH: the sandbox sees it, read-only
    (shared / "losses").mkdir()
    (shared / "helpers.py").write_text(
        "from losses import scale\ndef loss(w):\n    return (w * scale()).sum()\n"
    )
    (shared / "losses" / "__init__.py").write_text("from losses.values import scale\n")
    (shared / "losses" / "values.py").write_text("def scale():\n    return 3\n")
    (vault / "c.md").write_text(fence("from helpers import loss\nprint(loss(torch.ones(1)))  # tensor(3.)"))
    env = {"PYTHONPATH": os.pathsep.join([str(shared), str(REPO)])}
    first = check_json(vault, env=env)
    assert (cached_flags(first), first["notes"][2]["status"]) == ([False, False, False], "passed")
    assert cached_flags(check_json(vault, env=env)) == [True, True, True]
    (shared / "losses" / "values.py").write_text("def scale():\n    return 4\n")  # imported by an import
    document = check_json(vault, env=env)
    assert cached_flags(document) == [True, True, False]
    assert document["notes"][2]["status"] != "passed"
    assert document["notes"][2]["blocks"][0]["stdout"] == "tensor(4.)\n"  # run again, with the new module


def test_config_and_key_files_are_part_of_the_key(vault: Path) -> None:
    lock = vault.parent / "requirements.lock"
    lock.write_text("torch==2.13.0\n")
    check_json(vault, "--cache-key-file", lock)
    assert cached_flags(check_json(vault, "--cache-key-file", lock)) == [True, True]
    lock.write_text("torch==2.13.0\nnumpy==2\n")
    assert cached_flags(check_json(vault, "--cache-key-file", lock)) == [False, False]
    (vault.parent / "noteexec.toml").write_text('prelude = "import torch"\n')
    assert cached_flags(check_json(vault, "--cache-key-file", lock)) == [False, False]


def test_no_cache_and_cache_dir_and_environment_variable(vault: Path, tmp_path: Path) -> None:
    check_json(vault, "--no-cache")
    assert not (vault.parent / ".noteexec").exists()
    elsewhere = tmp_path / "ci-cache"
    check_json(vault, "--cache-dir", elsewhere)
    assert (elsewhere / "results.sqlite3").exists()
    assert cached_flags(check_json(vault, env={"NOTEEXEC_CACHE_DIR": str(elsewhere)})) == [True, True]


def test_cache_info_and_clear(vault: Path) -> None:
    check_json(vault)
    info = noteexec("cache", "info", vault)
    assert info.returncode == 0
    assert "entries: 2" in info.stdout
    cleared = noteexec("cache", "clear", vault)
    assert "removed 2" in cleared.stdout
    assert cached_flags(check_json(vault)) == [False, False]


def test_cache_info_never_writes_and_shows_the_cache_check_uses(vault: Path) -> None:
    (vault / "notes").mkdir()  # `cache info` run inside the vault, about a folder in it
    before = sorted(vault.parent.rglob("*"))
    info = noteexec("cache", "info", "notes", cwd=vault)
    assert info.returncode == 0, info.stderr
    assert f"cache: {vault / '.noteexec' / 'results.sqlite3'}" in info.stdout
    assert "entries: 0" in info.stdout
    assert sorted(vault.parent.rglob("*")) == before  # nothing made, in the vault or beside it
    check_json(vault)
    here = noteexec("cache", "info", ".", cwd=vault)
    assert f"cache: {vault.parent / '.noteexec' / 'results.sqlite3'}" in here.stdout  # as `check .` uses
    assert "entries: 2" in here.stdout
    assert not (vault / ".noteexec").exists()
    missing = noteexec("cache", "info", "nope", cwd=vault)
    assert (missing.returncode, missing.stdout) == (2, "")
    assert "nope: no such file or directory" in missing.stderr


def test_cache_travels_to_another_machine_path(vault: Path, tmp_path: Path) -> None:
    check_json(vault)
    moved = tmp_path / "elsewhere" / "checkout" / "vault"
    shutil.copytree(vault, moved)
    shutil.copytree(vault.parent / ".noteexec", moved.parent / ".noteexec")
    assert cached_flags(check_json(moved)) == [True, True]


def test_corrupt_cache_is_set_aside_with_a_warning(vault: Path) -> None:
    check_json(vault)
    database = vault.parent / ".noteexec" / "results.sqlite3"
    for suffix in ("-wal", "-shm"):
        Path(f"{database}{suffix}").unlink(missing_ok=True)
    database.write_bytes(b"SQLite format 3\x00" + os.urandom(4096))
    result = noteexec("check", vault)
    assert result.returncode == 0
    assert "corrupt" in result.stderr
    assert list(database.parent.glob("results.sqlite3.corrupt-*"))
    assert cached_flags(check_json(vault)) == [True, True]


def test_two_runs_at_once_share_the_cache(vault: Path) -> None:
    for index in range(6):
        (vault / f"extra{index}.md").write_text(fence(f"x = {index}\nprint(x)  # {index}"))
    command = [sys.executable, "-m", "noteexec", "check", "--format", "json", str(vault)]
    runs = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO) for _ in range(2)
    ]
    outputs = [run.communicate(timeout=300) for run in runs]
    for (stdout, stderr), run in zip(outputs, runs, strict=True):
        assert run.returncode in (0, 1), stderr
        assert json.loads(stdout)["summary"]["notes"] == 8
    assert all(cached_flags(check_json(vault)))


def test_a_run_killed_midway_leaves_a_usable_cache(vault: Path) -> None:
    for index in range(30):
        (vault / f"slow{index:02d}.md").write_text(fence(f"import time\ntime.sleep(0.05)\nx = {index}"))
    run = subprocess.Popen(
        [sys.executable, "-m", "noteexec", "check", "--jobs", "1", str(vault)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        cwd=REPO,
        text=True,
    )
    assert run.stdout is not None
    reported = 0
    for line in run.stdout:  # killed once a few notes are through, however loaded the machine is
        reported += line.startswith("PASS")
        if reported == 3:
            break
    run.send_signal(signal.SIGKILL)
    run.wait()
    document = check_json(vault)
    assert document["summary"]["notes"] == 32
    assert any(cached_flags(document))
    assert not all(cached_flags(document))


def test_timeouts_are_not_cached(tmp_path: Path) -> None:
    cache = ResultCache(tmp_path / "cache")
    run = NoteRun(path="/x/a.md", blocks=(BlockRun(1, "x = 1\n"),))
    key = run_key(run, environment_fingerprint())
    cache.put(key, run, NoteFacts(blocks=(), ended="timed out after 1 s"))
    assert cache.get(key, [(1, 1)]) is None
    cache.put(key, run, NoteFacts(blocks=()))
    assert cache.get(key, [(1, 1)]) == NoteFacts(blocks=())
    with sqlite3.connect(cache.path) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_key_ignores_paths_but_not_code() -> None:
    fingerprint = environment_fingerprint()
    here = NoteRun(path="/a/n.md", readonly=("/a",), blocks=(BlockRun(1, "x = 1\n"),))
    there = NoteRun(path="/b/c/n.md", readonly=("/b/c",), blocks=(BlockRun(1, "x = 1\n"),))
    changed = NoteRun(path="/a/n.md", readonly=("/a",), blocks=(BlockRun(1, "x = 2\n"),))
    moved = NoteRun(path="/a/n.md", readonly=("/a",), blocks=(BlockRun(5, "x = 1\n"),))
    assert run_key(here, fingerprint) == run_key(there, fingerprint)
    assert run_key(here, fingerprint) != run_key(changed, fingerprint)
    assert run_key(here, fingerprint) == run_key(moved, fingerprint)


def test_cached_facts_follow_blocks_that_moved(vault: Path) -> None:
    note = vault / "c.md"
    code = "def f():\n    raise ValueError('v')"
    note.write_text(fence(code) + "\n" + callout("fail", "print('hi')  # hi\nf()  # ValueError: v"))
    first = check_json(vault)["notes"][2]
    note.write_text("# Title\n\nNew prose\nover lines.\n\n" + note.read_text())
    second = check_json(vault)["notes"][2]
    assert second["cached"]
    assert (
        [b["outcome"] for b in second["blocks"]]
        == [b["outcome"] for b in first["blocks"]]
        == ["passed", "passed"]
    )
    assert [b["line"] for b in second["blocks"]] == [b["line"] + 5 for b in first["blocks"]]


def test_a_cache_of_an_older_schema_is_emptied_and_used(tmp_path: Path) -> None:
    (tmp_path / "cache").mkdir()
    with sqlite3.connect(tmp_path / "cache" / "results.sqlite3") as old:
        old.execute("CREATE TABLE parsed (key TEXT PRIMARY KEY, data TEXT NOT NULL, stored REAL NOT NULL)")
        old.execute("INSERT INTO parsed VALUES ('k', '{}', 0)")
        old.execute("PRAGMA user_version = 2")
    old.close()
    cache = ResultCache(tmp_path / "cache")
    assert cache.get_parsed("k") is None
    cache.put_parsed("k", "{}", "run")
    assert cache.get_parsed("k") == ("{}", "run", None)
    assert cache.warnings == []
    cache.close()


def test_a_note_read_from_the_cache_is_the_note_parsing_gives(tmp_path: Path, sandbox: Sandbox) -> None:
    vault = tmp_path / "vault"
    vault.mkdir()
    text = (
        "\ufeff---\r\ntitle: 计算图 🔥\r\ndate: 2025-08-16\r\n---\r\n\r\n# 标题\r"
        + callout(
            "fail", "x = torch.ones(1)  # 报错! 🔥\nx.backward()  # RuntimeError: element 0 of tensors"
        ).replace("\n", "\r\n")
        + "\r\n%% ```python\r\nimport math\r\n``` %%\r\n"
    )
    path = vault / "n.md"
    path.write_bytes(text.encode("utf-8"))
    cache = ResultCache(tmp_path / "cache")
    fingerprint = environment_fingerprint()
    [first] = check([NoteFile(path, vault)], Config(), sandbox, cache=cache, fingerprint=fingerprint)
    [second] = check([NoteFile(path, vault)], Config(), sandbox, cache=cache, fingerprint=fingerprint)
    cache.close()
    parsed = read_note(path)
    assert (first.cached, second.cached) == (False, True)
    assert second.note == first.note == parsed
    assert second.note.frontmatter == {"title": "计算图 🔥", "date": "2025-08-16"}
    assert second.note.source == parsed.source and "\r" not in parsed.source
    assert second.note.lines[parsed.blocks[0].line - 1].startswith("> ```python")
    assert [b.expectation for b in second.blocks] == [b.expectation for b in first.blocks]
    assert [b.verdict for b in second.blocks] == [b.verdict for b in first.blocks]


def test_a_cache_that_cannot_be_opened_warns_once_and_is_not_tried_again(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    cache = ResultCache(tmp_path / "file" / "cache")
    for _ in range(3):
        assert cache.get("key", []) is None
        cache.put("key", NoteRun(path="/n.md", blocks=(BlockRun(1, "x = 1\n"),)), NoteFacts(blocks=()))
    assert len(cache.warnings) == 1 and cache.warnings[0].startswith("cache disabled: ")


def test_a_cache_locked_by_another_run_is_waited_for_then_left_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Busy is not corrupt: the other run's database must never be set aside."""
    folder = tmp_path / "cache"
    first = ResultCache(folder)
    first.put_parsed("k", "{}", None)
    first.close()
    locker = sqlite3.connect(folder / "results.sqlite3", isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    monkeypatch.setattr(ResultCache, "BUSY_TIMEOUT", 0.2)
    blocked = ResultCache(folder)
    assert blocked.get_parsed("k") is None
    assert [warning.split(": ")[0] for warning in blocked.warnings] == ["cache disabled"]
    locker.execute("COMMIT")
    locker.close()
    assert sorted(path.name for path in folder.iterdir() if "corrupt" in path.name) == []
    again = ResultCache(folder)
    assert again.get_parsed("k") == ("{}", None, None)
    again.close()


# Authentication: a row this machine's noteexec did not write never decides a verdict.


def database_of(vault: Path) -> Path:
    return vault.parent / ".noteexec" / "results.sqlite3"


def execute(database: Path, statement: str) -> int:
    """Edit the cache file directly, as anyone with write access to it can; rows changed."""
    connection = sqlite3.connect(database)
    try:
        with connection:
            return connection.execute(statement).rowcount
    finally:
        connection.close()


def statuses(document: dict) -> list[str]:
    return [note["status"] for note in document["notes"]]


def test_edited_facts_are_ignored_with_a_warning_and_the_note_runs_again(vault: Path) -> None:
    (vault / "c.md").write_text(WRONG)
    assert statuses(check_json(vault)) == ["passed", "passed", "failed"]
    edited = execute(  # what it printed becomes what it documents: a forged pass
        database_of(vault), r"""UPDATE results SET facts = replace(facts, '"1\n"', '"2\n"')"""
    )
    assert edited == 3  # every row is rewritten; only c.md's facts changed
    result = noteexec("check", "--format", "json", vault)
    document = json.loads(result.stdout)
    assert cached_flags(document) == [True, True, False]
    assert statuses(document) == ["passed", "passed", "failed"]
    assert document["notes"][2]["blocks"][0]["stdout"] == "1\n"
    assert f"cache: 1 entry {FORGED} was ignored" in result.stderr
    again = noteexec("check", "--format", "json", vault)  # the real facts replaced the forged ones
    assert cached_flags(json.loads(again.stdout)) == [True, True, True]
    assert FORGED not in again.stderr


def test_a_cache_written_on_another_machine_hits_nothing(vault: Path, tmp_path: Path) -> None:
    """A cache committed to the repository, or copied in: forged, and authenticated under its
    author's own key (their noteexec wrote it; then they edited it and signed it again)."""
    (vault / "c.md").write_text(WRONG)
    attacker = tmp_path / "attacker" / "state"
    first = check_json(vault, env={"XDG_STATE_HOME": str(attacker)})
    secret = (attacker / "noteexec" / "cache.key").read_bytes()
    connection = sqlite3.connect(database_of(vault))
    with connection:
        for key, facts in connection.execute("SELECT key, facts FROM results").fetchall():
            facts = facts.replace(r'"1\n"', r'"2\n"')
            mac = entry_mac(secret, "results", key, facts)
            connection.execute("UPDATE results SET facts = ?, mac = ? WHERE key = ?", (facts, mac, key))
    connection.close()
    result = noteexec("check", "--format", "json", vault)
    document = json.loads(result.stdout)
    assert cached_flags(document) == [False, False, False]
    assert statuses(document) == statuses(first) == ["passed", "passed", "failed"]
    assert f"cache: 6 entries {FORGED} were ignored" in result.stderr  # 3 parsed notes, 3 results
    assert cached_flags(check_json(vault)) == [True, True, True]


def test_a_forged_parsed_note_is_ignored_and_the_note_parsed_again(vault: Path) -> None:
    (vault / "c.md").write_text(WRONG)
    check_json(vault)
    forged = execute(  # the documented output becomes what it printed: a forged pass
        database_of(vault),
        """UPDATE parsed SET data = replace(data, '"outputs": [["2"', '"outputs": [["1"')""",
    )
    assert forged == 3
    result = noteexec("check", "--format", "json", vault)
    document = json.loads(result.stdout)
    assert statuses(document) == ["passed", "passed", "failed"]
    assert cached_flags(document) == [True, True, True]  # its facts are authentic: not run again
    assert f"cache: 1 entry {FORGED} was ignored" in result.stderr


def test_the_facts_joined_to_a_parsed_note_are_verified_on_their_own(tmp_path: Path) -> None:
    cache = ResultCache(tmp_path / "cache")
    run = NoteRun(path="/x/a.md", blocks=(BlockRun(1, "print(1)\n"),))
    other = NoteRun(path="/x/b.md", blocks=(BlockRun(1, "print(2)\n"),))
    cache.put("run-a", run, NoteFacts(blocks=(), ended="a"))
    cache.put("run-b", other, NoteFacts(blocks=(), ended="b"))
    cache.put_parsed("note-a", "{}", "run-a")
    assert cache.get_parsed("note-a") is not None and cache.get_parsed("note-a")[2] is not None
    execute(  # b's authentic row, moved under a's key
        cache.path,
        "UPDATE results SET (facts, mac) = (SELECT facts, mac FROM results WHERE key = 'run-b')"
        " WHERE key = 'run-a'",
    )
    assert cache.get_parsed("note-a") == ("{}", "run-a", None)
    assert cache.get("run-a", [(1, 1)]) is None
    assert cache.get("run-b", [(1, 1)]) == NoteFacts(blocks=(), ended="b")
    assert cache.warnings == [f"cache: 1 entry {FORGED} was ignored (edited, copied or committed?); "
                              "their notes were parsed or run again"]  # fmt: skip
    execute(cache.path, "UPDATE parsed SET run_key = 'run-b'")
    assert cache.get_parsed("note-a") is None
    assert len(cache.warnings) == 1 and cache.warnings[0].startswith(f"cache: 2 entries {FORGED} were")
    cache.put_parsed("note-a", "{}", "run-a")
    cache.put("run-a", run, NoteFacts(blocks=(), ended="a"))  # a new result overwrites the forged row
    assert cache.get_parsed("note-a") is not None and cache.get_parsed("note-a")[2] is not None
    cache.close()


def test_a_cache_written_under_another_key_hits_nothing(tmp_path: Path) -> None:
    run = NoteRun(path="/x/a.md", blocks=(BlockRun(1, "x = 1\n"),))
    committed = ResultCache(tmp_path / "cache", key=CacheKey(b"A" * 32, "test", True))
    committed.put("run", run, NoteFacts(blocks=()))
    committed.put_parsed("note", "{}", "run")
    committed.close()
    here = ResultCache(tmp_path / "cache", key=CacheKey(b"B" * 32, "test", True))
    assert here.get("run", [(1, 1)]) is None
    assert here.get_parsed("note") is None
    assert len(here.warnings) == 1 and here.warnings[0].startswith(f"cache: 2 entries {FORGED} were")
    here.close()


def test_the_same_secret_hits_on_another_machine_and_never_reaches_a_note(
    vault: Path, tmp_path: Path, no_torch: dict[str, str]
) -> None:
    """CI: the runner restoring ``actions/cache`` is another machine; the repository secret is shared."""
    (vault / "env.md").write_text(fence("import os\nprint(os.environ.get('NOTEEXEC_CACHE_SECRET'))  # None"))
    secret = {SECRET_VARIABLE: secrets.token_hex(32)}
    first = check_json(vault, env={**secret, "XDG_STATE_HOME": str(tmp_path / "runner-1")})
    assert statuses(first) == ["passed", "passed", "passed"]
    restored = tmp_path / "runner-2" / "checkout" / "vault"
    shutil.copytree(vault, restored)
    shutil.copytree(vault.parent / ".noteexec", restored.parent / ".noteexec")
    result = noteexec(
        "check", "--format", "json", restored,
        env={**secret, "XDG_STATE_HOME": str(tmp_path / "runner-2" / "state"), **no_torch},
    )  # fmt: skip
    assert cached_flags(json.loads(result.stdout)) == [True, True, True]
    assert "warning" not in result.stderr
    assert not (tmp_path / "runner-1").exists() and not (tmp_path / "runner-2" / "state").exists()
    assert SECRET_VARIABLE not in sandbox_environment({**os.environ, **secret})


def test_a_secret_is_any_string_and_an_empty_one_is_unset(
    tmp_path: Path, state_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SECRET_VARIABLE, "correct horse battery staple")
    words = ResultCache(tmp_path / "cache").key
    monkeypatch.setenv(SECRET_VARIABLE, "ab" * 32)
    hex_key = ResultCache(tmp_path / "cache").key
    assert words.lasting and hex_key.lasting and words.secret != hex_key.secret
    assert not state_home.exists()
    monkeypatch.setenv(SECRET_VARIABLE, "short")
    short = ResultCache(tmp_path / "cache")
    assert short.key.secret != words.secret and "shorter than" in short.warnings[0]
    monkeypatch.setenv(SECRET_VARIABLE, "")  # what GitHub gives a pull request from a fork
    assert ResultCache(tmp_path / "cache").key.source == str(key_file_path())
    assert (state_home / "noteexec" / "cache.key").exists()


def test_the_key_file_is_private_made_once_and_shared_by_runs_at_once(
    tmp_path: Path, state_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = state_home / "noteexec" / "cache.key"
    token_bytes = secrets.token_bytes
    raced: list[bool] = []
    racing: list[CacheKey] = []

    def new_key(size: int) -> bytes:
        """Another run makes its key between this run's look for one and the end of its making."""
        if not raced:
            raced.append(True)
            racing.append(ResultCache(tmp_path / "other").key)
        return token_bytes(size)

    monkeypatch.setattr(secrets, "token_bytes", new_key)
    first = ResultCache(tmp_path / "cache")
    assert first.key.secret == racing[0].secret == path.read_bytes()
    assert len(first.key.secret) == 32 and first.key.lasting and first.warnings == []
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) & 0o077 == 0
    assert list(path.parent.iterdir()) == [path]  # no temporary file left behind
    monkeypatch.setattr(secrets, "token_bytes", token_bytes)
    run = NoteRun(path="/x/a.md", blocks=(BlockRun(1, "x = 1\n"),))
    first.put("run", run, NoteFacts(blocks=()))
    first.close()
    later = ResultCache(tmp_path / "cache")
    assert later.get("run", [(1, 1)]) == NoteFacts(blocks=())
    assert later.key.secret == path.read_bytes() == racing[0].secret
    later.close()
    path.chmod(0o644)  # readable by others: whoever reads it can forge entries
    exposed = ResultCache(tmp_path / "cache")
    assert exposed.get("run", [(1, 1)]) is None
    assert not exposed.key.lasting and "not yours alone" in exposed.warnings[0]
    assert len(exposed.warnings) == 1  # the per-run key says why nothing hits; no forgery is claimed
    exposed.close()


@pytest.mark.parametrize("place", ["cache", "vault", "symlink into the vault"])
def test_a_key_file_inside_the_cache_or_the_vault_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, place: str
) -> None:
    vault, folder = tmp_path / "project" / "vault", tmp_path / "ci-cache"
    vault.mkdir(parents=True)
    state = {"cache": folder / "state", "vault": vault / "state"}.get(place, tmp_path / "link" / "state")
    if place == "symlink into the vault":
        (tmp_path / "link").symlink_to(vault)
    monkeypatch.setenv("XDG_STATE_HOME", str(state))
    run = NoteRun(path=str(vault / "a.md"), blocks=(BlockRun(1, "x = 1\n"),))
    cache, _ = open_cache(vault, folder)
    assert cache is not None
    cache.put("run", run, NoteFacts(blocks=()))
    assert cache.get("run", [(1, 1)]) == NoteFacts(blocks=())  # a per-run key still serves this run
    assert not cache.key.lasting
    assert not (vault / "state").exists() and not (folder / "state").exists()
    [warning] = cache.warnings
    assert "would lie inside the" in warning and "will not hit across runs" in warning
    cache.close()
    later, _ = open_cache(vault, folder)
    assert later is not None and later.get("run", [(1, 1)]) is None
    later.close()
