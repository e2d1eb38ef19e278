"""The house rules a reviewer would otherwise check by hand: types, lint, module size."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "noteexec"
MAX_MODULE_LINES = 500


def test_the_package_passes_mypy_strict(tmp_path: Path) -> None:
    """``[tool.mypy]`` in pyproject.toml: strict on ``noteexec/``."""
    checked = subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path / "mypy")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_ruff_finds_nothing_to_fix_or_reformat() -> None:
    for command in (
        ["check", "--no-cache", "noteexec", "tests", "bench"],
        ["format", "--no-cache", "--check", "noteexec", "tests", "bench"],
    ):
        checked = subprocess.run(
            [sys.executable, "-m", "ruff", *command], cwd=REPO, capture_output=True, text=True, timeout=300
        )
        assert checked.returncode == 0, checked.stdout + checked.stderr


def test_every_module_reads_in_one_sitting() -> None:
    long = {
        str(path.relative_to(REPO)): lines
        for path in PACKAGE.rglob("*.py")
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    }
    assert long == {}
