"""The pytest plugin as a user runs it: pytest in a subprocess on a small vault of notes."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.conftest import callout, fence

pytest_plugins = ["pytester"]

TIMEOUT = 180
UNRELATED_PLUGINS = ("hypothesispytest", "benchmark", "anyio")
"""Installed here, slow to import, and of no use on a vault: each run is faster without them."""

VAULT = {
    # Blocks at lines 1 and 5 (the second uses the first's variable), a failure demo at 10 that
    # documents its error and one at 15 that does not (a warning).
    "good.md": fence("x = torch.ones(2)")
    + "\n"
    + fence("assert x.sum().item() == 2")
    + "\n"
    + callout("failure", "int('x')  # ValueError: invalid literal")
    + "\n"
    + callout("failure", "int('y')"),
    # A failure demo that documents the wrong error: it prints, then raises at line 4.
    "bad.md": callout(
        "failure",
        """
        print("hello from the block")
        y = int('x')  # RuntimeError: something else
        """,
    ),
    # A gradient demo that computes none: no line to point at, so the block's lines are shown.
    "nograd.md": callout("success", "y = torch.ones(1) * 2"),
    # The hidden setup (lines 1-5) fails: a note error, and the visible block is not run.
    "setup.md": "%%\n" + fence("raise RuntimeError('setup broke')") + "%%\n\n" + fence("z = 1"),
    "skip.md": "%% noteexec: skip %%\n" + fence("raise SystemExit(3)"),
    "broken.md": "---\nkey: [oops\n---\n" + fence("z = 1"),
    "prose-broken.md": "---\nkey: [oops\n---\nOnly prose, no block.\n",
    "plain.md": "# No python here\n\n" + fence("echo hi", lang="bash"),
    ".obsidian/hidden.md": fence("raise RuntimeError('dot-folders are not notes')"),
    "drafts/draft.md": fence("raise RuntimeError('excluded by noteexec.toml')"),
    "noteexec.toml": 'exclude = ["drafts/*"]\n',
}

PASSED = ("good.md::L1", "good.md::L5", "good.md::L10", "good.md::L15")
FAILED = ("bad.md::L2", "broken.md::L4", "nograd.md::L2", "prose-broken.md::note", "setup.md::L7")
SKIPPED = ("skip.md::L2",)

MODULES_CONFTEST = """
import json, os, sys

def pytest_unconfigure(config):
    with open({path!r}, "a") as stream:
        modules = {{name: name in sys.modules for name in ("torch", "noteexec.sandbox", "noteexec.check")}}
        stream.write(json.dumps({{"worker": os.environ.get("PYTEST_XDIST_WORKER"), **modules}}) + "\\n")
"""


def write_vault(pytester: pytest.Pytester, modules: Path | None = None) -> None:
    for name, text in VAULT.items():
        path = pytester.path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    if modules is not None:
        pytester.makeconftest(MODULES_CONFTEST.format(path=str(modules)))


def run(pytester: pytest.Pytester, *arguments: str) -> pytest.RunResult:
    disabled = [option for name in UNRELATED_PLUGINS for option in ("-p", f"no:{name}")]
    return pytester.runpytest_subprocess(*disabled, *arguments, timeout=TIMEOUT)


def loaded(modules: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in modules.read_text().splitlines()]


@pytest.fixture(autouse=True)
def wide_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """Short summary lines are cut at the terminal's width."""
    monkeypatch.setenv("COLUMNS", "200")


