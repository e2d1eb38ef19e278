"""CI and terminal output: JUnit, GitHub annotations, several reporters, shards, progress, colours."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

from tests.conftest import REPO, callout, fence, noteexec


@pytest.fixture(scope="module")
def vault(tmp_path_factory: pytest.TempPathFactory) -> Path:
    vault = tmp_path_factory.mktemp("formats") / "vault"
    vault.mkdir()
    (vault / "good.md").write_text(
        callout("fail", "int('x')  # ValueError: invalid literal") + fence("x = 1")
    )
    (vault / "bad.md").write_text("# Bad\n\n" + callout("fail", "x = 1\ny = 2  # KeyError: 'nope'"))
    (vault / "broken.md").write_text("---\ntags: [unclosed\n---\n" + fence("x = 1"))
    (vault / "skip.md").write_text("%% noteexec: skip %%\n" + fence("x = 1"))
    for index in range(4):
        (vault / f"more{index}.md").write_text(fence(f"print({index})  # {index}") + fence("y = 2"))
    return vault


def test_junit_has_a_testcase_per_block(vault: Path, tmp_path: Path) -> None:
    report = tmp_path / "report.xml"
    result = noteexec("check", "--no-cache", "--format", "junit", "--output", report, vault)
    assert result.returncode == 1
    suite = ElementTree.parse(report).getroot().find("testsuite")
    assert suite is not None
    cases = {case.get("name"): case for case in suite.iter("testcase")}
    assert len(cases) == 2 + 1 + 1 + 1 + 8
    assert suite.get("tests") == "13"
    assert suite.get("failures") == "1"
    assert suite.get("errors") == "1"
    assert suite.get("skipped") == "1"
    failed = cases[f"{(vault / 'bad.md').as_posix()}::L4"]
    failure = failed.find("failure")
    assert failure is not None
    assert "expected KeyError" in failure.get("message")
    assert "expects KeyError: 'nope' at line 6" in failure.text
    assert failed.get("line") == "4"
    assert cases[f"{(vault / 'broken.md').as_posix()}::L4"].find("error") is not None
    assert cases[f"{(vault / 'skip.md').as_posix()}::L2"].find("skipped") is not None
    assert cases[f"{(vault / 'more0.md').as_posix()}::L1"].find("system-out").text == "0\n"


def test_junit_is_well_formed_whatever_a_note_prints(tmp_path: Path) -> None:
    vault = tmp_path / "vault"
    vault.mkdir()
    hostile = (
        'print("\\x1b[2J\\x00\\x07\\ufffe")\nraise ValueError("\\x1b]0;t\\x07\\x0c")  # ValueError: other'
    )
    (vault / "a\x1bb.md").write_text(callout("fail", hostile))
    report = tmp_path / "report.xml"
    result = noteexec("check", "--no-cache", "--format", f"junit:{report}", "--format", "github", vault)
    assert result.returncode == 1
    [case] = ElementTree.parse(report).getroot().iter("testcase")  # parses: nothing XML forbids
    failure, output = case.find("failure"), case.find("system-out")
    assert failure is not None and output is not None
    assert "\\x1b]0;t\\x07\\x0c" in failure.get("message", "")
    assert output.text == "\\x1b[2J\\x00\\x07\\ufffe\n"
    assert case.get("classname", "").endswith("a\\x1bb.md")
    assert "\x1b" not in result.stdout and "\x07" not in result.stdout
    assert "::error file=" in result.stdout and "a\\x1bb.md" in result.stdout


def test_github_annotations_point_at_the_failing_lines(vault: Path) -> None:
    result = noteexec("check", "--no-cache", "--format", "github", vault)
    lines = result.stdout.splitlines()
    bad = next(line for line in lines if "bad.md" in line)
    assert bad.startswith(
        f"::error file={(vault / 'bad.md').as_posix()},line=4,title=noteexec%3A expects KeyError"
    )
    assert "%0A" in bad  # multi-line details are escaped onto one line
    broken = next(line for line in lines if "broken.md" in line)
    assert ",line=2," in broken or ",line=3," in broken
    assert not any("good.md" in line for line in lines)


def test_several_reporters_at_once(vault: Path, tmp_path: Path) -> None:
    result = noteexec(
        "check", "--no-cache", "--format", "text", "--format", f"json:{tmp_path / 'r.json'}",
        "--format", "junit", "-o", tmp_path / "r.xml", vault,
    )  # fmt: skip
    assert result.returncode == 1
    assert "FAIL  " in result.stdout
    assert json.loads((tmp_path / "r.json").read_text())["summary"]["notes"] == 8
    assert ElementTree.parse(tmp_path / "r.xml").getroot().tag == "testsuites"
    clash = noteexec("check", "--format", "json", "--format", "junit", vault)
    assert clash.returncode == 2
    assert "only one format can go to stdout" in clash.stderr


def test_a_report_file_appears_whole_or_not_at_all(vault: Path, tmp_path: Path) -> None:
    report = tmp_path / "report.xml"
    report.write_text("<previous/>")
    process = subprocess.Popen(
        [sys.executable, "-m", "noteexec", "check", "--no-cache", "--jobs", "1", "--format", "text",
         "--format", f"junit:{report}", vault],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert process.stdout is not None
    assert process.stdout.readline()  # a note is done: the report is being written
    process.send_signal(signal.SIGINT)
    _, errors = process.communicate(timeout=120)
    assert process.returncode == 130 and "Traceback" not in errors, errors
    assert report.read_text() == "<previous/>"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["report.xml"]
    for clash in ((f"json:{tmp_path}",), (f"json:{report}", f"junit:{report}")):
        refused = noteexec(
            "check", "--no-cache", *[part for item in clash for part in ("--format", item)], vault
        )
        assert refused.returncode == 2 and refused.stderr.startswith("noteexec: error: "), refused.stderr
    result = noteexec("check", "--no-cache", "--format", f"junit:{tmp_path / 'no' / 'such' / 'r.xml'}", vault)
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        == f"noteexec: error: cannot write {tmp_path / 'no' / 'such' / 'r.xml'}: No such file or directory"
    )


def test_shards_cover_every_block_exactly_once(vault: Path) -> None:
    seen: list[tuple[str, int]] = []
    for shard in ("1/3", "2/3", "3/3"):
        result = noteexec("check", "--no-cache", "--format", "json", "--shard", shard, vault)
        document = json.loads(result.stdout)
        seen += [(note["path"], block["line"]) for note in document["notes"] for block in note["blocks"]]
    whole = json.loads(noteexec("check", "--no-cache", "--format", "json", vault).stdout)
    every = [(note["path"], block["line"]) for note in whole["notes"] for block in note["blocks"]]
    assert sorted(seen) == sorted(every)
    assert len(set(seen)) == len(seen)
    assert noteexec("check", "--shard", "4/3", vault).returncode == 2


def test_quiet_and_verbose(vault: Path) -> None:
    quiet = noteexec("check", "--no-cache", "-q", vault).stdout
    assert "good.md" not in quiet
    assert "bad.md" in quiet
    verbose = noteexec("check", "--no-cache", "-v", vault).stdout
    assert "ok: raised ValueError" in verbose


def run_in_terminal(arguments: list[str], env: dict[str, str]) -> str:
    """Run the CLI with stdout and stderr on a pseudo-terminal; return all it drew."""
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "noteexec", *arguments], stdout=follower, stderr=follower, cwd=REPO, env=env
    )
    os.close(follower)
    chunks = []
    while True:
        ready, _, _ = select.select([leader], [], [], 120)
        if not ready:
            break
        try:
            data = os.read(leader, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    process.wait(timeout=120)
    os.close(leader)
    return b"".join(chunks).decode("utf-8", "replace")


def test_terminal_gets_progress_and_colours_unless_no_color(vault: Path) -> None:
    environment = {key: value for key, value in os.environ.items() if key != "NO_COLOR"}
    drawn = run_in_terminal(["check", "--no-cache", str(vault)], environment)
    assert "\r[" in drawn
    assert "/8 notes" in drawn
    assert "\033[31mFAIL" in drawn
    plain = run_in_terminal(["check", "--no-cache", str(vault)], {**environment, "NO_COLOR": "1"})
    assert "\033[3" not in plain
    assert "FAIL  " in plain
    piped = noteexec("check", "--no-cache", vault)
    assert "\r" not in piped.stdout + piped.stderr
    assert "\033" not in piped.stdout


def test_pre_commit_hook_definition() -> None:
    hooks = (REPO / ".pre-commit-hooks.yaml").read_text()
    assert "id: noteexec" in hooks
    assert "entry: noteexec check" in hooks
    assert "files: \\.md$" in hooks


@pytest.mark.parametrize("namespaces", [True, False], ids=["sandboxed", "no-namespaces"])
def test_every_report_says_whether_notes_had_the_full_sandbox(tmp_path: Path, namespaces: bool) -> None:
    vault = tmp_path / "vault"
    vault.mkdir()
    (vault / "note.md").write_text(fence("print(1)  # 1"))
    junit, github, text = tmp_path / "report.xml", tmp_path / "github.txt", tmp_path / "text.txt"
    options = [] if namespaces else ["--no-namespaces"]
    result = noteexec(
        "check", "--no-cache", *options, "--format", "json", "--format", f"junit:{junit}",
        "--format", f"github:{github}", "--format", f"text:{text}", vault,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    isolation = report["notes"][0]["isolation"]
    suite = ElementTree.parse(junit).getroot().find("testsuite")
    assert suite is not None
    properties = {item.get("name"): item.get("value") for item in suite.iter("property")}
    if namespaces:
        assert isolation["level"] == "full" and isolation["network"] == "none"
        assert report["summary"]["isolation"] == "full" and report["summary"]["sandbox_warning"] is None
        assert properties["noteexec.isolation"] == "full" and "noteexec.sandbox_warning" not in properties
        assert "title=noteexec sandbox" not in github.read_text()
        assert "WITHOUT THE FULL SANDBOX" not in text.read_text() and "WARNING" not in result.stderr
    else:
        assert isolation["level"] == "reduced" and isolation["vault"] == "read-only (Landlock)"
        summary = report["summary"]
        assert summary["isolation"] == "reduced" and summary["reduced_isolation_notes"] == 1
        assert "namespaces" in summary["sandbox_warning"]
        assert properties["noteexec.isolation"] == "reduced"
        assert "namespaces" in properties["noteexec.sandbox_warning"]
        assert "::warning title=noteexec sandbox::1 of 1 notes ran without" in github.read_text()
        assert "1 notes WITHOUT THE FULL SANDBOX" in text.read_text()
        assert result.stderr.count("WARNING") == 1
