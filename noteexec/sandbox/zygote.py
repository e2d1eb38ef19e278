"""The zygote: the process that imports torch and forks each note's first process, nothing else.

::

    worker (the event loop: no torch, never forks a note)
      ├─ nursery (as root): the notes' PID 1s                      (:mod:`noteexec.sandbox.nursery`)
      └─ zygote (torch imported, no op ever run; once warm, its memory moves to 2 MiB pages)
           └─ a note's first process, forked on the worker's order  (:mod:`noteexec.sandbox.tree`)

Why a process of its own: a fork makes every page of the forking process copy-on-write again.
While the event loop ran in the process that forked, each note cost it some 650 page faults,
copying the pages the loop touched, and its writes split the 2 MiB pages that make a fork cheap.
The zygote touches a few dozen pages per note. And a note's process, a copy of the zygote, finds
in its memory no other note's job, result or pipe: the zygote never saw one.

The worker sends an order per note (a small JSON head, and the descriptors the note's processes
keep, among them its job in a memfd the zygote never reads); the zygote forks and answers with
the pid and a pidfd. It reaps its children and sends each one's wait status. It dies with the
worker (a parent-death signal); the worker treats a dead zygote as its own death.
"""

from __future__ import annotations

import contextlib
import errno
import gc
import json
import os
import select
import signal
import socket
import traceback
from typing import Any, NoReturn

from noteexec.sandbox.isolation import (
    PR_SET_NAME,
    PR_SET_PDEATHSIG,
    ended_children,
    fork_server,
    keep_only,
    libc_call,
    stop_library_threads,
)

_CHANNEL_FD = 1023
"""The zygote's end of its socket to the worker."""
_MAX_FDS = 16
NAME = b"noteexec-zygote"
"""The zygote's name in ``/proc/<pid>/comm``, to tell it from the nursery."""
SHARED_COPIES = 16
"""Stretches of 2 MiB the zygote may back with huge pages while a child forked before still
lives: the child keeps the old pages of each (32 MiB at most), until it ends."""


class ZygoteGone(Exception):
    """The zygote died: its notes in flight died with it, and the worker ends (a dead worker
    costs the checker at most the notes it was running)."""


class Zygote:
    """The worker's handle on its zygote."""

    def __init__(self, pid: int, channel: socket.socket) -> None:
        self.pid = pid
        self.channel = channel
        self.exited: list[tuple[int, int]] = []
        """Wait statuses that came while the worker waited for an answer."""

    @classmethod
    def start(cls) -> Zygote:
        """Fork the zygote: it imports torch while the worker goes on (see :meth:`threaded`)."""
        return cls(*fork_server(_serve))

    def fileno(self) -> int:
        return self.channel.fileno()

    def _answer(self) -> tuple[dict[str, Any], list[int]]:
        """The zygote's next message that is not a wait status (those are kept for :meth:`exits`)."""
        while True:
            try:
                message, fds, _, _ = socket.recv_fds(self.channel, 1 << 16, _MAX_FDS)
            except OSError as error:
                raise ZygoteGone(str(error)) from None
            if not message:
                raise ZygoteGone("the zygote is gone")
            answer = json.loads(message)
            if "exited" not in answer:
                return answer, fds
            self.exited.append((answer["exited"], answer["status"]))

    def threaded(self) -> str | None:
        """Wait until the zygote has imported torch. Returns why it cannot fork a note into new
        namespaces (a thread that a library started and kept), or None."""
        answer, _ = self._answer()
        threads = int(answer["threads"])
        return f"the zygote kept {threads} threads after importing torch" if threads != 1 else None

    def fork(self, head: bytes, fds: list[int]) -> tuple[int, int]:
        """Have the zygote fork a note's first process (:func:`noteexec.sandbox.tree.fork_note`):
        its pid and a pidfd."""
        try:
            socket.send_fds(self.channel, [head], fds)
        except OSError as error:
            raise ZygoteGone(str(error)) from None
        answer, received = self._answer()
        if "error" in answer:
            raise OSError(answer["errno"], answer["error"])
        [pidfd] = received
        os.set_inheritable(pidfd, False)
        return answer["pid"], pidfd

    def warm_up(self, import_lazy_parts: bool, cache: str | None) -> bool:
        """Have the zygote import the parts of torch that notes load lazily (if asked; torch's
        compile cache in ``cache``), then back its memory with huge pages between later orders.
        Returns whether the import left a thread running."""
        try:
            self.channel.send(json.dumps({"warm_up": import_lazy_parts, "cache": cache}).encode())
        except OSError as error:
            raise ZygoteGone(str(error)) from None
        answer, _ = self._answer()
        return bool(answer["threaded"])

    def exits(self) -> list[tuple[int, int]]:
        """Wait statuses of the zygote's children, (pid, status), as far as they have come."""
        while True:
            try:
                message = self.channel.recv(1 << 16, socket.MSG_DONTWAIT)
            except BlockingIOError:
                break
            except OSError as error:
                raise ZygoteGone(str(error)) from None
            if not message:
                raise ZygoteGone("the zygote is gone")
            answer = json.loads(message)
            self.exited.append((answer["exited"], answer["status"]))
        exited, self.exited = self.exited, []
        return exited

    def close(self) -> None:
        """End the zygote (it kills its children first) and reap it."""
        self.channel.close()
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)


