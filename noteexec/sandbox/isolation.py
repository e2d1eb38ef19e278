"""Linux isolation primitives, without torch: namespaces, a read-only world, subreapers.

Used by the worker for every note, and by ``noteexec doctor`` to say what is in force here.
A note's world is built the way bubblewrap builds one: new user, PID, mount, network, IPC and
UTS namespaces; a fresh tmpfs as root holding read-only binds of the system and the Python
installation only (the user's home, the cache and the site output are simply not there); a
private, size-capped tmpfs for ``/tmp`` and the note's working folder; a fresh ``/proc`` that
shows the note's processes only.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import importlib.util
import os
import platform
import signal
import socket
import struct
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import NoReturn

CLONE_VM = 0x00000100
CLONE_FILES = 0x00000400
CLONE_PARENT = 0x00008000
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
NOTE_NAMESPACES = (
    CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWCGROUP
)
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MNT_DETACH = 2
AT_FDCWD = -100
AT_RECURSIVE = 0x8000
MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
PR_SET_PDEATHSIG = 1
PR_SET_NAME = 15
PR_SET_DUMPABLE = 4
PR_SET_KEEPCAPS = 8
PR_SET_CHILD_SUBREAPER = 36
_SYSCALLS = {  # the same numbers on every architecture since Linux 5.1, but pivot_root
    "mount_setattr": 442,
    "pivot_root": {"x86_64": 155, "aarch64": 41}.get(platform.machine(), -1),
    "clone": {"x86_64": 56, "aarch64": 220}.get(platform.machine(), -1),
}

NOTE_ID = 1000
"""The note's user and group id inside its namespace."""
NOTE_HOST_ID = 0x7FFF0000
"""The host id a note runs as when noteexec runs as root: unprivileged, owning no file."""
SYSTEM_PATHS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/sys")
DEVICES = ("null", "zero", "full", "random", "urandom")

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_libc_holding_gil = ctypes.PyDLL(None, use_errno=True)  # for clone: Python's fork hooks need the GIL
_libc_holding_gil.syscall.restype = ctypes.c_long
_python = ctypes.pythonapi


def libc_call(name: str, *args: object) -> None:
    if getattr(_libc, name)(*args) != 0:
        number = ctypes.get_errno()
        raise OSError(number, os.strerror(number))


def _syscall(name: str, *args: object) -> None:
    if _libc.syscall(ctypes.c_long(_SYSCALLS[name]), *args) != 0:
        number = ctypes.get_errno()
        raise OSError(number, f"{name}: {os.strerror(number)}")


def not_dumpable() -> None:
    """No process of the same user may read this one's memory, environment or descriptors
    through /proc or ptrace: the CLI's secrets and the worker's result stream."""
    libc_call("prctl", PR_SET_DUMPABLE, 0, 0, 0, 0)


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


