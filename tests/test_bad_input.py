"""Bad input through the real command line (issue 6): broken, hostile and huge notes and files.

Every case: a clear one-line error at ``file:line`` where there is a line, the good notes beside
it still checked (and rendered), exit code 1 for a bad note and 2 for a bad path, no traceback,
and nothing written into the vault. The expensive runs happen once per module: every bad note
sits in one vault that one ``check`` and one ``build --no-run`` read.
"""

from __future__ import annotations

import json
import os
import re
import resource
import subprocess
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO

GOOD = "```python\nx = 1\nprint(x)  # 1\n```\n"
FAIL_CALLOUT = "> [!FAIL]\n> ```python\n> x = 1\n> int('x')  # ValueError: invalid literal\n> ```\n"


def run(
    *arguments: str | Path, limit_memory: bool = False, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    """``noteexec ARGUMENTS`` as a user runs it; ``limit_memory`` caps the process at 4 GiB."""

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))

    return subprocess.run(
        [sys.executable, "-m", "noteexec", *map(str, arguments)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=timeout,
        preexec_fn=cap if limit_memory else None,
    )


def snapshot(root: Path) -> dict[str, tuple[int, int, int]]:
    """Every entry under ``root`` (symlinks not followed): mode, size and mtime."""
    entries = {}
    for directory, folders, files in os.walk(root):
        for name in (*folders, *files):
            path = Path(directory) / name
            info = path.lstat()
            entries[path.relative_to(root).as_posix()] = (info.st_mode, info.st_size, info.st_mtime_ns)
    return entries


def assert_clean(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stdout + result.stderr, result.stderr[-3000:]


# --------------------------------------------------------------------------------------------
# Bad note content: one vault, one check, one build


@dataclass(frozen=True)
class Case:
    name: str
    content: Callable[[], bytes]
    error: tuple[int | None, str] | None = None
    """(line, part of the message) of the note's error; None: the note is fine."""
    blocks: tuple[int, ...] = ()
    """The fence lines of the blocks a fine note has (every one must pass)."""


def text(value: str) -> Callable[[], bytes]:
    return lambda: value.encode()


def quoted(value: str, depth: int) -> str:
    return "".join("> " * depth + line + "\n" for line in value.splitlines())


PARAGRAPH = "Lorem ipsum dolor sit amet, **consectetur** adipiscing elit. " * 15 + "[[nowhere]] #tag\n\n"
PARAGRAPHS = 20_000_000 // len(PARAGRAPH)


def _big_note() -> bytes:
    return (PARAGRAPH * PARAGRAPHS + GOOD).encode()


def _billion_laughs() -> bytes:
    names = "abcdefghij"
    lines = ["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"{name}: &{name} [{', '.join([f'*{names[i]}'] * 9)}]" for i, name in enumerate(names[1:])]
    return ("---\n" + "\n".join(lines) + "\n---\n" + GOOD).encode()


CASES = [
    Case("good.md", text(GOOD), blocks=(1,)),
    Case("invalid-utf8.md", lambda: b"# t\n\nok\n\xff\xfe bad\n" + GOOD.encode(), (4, "not valid UTF-8")),
    Case("binary.md", lambda: bytes(range(256)) * 40, (2, "not valid UTF-8")),
    Case("empty.md", text("")),
    Case("only-frontmatter.md", text("---\ntitle: Only\ntags: [a]\n---\n")),
    Case("only-frontmatter-no-newline.md", text("---\ntitle: Only\n---")),
    Case("nul-byte.md", text("# t\n\nbefore\0after\n" + GOOD), (3, "NUL byte")),
    Case("utf-16.md", lambda: ("# t\n" + GOOD).encode("utf-16-le"), (1, "NUL byte")),
    Case("bom.md", lambda: b"\xef\xbb\xbf---\ntitle: b\n---\n" + FAIL_CALLOUT.encode(), blocks=(5,)),
    Case(
        "crlf.md",
        text(("---\ntitle: c\n---\n" + FAIL_CALLOUT + "\n" + GOOD).replace("\n", "\r\n")),
        blocks=(5, 10),
    ),
    Case(
        "lone-cr.md",
        text(("---\ntitle: c\n---\n" + FAIL_CALLOUT + "\n" + GOOD).replace("\n", "\r")),
        blocks=(5, 10),
    ),
    Case("twenty-megabytes.md", _big_note, blocks=(2 * PARAGRAPHS + 1,)),
    Case(
        "ten-thousand-callouts.md",
        text("".join(f"> [!note]- Callout {i}\n> body {i}\n\n" for i in range(10_000)) + FAIL_CALLOUT),
        blocks=(30_002,),
    ),
    Case(
        "callouts-nested-1000-deep.md",
        text(
            "".join("> " * depth + f"[!fail] depth {depth}\n" for depth in range(1, 1001))
            + quoted(GOOD, 1000)
        ),
        (20, "nested too deeply"),
    ),
    Case(
        "callouts-1000-deep-on-one-line.md",
        text("> " * 1000 + "[!fail]\n\n" + GOOD),
        (1, "nested too deeply"),
    ),
    Case(
        "lists-nested-1000-deep.md",
        text("".join("  " * depth + "- item\n" for depth in range(1000)) + GOOD),
        (10, "nested too deeply"),
    ),
    Case(
        "code-block-100000-lines.md",
        text("```python\n" + "x = 1\n" * 100_000 + "print(x)  # 1\n```\n"),
        blocks=(1,),
    ),
    Case(
        "unterminated-fence.md",
        text("# t\n\n```python\nx = 1\n\n## the rest of the note\n"),
        (3, "never closed"),
    ),
    Case(
        "unterminated-fence-in-callout.md",
        text("> [!fail]\n> ```python\n> x = 1\n\n" + GOOD),
        (2, "never closed"),
    ),
    Case(
        "unterminated-comment.md",
        text("# t\n\n%%\n```python\nx = 1\n```\n" + GOOD),
        (3, "'%%' comment is never closed"),
    ),
    Case("yaml-list.md", text("---\n- a\n- b\n---\n" + GOOD), (1, "must be a mapping")),
    Case("yaml-scalar.md", text("---\njust text\n---\n" + GOOD), (1, "must be a mapping")),
    Case("yaml-billion-laughs.md", _billion_laughs, (1, "YAML aliases")),
    Case("yaml-alias-cycle.md", text("---\na: &a [*a]\n---\n" + GOOD), (1, "refers to itself")),
    Case(
        "yaml-nested-100000-deep.md",
        text("---\na: " + "[" * 100_000 + "]" * 100_000 + "\n---\n" + GOOD),
        (1, "nested too deeply"),
    ),
    Case("yaml-bad-date.md", text("---\ndate: 2024-13-45\n---\n" + GOOD), (1, "invalid YAML frontmatter")),
    Case("yaml-invalid.md", text("---\nkey: [oops\n---\n" + GOOD), (None, "invalid YAML frontmatter")),
    Case(
        "yaml-keys-not-text.md",
        text("---\n1: x\n2024-01-01: y\nnull: z\nn: {2024-01-02: q}\n---\n" + GOOD),
        blocks=(7,),
    ),
    # Property types only matter where noteexec reads them: `tags` is shown, never checked.
    Case(
        "tags-a-number.md",
        text("---\ntags: 5\naliases: 6\ntitle: [1, 2]\ndate: 7\n---\n" + GOOD),
        blocks=(7,),
    ),
    Case(
        "noteexec-list.md",
        text("---\ntitle: t\nnoteexec: [skip]\n---\n" + GOOD),
        (3, "'noteexec' must be true, false or a mapping"),
    ),
    Case(
        "timeout-negative.md",
        text("---\nnoteexec: {timeout: -1}\n---\n" + GOOD),
        (2, "'noteexec.timeout' must be a positive"),
    ),
    Case(
        "timeout-ten.md",
        text('---\nnoteexec:\n  timeout: "ten"\n---\n' + GOOD),
        (2, "'noteexec.timeout' must be a positive"),
    ),
    Case(
        "timeout-nan.md",
        text("---\nnoteexec: {timeout: .nan}\n---\n" + GOOD),
        (2, "'noteexec.timeout' must be a positive"),
    ),
    Case(
        "noteexec-odd-keys.md",
        text("---\nnoteexec: {1: x, skip: false}\n---\n" + GOOD),
        (2, "unknown 'noteexec' option(s): 1"),
    ),
]


@dataclass
class Runs:
    vault: Path
    check: subprocess.CompletedProcess[str]
    notes: dict[str, dict]
    warm: subprocess.CompletedProcess[str]
    warm_notes: dict[str, dict]
    build: subprocess.CompletedProcess[str]
    site: Path
    listing: subprocess.CompletedProcess[str]
    untouched: bool


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    base = tmp_path_factory.mktemp("bad-input")
    vault = base / "vault"
    vault.mkdir()
    for case in CASES:
        (vault / case.name).write_bytes(case.content())
    before = snapshot(vault)

    def check_json(suffix: str) -> tuple[subprocess.CompletedProcess[str], dict[str, dict]]:
        report = base / f"check-{suffix}.json"
        result = run(
            "check", vault, "--cache-dir", base / "cache", "--format", "text", "--format", f"json:{report}"
        )
        assert report.is_file(), result.stderr[-3000:]
        notes = {Path(note["path"]).name: note for note in json.loads(report.read_text())["notes"]}
        return result, notes

    check, notes = check_json("cold")
    warm, warm_notes = check_json("warm")  # the second run takes parsed notes and facts from the cache
    build = run("build", vault, "-o", base / "site", "--no-run", "--no-cache", limit_memory=True)
    listing = run("list", vault, limit_memory=True)
    return Runs(
        vault, check, notes, warm, warm_notes, build, base / "site", listing, snapshot(vault) == before
    )


def test_the_runs_exit_1_without_a_traceback_and_leave_the_vault_alone(runs: Runs) -> None:
    for result in (runs.check, runs.warm, runs.build, runs.listing):
        assert_clean(result)
        assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
    assert runs.untouched
    assert set(runs.notes) == {case.name for case in CASES}
    summary = runs.check.stdout.strip().splitlines()[-1]
    assert summary.startswith(f"{len(CASES)} notes,")


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_each_bad_note_is_reported_on_its_own(runs: Runs, case: Case) -> None:
    path = runs.vault / case.name
    for notes in (runs.notes, runs.warm_notes):
        note = notes[case.name]
        if case.error is None:
            assert note["status"] == "passed", note
            assert [block["line"] for block in note["blocks"]] == list(case.blocks)
            continue
        line, message = case.error
        assert note["status"] == "error", note
        assert message in note["error"]
        assert "\n" not in note["error"]
        where = f"{path}:{line}: " if line is not None else f"{path}:"
        assert note["error"].startswith(where), note["error"]
    # The text report: the note's one error line; the site build and `list` name it too.
    if case.error is not None:
        line, message = case.error
        where = f"{path}:{line}: " if line is not None else f"{path}:"
        assert f"  error: {where}" in runs.check.stdout
        assert f"ERROR {where}" in runs.build.stdout
        assert f"  {where}" in runs.listing.stdout
    page = runs.site / (case.name[:-3] + ".html")
    assert page.is_file()


def test_good_notes_beside_bad_ones_pass_and_render(runs: Runs) -> None:
    good = runs.notes["good.md"]
    assert good["status"] == "passed"
    assert [block["outcome"] for block in good["blocks"]] == ["passed"]
    assert "passed" in runs.notes["crlf.md"]["blocks"][0]["outcome"]  # the FAIL block raised where documented
    assert runs.warm.stdout.count("cached") >= 1
    page = (runs.site / "good.html").read_text()
    assert "print" in page


# --------------------------------------------------------------------------------------------
# Files


def _files_vault(base: Path) -> tuple[Path, Path]:
    vault = base / "vault"
    vault.mkdir()
    outside = base / "outside"
    outside.mkdir()
    (outside / "secret.md").write_text("# Secret\n\nOUTSIDE-SECRET-31337\n" + GOOD)
    for name in ("good.md", "with space.md", "ünïcødé 笔记.md", "a#b.md", "50%.md", "Case.md", "case.md"):
        (vault / name).write_text(f"# {name}\n\n" + GOOD)
    (vault / "linked.md").symlink_to(outside / "secret.md")  # out of the vault: not followed
    (vault / "linked-folder").symlink_to(outside, target_is_directory=True)
    (vault / "loop-a.md").symlink_to(vault / "loop-b.md")
    (vault / "loop-b.md").symlink_to(vault / "loop-a.md")
    (vault / "dangling.md").symlink_to(vault / "missing.md")
    os.mkfifo(vault / "fifo.md")  # reading it would wait forever for a writer
    (vault / "folder.md").mkdir()  # a folder named like a note is a folder
    (vault / "folder.md" / "inside.md").write_text(GOOD)
    return vault, outside


FILE_ERRORS = {
    "loop-a.md": "cannot read: Too many levels of symbolic links",
    "loop-b.md": "cannot read: Too many levels of symbolic links",
    "dangling.md": "cannot read: No such file or directory",
    "fifo.md": "cannot read: not a regular file",
}
FILE_PASSES = (
    "good.md",
    "with space.md",
    "ünïcødé 笔记.md",
    "a#b.md",
    "50%.md",
    "Case.md",
    "case.md",
    "folder.md/inside.md",
)


def test_files_that_cannot_be_read_are_reported_and_symlinks_out_are_not_followed(tmp_path: Path) -> None:
    vault, _ = _files_vault(tmp_path)
    before = snapshot(vault)
    result = run("check", vault, "--no-cache", "--format", "json")
    assert_clean(result)
    assert result.returncode == 1
    notes = {
        Path(note["path"]).relative_to(vault).as_posix(): note for note in json.loads(result.stdout)["notes"]
    }
    assert set(notes) == set(FILE_ERRORS) | set(FILE_PASSES)  # nothing from outside the vault
    for name, message in FILE_ERRORS.items():
        assert notes[name]["status"] == "error"
        assert notes[name]["error"] == f"{vault / name}: {message}"
    for name in FILE_PASSES:
        assert notes[name]["status"] == "passed", notes[name]
        assert notes[name]["blocks"][0]["outcome"] == "passed"
    assert "OUTSIDE-SECRET" not in result.stdout
    assert snapshot(vault) == before


def test_files_build_one_page_each_and_nothing_from_outside(tmp_path: Path) -> None:
    vault, _ = _files_vault(tmp_path)
    before = snapshot(vault)
    out = tmp_path / "site"
    result = run("build", vault, "-o", out, "--no-run", "--no-cache")
    assert_clean(result)
    assert result.returncode == 1  # the unreadable notes
    for name, message in FILE_ERRORS.items():
        assert f"ERROR {vault / name}: {message}" in result.stdout
    pages = {path.relative_to(out).as_posix() for path in out.rglob("*.html")}
    for name in ("good", "with space", "ünïcødé 笔记", "a#b", "50%", "folder.md/inside"):
        assert f"{name}.html" in pages
    assert {"Case.html", "case-1.html"} <= pages  # two notes that differ only in case: two pages
    index = (out / "index.html").read_text()
    assert 'href="a%23b.html"' in index and 'href="50%25.html"' in index
    for page in out.rglob("*"):
        if page.is_file():
            assert b"OUTSIDE-SECRET" not in page.read_bytes(), page
    assert snapshot(vault) == before


def test_a_path_that_does_not_exist_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "good.md").write_text(GOOD)
    for arguments in (
        ("check", tmp_path / "nope.md", "--no-cache"),
        ("check", tmp_path / "good.md", tmp_path / "nope.md", "--no-cache"),
        ("list", tmp_path / "nope.md"),
        ("build", tmp_path / "nope", "-o", tmp_path / "site", "--no-run"),
        ("render", tmp_path / "nope.md", "-o", tmp_path / "nope.html", "--no-run"),
    ):
        result = run(*arguments)
        assert_clean(result)
        assert result.returncode == 2, arguments
        assert result.stderr.startswith("noteexec: error: ") and "nope" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "site").exists()


def test_control_characters_in_names_and_notes_are_printed_escaped(tmp_path: Path) -> None:
    """A name with a newline keeps its error on one line; no escape sequence from a vault (file
    name, note line, exception message) reaches the terminal."""
    vault = tmp_path / "vault"
    vault.mkdir()
    (vault / "a\nb.md").write_text("---\ntitle: [unclosed\n---\n")
    (vault / "\x1b[31mred.md").write_text(
        "> [!FAIL]\n> ```python\n> x = 1  # \x1b[2J\n"
        '> raise ValueError("\\x1b]0;pwned\\x07")  # ValueError: something else\n> ```\n'
    )
    (vault / "c.md").write_text("[[missing\x1b[5m]]\n")
    for arguments in (
        ("check", vault, "--no-cache"),
        ("list", vault),
        ("build", vault, "-o", tmp_path / "site"),
    ):
        result = run(*arguments)
        assert_clean(result)
        assert result.returncode == 1, arguments
        for stream in (result.stdout, result.stderr):
            assert "\x1b" not in stream and "\x07" not in stream, (arguments, stream)
        assert any(
            line.endswith("\\x1b[31mred.md") or "\\x1b[31mred.md:" in line
            for line in result.stdout.splitlines()
        )
        [error] = [line for line in result.stdout.splitlines() if "invalid YAML" in line]
        assert "/a\\nb.md:3: " in error, arguments
    check = run("check", vault, "--no-cache")
    assert "\\x1b]0;pwned\\x07" in check.stdout and "\\x1b[2J" in check.stdout


def test_folders_nested_deeper_than_python_recurses_are_walked(tmp_path: Path) -> None:
    from noteexec.discover import discover

    folder = str(tmp_path)
    for _ in range(1200):  # os.makedirs and Path.mkdir(parents=True) recurse themselves
        folder += "/d"
        os.mkdir(folder)
    deepest = Path(folder)
    (deepest / "deep.md").write_text(GOOD)
    (tmp_path / "top.md").write_text(GOOD)
    try:
        assert [file.path for file in discover([tmp_path])] == [tmp_path / "top.md", deepest / "deep.md"]
    finally:  # shutil.rmtree, which cleans tmp_path up, recurses too
        (deepest / "deep.md").unlink()
        while folder != str(tmp_path):
            os.rmdir(folder)
            folder = os.path.dirname(folder)


def test_a_reader_that_leaves_early_gets_no_traceback(tmp_path: Path) -> None:
    for index in range(3):
        (tmp_path / f"{index}.md").write_text(GOOD)
    process = subprocess.Popen(
        [sys.executable, "-m", "noteexec", "check", "--no-cache", "--jobs", "1", tmp_path],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stderr is not None
    assert process.stdout.readline().startswith("PASS")
    process.stdout.close()  # as `noteexec check | head -1` does
    errors = process.stderr.read()
    assert process.wait(timeout=120) == 141
    assert errors == ""


def test_a_file_name_that_is_not_utf8_is_checked_and_built(tmp_path: Path) -> None:
    vault = tmp_path / "vault"
    vault.mkdir()
    (vault / os.fsdecode(b"caf\xe9.md")).write_text("# Latin-1 name\n\n" + GOOD)
    for arguments in (("check", vault, "--no-cache"), ("build", vault, "-o", tmp_path / "site")):
        result = run(*arguments)
        assert_clean(result)
        assert result.returncode == 0, result.stdout
    assert "caf\\udce9.md" in run("list", vault).stdout
    assert (tmp_path / "site" / "caf\\xe9.html").is_file()


def test_an_empty_vault_checks_nothing_exits_0_and_warns(tmp_path: Path) -> None:
    vault = tmp_path / "vault"
    (vault / ".obsidian").mkdir(parents=True)
    (vault / "image.png").write_bytes(b"\x89PNG")
    result = run("check", vault, "--no-cache")
    assert_clean(result)
    assert result.returncode == 0
    assert result.stdout.startswith("0 notes, 0 blocks")
    assert f"noteexec: warning: no notes (*.md) found in {vault}" in result.stderr
    built = run("build", vault, "-o", tmp_path / "site", "--no-run")
    assert_clean(built)
    assert built.returncode == 0
    assert (tmp_path / "site" / "index.html").is_file()


def _as_nobody(work: Callable[[], object]) -> object:
    """``work()``'s JSON result in a forked child that dropped root (root ignores permission bits)."""
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(reader)
        try:
            os.setgid(65534)
            os.setuid(65534)
            payload = {"result": work()}
        except BaseException:
            payload = {"raised": traceback.format_exc()}
        os.write(writer, json.dumps(payload).encode())
        os._exit(0)
    os.close(writer)
    with os.fdopen(reader, "rb") as stream:
        data = stream.read()
    os.waitpid(pid, 0)
    payload = json.loads(data)
    assert "raised" not in payload, payload.get("raised")
    return payload["result"]


@pytest.mark.skipif(not hasattr(os, "fork") or os.geteuid() != 0, reason="needs root to drop privileges")
def test_unreadable_permissions_are_reported(tmp_path: Path) -> None:
    import tempfile

    from noteexec.cli import main
    from noteexec.discover import discover
    from noteexec.exitcodes import UsageError
    from noteexec.parse import read_note

    read_note(REPO / "README.md")  # import everything before dropping root: site-packages may be private
    with tempfile.TemporaryDirectory(dir="/tmp") as folder:
        vault = Path(folder)
        vault.chmod(0o755)
        (vault / "good.md").write_text(GOOD)
        (vault / "secret.md").write_text(GOOD)
        (vault / "secret.md").chmod(0)
        locked = vault / "locked"
        locked.mkdir()
        locked.chmod(0)

        def work() -> dict[str, object]:
            found = [file.path.name for file in discover([vault])]
            problems = [
                [problem.line, problem.message]
                for name in ("secret.md", "locked")
                for problem in read_note(vault / name).problems
            ]
            try:
                discover([locked])
                locked_error = None
            except UsageError as error:
                locked_error = str(error)
            listing = os.open(os.devnull, os.O_WRONLY)
            saved = os.dup(1)
            os.dup2(listing, 1)
            try:
                status = main(["list", str(vault)])
            finally:
                sys.stdout.flush()
                os.dup2(saved, 1)
            return {"found": found, "problems": problems, "locked": locked_error, "status": status}

        result = _as_nobody(work)
    assert result == {
        "found": ["good.md", "secret.md", "locked"],  # a folder inside that cannot be read is an error
        "problems": [[0, "cannot read: Permission denied"]] * 2,
        "locked": f"{locked}: cannot read: Permission denied",
        "status": 1,
    }


# --------------------------------------------------------------------------------------------
# Links and embeds (the site, built without running)


def test_links_and_embeds_never_leave_the_vault(tmp_path: Path) -> None:
    vault = tmp_path / "vault"
    vault.mkdir()
    (tmp_path / "secret.md").write_text("# Secret\n\nOUTSIDE-SECRET-31337\n")
    (vault / "a.md").write_text("# A\n\nin a\n\n![[b]]\n")
    (vault / "b.md").write_text("# B\n\nin b\n\n![[a]]\n")
    for depth in range(50):
        (vault / f"d{depth}.md").write_text(f"# D{depth}\n\nlevel {depth}\n\n![[d{depth + 1}]]\n")
    (vault / "d50.md").write_text("# D50\n\nthe bottom\n")
    (vault / "leak.md").symlink_to(tmp_path / "secret.md")
    hostile = [
        "![[../../etc/passwd]]",
        "![[/etc/hostname]]",
        "![[/etc/passwd]]",
        "![[../secret]]",
        "![[../secret.md]]",
        f"![[{tmp_path / 'secret.md'}]]",
        "![[leak]]",
        "[[../secret]]",
        "![img](../secret.md)",
        "[md](../../../../etc/passwd)",
    ]
    schemes = [
        "[js](javascript:alert(1))",
        "[JS](JaVaScRiPt:alert(1))",
        "[tab](java\tscript:alert(1))",
        "[ent](java&#x73;cript:alert(1))",
        "[data](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
        "[vb](vbscript:msgbox(1))",
        "![img](javascript:alert(1))",
        "[[javascript:alert(1)]]",
        "![[data:text/html,x]]",
        "<javascript:alert(1)>",
    ]
    lines = ["# Hostile", ""]
    for link in [*hostile, *schemes]:
        lines += [link, ""]
    (vault / "hostile.md").write_text("\n".join(lines))
    before = snapshot(vault)
    out = tmp_path / "site"
    result = run("build", vault, "-o", out, "--no-run", "--no-cache", timeout=60)
    assert_clean(result)
    assert result.returncode == 1  # broken links
    for index, link in enumerate(hostile):
        line = 3 + 2 * index
        assert f"BROKEN LINK {vault / 'hostile.md'}:{line}: " in result.stdout, link
    # Everything was rendered: the cycle and the 50-deep chain stop, other pages are there.
    assert (out / "a.html").is_file() and (out / "b.html").is_file() and (out / "d0.html").is_file()
    assert "in b" in (out / "a.html").read_text() and "level 1" in (out / "d0.html").read_text()
    assert (out / "d0.html").stat().st_size < 200_000
    hostname = Path("/etc/hostname").read_text().strip() if Path("/etc/hostname").is_file() else ""
    passwd = "root:x:0:0"
    for page in out.rglob("*"):
        if not page.is_file():
            continue
        content = page.read_text(errors="replace")
        assert "OUTSIDE-SECRET" not in content, page
        assert passwd not in content, page
        if len(hostname) >= 8:
            assert hostname not in content, page
    html = (out / "hostile.html").read_text()
    assert not re.search(
        r"(?<![\w-])(href|src)\s*=\s*[\"']?\s*(javascript|vbscript|data):", html, re.IGNORECASE
    )
    assert snapshot(vault) == before

    rendered = run("render", vault / "a.md", "-o", tmp_path / "a.html", "--no-run", "--no-cache", timeout=60)
    assert_clean(rendered)
    assert rendered.returncode == 0
    leaking = run(
        "render", vault / "hostile.md", "-o", tmp_path / "h.html", "--no-run", "--no-cache", timeout=60
    )
    assert_clean(leaking)
    assert leaking.returncode == 1
    assert "OUTSIDE-SECRET" not in (tmp_path / "h.html").read_text()
    assert snapshot(vault) == before