def test_vault_items_outcomes_failure_text_and_junit(pytester: pytest.Pytester, tmp_path: Path) -> None:
    modules = tmp_path / "modules.jsonl"
    write_vault(pytester, modules)
    result = run(pytester, "--noteexec", "-rA", "--junitxml=report.xml")
    result.assert_outcomes(passed=4, failed=5, skipped=1, warnings=1)
    output = result.stdout.str()
    for nodeid in PASSED:
        assert f"PASSED {nodeid}" in output
    for nodeid in FAILED:
        assert f"FAILED {nodeid}" in output
    assert "hidden.md" not in output and "draft.md" not in output and "plain.md" not in output
    result.stdout.fnmatch_lines(
        [
            "*_ bad.md:2 _*",
            'expected RuntimeError matching "something else" at line 4, '
            "got ValueError: invalid literal for int() with base 10: 'x' at line 4",
            "block:    bad.md:2 in a [!failure] callout",
            "expected: expects RuntimeError: something else at line 4",
            "bad.md:",
            '     3 | > print("hello from the block")',
            ">    4 | > y = int('x')  # RuntimeError: something else",
            "--- stdout of the block ---",
            "hello from the block",
        ]
    )
    result.stdout.fnmatch_lines(["FAILED bad.md::L2 - expected RuntimeError matching*"])
    result.stdout.fnmatch_lines(
        [
            "*_ broken.md:4 _*",
            "note error: broken.md:?: invalid YAML frontmatter*",
            "not run: the note has an error",
        ]
    )
    result.stdout.fnmatch_lines(
        ["FAILED prose-broken.md::note - note error: prose-broken.md:?: invalid YAML frontmatter*"]
    )
    result.stdout.fnmatch_lines(
        [
            "*_ nograd.md:2 _*",
            "expected gradients, but the block produced none",
            "block:    nograd.md:2 in a [!success] callout",
            "expected: expects to run and produce finite gradients",
            "nograd.md:",
            "     2 | > ```python",
            "     3 | > y = torch.ones(1) * 2",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "*_ setup.md:7 _*",
            "note error: setup.md: hidden setup at line 2 raised RuntimeError: setup broke*",
            "not run: the hidden setup failed",
        ]
    )
    result.stdout.fnmatch_lines(["SKIPPED [1] skip.md: %% noteexec: skip %%"])
    result.stdout.fnmatch_lines(["*/good.md:15: NoteexecWarning: nothing documented*"])

    suite = ET.parse(pytester.path / "report.xml").getroot().find("testsuite")
    assert suite is not None
    cases = {f"{case.get('classname')}::{case.get('name')}": case for case in suite.iter("testcase")}
    assert set(cases) == {*PASSED, *FAILED, *SKIPPED}
    failure = cases["bad.md::L2"].find("failure")
    assert failure is not None
    assert failure.get("message", "").startswith('expected RuntimeError matching "something else"')
    assert "> y = int('x')" in (failure.text or "")
    assert cases["skip.md::L2"].find("skipped") is not None
    assert all(cases[nodeid].find("failure") is None for nodeid in PASSED)

    # The pytest process never imports torch (only the sandbox worker does).
    assert loaded(modules) == [
        {"worker": None, "torch": False, "noteexec.sandbox": True, "noteexec.check": True}
    ]

    # --lf runs only the items that failed, and still runs each of their notes whole.
    again = run(pytester, "--noteexec", "--lf", "-rA")
    again.assert_outcomes(failed=5)
    again.stdout.fnmatch_lines(["run-last-failure: rerun previous 5 failures*"])
    assert {nodeid for nodeid in FAILED if f"FAILED {nodeid}" in again.stdout.str()} == set(FAILED)


def test_k_selects_a_block_and_its_note_still_runs_whole(pytester: pytest.Pytester) -> None:
    write_vault(pytester)
    result = run(pytester, "--noteexec", "-k", "L5", "-rA")
    # good.md::L5 reads the variable that good.md::L1 (deselected) defines.
    result.assert_outcomes(passed=1, deselected=9)
    result.stdout.fnmatch_lines(["PASSED good.md::L5"])


def test_ini_enables_the_plugin_and_x_stops_at_the_first_failure(pytester: pytest.Pytester) -> None:
    write_vault(pytester)
    pytester.makepyprojecttoml("[tool.pytest.ini_options]\nnoteexec = true\n")
    result = run(pytester, "-x", "-rA")
    # bad.md is the first note collected, and its only block fails.
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["FAILED bad.md::L2 - *", "*stopping after 1 failures*"])


def test_not_enabled_collects_no_notes_and_imports_nothing(pytester: pytest.Pytester, tmp_path: Path) -> None:
    modules = tmp_path / "modules.jsonl"
    write_vault(pytester, modules)
    pytester.makepyfile(test_plain="def test_plain():\n    pass\n")
    result = run(pytester, "-rA")
    result.assert_outcomes(passed=1)
    assert ".md" not in result.stdout.str()
    assert loaded(modules) == [
        {"worker": None, "torch": False, "noteexec.sandbox": False, "noteexec.check": False}
    ]