def _serve(channel: int, worker: int) -> NoReturn:
    """The zygote's life: import torch, say how many threads are left, then fork on orders."""
    code = 70
    try:
        libc_call("prctl", PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != worker:
            os._exit(0)
        libc_call("prctl", PR_SET_NAME, NAME, 0, 0, 0)
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not if it is ignored
            signal.signal(signal.SIGINT, signal.SIG_DFL)  # Ctrl-C ends it quietly, as it ends the worker
        # Neither the job stream (stdin) nor the result stream (stdout) is the zygote's.
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        os.dup2(2, 1)
        keep_only({channel: _CHANNEL_FD})
        # The prelude's modules, and what printing a tensor imports: once, here, no op run.
        import torch._subclasses.schema_check_mode
        import torch.nn.functional  # noqa: F401

        import noteexec.sandbox.execute  # noqa: F401  (what a note's process runs)
        from noteexec.sandbox.lockdown import syscall_filter

        syscall_filter("any")  # built once (the fallback's at its first note); every note's processes load it
        threads = stop_library_threads()
        gc.freeze()  # forked children share these objects without copying their pages
        with socket.socket(fileno=_CHANNEL_FD) as orders:
            orders.send(json.dumps({"threads": threads}).encode())
            _loop(orders)
        code = 0
    except BaseException:
        traceback.print_exc()
    finally:
        os._exit(code)


def _loop(orders: socket.socket) -> None:
    from noteexec.sandbox.tree import fork_note
    from noteexec.sandbox.warm import HugePages, import_lazy_parts

    wake_reader, wake_writer = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wake_writer)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    huge_pages: HugePages | None = None  # made by the warm-up
    collapsed = 0  # stretches collapsed so far
    children: dict[int, int] = {}  # each living child: how many stretches were collapsed at its fork
    while True:
        # Collapse between orders, but no more than SHARED_COPIES stretches while a child forked
        # before them lives: each leaves that child with a copy of its old pages.
        oldest = min(children.values(), default=collapsed)
        collapsing = huge_pages is not None and huge_pages.pending and collapsed - oldest < SHARED_COPIES
        readable = select.select([orders.fileno(), wake_reader], [], [], 0 if collapsing else None)[0]
        if not readable and huge_pages is not None:
            huge_pages.collapse_next()
            collapsed += 1
            continue
        if wake_reader in readable:
            with contextlib.suppress(BlockingIOError):
                while os.read(wake_reader, 512):
                    pass
            for pid in _send_exits(orders):
                children.pop(pid, None)
        if orders.fileno() not in readable:
            continue
        try:
            message, fds, _, _ = socket.recv_fds(orders, 1 << 16, _MAX_FDS)
        except OSError:
            return
        if not message:
            return
        try:
            if message.startswith(b'{"warm_up"'):
                warm_up = json.loads(message)
                threaded = import_lazy_parts(warm_up["cache"]) if warm_up["warm_up"] else False
                gc.freeze()
                huge_pages = HugePages()
                orders.send(json.dumps({"threaded": threaded}).encode())
                continue
            try:
                pid = fork_note(message, fds)
                children[pid] = collapsed
                try:
                    pidfd = os.pidfd_open(pid)
                except OSError:
                    os.kill(pid, signal.SIGKILL)  # reaped, and reported, as any other child
                    raise
            except OSError as error:
                answer = {"error": str(error), "errno": error.errno or errno.EIO}
                orders.send(json.dumps(answer).encode())
                continue
            socket.send_fds(orders, [b'{"pid": %d}' % pid], [pidfd])
            os.close(pidfd)
        finally:
            for fd in fds:
                os.close(fd)


def _send_exits(orders: socket.socket) -> list[int]:
    """Send the wait status of each child that ended; their pids."""
    ended = []
    for pid, status in ended_children():
        orders.send(b'{"exited": %d, "status": %d}' % (pid, status))
        ended.append(pid)
    return ended
