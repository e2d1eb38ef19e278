"""The nursery: a small process, forked by the worker, that makes each note's PID 1 (as root,
with namespaces).

::

    worker (the event loop)
      ├─ nursery (some 16 MiB), which only waits for
      │    └─ its init: PID 1 of a PID namespace of its own, holding all that follows
      │         ├─ world server: in a mount namespace of its own that is the notes' world
      │         │  (read-only binds on a tmpfs root), one per kind of request; clones the PID 1s
      │         └─ PID 1 of a note's user, PID, mount, network, IPC, UTS and cgroup namespaces
      │            (cloned straight into them, as the init's child): shares the world server's
      │            memory and descriptors, and only waits in ``pause()``
      └─ zygote (torch)
           └─ the note's process (PID 2): forked by the zygote straight into PID 1's PID
              namespace, joins its other namespaces and makes its ``/tmp`` and ``/proc`` its
              own there (:func:`noteexec.sandbox.tree.join`)

Why: every fork of the zygote copies the page tables of torch's address space, and tears them
down at exit, the main cost of a note. A PID 1 cloned from the nursery copies almost nothing, so
a note costs one copy of the zygote instead of two. Only root can do it this way: the zygote
joins PID 1's PID namespace for its next child and comes back, which takes CAP_SYS_ADMIN in its
own user namespace. An ordinary user's notes, and notes without namespaces, keep the PID 1
forked from the zygote (:func:`noteexec.sandbox.tree.init`). The world is built once per kind of
request by the world server: a PID 1 starts in a copy of it, where each mount is locked against
the note's user namespace.

PID 1 runs no code of its own: it is a ``clone`` of the world server with ``CLONE_VM`` and
``CLONE_FILES`` whose function is the ``pause`` system call, so it copies no memory and no
descriptor table, and it never takes a signal handler (the world server has none). It holds the
namespaces alive, and the kernel reaps what the note orphans (SIGCHLD is ignored), until the
worker kills it, which ends everything left in them. The note cannot reach it: PID 1 keeps the
world server's host id 0 (no capability outside the note's user namespace), so the note's
process, another id without capabilities, may neither signal nor trace it nor open its
``/proc`` files; and its memory is the world server's, which is not dumpable. It writes nothing
but its own stack (the world server's ``_Stacks`` give each one of its own).

The world server keeps ``SPARES`` PID 1s ahead while no request waits: the worker's request is
answered at once, and the clones overlap with what the worker does next. A request for another
world (other folders) ends the server and starts another; its PID 1s are the init's children
(``CLONE_PARENT``), so the notes in flight go on. Everything dies with the nursery, which dies
with the worker: the init dies with the nursery (``PR_SET_PDEATHSIG``), and the kernel kills
everything in an init's PID namespace when it dies, the notes' processes included.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import platform
import select
import signal
import socket
from collections import deque
from typing import NoReturn

from noteexec.sandbox.isolation import (
    CLONE_FILES,
    CLONE_NEWPID,
    CLONE_PARENT,
    CLONE_VM,
    NOTE_HOST_ID,
    NOTE_NAMESPACES,
    PR_SET_PDEATHSIG,
    fork_server,
    keep_only,
    kill_pidfd,
    libc_call,
    map_ids,
    template_world,
)

_CHANNEL_FD = 1023
"""The nursery's end of its socket to the worker."""
SPARES = 2
"""PID 1s the nursery keeps made ahead, while no request waits: the worker never waits for one."""
_PID1_FLAGS = CLONE_VM | CLONE_FILES | CLONE_PARENT | NOTE_NAMESPACES | signal.SIGCHLD
_STACK_SIZE = 1 << 16
_libc = ctypes.CDLL(None, use_errno=True)
_libc.clone.restype = ctypes.c_int
_libc.clone.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, *[ctypes.c_void_p] * 4]  # fn .. ctid
_SYS_PAUSE = {"x86_64": 34}.get(platform.machine())
# What PID 1 runs: the raw system call where there is one. glibc's pause() is a cancellation
# point, which writes to the calling thread's data (here the world server's) once any thread
# has run in the process.
_WAIT, _WAIT_ARGUMENT = (
    (ctypes.cast(_libc.syscall, ctypes.c_void_p), _SYS_PAUSE)
    if _SYS_PAUSE is not None
    else (ctypes.cast(_libc.pause, ctypes.c_void_p), None)
)


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

    def pid1(self, readonly: list[str], staging: str) -> tuple[int, list[str]]:
        """A new PID 1 whose world showing ``readonly`` was built on the empty folder ``staging``,
        its ids mapped: its pidfd, and what its world shows below ``/tmp``, which the note's
        process shows again on its own ``/tmp`` (:func:`noteexec.sandbox.isolation.enter_world`)."""
        request = json.dumps({"readonly": readonly, "staging": staging})
        try:
            self.channel.send(request.encode())
            reply, fds, _, _ = socket.recv_fds(self.channel, 1 << 20, 1)
        except OSError as error:
            raise NurseryGone(errno.ESRCH, f"the nursery is gone ({error})") from None
        if len(fds) != 1:
            for fd in fds:
                os.close(fd)
            if not reply:
                raise NurseryGone(errno.ESRCH, "the nursery is gone")
            raise OSError(errno.ESRCH, reply.decode(errors="replace"))
        os.set_inheritable(fds[0], False)
        return fds[0], json.loads(reply)

    def close(self) -> None:
        self.channel.close()