def test_xdist_workers_each_run_notes_in_their_own_sandbox(pytester: pytest.Pytester, tmp_path: Path) -> None:
    pytest.importorskip("xdist")
    modules = tmp_path / "modules.jsonl"
    write_vault(pytester, modules)
    result = run(pytester, "--noteexec", "-n", "2", "-rA")
    result.assert_outcomes(passed=4, failed=5, skipped=1, warnings=1)
    for nodeid in FAILED:
        result.stdout.fnmatch_lines([f"FAILED {nodeid} - *"])
    result.stdout.fnmatch_lines(['expected RuntimeError matching "something else"*', "hello from the block"])
    processes = loaded(modules)
    assert sorted(str(process["worker"]) for process in processes) == ["None", "gw0", "gw1"]
    assert not any(process["torch"] for process in processes)


def test_a_bad_noteexec_config_is_a_collection_error(pytester: pytest.Pytester) -> None:
    pytester.makefile(".md", note=fence("x = 1"))
    pytester.makefile(".toml", noteexec="timeout = -1\n")
    result = run(pytester, "--noteexec")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["noteexec: *noteexec.toml:1: 'timeout' must be a positive number*"])
    assert "Traceback" not in result.stdout.str()


def test_with_the_cache_a_second_run_needs_no_torch(
    pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_torch: dict[str, str]
) -> None:
    write_vault(pytester)
    monkeypatch.setenv("NOTEEXEC_CACHE_DIR", str(tmp_path / "cache"))
    first = run(pytester, "--noteexec", "--noteexec-cache")
    first.assert_outcomes(passed=4, failed=5, skipped=1, warnings=1)
    assert (tmp_path / "cache" / "results.sqlite3").is_file()
    # Now torch cannot be imported (though it looks the same from outside): every note's facts
    # must come from the cache, or its blocks would fail with a dead worker.
    monkeypatch.setenv("PYTHONPATH", no_torch["PYTHONPATH"])
    second = run(pytester, "--noteexec", "--noteexec-cache", "-rA")
    second.assert_outcomes(passed=4, failed=5, skipped=1, warnings=1)
    assert "facts from the result cache (--noteexec-cache)" in second.stdout.str()
    assert "worker died" not in second.stdout.str()
    without = run(pytester, "--noteexec")  # the cache is opt-in: without it, notes run (and fail here)
    assert "the sandbox worker died" in without.stdout.str()


def test_cache_warnings_reach_the_report_under_xdist(
    pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (pytester.path / "one.md").write_text(fence("x = 1"))
    (tmp_path / "file").write_text("a file where the cache folder should go")
    monkeypatch.setenv("NOTEEXEC_CACHE_DIR", str(tmp_path / "file" / "cache"))
    result = run(pytester, "--noteexec", "--noteexec-cache", "-n", "2")
    result.assert_outcomes(passed=1, warnings=1)
    result.stdout.fnmatch_lines(["*NoteexecWarning: noteexec cache: cache disabled: *"])


def test_notes_without_the_full_sandbox_give_one_loud_warning(pytester: pytest.Pytester) -> None:
    """A repository's pyproject.toml above the notes turns namespaces off: pytest says so once."""
    (pytester.path / "pyproject.toml").write_text("[tool.noteexec]\nnamespaces = false\n")
    notes = pytester.path / "notes"
    notes.mkdir()
    for name in ("a.md", "b.md"):
        (notes / name).write_text(fence("print(1)  # 1"))
    result = run(pytester, "--noteexec", "notes")
    result.assert_outcomes(passed=2, warnings=1)
    result.stdout.fnmatch_lines(
        ["*noteexec: WARNING: notes ran without part of the sandbox here: user, PID*"]
    )


def test_each_note_is_parsed_once_and_the_run_checks_that_parse(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Collection parses a note to find its blocks; the run checks that parse, never another.
    In-process, so that every parse can be counted."""
    import noteexec.parse

    (pytester.path / "runs.md").write_text(fence("print(1)  # 1") + "\n" + fence("y = 2"))
    (pytester.path / "skipped.md").write_text("%% noteexec: skip %%\n" + fence("raise SystemExit(3)"))
    parsed: list[str] = []
    real = noteexec.parse.parse_note

    def counting(text: str, path: Path = Path("<note>")) -> noteexec.parse.Note:
        parsed.append(path.name)
        return real(text, path)

    monkeypatch.setattr(noteexec.parse, "parse_note", counting)
    disabled = [option for name in UNRELATED_PLUGINS for option in ("-p", f"no:{name}")]
    result = pytester.inline_run(*disabled, "-p", "no:cacheprovider", "--noteexec")
    result.assertoutcome(passed=2, skipped=1)
    assert sorted(parsed) == ["runs.md", "skipped.md"]
