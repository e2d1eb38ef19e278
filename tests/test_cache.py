"""The result cache, through the command line as CI uses it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from noteexec.cache import ResultCache, environment_fingerprint, run_key
from noteexec.check import NoteFile, check
from noteexec.config import Config
from noteexec.facts import NoteFacts
from noteexec.parse import read_note
from noteexec.sandbox import BlockRun, NoteRun, Sandbox
from tests.conftest import REPO, callout, fence, noteexec

SUCCESS = callout("success", "w = torch.ones(1, requires_grad=True)\n(w * 2).sum().backward()")
FAILURE = callout(
    "fail", "torch.ones(1).backward()  # RuntimeError: element 0 of tensors does not require grad"
)


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
    cache = ResultCache(tmp_path)
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
    with sqlite3.connect(tmp_path / "results.sqlite3") as old:
        old.execute("CREATE TABLE parsed (key TEXT PRIMARY KEY, data TEXT NOT NULL, stored REAL NOT NULL)")
        old.execute("INSERT INTO parsed VALUES ('k', '{}', 0)")
        old.execute("PRAGMA user_version = 2")
    old.close()
    cache = ResultCache(tmp_path)
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
    first = ResultCache(tmp_path)
    first.put_parsed("k", "{}", None)
    first.close()
    locker = sqlite3.connect(tmp_path / "results.sqlite3", isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    monkeypatch.setattr(ResultCache, "BUSY_TIMEOUT", 0.2)
    blocked = ResultCache(tmp_path)
    assert blocked.get_parsed("k") is None
    assert [warning.split(": ")[0] for warning in blocked.warnings] == ["cache disabled"]
    locker.execute("COMMIT")
    locker.close()
    assert sorted(path.name for path in tmp_path.iterdir() if "corrupt" in path.name) == []
    again = ResultCache(tmp_path)
    assert again.get_parsed("k") == ("{}", None, None)
    again.close()
