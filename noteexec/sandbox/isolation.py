"""Linux isolation primitives, without torch: namespaces, read-only mounts, subreapers.

Used by the worker for every note, and by ``noteexec doctor`` to say what is in force here.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import struct
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
MADV_COLLAPSE = 25
HUGE_PAGE = 2 << 20
_PAGE = os.sysconf("SC_PAGE_SIZE")
_PAGES_PER_HUGE_PAGE = HUGE_PAGE // _PAGE

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


def back_with_huge_pages() -> int:
    """Back the densely used parts of this process's anonymous memory with 2 MiB pages.

    ``fork`` copies one page-table entry per present 4 KiB page of anonymous memory, and the
    child tears them all down again at exit: for a worker holding torch (150-250 MiB) that was
    most of a note's cost. A huge page is one entry for 512 pages; copy-on-write in a child still
    copies 4 KiB at a time. Only 2 MiB stretches whose pages are (nearly) all present are
    collapsed, and nothing is marked ``MADV_HUGEPAGE``, so no memory is added: new allocations
    keep getting 4 KiB pages. Best effort: without ``MADV_COLLAPSE`` (Linux < 6.1) nothing
    changes. Returns the bytes collapsed.
    """
    try:
        pagemap = os.open("/proc/self/pagemap", os.O_RDONLY)
    except OSError:
        return 0
    collapsed = 0
    try:
        with open("/proc/self/maps") as maps:
            regions = [line.split() for line in maps]
        for fields in regions:
            if fields[1] != "rw-p" or (len(fields) > 5 and fields[5] != "[heap]"):
                continue
            start, end = (int(bound, 16) for bound in fields[0].split("-"))
            for chunk in range(-(-start // HUGE_PAGE) * HUGE_PAGE, end // HUGE_PAGE * HUGE_PAGE, HUGE_PAGE):
                entries = os.pread(pagemap, 8 * _PAGES_PER_HUGE_PAGE, chunk // _PAGE * 8)
                present = sum(entry >> 63 for (entry,) in struct.iter_unpack("<Q", entries))
                if present >= _PAGES_PER_HUGE_PAGE * 15 // 16:
                    address, length = ctypes.c_void_p(chunk), ctypes.c_size_t(HUGE_PAGE)
                    if _libc.madvise(address, length, MADV_COLLAPSE) == 0:
                        collapsed += HUGE_PAGE
    finally:
        os.close(pagemap)
    return collapsed


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
