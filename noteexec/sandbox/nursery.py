"""The nursery: a small process, forked by the worker, that makes each note's PID 1 (as root,
with namespaces).

::

    worker (the event loop)
      ├─ nursery (some 16 MiB)
      │    ├─ world server: in a mount namespace of its own that is the notes' world
      │    │  (read-only binds on a tmpfs root), one per kind of request; clones the PID 1s
      │    └─ PID 1 of a note's user, PID, mount, network, IPC, UTS and cgroup namespaces
      │       (cloned straight into them, as the nursery's child): makes ``/tmp`` and
      │       ``/proc`` its own in its copy of the world, then only sleeps
      └─ zygote (torch)
           └─ the note's process (PID 2): forked by the zygote straight into PID 1's PID
              namespace, joins its other namespaces (:func:`noteexec.sandbox.tree.join`)

Why: every fork of the zygote copies the page tables of torch's address space, and tears them
down at exit, the main cost of a note. A PID 1 cloned from the nursery copies almost nothing, so
a note costs one copy of the zygote instead of two. Only root can do it this way: the zygote
joins PID 1's PID namespace for its next child and comes back, which takes CAP_SYS_ADMIN in its
own user namespace. An ordinary user's notes, and notes without namespaces, keep the PID 1
forked from the zygote (:func:`noteexec.sandbox.tree.init`). The world is built once per kind of
request by the world server, not by each PID 1 (which took a third of a PID 1's CPU): a PID 1
starts in a copy of it, where each mount is locked against the note's user namespace.

The world server keeps ``SPARES`` PID 1s ahead while no request waits: the worker's request is
answered at once, and the clones overlap with what the worker does next. A request for another
world (other folders, another ``/tmp`` size) ends the server and starts another; its PID 1s are
the nursery's children (``CLONE_PARENT``), so the notes in flight go on.
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
    enter_world,
    fork_into_namespaces,
    fork_server,
    keep_only,
    kill_pidfd,
    libc_call,
    map_ids,
    sethostname,
    template_world,
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
    and so the notes in flight, died with it): later PID 1s are forked from the zygote."""


