"""``noteexec doctor``: which of the sandbox's protections this machine actually provides.

The answer is what notes get, not what should work: doctor runs a probe note in the real
sandbox that tries each escape (the network, a write into the checked folder and into Python's
packages, other processes, the checker's environment, capabilities, ptrace, a mount, a new
namespace), and reports what the note observed, with how to get each missing protection.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from noteexec import __version__
from noteexec.config import Config
from noteexec.exitcodes import EXIT_FAILED, EXIT_OK
from noteexec.results import NoteFile
from noteexec.session import CheckSession, RunOptions

PROBE = r"""
import ctypes, json, os, socket, site
found = {}
try:
    socket.create_connection(("127.0.0.1", PORT), timeout=2).close()
    found["network"] = False
except OSError:
    found["network"] = True
try:
    socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"probe", ("127.0.0.1", PORT))
    found["datagrams"] = False
except OSError:
    found["datagrams"] = True
try:
    open(OUTSIDE, "rb").close()
    found["files"] = False
except OSError:
    found["files"] = True
try:
    os.memfd_create("probe")
    found["ipc"] = False
except OSError:
    found["ipc"] = True
hook = os.path.join(site.getsitepackages()[0], "noteexec-probe.pth")
for name, path in (("vault", VAULT), ("python", hook)):
    try:
        open(path, "w").close()
        found[name] = False
    except OSError:
        found[name] = True
pids = [entry for entry in os.listdir("/proc") if entry.isdigit()]
found["processes"] = str(CHECKER) not in pids
try:
    found["environment"] = SECRET not in open(f"/proc/{CHECKER}/environ", "rb").read().decode("latin-1")
except OSError:
    found["environment"] = True
