"""Configuration trust and bounds: a file inside the checked folder came with the notes (a stranger's
pull request) and may tighten the sandbox, never loosen it; every limit is bounded, wherever it
comes from; a note's own timeout cannot outlast the configuration's."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from noteexec.check import expectations, note_run
from noteexec.cli import main
from noteexec.config import Config, ConfigError
from noteexec.config.files import load_config
from noteexec.config.layers import apply_overrides
from noteexec.options import add_sandbox_arguments
from noteexec.parse import parse_note


@pytest.fixture
def notes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``repo/notes`` with one note that has no python block: checking it runs nothing."""
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "repo" / "notes"
    folder.mkdir(parents=True)
    (folder / "a.md").write_text("# A note\n\nProse only.\n", encoding="utf-8")
    return folder


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def overrides(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_sandbox_arguments(parser)
    return parser.parse_args(list(argv))


def test_untrusted_env_wildcard_is_refused(notes: Path) -> None:
    write(notes / "noteexec.toml", 'env = ["*"]\n')
    with pytest.raises(ConfigError, match=r"notes/noteexec\.toml:1: 'env' .*wildcard"):
        load_config(notes)


def test_a_wildcard_is_refused_even_from_a_trusted_file(notes: Path) -> None:
    write(notes.parent / "noteexec.toml", 'env = ["HF_*"]\n')
    with pytest.raises(ConfigError, match=r"repo/noteexec\.toml:1: 'env' .*wildcard"):
        load_config(notes)


def test_untrusted_env_is_refused_naming_file_and_line(notes: Path) -> None:
    write(notes / "noteexec.toml", 'prelude = "import math"\n\nenv = ["SECRET"]\n')
    with pytest.raises(ConfigError) as raised:
        load_config(notes)
    message = str(raised.value)
    assert message.startswith(
        "repo/notes/noteexec.toml:3: 'env' may not be loosened by a configuration inside the checked folder"
    )
    assert "SECRET" in message and "--env SECRET" in message


def test_the_same_env_in_a_pyproject_above_the_folder_is_trusted(notes: Path) -> None:
    write(notes.parent / "pyproject.toml", '[project]\nname = "x"\n\n[tool.noteexec]\nenv = ["SECRET"]\n')
    assert load_config(notes).env == ("SECRET",)


def test_untrusted_file_may_name_what_the_trusted_base_allows(notes: Path) -> None:
    write(notes.parent / "pyproject.toml", '[tool.noteexec]\nenv = ["SECRET", "HF_HOME"]\n')
    write(notes / "noteexec.toml", 'env = ["HF_HOME", "PATH"]\n')
    assert load_config(notes).env == ("HF_HOME", "PATH")


def test_untrusted_pyproject_in_the_checked_folder_is_refused_at_its_line(notes: Path) -> None:
    write(notes / "pyproject.toml", '[project]\nenv = 1\n\n[tool.noteexec]\nprelude = ""\nenv = ["SECRET"]\n')
    with pytest.raises(ConfigError, match=r"notes/pyproject\.toml:6: 'env' may not be loosened"):
        load_config(notes)


def test_a_single_checked_file_makes_its_folder_the_checked_folder(notes: Path) -> None:
    write(notes / "noteexec.toml", 'env = ["SECRET"]\n')
    with pytest.raises(ConfigError, match="may not be loosened"):
        load_config(notes / "a.md")


def test_every_checked_folder_counts(notes: Path) -> None:
    """``check notes/sub notes``: notes/noteexec.toml is above the first path but inside the second."""
    (notes / "sub").mkdir()
    write(notes / "noteexec.toml", "namespaces = false\n")
    assert load_config(notes / "sub").namespaces is False
    with pytest.raises(ConfigError, match="'namespaces' may not be loosened"):
        load_config(notes / "sub", checked=[notes])


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("namespaces = false\n", "namespaces"),
        ("timeout = 61\n", "timeout"),
        ('memory_limit = "8GiB"\n', "memory_limit"),
        ("memory_limit = false\n", "memory_limit"),
        ('tmp_size = "1GiB"\n', "tmp_size"),
        ("processes = 257\n", "processes"),
    ],
)
def test_untrusted_loosening_is_refused(notes: Path, text: str, key: str) -> None:
    write(notes / "noteexec.toml", 'exclude = ["drafts/*"]\n' + text)
    with pytest.raises(ConfigError, match=rf"noteexec\.toml:2: '{key}' may not be loosened"):
        load_config(notes)


def test_untrusted_auto_isolation_is_refused_under_a_strict_base(notes: Path) -> None:
    write(notes.parent / "noteexec.toml", 'isolation = "strict"\n')
    write(notes / "noteexec.toml", 'isolation = "auto"\n')
    with pytest.raises(ConfigError, match=r"notes/noteexec\.toml:1: 'isolation' may not be loosened"):
        load_config(notes)


def test_untrusted_tightening_is_accepted_over_the_trusted_base(notes: Path) -> None:
    write(notes.parent / "noteexec.toml", 'timeout = 30\nmemory_limit = "1GiB"\nexclude = ["x/*"]\n')
    write(
        notes / "noteexec.toml",
        'timeout = 5\nisolation = "strict"\nprocesses = 8\ntmp_size = "64MiB"\nexclude = ["drafts/*"]\n'
        'prelude = "import math"\n',
    )
    config = load_config(notes)
    assert (config.timeout, config.isolation, config.processes, config.tmp_size) == (
        5.0,
        "strict",
        8,
        64 << 20,
    )
    assert config.memory_limit == 1 << 30, "a key the untrusted file leaves out comes from the trusted base"
    assert (config.exclude, config.prelude) == (("drafts/*",), "import math")