class Nursery:
    """The worker's handle on its nursery."""

    def __init__(self, pid: int, channel: socket.socket) -> None:
        self.pid = pid
        self.channel = channel

    @classmethod
    def start(cls) -> Nursery:
        """Fork the nursery (from the worker, which never imports torch: it is small)."""
        return cls(*fork_server(_serve))

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
    """The nursery's loop: a world server per kind of request, until the worker closes its end
    or dies (or a world server dies: the worker then makes its PID 1s itself)."""
    try:
        libc_call("prctl", PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != worker:
            os._exit(0)
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not if it is ignored
            signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # its PID 1s are reaped by the kernel
        # Neither the job stream (stdin) nor the result stream (stdout) is the nursery's.
        null = os.open(os.devnull, os.O_RDWR)
        os.dup2(null, 0)
        os.dup2(null, 1)
        keep_only({channel: _CHANNEL_FD})
        syscall_filter("none")  # compiled here once; each PID 1 loads it
        with socket.socket(fileno=_CHANNEL_FD) as requests:
            request = requests.recv(1 << 20)
            while request:
                request = _serve_world(requests, request)
    finally:
        os._exit(0)


def _serve_world(requests: socket.socket, request: bytes) -> bytes:
    """Fork a world server for ``request`` and let it answer the worker until a request for
    another world comes: returns that request (empty once the worker is gone, or the server)."""
    handback, handback_writer = os.pipe()
    nursery = os.getpid()
    if os.fork() == 0:
        # It dies with the nursery: else it would go on handing out PID 1s made before, which
        # died with the nursery, instead of closing the worker's channel (the worker then
        # forks its PID 1s itself).
        libc_call("prctl", PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != nursery:
            os._exit(0)
        os.close(handback)
        _world_server(requests, request, handback_writer)
    os.close(handback_writer)
    next_request = b""
    while chunk := os.read(handback, 1 << 16):
        next_request += chunk
    os.close(handback)
    return next_request


def _world_server(requests: socket.socket, request: bytes, handback: int) -> NoReturn:
    """Build the world ``request`` asks for once, in a mount namespace of this process's own
    (:func:`noteexec.sandbox.isolation.template_world`), then answer each request for it with a
    PID 1 cloned into a copy of it. Keeps ``SPARES`` PID 1s made ahead while no request waits.
    A request for another world is handed back to the nursery, and this server ends: the PID 1s
    it made are the nursery's children, so the notes in flight go on."""
    try:
        failure = b""
        try:
            parsed = json.loads(request)
            readonly, staging, tmp_size = parsed["readonly"], parsed["staging"], parsed["tmp_size"]
            assert isinstance(readonly, list) and isinstance(staging, str) and isinstance(tmp_size, int)
            below_tmp = template_world(staging, readonly)
        except (OSError, ValueError, KeyError, AssertionError) as error:
            failure = str(error).encode()[:4096] or b"no world"
        spares: deque[tuple[int, int]] = deque()
        message = request
        while message == request:
            if failure:
                requests.send(failure)
            else:
                try:
                    pid1 = spares.popleft() if spares else _clone_pid1(tmp_size, below_tmp)
                except OSError as error:
                    requests.send(str(error).encode()[:4096] or b"no PID 1")
                else:
                    socket.send_fds(requests, [b"pid1"], list(pid1))
                    for fd in pid1:
                        os.close(fd)
                with contextlib.suppress(OSError):  # the next request reports why
                    while len(spares) < SPARES and not _waiting(requests):
                        spares.append(_clone_pid1(tmp_size, below_tmp))
            message = requests.recv(1 << 20)
        while spares:
            _discard(spares.popleft())
        os.write(handback, message)  # another world (or nothing: the worker is gone)
    finally:
        os._exit(0)


def _waiting(requests: socket.socket) -> bool:
    return bool(select.select([requests], [], [], 0)[0])


def _discard(pid1: tuple[int, int]) -> None:
    kill_pidfd(pid1[0])
    for fd in pid1:
        os.close(fd)


def _clone_pid1(tmp_size: int, below_tmp: list[str]) -> tuple[int, int]:
    """Clone a PID 1 into a copy of this world server's world, as the nursery's child: its
    pidfd and the read end of its ``ready`` pipe."""
    ready_reader, ready_writer = os.pipe()
    ours, its = socket.socketpair()
    with ours, its:
        pid = fork_into_namespaces(sibling=True)
        if pid == 0:
            _pid1(tmp_size, below_tmp, ready_writer, its.fileno())
        os.close(ready_writer)
        try:
            pidfd = os.pidfd_open(pid)
        except OSError:
            os.close(ready_reader)
            raise
        try:
            map_ids(pid, NOTE_HOST_ID, NOTE_HOST_ID, deny_setgroups=False)
            ours.sendall(b"m")
        except OSError:
            _discard((pidfd, ready_reader))
            raise
    return pidfd, ready_reader


def _pid1(tmp_size: int, below_tmp: list[str], ready: int, sync: int) -> NoReturn:
    """Take the note's id, make the world's ``/tmp`` and ``/proc`` its own, say so on
    ``ready``, then sleep until killed."""
    try:
        keep_only({ready: _READY_FD, sync: _SYNC_FD})
        if os.read(_SYNC_FD, 1) != b"m":
            os._exit(70)
        os.close(_SYNC_FD)
        become_note_user(drop_groups=True)
        # After the change of ids, which clears it: if the nursery (its parent) dies, so does PID 1.
        libc_call("prctl", PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        sethostname("noteexec")
        enter_world(tmp_size, below_tmp)
        lock_down("none")
        os.write(_READY_FD, READY)
        os.close(_READY_FD)
    except BaseException as error:
        with contextlib.suppress(OSError):
            os.write(_READY_FD, str(error).encode()[:4096] or b"PID 1 failed")
        os._exit(70)
    while True:
        signal.pause()