status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines() if ":" in line)
found["capabilities"] = int(status["CapEff"], 16) == 0 and int(status["CapBnd"], 16) == 0
found["user"] = os.getuid() != 0 or open("/proc/self/uid_map").read().split()[1:2] != ["0"]
libc = ctypes.CDLL(None, use_errno=True)
found["ptrace"] = libc.ptrace(16, os.getppid() or 1, 0, 0) != 0  # PTRACE_ATTACH
found["mount"] = libc.mount(b"none", b"/tmp", b"tmpfs", 0, None) != 0
found["namespaces"] = libc.unshare(0x40000000) != 0  # CLONE_NEWNET
found["limits"] = any(part in line for line in open("/proc/self/cgroup") for part in ("noteexec-",))
print(json.dumps(found))
"""

ADVICE = {
    "network": "needs a network namespace: see 'namespaces' below",
    "datagrams": "needs a network namespace, or the system-call filter's socket rule",
    "files": "needs a mount namespace, or Landlock (Linux 6.12+) without one",
    "ipc": "memory files and System V segments: the system-call filter refuses them",
    "vault": "needs a mount namespace (or run noteexec as root, which runs notes as an unprivileged id)",
    "python": "needs a mount namespace; else install Python where the checker's user cannot write",
    "processes": "needs a PID namespace: see 'namespaces' below",
    "environment": "needs a PID namespace, or a checker that is not dumpable and a note of another user",
    "capabilities": "needs a user namespace, or noteexec run as an ordinary user",
    "user": "needs a user namespace (as root, or an ordinary user allowed to create one)",
    "ptrace": "the system-call filter (libseccomp and pyseccomp) refuses it",
    "mount": "the system-call filter refuses it",
    "namespaces": "the system-call filter refuses it",
    "limits": "run as root, or with memory and pids controllers of cgroup v2 delegated to your user "
    "(systemd-run --user -p Delegate=yes); else only per-process limits apply",
}
NAMESPACE_ADVICE = (
    "user namespaces are refused here. Docker: run with --security-opt seccomp=unconfined or a profile "
    "that allows clone/unshare of namespaces; Ubuntu 24.04 (GitHub runners): sudo sysctl -w "
    "kernel.apparmor_restrict_unprivileged_userns=0; Debian: sysctl kernel.unprivileged_userns_clone=1; "
    "any kernel: user.max_user_namespaces > 0"
)


@dataclass(frozen=True)
class Finding:
    ok: bool
    name: str
    detail: str


def _torch_version() -> str | None:
    try:
        return metadata.version("torch")
    except metadata.PackageNotFoundError:
        return None


def _probe(config: Config) -> tuple[dict[str, bool], Mapping[str, object], str | None, float]:
    """Run the probe note; what it observed, the isolation the sandbox reported, any error."""
    secret = f"NOTEEXEC_DOCTOR_SECRET_{os.getpid()}"
    os.environ[secret] = secret
    listener = socket.create_server(("127.0.0.1", 0))  # a service on the checker's loopback
    try:
        with tempfile.TemporaryDirectory() as folder:
            vault = Path(folder) / "vault"
            vault.mkdir()
            outside = Path(folder) / "outside.txt"  # beside the vault, readable by everyone
            outside.write_text("not the note's\n")
            outside.chmod(0o644)
            os.chmod(folder, 0o755)
            code = (
                PROBE.replace("VAULT", repr(str(vault / "probe.txt")))
                .replace("OUTSIDE", repr(str(outside)))
                .replace("CHECKER", str(os.getpid()))
                .replace("SECRET", repr(secret))
                .replace("PORT", str(listener.getsockname()[1]))
            )
            note = vault / "probe.md"
            note.write_text(f"```python\n{code}\n```\n", encoding="utf-8")
            started = time.perf_counter()
            with CheckSession(config, vault, RunOptions(cache=False)) as session:
                [result] = session.check([NoteFile(note, vault)])
            elapsed = time.perf_counter() - started
            left_over = sorted(path.name for path in vault.iterdir() if path.name != "probe.md")
    finally:
        del os.environ[secret]
        listener.close()
    facts = result.blocks[0].facts if result.blocks else None
    isolation = result.facts.isolation if result.facts is not None else {}
    if facts is None or facts.exception is not None or not facts.stdout.strip():
        reason = result.error or (result.blocks[0].verdict.message if result.blocks else "no result")
        return {}, isolation, reason, elapsed
    found = json.loads(facts.stdout.strip().splitlines()[-1])
    found["vault"] = found["vault"] and not left_over
    return found, isolation, None, elapsed


def diagnose(config: Config | None = None) -> list[Finding]:
    torch = _torch_version()
    findings = [
        Finding(torch is not None, "torch", f"torch {torch} installed" if torch else "torch is not installed")
    ]
    if torch is None:
        return findings
    found, isolation, error, elapsed = _probe(config or Config())
    if error is not None:
        return [*findings, Finding(False, "warm worker", f"the probe note did not run: {error}")]
    findings.append(
        Finding(True, "warm worker", f"a probe note ran in {elapsed:.2f} s (torch import included)")
    )
    level = str(isolation.get("level", "unknown"))
    reason = isolation.get("reason")
    detail = f"{level}: {isolation.get('user', '')}; limits: {isolation.get('limits', '')}"
    if level != "full":
        detail += f" ({reason}). {NAMESPACE_ADVICE}"
    findings.append(Finding(level == "full", "sandbox", detail))
    for name, ok in found.items():
        findings.append(
            Finding(bool(ok), name, "in force: the probe note tried and was refused" if ok else ADVICE[name])
        )
    return findings


def report(findings: list[Finding]) -> str:
    lines = [
        f"noteexec {__version__}, Python {platform.python_version()}, {platform.system()} "
        f"{platform.release()} {platform.machine()}, running as uid {os.getuid()}"
    ]
    lines += [f"{'ok' if finding.ok else 'NO':4} {finding.name:12} {finding.detail}" for finding in findings]
    return "\n".join(lines)


def exit_code(findings: list[Finding], strict: bool = False) -> int:
    """1 when notes cannot run at all here (or, ``strict``, not in the full sandbox)."""
    essential = {"torch", "warm worker"} | ({"sandbox"} if strict else set())
    return EXIT_OK if all(finding.ok for finding in findings if finding.name in essential) else EXIT_FAILED
