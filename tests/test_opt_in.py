"""Opt-in: on a vault that was never written to be run, only the notes that ask are checked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from noteexec.config import ConfigError
from noteexec.config.files import load_config
from noteexec.parse import parse_note
from tests.conftest import fence, noteexec


def test_only_notes_that_opt_in_are_run_and_the_rest_are_counted(tmp_path: Path) -> None:
    vault = tmp_path / "vault"
    vault.mkdir()
    (vault / "noteexec.toml").write_text("opt_in = true\n")  # inside the vault: it only narrows
    (vault / "a-opted.md").write_text("---\nnoteexec: true\n---\n" + fence("print(2 + 2)  # 5"))
    (vault / "b-mapping.md").write_text("---\nnoteexec: {timeout: 30}\n---\n" + fence("print(1)  # 1"))
    (vault / "c-plain.md").write_text("# Old note\n\n" + fence("print(3)  # 3"))
    (vault / "d-prose.md").write_text("# Only prose\n")
    result = noteexec("check", "--no-cache", "--format", "json", vault)
    assert result.returncode == 1, result.stderr  # the opted-in mistake still fails
    report = json.loads(result.stdout)
    notes = {Path(note["path"]).name: note for note in report["notes"]}
    assert notes["a-opted.md"]["status"] == "failed" and notes["b-mapping.md"]["status"] == "passed"
    plain = notes["c-plain.md"]["blocks"][0]
    assert plain["outcome"] == "skipped" and "not opted in" in plain["message"]
    assert report["summary"]["not_opted_in"] == 1
    text = noteexec("check", "--no-cache", vault)
    assert "1 notes not opted in" in text.stdout
    everything = noteexec("check", "--no-cache", "--no-opt-in", "--format", "json", vault)
    report = json.loads(everything.stdout)
    assert report["summary"]["not_opted_in"] == 0
    assert [
        note["blocks"][0]["outcome"] for note in report["notes"] if note["path"].endswith("c-plain.md")
    ] == ["passed"]


def test_a_file_inside_the_folder_cannot_turn_opt_in_off(tmp_path: Path) -> None:
    notes = tmp_path / "repo" / "notes"
    notes.mkdir(parents=True)
    (tmp_path / "repo" / "noteexec.toml").write_text("opt_in = true\n")
    (notes / "noteexec.toml").write_text("opt_in = false\n")
    with pytest.raises(
        ConfigError, match=r"notes/noteexec\.toml:1: 'opt_in' may not be loosened.*--no-opt-in"
    ):
        load_config(notes)


@pytest.mark.parametrize(
    ("frontmatter", "skip", "problem"),
    [
        ("noteexec: true", False, None),
        ("noteexec: false", True, None),
        ("noteexec: 3", False, "must be true, false"),
    ],
)
def test_noteexec_may_be_true_false_or_a_mapping(frontmatter: str, skip: bool, problem: str | None) -> None:
    note = parse_note(f"---\n{frontmatter}\n---\n" + fence("x = 1"), Path("n.md"))
    assert note.options.skip is skip
    messages = [found.message for found in note.problems]
    assert messages == [] if problem is None else any(problem in message for message in messages)


def test_a_subfolders_configuration_scopes_or_tightens_its_own_notes(tmp_path: Path) -> None:
    vault = tmp_path / "vault"
    (vault / "course").mkdir(parents=True)
    (vault / "lab").mkdir()
    (vault / "loose").mkdir()
    (vault / "top.md").write_text(fence("print(1)  # 1"))
    (vault / "course" / "noteexec.toml").write_text('opt_in = true\nprelude = "import math"\n')
    (vault / "course" / "old.md").write_text(fence("print(2)  # 2"))
    (vault / "course" / "new.md").write_text(
        "---\nnoteexec: true\n---\n" + fence("print(math.pi > 3)  # True")
    )
    (vault / "lab" / "noteexec.toml").write_text('env = ["HOME"]\n')
    (vault / "lab" / "a.md").write_text(fence("x = 1"))
    (vault / "loose" / "pyproject.toml").write_text("[tool.noteexec]\ntimeout = 120\n")
    (vault / "loose" / "b.md").write_text(fence("x = 1"))
    result = noteexec("check", "--no-cache", "--format", "json", vault)
    assert result.returncode == 1
    notes = {
        Path(note["path"]).relative_to(vault).as_posix(): note for note in json.loads(result.stdout)["notes"]
    }
    assert notes["top.md"]["status"] == "passed"
    assert notes["course/new.md"]["status"] == "passed"  # the subfolder's prelude, and it opted in
    assert "not opted in" in notes["course/old.md"]["blocks"][0]["message"]
    assert "lab/noteexec.toml:1: 'env' applies to the whole run" in notes["lab/a.md"]["error"]
    assert notes["lab/a.md"]["status"] == "error"
    assert (
        "loose/pyproject.toml" in notes["loose/b.md"]["error"]
        and "may not be loosened" in notes["loose/b.md"]["error"]
    )


def test_without_running_a_subfolders_configuration_still_applies(tmp_path: Path) -> None:
    """``list`` and ``build --no-run`` load notes as ``check`` does: a note outside an opt-in
    subfolder's ask is shown skipped, not as one that would run."""
    vault = tmp_path / "vault"
    (vault / "course").mkdir(parents=True)
    (vault / "course" / "noteexec.toml").write_text("opt_in = true\n")
    (vault / "course" / "old.md").write_text(fence("print(2)  # 2"))
    listed = noteexec("list", vault)
    assert listed.returncode == 0, listed.stderr
    [line] = [line for line in listed.stdout.splitlines() if "old.md:1" in line]
    assert line.split()[2] == "skip"
    built = noteexec("build", "--no-run", "--no-cache", vault, "-o", tmp_path / "site")
    assert built.returncode == 0, built.stderr
    assert "1 notes, 1 blocks: 0 passed, 0 failed, 1 skipped\n" in built.stdout  # not "1 not run"
