"""noteexec doctor: reports the protections that really work here."""

from __future__ import annotations

from noteexec.doctor import diagnose, exit_code, report
from tests.conftest import noteexec


def test_doctor_probes_each_protection() -> None:
    findings = {finding.name: finding for finding in diagnose(run_worker=False)}
    assert set(findings) == {"torch", "network", "vault", "processes", "memory", "environment"}
    # This project's CI runs as root on Linux, where every namespace is available.
    assert findings["network"].ok, findings["network"].detail
    assert findings["vault"].ok, findings["vault"].detail
    assert exit_code(list(findings.values())) == 0
    assert "read-only" in report(list(findings.values()))


def test_doctor_command_runs_a_note() -> None:
    result = noteexec("doctor")
    assert result.returncode == 0, result.stdout
    assert "ok   warm worker" in result.stdout