def test_without_a_file_above_the_defaults_are_the_base(notes: Path) -> None:
    write(
        notes / "noteexec.toml", 'timeout = 60\nmemory_limit = "4GiB"\ntmp_size = "512MiB"\nprocesses = 256\n'
    )
    assert load_config(notes) == Config(source=(notes / "noteexec.toml").resolve())


def test_loosening_from_the_command_line_is_accepted(notes: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(notes / "noteexec.toml", 'env = ["SECRET"]\nnamespaces = false\n')
    assert main(["check", "--no-cache", "-q", str(notes)]) == 2
    assert "noteexec.toml:1: 'env' may not be loosened" in capsys.readouterr().err
    assert main(["check", "--no-cache", "-q", "--env", "SECRET", "--no-namespaces", str(notes)]) == 0


def test_overrides_apply_over_the_configuration(notes: Path) -> None:
    write(notes / "noteexec.toml", "timeout = 5\n")
    arguments = overrides(
        "--env", "A", "--env", "B", "--timeout", "120", "--memory-limit", "none", "--tmp-size", "1GiB",
        "--processes", "1000", "--isolation", "strict",
    )  # fmt: skip
    config = load_config(notes, arguments)
    assert config.env == ("A", "B")
    assert (config.timeout, config.memory_limit, config.tmp_size) == (120.0, None, 1 << 30)
    assert (config.processes, config.isolation) == (1000, "strict")
    assert apply_overrides(Config(), overrides()) == Config()


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--env", "*"], "--env takes whole variable names"),
        (["--env", "A-B"], "--env takes environment variable names"),
        (["--env", "NOTEEXEC_CACHE_SECRET"], "--env cannot pass NOTEEXEC_CACHE_SECRET to notes"),
        (["--timeout", "1e12"], "--timeout must be"),
        (["--timeout", "nan"], "--timeout must be"),
        (["--timeout", "-1"], "--timeout must be"),
        (["--memory-limit", "1e400GiB"], "--memory-limit must be"),
        (["--tmp-size", "none"], "--tmp-size must be"),
        (["--processes", "0"], "--processes must be"),
        (["--no-namespaces", "--isolation", "strict"], 'isolation "strict" needs the namespaces sandbox'),
    ],
)
def test_command_line_values_are_bounded_too(argv: list[str], fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        apply_overrides(Config(), overrides(*argv))


@pytest.mark.parametrize(
    "line",
    [
        "timeout = 1e12",
        "timeout = nan",
        "timeout = inf",
        "timeout = 0",
        "timeout = -1",
        "timeout = 86401",
        "timeout = true",
        'memory_limit = "1e400GiB"',
        'memory_limit = "nan"',
        'memory_limit = "99999999999999999999999999TiB"',
        "memory_limit = inf",
        'memory_limit = "1KiB"',
        'memory_limit = "2TiB"',
        'tmp_size = "1e400GiB"',
        "tmp_size = 0",
        'tmp_size = "none"',
        "processes = 0",
        "processes = -1",
        "processes = 65537",
        "processes = 1.5",
        'isolation = "loose"',
        'env = ["A B"]',
        'env = ["HF_[AB]"]',
    ],
)
def test_an_invalid_limit_is_an_error_at_its_line(notes: Path, line: str) -> None:
    """In a trusted file: the bounds hold wherever a value comes from."""
    write(notes.parent / "noteexec.toml", f'prelude = "import math"\n{line}\n')
    key = line.split()[0]
    with pytest.raises(ConfigError, match=rf"^repo/noteexec\.toml:2: '{key}' "):
        load_config(notes)


def test_strict_isolation_without_namespaces_is_an_error(notes: Path) -> None:
    write(notes.parent / "noteexec.toml", 'namespaces = false\nisolation = "strict"\n')
    with pytest.raises(ConfigError, match=r"noteexec\.toml:2: isolation \"strict\" needs the namespaces"):
        load_config(notes)


def test_a_trusted_file_may_disable_the_memory_limit(notes: Path) -> None:
    write(notes.parent / "noteexec.toml", 'memory_limit = "none"\ntmp_size = "16MiB"\nprocesses = 65536\n')
    config = load_config(notes)
    assert (config.memory_limit, config.tmp_size, config.processes) == (None, 16 << 20, 65536)


@pytest.mark.parametrize("value", ["1e12", "86401", ".inf", ".nan", "0", "-5", "1" + "0" * 400])
def test_frontmatter_timeout_out_of_bounds_is_a_problem(value: str) -> None:
    note = parse_note(f"---\ntitle: t\nnoteexec: {{timeout: {value}}}\n---\n```python\nx = 1\n```\n")
    assert [problem.line for problem in note.problems] == [3]
    assert (
        "'noteexec.timeout' must be a positive number of seconds, at most 86400" in note.problems[0].message
    )
    assert note.options.timeout is None


def test_frontmatter_timeout_error_through_the_list_command(
    notes: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(notes / "b.md", "---\nnoteexec: {timeout: 1e12}\n---\n```python\nx = 1\n```\n")
    assert main(["list", str(notes / "b.md")]) == 1
    assert "b.md:2: error: 'noteexec.timeout' must be" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("frontmatter", "config", "effective"), [(300, 10, 10.0), (2, 10, 2.0), (None, 10, 10.0)]
)
def test_a_note_cannot_outlast_the_configured_timeout(
    tmp_path: Path, frontmatter: float | None, config: float, effective: float
) -> None:
    head = f"---\nnoteexec: {{timeout: {frontmatter}}}\n---\n" if frontmatter is not None else ""
    note = parse_note(head + "```python\nx = 1\n```\n", tmp_path / "n.md")
    settings = Config(timeout=config)
    assert note_run(note, expectations(note, settings), tmp_path, settings).timeout == effective
