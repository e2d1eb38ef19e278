"""What a note's processes may no longer do: capabilities, new privileges, dangerous system calls.

Applied once the note's world is built, before any of its code runs, and inherited by everything
it starts. The system-call filter comes from libseccomp (through pyseccomp), never hand-written
BPF: it refuses what could reach outside the note's process tree (``ptrace``, another process's
memory, mounts, namespaces, keyrings, modules, BPF, perf, ``userfaultfd``, io_uring).
"""

from __future__ import annotations

import ctypes
import errno
import os
import signal
import tempfile
from functools import cache

from noteexec.sandbox.isolation import (
    CLONE_NEWCGROUP,
    CLONE_NEWIPC,
    CLONE_NEWNET,
    CLONE_NEWNS,
    CLONE_NEWPID,
    CLONE_NEWUSER,
    CLONE_NEWUTS,
    NOTE_ID,
    PR_SET_KEEPCAPS,
    PR_SET_PDEATHSIG,
    libc_call,
)

PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
_SOCK_FILTER_SIZE = 8  # struct sock_filter: code, jt, jf, k
_CAPABILITY_VERSION_3 = 0x20080522
CLONE_PARENT = 0x00008000
_NAMESPACE_FLAGS = (
    CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET, CLONE_NEWIPC, CLONE_NEWUTS, CLONE_NEWCGROUP,
)  # fmt: skip

REFUSED = (
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd",
    "mount", "umount2", "pivot_root", "chroot", "move_mount", "open_tree", "fsopen", "fsconfig",
    "fsmount", "fspick", "mount_setattr", "setns", "unshare",
    "bpf", "perf_event_open", "userfaultfd", "keyctl", "add_key", "request_key",
    "init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load",
    "io_uring_setup", "io_uring_enter", "io_uring_register", "open_by_handle_at", "name_to_handle_at",
    "acct", "swapon", "swapoff", "reboot", "syslog", "quotactl", "lookup_dcookie", "iopl", "ioperm",
    "personality", "vhangup", "setdomainname", "sethostname", "settimeofday", "clock_settime",
    "adjtimex", "clock_adjtime",
)  # fmt: skip
"""Refused with EPERM. ``clone`` is refused when it asks for a namespace or a sibling
(``CLONE_PARENT``); ``clone3``, whose flags a filter cannot read, says ENOSYS, so the C
library falls back to ``clone``; ``prctl(PR_SET_PDEATHSIG)`` is refused for any signal but
SIGKILL."""


class _Header(ctypes.Structure):
    _fields_ = (("version", ctypes.c_uint32), ("pid", ctypes.c_int))


class _Data(ctypes.Structure):
    _fields_ = (
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    )


def _capabilities() -> tuple[_Header, ctypes.Array[_Data]]:
    header, data = _Header(_CAPABILITY_VERSION_3, 0), (_Data * 2)()
    libc_call("capget", ctypes.byref(header), data)
    return header, data


def raise_effective_capabilities() -> None:
    """Make every permitted capability effective again (a uid change cleared the effective set)."""
    header, data = _capabilities()
    for half in data:
        half.effective = half.permitted
    libc_call("capset", ctypes.byref(header), data)


def become_note_user(drop_groups: bool) -> None:
    """Take the note's id in its namespace, keeping the capabilities the world's setup needs.

    As root the process is still host uid 0 until it does this: files owned by root would
    otherwise stay open to it by plain permissions."""
    libc_call("prctl", PR_SET_KEEPCAPS, 1, 0, 0, 0)
    if drop_groups:
        os.setgroups([])
    os.setresgid(NOTE_ID, NOTE_ID, NOTE_ID)
    os.setresuid(NOTE_ID, NOTE_ID, NOTE_ID)
    raise_effective_capabilities()


