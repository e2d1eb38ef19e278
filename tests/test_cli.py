"""The command line as a user runs it: a subprocess, exit codes, output shapes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from noteexec import __version__
from tests.conftest import REPO, SEED_NOTE, callout, fence, noteexec


def test_version() -> None:
    result = noteexec("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"noteexec {__version__}"


def test_seed_note_fails_with_an_actionable_text_report() -> None:
    result = noteexec("check", "--no-cache", SEED_NOTE)  # never a cache beside the fixture, in the repo
    assert result.returncode == 1
    assert f"{SEED_NOTE}:28 [failure] not runnable here: 'compute_loss' is defined nowhere" in result.stdout
    assert "it failed with: expected RuntimeError" in result.stdout
    assert "NameError: name 'compute_loss' is not defined at line 33" in result.stdout
    assert ">   33 | > mse = compute_loss(w)" in result.stdout
    assert "0 passed, 2 not runnable here" in result.stdout
    assert "Traceback" not in result.stderr


def test_json_output_has_the_documented_shape(tmp_path: Path) -> None:
    (tmp_path / "good.md").write_text(
        callout("fail", "int('x')  # ValueError: invalid literal") + fence("x = 1")
    )
    (tmp_path / "bad.md").write_text("---\nkey: [oops\n---\n" + fence("x = 1"))
    (tmp_path / "skip.md").write_text("%% noteexec: skip %%\n" + fence("x = 1"))
    result = noteexec("check", "--format", "json", tmp_path)
    assert result.returncode == 1
    document = json.loads(result.stdout)
    assert [note["path"] for note in document["notes"]] == [
        str(tmp_path / name) for name in ("bad.md", "good.md", "skip.md")
    ]
    bad, good, skip = document["notes"]
    assert bad["status"] == "error"
    assert "bad.md:2" in bad["error"] or "bad.md:3" in bad["error"]
    assert good["status"] == "passed"
    assert good["error"] is None
    block = good["blocks"][0]
    assert {key: block[key] for key in ("line", "callout", "expect", "outcome")} == {
        "line": 2,
        "callout": "failure",
        "expect": "raises",
        "outcome": "passed",
    }
    assert isinstance(block["message"], str)
    assert good["blocks"][1]["callout"] is None
    assert good["blocks"][1]["expect"] == "runs"
    assert skip["blocks"][0]["expect"] == "skip"
    assert skip["blocks"][0]["outcome"] == "skipped"
    summary = document["summary"]
    assert {key: summary[key] for key in ("notes", "blocks", "passed", "failed", "skipped", "errors")} == {
        "notes": 3,
        "blocks": 4,
        "passed": 2,
        "failed": 1,
        "skipped": 1,
        "errors": 1,
    }


def test_missing_path_and_bad_option_exit_2_without_traceback(tmp_path: Path) -> None:
    missing = noteexec("check", tmp_path / "nope.md")
    assert missing.returncode == 2
    assert "nope.md: no such file or directory" in missing.stderr
    assert "Traceback" not in missing.stderr
    unknown = noteexec("check", "--bogus")
    assert unknown.returncode == 2
    script = tmp_path / "script.py"
    script.write_text("raise SystemExit('never run')\n")
    not_a_note = noteexec("check", script)
    assert (not_a_note.returncode, not_a_note.stdout) == (2, "")
    assert f"{script}: not a Markdown note (noteexec checks .md files)" in not_a_note.stderr
    assert "Traceback" not in not_a_note.stderr


def test_bad_config_exits_2_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "noteexec.toml").write_text("timeout = 'ten'\n")
    (tmp_path / "n.md").write_text(fence("x = 1"))
    result = noteexec("check", tmp_path)
    assert result.returncode == 2
    assert "noteexec.toml" in result.stderr
    assert "timeout" in result.stderr


def test_config_file_is_found_above_the_checked_path(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[tool.noteexec]\nprelude = "import math"\nexclude = ["drafts/*"]\n'
    )
    (tmp_path / "notes" / "drafts").mkdir(parents=True)
    (tmp_path / "notes" / "a.md").write_text(fence("print(math.floor(2.5))  # 2"))
    (tmp_path / "notes" / "drafts" / "b.md").write_text(fence("raise ValueError"))
    result = noteexec("check", tmp_path / "notes")
    assert result.returncode == 0, result.stdout
    assert "1 notes" in result.stdout


def test_folders_skip_dot_directories(tmp_path: Path) -> None:
    for hidden in (".obsidian", ".trash", ".git"):
        (tmp_path / hidden).mkdir()
        (tmp_path / hidden / "x.md").write_text(fence("raise ValueError"))
    (tmp_path / "real.md").write_text(fence("x = 1"))
    result = noteexec("check", tmp_path)
    assert result.returncode == 0
    assert "1 notes" in result.stdout


def with_import_times(*arguments: str | Path) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run the CLI under ``-X importtime``: its result, and every module its own process imported."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "noteexec", *map(str, arguments)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if "|" in line}
    return result, imported


def test_list_shows_expectations_without_importing_torch() -> None:
    result, imported = with_import_times("list", SEED_NOTE)
    assert result.returncode == 0
    assert f"{SEED_NOTE}:28  failure   raises" in result.stdout
    assert "RuntimeError: element 0 of tensors does not require grad... at line 39" in result.stdout
    assert "markdown_it" in imported
    assert "torch" not in imported


def test_check_process_never_imports_torch(tmp_path: Path) -> None:
    (tmp_path / "n.md").write_text(
        callout("success", "w = torch.ones(1, requires_grad=True)\n(w * 2).sum().backward()")
    )
    result, parent_imports = with_import_times("check", "--no-cache", tmp_path)
    assert result.returncode == 0, result.stdout
    assert "noteexec.check" in parent_imports
    assert "torch" not in parent_imports


def test_bundled_notes_pass(tmp_path: Path) -> None:
    result = noteexec("check", "notes", "--cache-dir", tmp_path / "cache")  # every note really runs
    assert result.returncode == 0, result.stdout
    assert " 0 failed" in result.stdout


def test_warnings_are_shown_by_default_one_short_line_each(tmp_path: Path) -> None:
    note = tmp_path / "note.md"
    long_comment = "tensor([1.]) " + "and more words " * 20
    note.write_text(
        fence(f"y = torch.ones(1)\n# Output: {long_comment}") + callout("fail", "raise ValueError('x')")
    )
    shown = noteexec("check", "--no-cache", note)
    warnings = [line for line in shown.stdout.splitlines() if ": warning: " in line]
    assert [line.split(": warning: ")[0] for line in warnings] == [f"  {note}:1", f"  {note}:6"]
    assert warnings[0].split(": warning: ")[1].startswith("line 3: '# Output: tensor([1.]) and more words")
    assert warnings[0].endswith(" …") and len(warnings[0].split(": warning: ")[1]) <= 160
    assert "nothing documented" in warnings[1]
    quiet = noteexec("check", "--no-cache", "-q", note)
    assert ": warning: " not in quiet.stdout


def test_list_shows_which_lines_are_checked_and_which_comments_are_not(tmp_path: Path) -> None:
    note = tmp_path / "note.md"
    note.write_text(
        fence(
            "x = torch.ones(1)\nprint(x)  # tensor([1.])\ny = x * 2\n# 输出：tensor([2.])\n%matplotlib inline"
        )
    )
    listed = noteexec("list", note)
    assert listed.returncode == 0, listed.stderr
    assert (
        f"{note}:1  -         runs      expects to run without an exception; checks the output of line 3"
        in listed.stdout
    )
    assert (
        "    note: line 5: '# 输出：tensor([2.])' follows no print or bare expression: not checked"
        in listed.stdout
    )
    assert "    note: line 6: IPython magic '%matplotlib inline' skipped: not Python" in listed.stdout
