"""noteexec doctor: reports the protections that really work here, from a probe note's attempts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from noteexec.doctor import diagnose, exit_code, report
from tests.conftest import as_nobody, noteexec


def test_doctor_probes_each_protection_from_inside_a_note() -> None:
    findings = {finding.name: finding for finding in diagnose()}
    assert {"network", "datagrams", "files", "ipc", "vault", "python", "processes", "environment",
            "capabilities", "user", "ptrace", "mount", "namespaces", "limits"} <= set(findings)  # fmt: skip
    # This project's CI runs as root on Linux, where every protection is available: a missing one
    # fails here, loudly, instead of being skipped.
    missing = {name: finding.detail for name, finding in findings.items() if not finding.ok}
    assert missing == {}
    assert exit_code(list(findings.values()), strict=True) == 0
    assert "full: an unprivileged id in its own user namespace" in report(list(findings.values()))


def test_doctor_command_runs_a_note() -> None:
    result = noteexec("doctor", "--strict")
    assert result.returncode == 0, result.stdout
    assert "ok   warm worker" in result.stdout


def test_doctor_as_an_ordinary_user_proves_the_same_protections(tmp_path: Path) -> None:
    """As nobody the sandbox is the unprivileged user namespace's; only the cgroup cap needs a
    delegated cgroup, which this machine does not give nobody (doctor says how to get one)."""
    command = as_nobody([sys.executable, "-m", "noteexec", "doctor", "--strict"], tmp_path, {})
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert "running as uid 65534" in result.stdout, result.stdout + result.stderr
    lines = {line.split()[1]: line for line in result.stdout.splitlines() if line[:4] in ("ok  ", "NO  ")}
    failing = sorted(name for name, line in lines.items() if line.startswith("NO"))
    assert failing == ["limits"], result.stdout
    assert "full: an unprivileged id in its own user namespace" in lines["sandbox"]
    assert "Delegate=yes" in result.stdout
    assert result.returncode == 0, result.stdout  # strict asks for the trust boundary, not the cgroup
