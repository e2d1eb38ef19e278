"""What a note's processes may no longer do: capabilities, new privileges, dangerous system calls.

Applied once the note's world is built, before any of its code runs, and inherited by everything
it starts. The system-call filter comes from libseccomp (through pyseccomp), never hand-written
BPF: it refuses what could reach outside the note's process tree (``ptrace``, another process's
memory, mounts, namespaces, keyrings, modules, BPF, perf, ``userfaultfd``, io_uring).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import re
import resource
import signal
import socket
import stat
import tempfile
from collections.abc import Collection, Iterable
from functools import cache
from typing import Literal

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
    "shmget", "msgget",
)  # fmt: skip
"""Refused with EPERM. ``clone`` is refused when it asks for a namespace or a sibling
(``CLONE_PARENT``); ``clone3``, whose flags a filter cannot read, says ENOSYS, so the C
library falls back to ``clone``; ``prctl(PR_SET_PDEATHSIG)`` is refused for any signal but
SIGKILL. Memory files and System V segments and queues are refused too: without a cgroup,
memory held there counts against no cap (files in ``/dev/shm`` and ``/tmp`` count against
the note's disk).

Sockets depend on where the note runs (``socket``; ``socketpair`` is always allowed):
``"any"`` in its own, empty network namespace; ``"local"`` (Unix sockets only) without one;
``"none"`` without one as uid 0, which owns the host's root-only sockets (a container
runtime's, the init system's)."""

Sockets = Literal["any", "local", "none"]

OWNER_CALLS = (
    "chmod", "fchmod", "fchmodat", "fchmodat2", "chown", "fchown", "lchown", "fchownat",
    "utime", "utimes", "futimesat", "utimensat", "setxattr", "lsetxattr", "fsetxattr",
    "removexattr", "lremovexattr", "fremovexattr", "setxattrat", "removexattrat",
)  # fmt: skip
"""Also refused to a note left as uid 0 (``"none"``): what a file's owner may do without any
capability, and Landlock does not cover: uid 0 owns every root file (making one readable to
all, or setuid)."""


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


def cap_processes(processes: int, own_user_namespace: bool) -> None:
    """Without a cgroup: at most ``processes`` processes and threads in the note's tree
    (``RLIMIT_NPROC``). In a user namespace of its own the kernel counts only the note's; without
    one it counts every process of the same user, so the cap goes on top of what that user runs
    now (notes side by side then share it). Root's processes are never counted (the kernel
    exempts uid 0): without namespaces as root, only a cgroup caps them."""
    # Counted per user namespace since Linux 5.14; before, every process of the host id counts.
    counted_alone = own_user_namespace and _kernel() >= (5, 14)
    running = 0 if counted_alone else _tasks_of(os.getuid())
    resource.setrlimit(resource.RLIMIT_NPROC, (running + processes, running + processes))


def _kernel() -> tuple[int, int]:
    found = re.match(r"(\d+)\.(\d+)", os.uname().release)
    return (int(found[1]), int(found[2])) if found else (0, 0)


def _tasks_of(uid: int) -> int:
    """Processes and threads whose real user is ``uid``, as the kernel counts them."""
    count = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status", "rb") as status:
                fields = dict(line.split(b":", 1) for line in status if b":" in line)
        except OSError:
            continue
        if int(fields.get(b"Uid", b"-1").split()[0]) == uid:
            count += int(fields.get(b"Threads", b"1"))
    return count


def no_new_privileges() -> None:
    libc_call("prctl", PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)


class _SockFilterProgram(ctypes.Structure):
    _fields_ = (("len", ctypes.c_ushort), ("filter", ctypes.c_char_p))


@cache
def syscall_filter(sockets: Sockets) -> bytes:
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
    rules.add_rule(pyseccomp.ERRNO(errno.ENOSYS), "memfd_create")  # "unsupported": libraries fall back
    # A parent-death signal may be set to SIGKILL, never cleared or softened: the note's own
    # process dies with its parent that way, and the note must not undo it.
    rules.add_rule(
        refuse,
        "prctl",
        pyseccomp.Arg(0, pyseccomp.EQ, PR_SET_PDEATHSIG),
        pyseccomp.Arg(1, pyseccomp.NE, signal.SIGKILL),
    )
    if sockets == "none":
        rules.add_rule(refuse, "socket")
        for name in OWNER_CALLS:
            with contextlib.suppress(OSError, ValueError, RuntimeError):  # unknown on this architecture
                rules.add_rule(refuse, name)
    elif sockets == "local":
        rules.add_rule(refuse, "socket", pyseccomp.Arg(0, pyseccomp.NE, socket.AF_UNIX))
    with tempfile.TemporaryFile() as sink:
        rules.export_bpf(sink)
        sink.seek(0)
        return sink.read()


def load_syscall_filter(sockets: Sockets) -> None:
    """Load the compiled filter (``no_new_privs`` must be set): what ``seccomp_load`` does
    after compiling, without compiling again in every process."""
    program = syscall_filter(sockets)
    header = _SockFilterProgram(len(program) // _SOCK_FILTER_SIZE, program)
    libc_call("prctl", PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(header), 0, 0)


def lock_down(sockets: Sockets) -> None:
    """Everything above; the filter last, as loading it needs no capability once
    ``no_new_privs`` is set."""
    drop_capabilities()
    no_new_privileges()
    load_syscall_filter(sockets)


def landlock_missing() -> str | None:
    """Why Landlock cannot confine a note here (``None`` when it can: ABI 6 or later, which
    scopes signals and abstract sockets besides files and TCP)."""
    from py_landlock import LandlockError, get_abi_version

    try:
        abi = get_abi_version()
    except LandlockError as error:
        return f"Landlock is unavailable: {error}"
    return None if abi >= 6 else f"Landlock ABI {abi} is older than 6 (Linux 6.12)"


def confine(writable: str, readable: Iterable[str], as_root: bool, checked: Collection[str] = ()) -> None:
    """Without namespaces: the note's tree may read and run what its world would show
    (``readable``: the system's folders, this Python, the checked notes; ``/proc``), write only
    under ``writable`` (its own folder), open no TCP connection, and neither signal nor reach
    through an abstract socket any process outside it (the worker, the checker). Inherited by
    everything it starts; no capability can lift it.

    ``as_root``: the note runs as uid 0 (with no capability), which owns every root-only file:
    of ``/etc`` and the ``checked`` folders it may read only what everyone may, of ``/sys`` only
    the processors' and memory nodes' descriptions. Otherwise it may also write in ``/dev/shm``,
    where plain permissions keep other users' files from it."""
    from py_landlock import AccessFs, Landlock

    shown = [path for path in readable if os.path.exists(path)]
    if as_root:
        shown = [rule for path in shown for rule in shown_to_root(path, checked)]
    sinks = [device for device in ("/dev/null", "/dev/zero", "/dev/full") if os.path.exists(device)]
    sources = [device for device in ("/dev/random", "/dev/urandom") if os.path.exists(device)]
    ruleset = Landlock(strict=False)
    for path in [*shown, "/proc", *sources]:
        if os.path.isdir(path):  # a file's rule may hold only a file's rights
            ruleset.add_path_rule(path, access=AccessFs.READ_FILE | AccessFs.READ_DIR | AccessFs.EXECUTE)
        else:
            ruleset.add_path_rule(path, access=AccessFs.READ_FILE | AccessFs.EXECUTE)
    shared = [] if as_root or not os.path.isdir("/dev/shm") else ["/dev/shm"]
    ruleset.allow_read_write(writable, *shared)
    ruleset.add_path_rule(*sinks, access=AccessFs.READ_FILE | AccessFs.WRITE_FILE | AccessFs.TRUNCATE)
    ruleset.apply()


SECRETS_BESIDE = ("/etc",)
"""System folders that keep root-only secrets beside what every program reads (password
hashes, sudoers, TLS and SSH keys). The others are shown whole: walking ``/usr`` would cost
seconds."""
ROOT_SYS = ("/sys/devices/system/cpu", "/sys/devices/system/node")
"""What a note running as uid 0 sees of ``/sys``: what torch reads to size its thread pools."""


def shown_to_root(path: str, checked: Collection[str]) -> tuple[str, ...]:
    """What a note running as uid 0 may read of one path its world shows."""
    if path == "/sys":
        return tuple(folder for folder in ROOT_SYS if os.path.exists(folder))
    if path in SECRETS_BESIDE or path in checked:
        return readable_by_everyone(path)
    return (path,)


@cache
def readable_by_everyone(path: str) -> tuple[str, ...]:
    """The fewest paths that cover what everyone may read of ``path`` and nothing else: the
    folder itself when all of it is, else its parts that are (``/etc`` without ``shadow``, a
    vault without its ``.env``). Cached: the worker walks it once, before it forks."""
    rules, _ = _everyone_may_read(path)
    return tuple(rules)


def _everyone_may_read(path: str) -> tuple[list[str], bool]:
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return [], False
    if stat.S_ISLNK(mode):
        return [], True  # Landlock checks a link's target, where it lies
    if not mode & stat.S_IROTH or (stat.S_ISDIR(mode) and not mode & stat.S_IXOTH):
        return [], False
    if not stat.S_ISDIR(mode):
        return [path], True
    try:
        names = os.listdir(path)
    except OSError:
        return [], False
    rules, whole = [], True
    for name in names:
        inner, inner_whole = _everyone_may_read(os.path.join(path, name))
        rules += inner
        whole = whole and inner_whole
    return ([path], True) if whole else (rules, False)
