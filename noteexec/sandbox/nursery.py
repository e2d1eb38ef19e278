"""The nursery: a small process, forked by the worker before it imports torch, that makes each
note's PID 1 (as root, with namespaces).

::

    worker (torch)
      ├─ nursery (forked before torch: some 16 MiB)
      │    └─ PID 1 of a note's user, PID, mount, network, IPC, UTS and cgroup namespaces
      │       (cloned straight into them): builds the note's world, then only sleeps
      └─ the note's process (PID 2): forked by the worker straight into PID 1's PID
         namespace, joins its other namespaces (:func:`noteexec.sandbox.tree.join`)

Why: every fork of the worker copies the page tables of torch's address space, and tears them
down at exit, the main cost of a note. A PID 1 cloned from the nursery copies almost nothing, so
a note costs one copy of the worker instead of two. Only root can do it this way: the worker
joins PID 1's PID namespace for its next child and comes back, which takes CAP_SYS_ADMIN in its
own user namespace. An ordinary user's notes, and notes without namespaces, keep the PID 1
forked from the worker (:func:`noteexec.sandbox.tree.init`).

The nursery keeps ``SPARES`` PID 1s ahead, made for the last request's folders while no request
waits: the worker's request is answered at once, and the clones and the worlds' set-up overlap
with what the worker does next.
PID 1 ignores SIGCHLD, so the kernel reaps whatever the note orphans; it holds no descriptor of
the worker's, runs nothing, and is locked down like a note (no capability, the system-call
filter). It keeps the namespaces alive until the worker kills it, which ends everything left in
them. It dies with the nursery, which dies with the worker.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import select
import signal
import socket
from collections import deque
from typing import NoReturn

from noteexec.sandbox.isolation import (
    NOTE_HOST_ID,
    PR_SET_PDEATHSIG,
    build_world,
    fork_into_namespaces,
    keep_only,
    kill_pidfd,
    libc_call,
    map_ids,
    open_sources,
    sethostname,
)
from noteexec.sandbox.lockdown import become_note_user, lock_down, syscall_filter

_CHANNEL_FD = 1023
"""The nursery's end of its socket to the worker."""
_READY_FD = 1022
"""PID 1's end of the note's ``ready`` pipe: ``r`` once the world is built, else why not."""
_SYNC_FD = 1021
"""PID 1's end of its socket to the nursery: a byte once its ids are mapped."""
READY = b"r"
SPARES = 2
"""PID 1s the nursery keeps made ahead, while no request waits: the worker never waits for one."""


class NurseryGone(OSError):
    """The nursery died (only root or the out-of-memory killer can kill it; the PID 1s it made,
    and so the notes in flight, died with it): later PID 1s are forked from the worker."""


class Nursery:
    """The worker's handle on its nursery."""

    def __init__(self, pid: int, channel: socket.socket) -> None:
        self.pid = pid
        self.channel = channel

    @classmethod
    def start(cls) -> Nursery:
        """Fork the nursery: call it before importing torch, while this process is small."""
        ours, its = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        worker = os.getpid()
        pid = os.fork()
        if pid == 0:
            _serve(its.fileno(), worker)
        its.close()
        return cls(pid, ours)

    def pid1(self, readonly: list[str], tmp_size: int, staging: str) -> tuple[int, int]:
        """A new PID 1 whose world showing ``readonly`` is built on the empty folder ``staging``:
        its pidfd, and a pipe that gives ``READY`` once the world is built, else why not (or
        nothing, if PID 1 died)."""
        request = json.dumps({"readonly": readonly, "tmp_size": tmp_size, "staging": staging})
        try:
            self.channel.send(request.encode())
            reply, fds, _, _ = socket.recv_fds(self.channel, 1 << 16, 2)
        except OSError as error:
            raise NurseryGone(errno.ESRCH, f"the nursery is gone ({error})") from None
        if len(fds) != 2:
            for fd in fds:
                os.close(fd)
            if not reply:
                raise NurseryGone(errno.ESRCH, "the nursery is gone")
            raise OSError(errno.ESRCH, reply.decode(errors="replace"))
        for fd in fds:
            os.set_inheritable(fd, False)
        return fds[0], fds[1]

    def close(self) -> None:
        self.channel.close()