def _serve(channel: int, worker: int) -> NoReturn:
    """The nursery: starts its init, which serves a world server per kind of request until the
    worker closes its end or dies (or a world server dies: the worker then makes its PID 1s
    itself); waits for it and ends with it."""
    try:
        libc_call("prctl", PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != worker:
            os._exit(0)
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not if it is ignored
            signal.signal(signal.SIGINT, signal.SIG_DFL)
        # Neither the job stream (stdin) nor the result stream (stdout) is the nursery's.
        null = os.open(os.devnull, os.O_RDWR)
        os.dup2(null, 0)
        os.dup2(null, 1)
        keep_only({channel: _CHANNEL_FD})
        libc_call("unshare", CLONE_NEWPID)
        alive, alive_writer = os.pipe()
        init = os.fork()
        if init == 0:
            _init(alive, alive_writer)
        os.close(alive)
        os.close(_CHANNEL_FD)
        os.waitpid(init, 0)
    finally:
        os._exit(0)


def _init(alive: int, alive_writer: int) -> NoReturn:
    """The init of the nursery's PID namespace: when it dies, the kernel kills every world
    server, PID 1 and note's process in it; it dies with the nursery (``alive`` reads the end of
    file once the nursery is gone)."""
    try:
        libc_call("prctl", PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        os.close(alive_writer)
        if select.select([alive], [], [], 0)[0]:  # the nursery died before the line above
            os._exit(0)
        os.close(alive)
        signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # world servers and PID 1s are reaped by the kernel
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
    pid = os.fork()
    if pid == 0:
        os.close(handback)
        _world_server(requests, request, handback_writer)
    os.close(handback_writer)
    try:
        server = os.pidfd_open(pid)
    except OSError:  # it has ended already
        server = os.open(os.devnull, os.O_RDONLY)  # reads as ended: always readable
    next_request = b""
    while handback in select.select([handback, server], [], [])[0]:  # else it ended: were it killed,
        chunk = os.read(handback, 1 << 20)  # its PID 1s, which share its descriptors, hold this open
        if not chunk:
            break
        next_request += chunk
    os.close(server)
    os.close(handback)
    return next_request


def _world_server(requests: socket.socket, request: bytes, handback: int) -> NoReturn:
    """Build the world ``request`` asks for once, in a mount namespace of this process's own
    (:func:`noteexec.sandbox.isolation.template_world`), then answer each request for it with a
    PID 1 cloned into a copy of it. Keeps ``SPARES`` PID 1s made ahead while no request waits.
    A request for another world is handed back to the init, and this server ends: the PID 1s
    it made are the init's children, so the notes in flight go on."""
    try:
        for number in signal.valid_signals():  # PID 1s share the handlers' memory: they get none
            with contextlib.suppress(OSError, ValueError):
                if callable(signal.getsignal(number)):
                    signal.signal(number, signal.SIG_DFL)
        try:
            parsed = json.loads(request)
            readonly, staging = parsed["readonly"], parsed["staging"]
            assert isinstance(readonly, list) and isinstance(staging, str)
            reply = json.dumps(template_world(staging, readonly)).encode()
            failure = b""
        except (OSError, ValueError, KeyError, AssertionError) as error:
            failure = str(error).encode()[:4096] or b"no world"
        stacks = _Stacks()
        spares: deque[int] = deque()
        message = request
        while message == request:
            if failure:
                requests.send(failure)
            else:
                try:
                    pid1 = spares.popleft() if spares else _clone_pid1(stacks)
                except OSError as error:
                    requests.send(str(error).encode()[:4096] or b"no PID 1")
                else:
                    socket.send_fds(requests, [reply], [pid1])
                    os.close(pid1)
                with contextlib.suppress(OSError):  # the next request reports why
                    while len(spares) < SPARES and not _waiting(requests):
                        spares.append(_clone_pid1(stacks))
            message = requests.recv(1 << 20)
        while spares:
            pid1 = spares.popleft()
            kill_pidfd(pid1)
            os.close(pid1)
        os.write(handback, message)  # another world (or nothing: the worker is gone)
    finally:
        # The PID 1s share this descriptor table, which outlives this process: empty it, so that
        # the init sees the end of ``handback`` and nothing holds the worker's channel.
        keep_only({})
        for fd in (0, 1, 2):
            with contextlib.suppress(OSError):
                os.close(fd)
        os._exit(0)


def _waiting(requests: socket.socket) -> bool:
    return bool(select.select([requests], [], [], 0)[0])


class _Stacks:
    """Stacks for PID 1s, which run in this process's memory: a stack is given again only once
    the PID 1 that ran on it has ended."""

    def __init__(self) -> None:
        self._held: dict[int, ctypes.Array[ctypes.c_char]] = {}  # a pidfd → the stack its PID 1 runs on
        self._lost: list[ctypes.Array[ctypes.c_char]] = []

    def take(self) -> ctypes.Array[ctypes.c_char]:
        poll = select.poll()
        for pidfd in self._held:
            poll.register(pidfd, select.POLLIN)
        ended = [pidfd for pidfd, _ in poll.poll(0)]
        for pidfd in ended[1:]:
            del self._held[pidfd]
            os.close(pidfd)
        if ended:
            os.close(ended[0])
            return self._held.pop(ended[0])
        return ctypes.create_string_buffer(_STACK_SIZE)

    def hold(self, stack: ctypes.Array[ctypes.c_char], pidfd: int) -> None:
        self._held[os.dup(pidfd)] = stack

    def lose(self, stack: ctypes.Array[ctypes.c_char]) -> None:
        """A stack whose PID 1 may run on it for a while yet, without a pidfd to say when it ends."""
        self._lost.append(stack)


def _clone_pid1(stacks: _Stacks) -> int:
    """Clone a PID 1 into a copy of this world server's world, as the init's child, its ids
    mapped: its pidfd."""
    stack = stacks.take()
    top = (ctypes.addressof(stack) + _STACK_SIZE) & ~15
    pid = _libc.clone(_WAIT, top, _PID1_FLAGS, _WAIT_ARGUMENT, None, None, None)
    if pid < 0:
        number = ctypes.get_errno()
        raise OSError(number, f"clone: {os.strerror(number)}")
    try:
        pidfd = os.pidfd_open(pid)  # PID 1 cannot end on its own: no race with its pid's reuse
    except OSError:
        os.kill(pid, signal.SIGKILL)
        stacks.lose(stack)
        raise
    stacks.hold(stack, pidfd)
    try:
        map_ids(pid, NOTE_HOST_ID, NOTE_HOST_ID, deny_setgroups=False)
    except OSError:
        kill_pidfd(pidfd)
        os.close(pidfd)
        raise
    return pidfd