def drop_capabilities() -> None:
    """No capability, now or after an ``execve``: the bounding, ambient and process sets emptied."""
    with open("/proc/sys/kernel/cap_last_cap") as last:
        last_capability = int(last.read())
    try:
        for capability in range(last_capability + 1):
            libc_call("prctl", PR_CAPBSET_DROP, capability, 0, 0, 0)
    except PermissionError:  # an ordinary user without a namespace: it holds nothing to drop
        pass
    libc_call("prctl", PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    header = _Header(_CAPABILITY_VERSION_3, 0)
    libc_call("capset", ctypes.byref(header), (_Data * 2)())


def no_new_privileges() -> None:
    libc_call("prctl", PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)


class _SockFilterProgram(ctypes.Structure):
    _fields_ = (("len", ctypes.c_ushort), ("filter", ctypes.c_char_p))


@cache
def syscall_filter() -> bytes:
    """The filter as the BPF program libseccomp (through pyseccomp) compiles from the rules
    below: compiled once, in the worker; each note's processes load it with one system call."""
    import pyseccomp

    refuse = pyseccomp.ERRNO(errno.EPERM)
    rules = pyseccomp.SyscallFilter(pyseccomp.ALLOW)
    for name in REFUSED:
        try:
            rules.add_rule(refuse, name)
        except (OSError, ValueError, RuntimeError):  # unknown on this architecture
            continue
    for flag in (*_NAMESPACE_FLAGS, CLONE_PARENT):
        rules.add_rule(refuse, "clone", pyseccomp.Arg(0, pyseccomp.MASKED_EQ, flag, flag))
    rules.add_rule(pyseccomp.ERRNO(errno.ENOSYS), "clone3")
    # A parent-death signal may be set to SIGKILL, never cleared or softened: the note's own
    # process dies with its parent that way, and the note must not undo it.
    rules.add_rule(
        refuse,
        "prctl",
        pyseccomp.Arg(0, pyseccomp.EQ, PR_SET_PDEATHSIG),
        pyseccomp.Arg(1, pyseccomp.NE, signal.SIGKILL),
    )
    with tempfile.TemporaryFile() as sink:
        rules.export_bpf(sink)
        sink.seek(0)
        return sink.read()


def load_syscall_filter() -> None:
    """Load the compiled filter (``no_new_privs`` must be set): what ``seccomp_load`` does
    after compiling, without compiling again in every process."""
    program = syscall_filter()
    header = _SockFilterProgram(len(program) // _SOCK_FILTER_SIZE, program)
    libc_call("prctl", PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(header), 0, 0)


def lock_down() -> None:
    """Everything above; the filter last, as loading it needs no capability once
    ``no_new_privs`` is set."""
    drop_capabilities()
    no_new_privileges()
    load_syscall_filter()


def landlock_missing() -> str | None:
    """Why Landlock cannot confine a note here (``None`` when it can: ABI 6 or later, which
    scopes signals and abstract sockets besides files and TCP)."""
    from py_landlock import LandlockError, get_abi_version

    try:
        abi = get_abi_version()
    except LandlockError as error:
        return f"Landlock is unavailable: {error}"
    return None if abi >= 6 else f"Landlock ABI {abi} is older than 6 (Linux 6.12)"


def confine(writable: str) -> None:
    """Without namespaces: the note's tree may read and run anything, write only under
    ``writable`` (its own folder) and ``/dev/shm``, open no TCP connection, and neither signal
    nor reach through an abstract socket any process outside it (the worker, the checker).
    Inherited by everything it starts; no capability can lift it."""
    from py_landlock import AccessFs, Landlock

    sinks = [device for device in ("/dev/null", "/dev/zero", "/dev/full") if os.path.exists(device)]
    ruleset = Landlock(strict=False).allow_read("/").allow_execute("/")
    ruleset.allow_read_write(writable, *[path for path in ("/dev/shm",) if os.path.isdir(path)])
    ruleset.add_path_rule(*sinks, access=AccessFs.READ_FILE | AccessFs.WRITE_FILE | AccessFs.TRUNCATE)
    ruleset.apply()