def ended_children() -> Iterator[tuple[int, int]]:
    """(pid, wait status) of each child that has ended, reaped without waiting for the others."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        yield pid, status


def fork_server(serve: Callable[[int, int], NoReturn]) -> tuple[int, socket.socket]:
    """Fork a helper that runs ``serve(its end of a socket, this process's pid)``: its pid and
    this end (a sequenced-packet socket: one message per request)."""
    ours, its = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:
        serve(its.fileno(), parent)
    its.close()
    return pid, ours


def kill_children(keep: frozenset[int] = frozenset()) -> list[int]:
    victims = [pid for pid in children() if pid not in keep]
    for pid in victims:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return victims


def reap_descendants(within: float = 10.0) -> None:
    """As a subreaper: kill everything below and reap it, until nothing is left (or ``within``
    seconds pass: a process stuck in the kernel cannot hold its reaper forever). A PID 1 is reaped
    only after every process of its namespace, so an empty list of children means no survivor."""
    deadline = time.monotonic() + within
    while kill_children() and time.monotonic() < deadline:
        for _ in ended_children():
            pass
        time.sleep(0.001)


# --- the note's namespaces ---------------------------------------------------------------------


def fork_into_namespaces(sibling: bool = False) -> int:
    """``os.fork``, but the child starts in every namespace a note gets, as the PID 1 of its own
    (a ``sibling``: as the child of this process's parent, which it outlives).

    One process less per note than forking and then unsharing: each fork of the worker copies
    the page tables of torch's whole address space. ``clone`` is called raw, so glibc's fork
    handlers do not run (Python's do): the caller must have no other thread (see
    :func:`stop_library_threads`), and the child must not use ``raise`` or ``pthread_kill``,
    since glibc still holds the parent's thread id for it; its own ``os.fork`` children are whole.
    """
    threads = len(os.listdir("/proc/self/task"))
    if threads != 1:
        raise OSError(errno.EBUSY, f"clone: the worker runs {threads} threads, so it cannot clone")
    _python.PyOS_BeforeFork()
    flags = ctypes.c_ulong(NOTE_NAMESPACES | (CLONE_PARENT if sibling else 0) | signal.SIGCHLD)
    pid = _libc_holding_gil.syscall(ctypes.c_long(_SYSCALLS["clone"]), flags, None, None, None, None)
    if pid == 0:
        _python.PyOS_AfterFork_Child()
        return 0
    error = ctypes.get_errno()
    _python.PyOS_AfterFork_Parent()
    if pid < 0:
        raise OSError(error, f"clone: {os.strerror(error)}")
    return int(pid)


JOINED_NAMESPACES = NOTE_NAMESPACES & ~CLONE_NEWPID
"""What a note's process joins of its PID 1's namespaces (it starts in the PID one)."""


def setns(fd: int, flags: int) -> None:
    """Join the namespaces ``flags`` of the process (a pidfd) or namespace (a /proc/.../ns file)
    ``fd``."""
    libc_call("setns", fd, flags)


@functools.cache
def _own_pid_namespace() -> int:
    return os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)


def fork_into_pid_namespace(pidfd: int) -> int:
    """``os.fork``, but the child starts in the PID namespace of the process ``pidfd``, which the
    caller does not enter: only its next child is born there. Takes CAP_SYS_ADMIN in the caller's
    own user namespace (root), to join that namespace and to come back from it."""
    own = _own_pid_namespace()
    setns(pidfd, CLONE_NEWPID)
    try:
        pid = os.fork()
    except OSError:
        setns(own, CLONE_NEWPID)
        raise
    if pid != 0:
        setns(own, CLONE_NEWPID)
    return pid


def kill_pidfd(pidfd: int) -> None:
    """SIGKILL the process ``pidfd`` refers to, if it has not exited yet (no pid reuse race)."""
    with contextlib.suppress(ProcessLookupError):
        signal.pidfd_send_signal(pidfd, signal.SIGKILL)


def keep_only(descriptors: dict[int, int]) -> None:
    """Move ``descriptors`` (old → new number) into place and close every other one.

    Nothing of the worker's stays open to a note: not its result stream (a note could forge
    any note's result there, or stall the run with a broken line), other notes' pipes, its
    wake-up pipe or its selector. (The open ones, listed: os.closerange would try every number
    up to the limit on a kernel without close_range, a million system calls in some containers.)
    """
    for old, new in descriptors.items():
        os.dup2(old, new, inheritable=False)
    for fd in map(int, os.listdir("/proc/self/fd")):
        if fd > 2 and fd not in descriptors.values():
            with contextlib.suppress(OSError):  # the listing's own descriptor, already closed
                os.close(fd)


def stop_library_threads() -> int:
    """Fork a child that exits at once, so that libraries stop the threads they started at
    import in their fork handlers (OpenBLAS starts one per core; the worker never uses them).
    Returns the threads left."""
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    return len(os.listdir("/proc/self/task"))


def map_ids(pid: int | str, host_uid: int, host_gid: int, deny_setgroups: bool) -> None:
    """Map the note's id to ``host_uid``/``host_gid``: only that id exists in its namespace.

    Written by the worker for a note it forked (as root, any host id), or by the note's
    process for itself (an ordinary user: only its own ids, and setgroups denied). A process
    that is not dumpable has its /proc files owned by root, so for itself it is dumpable just
    while it writes them: nothing outside its new namespaces can see it, and none of them
    holds a process yet."""
    if pid == "self":
        libc_call("prctl", PR_SET_DUMPABLE, 1, 0, 0, 0)
    try:
        if deny_setgroups:
            with open(f"/proc/{pid}/setgroups", "w") as setgroups:
                setgroups.write("deny")
        with open(f"/proc/{pid}/uid_map", "w") as uid_map:
            uid_map.write(f"{NOTE_ID} {host_uid} 1")
        with open(f"/proc/{pid}/gid_map", "w") as gid_map:
            gid_map.write(f"{NOTE_ID} {host_gid} 1")
    finally:
        if pid == "self":
            not_dumpable()


def drop_to_host_id(host_id: int) -> None:
    """Without namespaces, root still runs notes as an unprivileged host id."""
    os.setgroups([])
    os.setresgid(host_id, host_id, host_id)
    os.setresuid(host_id, host_id, host_id)


def host_id_can_import() -> bool:
    """Whether an unprivileged host id can read this Python installation and torch (a Python
    installed under ``/root`` cannot be): without namespaces, notes run as that id only then.
    Torch is found, not imported: the worker never imports it (the zygote does)."""
    torch = importlib.util.find_spec("torch")
    needed = [
        os.path.dirname(os.__file__),
        *([os.path.dirname(torch.origin)] if torch and torch.origin else []),
    ]
    pid = os.fork()
    if pid == 0:
        try:
            drop_to_host_id(NOTE_HOST_ID)
            os._exit(0 if all(os.access(path, os.R_OK | os.X_OK) for path in needed) else 1)
        except BaseException:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) == 0


@functools.cache
def python_paths() -> tuple[str, ...]:
    """Where this Python and its packages live: notes import from there, so they see them
    read-only. Not every ``sys.path`` entry: the working folder or a ``PYTHONPATH`` may be a
    whole repository (with its ``.git/config`` credentials); noteexec is shown as its package."""
    import site

    import noteexec

    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(noteexec.__file__)}
    paths.update(site.getsitepackages())
    real = {os.path.realpath(path) for path in paths if os.path.exists(path)} - {"/"}
    # A folder inside another one listed is bound with it.
    return tuple(
        sorted(path for path in real if not any(_inside(path, other) for other in real if other != path))
    )


def _inside(path: str, folder: str) -> bool:
    return folder == "/" or path.startswith(folder.rstrip("/") + "/")


Source = tuple[str, str, "int | str"]
"""A path shown in the note's world: (path, "dir" | "file" | "link", an O_PATH descriptor or
the link's target)."""


def shown_paths(readonly: Iterable[str]) -> list[str]:
    """What a note's world shows of the host, read-only: the system's folders, this Python and
    its packages, ``readonly`` (the checked notes); none inside another. Never ``/`` or ``/tmp``
    itself: a note's ``/tmp`` is its own tmpfs, so a checked folder that is ``/tmp`` is not
    shown (one below it is)."""
    wanted = [path for path in SYSTEM_PATHS if os.path.lexists(path)]
    for path in [*python_paths(), *readonly]:
        covered = any(_inside(path, system) or path == system for system in wanted)
        if os.path.normpath(path) not in ("/", "/tmp") and not covered:
            wanted.append(path)
    return wanted


def open_sources(readonly: Iterable[str]) -> list[Source]:
    """Open what the note's world shows, while this process may still reach it: as root, the
    Python installation may lie in a folder (``/root``) the note's unprivileged id cannot
    traverse. The world is built from these descriptors, not from paths."""
    wanted = [*shown_paths(readonly), *(f"/dev/{device}" for device in DEVICES)]
    return [source for path in sorted(wanted, key=lambda path: path.count("/")) if (source := _source(path))]


def _source(path: str) -> Source | None:
    if os.path.islink(path) and os.path.dirname(path) == "/":
        return (path, "link", os.readlink(path))  # /bin -> usr/bin on merged-/usr systems
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return None
    return (path, "dir" if os.path.isdir(f"/proc/self/fd/{fd}") else "file", fd)


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    try:
        libc_call(
            "mount",
            None if source is None else os.fsencode(source),
            os.fsencode(target),
            None if fstype is None else fstype.encode(),
            flags,
            None if data is None else data.encode(),
        )
    except OSError as error:
        raise OSError(error.errno, f"mount {target}: {error.strerror}") from None


def _show(source: Source, new_root: str) -> None:
    """Show a source at its own path in the new root, with what is mounted below it."""
    path, kind, handle = source
    target = new_root + path
    if kind == "link":
        os.symlink(str(handle), target)
        return
    if kind == "dir":
        os.makedirs(target, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "a"):
            pass
    _mount(f"/proc/self/fd/{handle}", target, None, MS_BIND | MS_REC)
    os.close(int(handle))


def build_world(staging: str, sources: list[Source], tmp_size: int) -> None:
    """Make this process's mount namespace the note's world, and enter it.

    ``staging`` is an empty folder to build the new root on; ``sources`` what it shows, read-only,
    where it is (:func:`open_sources`). Everything is read-only but a fresh tmpfs of ``tmp_size``
    bytes at ``/tmp`` (also ``/dev/shm``), which holds the note's working folder ``/tmp/note``.
    """
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    _mount("noteexec", staging, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=4m")
    os.mkdir(staging + "/tmp")  # first, as checked folders may lie below /tmp
    _mount("noteexec", staging + "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, f"mode=1777,size={tmp_size}")
    dev = staging + "/dev"
    os.mkdir(dev)
    _mount("noteexec", dev, "tmpfs", MS_NOSUID, "mode=0755,size=64k")
    for source in sources:
        _show(source, staging)
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                         ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):  # fmt: skip
        os.symlink(target, f"{dev}/{name}")
    os.mkdir(dev + "/shm")
    os.mkdir(staging + "/proc")
    _mount("proc", staging + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    for folder in ("/home", "/root", "/run", "/var/tmp"):
        os.makedirs(staging + folder, exist_ok=True)
    _set_attributes(staging, AT_RECURSIVE, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID, 0)
    _set_attributes(staging + "/tmp", 0, 0, MOUNT_ATTR_RDONLY)  # the tmpfs alone, not what is below
    _mount(staging + "/tmp", dev + "/shm", None, MS_BIND)
    os.mkdir(staging + "/tmp/note", 0o700)
    os.chdir(staging)
    _syscall("pivot_root", b".", b".")  # the old root now lies under the new one: detach it
    libc_call("umount2", b".", MNT_DETACH)
    os.chdir("/tmp/note")


def template_world(staging: str, readonly: Iterable[str]) -> list[str]:
    """Move this process (real root) into a mount namespace of its own that is the notes' world
    without anything of a note's own: each PID 1 cloned from it starts in a copy of it, where
    every mount is locked (it cannot be unmounted, or made writable, from the note's user
    namespace), and needs only :func:`enter_world`. Its ``/proc`` stays writable to this
    process, which writes the id maps of the PID 1s, and lists only processes (``subset=pid``)
    that the reader may trace (``hidepid=invisible``); each PID 1 covers it with its own.
    Returns what the world shows below ``/tmp``, which each PID 1 shows again on its own."""
    libc_call("unshare", CLONE_NEWNS)
    shown = shown_paths(readonly)
    build_world(staging, open_sources(readonly), 64 << 10)
    for path in ("/tmp", "/dev/shm"):  # each note covers both with its own: nothing writes below
        _set_attributes(path, 0, MOUNT_ATTR_RDONLY, 0)
    libc_call("umount2", b"/proc", MNT_DETACH)
    _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "hidepid=invisible,subset=pid")
    return [path for path in shown if _inside(path, "/tmp")]


def enter_world(tmp_size: int, below_tmp: Iterable[str]) -> None:
    """What a PID 1 cloned from a :func:`template_world` makes its own: a fresh tmpfs of
    ``tmp_size`` bytes at ``/tmp`` (also ``/dev/shm``) holding the note's folder ``/tmp/note``,
    and the ``/proc`` of its PID namespace. What the world shows ``below_tmp`` (a checked folder
    there) is shown again on the new tmpfs, still read-only: the copies keep the locks."""
    sources = [_source(path) for path in below_tmp]  # opened before the new tmpfs covers them
    _mount("noteexec", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, f"mode=1777,size={tmp_size}")
    _mount("/tmp", "/dev/shm", None, MS_BIND)
    os.mkdir("/tmp/note", 0o700)
    # As read-only as the rest, and showing none of PID 1's files (it is another id's).
    _mount("proc", "/proc", "proc", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "hidepid=invisible")
    for source in sources:
        if source is not None:
            _show(source, "")
    os.chdir("/tmp/note")


def _set_attributes(path: str, flags: int, set_attributes: int, clear_attributes: int) -> None:
    attributes = struct.pack("QQQQ", set_attributes, clear_attributes, 0, 0)
    _syscall("mount_setattr", AT_FDCWD, os.fsencode(path), flags, attributes, len(attributes))


def sethostname(name: str) -> None:
    encoded = name.encode()
    libc_call("sethostname", encoded, len(encoded))
