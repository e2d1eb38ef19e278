"""Linux isolation primitives, without torch: namespaces, read-only mounts, subreapers.

Used by the worker for every note, and by ``noteexec doctor`` to say what is in force here.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import time
from typing import Any

CLONE_NEWNS = 0x00020000
CLONE_NEWNET = 0x40000000
MS_RDONLY = 1
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36

_libc = ctypes.CDLL(None, use_errno=True)


def libc_call(name: str, *args: Any) -> None:
    if getattr(_libc, name)(*args) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))


def children() -> list[int]:
    """This process's children, from /proc (every thread's list)."""
    found: list[int] = []
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/children") as listing:
                found.extend(int(pid) for pid in listing.read().split())
        except OSError:
            continue
    return found


def kill_children(keep: frozenset[int] = frozenset()) -> list[int]:
    victims = [pid for pid in children() if pid not in keep]
    for pid in victims:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return victims


def isolate(readonly: list[str], use_namespaces: bool) -> dict[str, Any]:
    """Enter new network and mount namespaces; report which protections are in force."""
    watched = {"namespaces": False, "network": "shared", "vault": "watched"}
    if not use_namespaces:
        return {**watched, "reason": "namespaces disabled by configuration"}
    try:
        libc_call("unshare", CLONE_NEWNET | CLONE_NEWNS)
    except OSError as error:
        return {**watched, "reason": f"unshare: {error.strerror}"}
    isolation: dict[str, Any] = {"namespaces": True, "network": "none", "vault": "read-only"}
    try:
        libc_call("mount", b"none", b"/", None, MS_REC | MS_PRIVATE, None)
        for path in readonly:
            encoded = os.fsencode(path)
            libc_call("mount", encoded, encoded, None, MS_BIND | MS_REC, None)
            flags = MS_BIND | MS_REMOUNT | MS_RDONLY | MS_REC
            libc_call("mount", None, encoded, None, flags, None)
    except OSError as error:
        isolation.update(vault="watched", reason=f"read-only mount: {error.strerror}")
    return isolation


def reap_descendants() -> None:
    """As a subreaper: kill everything below and reap it, until nothing is left."""
    for _ in range(1000):
        if not kill_children():
            return
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                time.sleep(0.001)
                break


def namespaces_work() -> bool:
    """Whether this machine lets a process enter new network and mount namespaces."""
    pid = os.fork()
    if pid == 0:
        try:
            libc_call("unshare", CLONE_NEWNET | CLONE_NEWNS)
        except OSError:
            os._exit(1)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    return os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
