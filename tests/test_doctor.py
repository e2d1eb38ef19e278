"""noteexec doctor: reports the protections that really work here, from a probe note's attempts."""

from __future__ import annotations

from noteexec.doctor import diagnose, exit_code, report
from tests.conftest import noteexec


def test_doctor_probes_each_protection_from_inside_a_note() -> None:
    findings = {finding.name: finding for finding in diagnose()}
    assert {"network", "vault", "python", "processes", "environment", "capabilities", "user", "ptrace",
            "mount", "namespaces", "limits"} <= set(findings)  # fmt: skip
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
