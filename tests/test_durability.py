"""A vault on a read-only file system checks and builds normally (to a writable output)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

SEED_COPY = REPO / "notes" / "autograd-计算图与梯度.md"


def run_on_read_only(vault: Path, *command: str) -> subprocess.CompletedProcess[str]:
    """Run a noteexec command in a private mount namespace where ``vault``'s folder is read-only."""
    script = (
        f'mount --bind "{vault.parent}" "{vault.parent}" && '
        f'mount -o remount,bind,ro "{vault.parent}" && '
        f'! touch "{vault}/probe" 2>/dev/null && '
        f'exec "{sys.executable}" -m noteexec "$@"'
    )
    return subprocess.run(
        ["unshare", "-m", "sh", "-c", script, "sh", *command],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )


def test_check_and_build_a_read_only_vault(tmp_path: Path) -> None:
    vault = tmp_path / "readonly" / "vault"
    vault.mkdir(parents=True)
    shutil.copy(SEED_COPY, vault / SEED_COPY.name)
    checked = run_on_read_only(vault, "check", str(vault))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "2 passed" in checked.stdout
    assert "cache disabled" in checked.stderr  # .noteexec/ beside the vault cannot be created
    assert "Traceback" not in checked.stderr
    out = tmp_path / "site"
    built = run_on_read_only(vault, "build", str(vault), "-o", str(out), "--offline")
    assert built.returncode == 0, built.stdout + built.stderr
    assert any(out.rglob("*.html"))
    assert sorted(path.name for path in vault.iterdir()) == [SEED_COPY.name]