def _serve(channel: int, worker: int) -> NoReturn:
    """The nursery's loop: a PID 1 per request, until the worker closes its end or dies."""
    try:
        libc_call("prctl", PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != worker:
            os._exit(0)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # its PID 1s are reaped by the kernel
        # Neither the job stream (stdin) nor the result stream (stdout) is the nursery's.
        null = os.open(os.devnull, os.O_RDWR)
        os.dup2(null, 0)
        os.dup2(null, 1)
        keep_only({channel: _CHANNEL_FD})
        syscall_filter("none")  # compiled here once; each PID 1 loads it
        spares: deque[tuple[int, int]] = deque()
        made_for = b""  # the request the spares were made for
        with socket.socket(fileno=_CHANNEL_FD) as requests:
            while True:
                if made_for and len(spares) < SPARES and not select.select([requests], [], [], 0)[0]:
                    try:
                        spares.append(_clone_pid1(made_for))
                    except (OSError, ValueError, KeyError):
                        made_for = b""  # the next request reports why
                    continue
                message = requests.recv(1 << 20)
                if not message:
                    break
                if message != made_for:
                    while spares:
                        _discard(spares.popleft())
                    made_for = message
                try:
                    pid1 = spares.popleft() if spares else _clone_pid1(message)
                except (OSError, ValueError, KeyError) as error:
                    requests.send(str(error).encode()[:4096] or b"no PID 1")
                    continue
                socket.send_fds(requests, [b"pid1"], list(pid1))
                for fd in pid1:
                    os.close(fd)
    finally:
        os._exit(0)


def _discard(pid1: tuple[int, int]) -> None:
    kill_pidfd(pid1[0])
    for fd in pid1:
        os.close(fd)


def _clone_pid1(message: bytes) -> tuple[int, int]:
    """Clone a PID 1 for a request: its pidfd and the read end of its ``ready`` pipe."""
    request = json.loads(message)
    ready_reader, ready_writer = os.pipe()
    ours, its = socket.socketpair()
    with ours, its:
        pid = fork_into_namespaces()
        if pid == 0:
            _pid1(request, ready_writer, its.fileno())
        os.close(ready_writer)
        pidfd = os.pidfd_open(pid)
        try:
            map_ids(pid, NOTE_HOST_ID, NOTE_HOST_ID, deny_setgroups=False)
            ours.sendall(b"m")
        except OSError:
            _discard((pidfd, ready_reader))
            raise
    return pidfd, ready_reader


def _pid1(request: dict[str, object], ready: int, sync: int) -> NoReturn:
    """Take the note's id, build its world, say so on ``ready``, then sleep until killed."""
    try:
        keep_only({ready: _READY_FD, sync: _SYNC_FD})
        if os.read(_SYNC_FD, 1) != b"m":
            os._exit(70)
        os.close(_SYNC_FD)
        readonly, staging, tmp_size = request["readonly"], request["staging"], request["tmp_size"]
        assert isinstance(readonly, list) and isinstance(staging, str) and isinstance(tmp_size, int)
        sources = open_sources(readonly)
        become_note_user(drop_groups=True)
        # After the change of ids, which clears it: if the nursery dies, so does PID 1.
        libc_call("prctl", PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        sethostname("noteexec")
        build_world(staging, sources, tmp_size)
        lock_down("none")
        os.write(_READY_FD, READY)
        os.close(_READY_FD)
    except BaseException as error:
        with contextlib.suppress(OSError):
            os.write(_READY_FD, str(error).encode()[:4096] or b"PID 1 failed")
        os._exit(70)
    while True:
        signal.pause()
