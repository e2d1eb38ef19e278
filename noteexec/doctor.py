"""``noteexec doctor``: which of the sandbox's protections this machine actually provides.

Each probe runs in a forked child that tries the real mechanism (a namespace, a read-only
mount, a connection, a limit), so the answer is what notes will get, not what should work.
"""

from __future__ import annotations

import errno
import os
import platform
import resource
import socket
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from noteexec import __version__
from noteexec.check import NoteFile, check
from noteexec.config import Config
from noteexec.sandbox import Sandbox, sandbox_environment
from noteexec.sandbox.isolation import PR_SET_CHILD_SUBREAPER, isolate, libc_call


@dataclass(frozen=True)
class Finding:
    ok: bool
    name: str
    detail: str


def _in_child(probe: Callable[[], bool]) -> bool:
    """Run ``probe`` in a forked child (it may change namespaces); True if it returned True."""
    pid = os.fork()
    if pid == 0:
        try:
            os._exit(0 if probe() else 1)
        except BaseException:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    return os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


def _network_is_cut() -> bool:
    isolation = isolate([], use_namespaces=True)
    if isolation["network"] != "none":
        return False
    try:
        socket.create_connection(("1.1.1.1", 53), timeout=2).close()
    except OSError as error:
        return error.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ENETDOWN)
    return False


def _vault_is_read_only(folder: str) -> Callable[[], bool]:
    def probe() -> bool:
        if isolate([folder], use_namespaces=True)["vault"] != "read-only":
            return False
        try:
            with open(os.path.join(folder, "probe.txt"), "w") as handle:
                handle.write("x")
        except OSError as error:
            return error.errno == errno.EROFS
        return False

    return probe


def _subreaper() -> bool:
    libc_call("prctl", PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    return True


def _memory_limit() -> bool:
    resource.setrlimit(resource.RLIMIT_AS, (8 << 30, 8 << 30))
    return True


def _torch_version() -> str | None:
    try:
        return metadata.version("torch")
    except metadata.PackageNotFoundError:
        return None


def _worker_round_trip() -> Finding:
    with tempfile.TemporaryDirectory() as folder:
        note = Path(folder) / "probe.md"
        note.write_text("```python\nw = torch.ones(1, requires_grad=True)\n(w * 2).sum().backward()\n```\n")
        started = time.perf_counter()
        with Sandbox() as sandbox:
            [result] = check([NoteFile(note, Path(folder))], Config(), sandbox)
        elapsed = time.perf_counter() - started
    ok = result.status == "passed"
    detail = f"a note ran in a forked worker in {elapsed:.2f} s (torch import included)"
    if not ok:
        detail = f"a trivial note did not pass: {result.error or result.blocks[0].verdict.message}"
    return Finding(ok, "warm worker", detail)


def diagnose(run_worker: bool = True) -> list[Finding]:
    torch = _torch_version()
    with tempfile.TemporaryDirectory() as folder:
        read_only = _in_child(_vault_is_read_only(folder))
        left_over = os.listdir(folder)
    network_cut = _in_child(_network_is_cut)
    passed = sandbox_environment(dict(os.environ))
    findings = [
        Finding(
            torch is not None, "torch", f"torch {torch} installed" if torch else "torch is not installed"
        ),
        Finding(
            network_cut,
            "network",
            "notes run in an empty network namespace: no network"
            if network_cut
            else "no network namespace: notes can reach the network",
        ),
        Finding(
            read_only and not left_over,
            "vault",
            "the checked folder is mounted read-only for notes"
            if read_only
            else "no read-only mount: writes into the vault are detected and reported, not prevented",
        ),
        Finding(
            _in_child(_subreaper),
            "processes",
            "a child subreaper kills everything a note starts, setsid children included",
        ),
        Finding(_in_child(_memory_limit), "memory", "an address-space limit caps each note (memory_limit)"),
        Finding(
            True,
            "environment",
            f"{len(passed)} of {len(os.environ)} environment variables reach notes (an allowlist); "
            "secrets such as tokens do not",
        ),
    ]
    if run_worker and torch is not None:
        findings.append(_worker_round_trip())
    return findings


def report(findings: list[Finding]) -> str:
    lines = [
        f"noteexec {__version__}, Python {platform.python_version()}, {platform.system()} "
        f"{platform.release()} {platform.machine()}, running as uid {os.getuid()}"
    ]
    lines += [f"{'ok' if finding.ok else 'NO':4} {finding.name:12} {finding.detail}" for finding in findings]
    return "\n".join(lines)


def exit_code(findings: list[Finding]) -> int:
    """1 when notes cannot run at all here; reduced isolation is reported, not fatal."""
    essential = {"torch", "warm worker"}
    return 0 if all(finding.ok for finding in findings if finding.name in essential) else 1
