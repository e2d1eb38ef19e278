"""The warm worker: imports torch once, then forks one isolated process per note.

::

    worker (torch imported, no op ever run; a child subreaper; enforces every timeout)
      └─ note process (new network and mount namespaces where the OS allows; a subreaper too)
           └─ whatever the note starts

One fork per note keeps the overhead low (a fork of a process with torch mapped costs
milliseconds). Nothing a note starts outlives it: the note process is a child subreaper, so
every orphan below it, ``setsid`` ones included, comes back to it and is killed when the note
ends; if the note process itself dies or is killed, its orphans come to the worker, which is a
subreaper as well and kills every child that is not a running note. Results travel as JSON
lines over a pipe per note; nothing is pickled.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import importlib.util
import json
import math
import os
import selectors
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

from noteexec.sandbox.execute import Channel, run_note
from noteexec.sandbox.isolation import (
    PR_SET_CHILD_SUBREAPER,
    PR_SET_PDEATHSIG,
    back_with_huge_pages,
    isolate,
    kill_children,
    libc_call,
    namespaces_work,
    reap_descendants,
)

CHANNEL_FD = 1021
GO_FD = CHANNEL_FD - 1

# Notes import parts of torch lazily (torch.optim's first step imports torch._dynamo and sympy,
# ~1 s); the worker imports what finished notes imported, so later forks get it for free. Never
# parts that start threads or processes, which would make forked children deadlock.
_NEVER_WARM = (
    "torch._inductor", "torch.distributed", "torch.multiprocessing", "torch.cuda", "torch.compiler",
    "torch.utils.data", "torch.backends.cuda", "torch.testing._internal",
)  # fmt: skip

_SIGNAL_MEANING = {
    "SIGSEGV": "segmentation fault",
    "SIGBUS": "bus error",
    "SIGABRT": "aborted",
    "SIGFPE": "floating-point exception",
    "SIGKILL": "out of memory, or killed by another process",
    "SIGXFSZ": "file size limit exceeded",
}


# --- inside the note process -------------------------------------------------------------------


def _note_process(job: dict[str, Any], reader: int, writer: int, go: int, workdir: str) -> None:
    """The note's own process: isolate, prepare, wait for its turn (a byte on ``go``), run."""
    exit_code = 70
    try:
        signal.set_wakeup_fd(-1)
        os.dup2(writer, CHANNEL_FD, inheritable=False)
        os.dup2(go, GO_FD, inheritable=False)
        # Nothing of the worker's stays open to the note: not its result stream (a note could
        # forge any note's result there, or stall the run with a broken line), other notes'
        # pipes, its wake-up pipe or its selector; fd 0, its job stream, becomes /dev/null
        # before the note runs.
        # (The open ones, listed: os.closerange would try every number up to the limit on a
        # kernel without close_range, a million system calls in some containers.)
        for fd in map(int, os.listdir("/proc/self/fd")):
            if fd > 2 and fd not in (GO_FD, CHANNEL_FD):
                with contextlib.suppress(OSError):  # the listing's own descriptor, already closed
                    os.close(fd)
        del reader, writer, go
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        libc_call("prctl", PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        libc_call("prctl", PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
        os.setsid()
        channel = Channel(CHANNEL_FD)
        channel.send({"event": "isolation", "isolation": isolate(job["readonly"], job["namespaces"])})
        gc.enable()

        def wait_for_turn() -> bool:
            channel.send({"event": "ready"})
            turn = os.read(GO_FD, 1) == b"g"
            os.close(GO_FD)
            return turn

        imported = run_note(job, channel, workdir, wait_for_turn)
        reap_descendants()
        if imported is not None:
            channel.send({"event": "done", "imported": imported})
        exit_code = 0
    except BaseException:  # the note process must never unwind into the worker's loop
        exit_code = 70
    finally:
        os._exit(exit_code)


# --- the worker --------------------------------------------------------------------------------


def _vault_snapshot(paths: list[str]) -> dict[str, tuple[int, int]]:
    """(mtime, size) of every file, to detect writes where no read-only view was possible."""
    snapshot = {}
    for root in paths:
        for directory, subdirectories, files in os.walk(root):
            subdirectories[:] = [name for name in subdirectories if not name.startswith(".")]
            for name in files:
                path = os.path.join(directory, name)
                try:
                    info = os.lstat(path)
                except OSError:
                    continue
                snapshot[path] = (info.st_mtime_ns, info.st_size)
    return snapshot


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


@dataclass
class Running:
    """A note's process, as the worker sees it: its pipes, its stage, what it said so far.

    Stages: *prepared* (forked and set up, waiting for ``go``), *running*, *finished* (its
    result is written; the process may still be exiting), *discarded* (a prepared process
    that was killed before its turn; its job went back to the queue).
    """

    job: dict[str, Any]
    pid: int
    reader: int
    go: int
    workdir: str
    deadline: float
    vault_before: dict[str, tuple[int, int]] | None
    stage: str = "prepared"
    buffer: bytes = b""
    blocks: dict[int, dict[str, Any]] = field(default_factory=dict)
    current: int | None = None
    setup_failed: dict[str, Any] | None = None
    isolation: dict[str, Any] = field(default_factory=dict)
    status: int | None = None
    done: bool = False
    timed_out: bool = False
    imported: list[str] = field(default_factory=list)

    def feed(self, chunk: bytes) -> None:
        self.buffer += chunk
        *lines, self.buffer = self.buffer.split(b"\n")
        for line in lines:
            self._receive(json.loads(line))

    def _receive(self, event: dict[str, Any]) -> None:
        kind = event["event"]
        if kind in ("start", "block"):
            self.deadline = time.monotonic() + self.job["timeout"]
        if kind == "ready" and self.stage == "prepared":
            self.deadline = math.inf  # waiting for its turn is not running
        elif kind == "start":
            self.current = event["index"]
        elif kind == "block":
            self.blocks[event["index"]] = event["facts"]
            self.current = None
        elif kind == "setup_failed":
            self.setup_failed = {"line": event["line"], "exception": event["exception"]}
        elif kind == "done":
            self.done = True
            self.imported = event.get("imported", [])
        elif kind == "isolation":
            self.isolation = event["isolation"]

    def result(self, vault_changes: list[str]) -> dict[str, Any]:
        ended = self._how_it_ended()
        blocks = []
        for index in range(len(self.job["blocks"])):
            facts = self.blocks.get(index)
            if facts is None:
                if self.setup_failed is not None:
                    facts = {"state": "not_run", "reason": "the hidden setup failed"}
                elif index == self.current:
                    facts = {"state": "crashed", "reason": ended or "the process ended"}
                else:
                    facts = {"state": "not_run", "reason": "the process ended in an earlier block"}
            elif facts.get("exit") is not None:
                facts = {**facts, "state": "crashed", "reason": f"called {facts['exit']}"}
                ended = ended or f"called {facts['exit']}"
            else:
                facts = {**facts, "state": "ran"}
            blocks.append(facts)
        return {
            "id": self.job["id"],
            "blocks": blocks,
            "setup_failed": self.setup_failed,
            "ended": ended,
            "isolation": self.isolation,
            "vault_changes": vault_changes,
        }

    def _how_it_ended(self) -> str | None:
        if self.timed_out:
            return f"timed out after {self.job['timeout']:g} s"
        status = self.status or 0
        if os.WIFSIGNALED(status):
            name = _signal_name(os.WTERMSIG(status))
            meaning = _SIGNAL_MEANING.get(name)
            return f"process killed by {name}" + (f" ({meaning})" if meaning else "")
        if not self.done and self.setup_failed is None:
            return f"process exited with code {os.WEXITSTATUS(status)}"
        return None


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class Worker:
    """Reads jobs (JSON lines) on stdin, runs up to ``parallel`` notes at once, writes results.

    The process of the next note is forked and prepared while the current ones run, so a
    finished note's slot is refilled by a single write, and a note counts as finished as soon
    as it says so: tearing down its address space overlaps with the next note.
    """

    SPARES = 1
    SETTLED_AFTER = 4  # notes in a row that needed no warm-up
    SERIAL_AT_MOST = 16  # notes, however many needed warm-up

    def __init__(self, output_fd: int) -> None:
        self.output_fd = output_fd
        self.queue: list[dict[str, Any]] = []
        self.notes: dict[int, Running] = {}  # pid → note, in the order they were forked
        self.parallel = 1
        self.selector = selectors.DefaultSelector()
        wake_reader, wake_writer = os.pipe()
        os.set_blocking(wake_reader, False)
        os.set_blocking(wake_writer, False)
        self.wake_reader = wake_reader
        signal.set_wakeup_fd(wake_writer)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        libc_call("prctl", PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
        self.namespaces_work = namespaces_work()
        self.warming = True
        self.started = time.time()
        self.quiet_notes = 0
        self.finished_notes = 0

    def serve(self) -> None:
        stdin = sys.stdin.fileno()
        self.selector.register(stdin, selectors.EVENT_READ, "jobs")
        self.selector.register(self.wake_reader, selectors.EVENT_READ, "children")
        pending = b""
        accepting = True
        while accepting or self.queue or self.notes:
            for key, _ in self.selector.select(self._next_deadline()):
                if key.data == "jobs":
                    chunk = os.read(stdin, 1 << 16)
                    if not chunk:
                        accepting = False
                        self.selector.unregister(stdin)
                        continue
                    pending += chunk
                    *lines, pending = pending.split(b"\n")
                    for line in lines:
                        self._accept(json.loads(line))
                elif key.data == "children":
                    while True:
                        try:
                            if not os.read(self.wake_reader, 512):
                                break
                        except BlockingIOError:
                            break
                    self._reap()
                else:
                    self._read(key.data)
            self._enforce_deadlines()
            self._start_jobs()

    def _accept(self, message: dict[str, Any]) -> None:
        if "parallel" in message:
            self.parallel = max(1, int(message["parallel"]))
        elif message.get("stop"):
            self._stop()
        else:
            self.queue.append(message)

    def _stop(self) -> None:
        """The run was interrupted: drop the queue and kill every note now; reaping them still
        removes their folders, and the worker exits once its input ends."""
        self.queue.clear()
        for note in self.notes.values():
            if note.stage in ("prepared", "running"):
                for target in (-note.pid, note.pid):  # its process group, then the process
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(target, signal.SIGKILL)

    def _in_stage(self, stage: str) -> list[Running]:
        return [note for note in self.notes.values() if note.stage == stage]

    def _next_deadline(self) -> float | None:
        deadline = min((note.deadline for note in self.notes.values()), default=math.inf)
        return None if deadline == math.inf else max(0.0, deadline - time.monotonic())

    def _slots(self) -> int:
        """One note at a time until notes stop needing warm-up, then ``parallel``.

        The first notes of a run are the ones that import parts of torch lazily (a first
        ``optimizer.step()`` pulls in torch._dynamo and sympy: a second and 100 MiB). Run side by
        side, each would import them again in its own process; one at a time, the worker
        imports them once and every later note starts with them.
        """
        settled = (
            self.quiet_notes >= self.SETTLED_AFTER
            or self.finished_notes >= self.SERIAL_AT_MOST
            or not self.warming
        )
        return self.parallel if settled else 1

    def _start_jobs(self) -> None:
        """Fill free slots from the prepared notes (oldest first), keep ``SPARES`` prepared."""
        while True:
            running, prepared = len(self._in_stage("running")), self._in_stage("prepared")
            free = running < self._slots()
            if prepared and free:
                self._go(prepared[0])
            elif self.queue and (free or len(prepared) < self.SPARES):
                self._prepare(self.queue.pop(0))
            else:
                return

    def _prepare(self, job: dict[str, Any]) -> None:
        watch = not (job["namespaces"] and self.namespaces_work)
        vault_before = _vault_snapshot(job["readonly"]) if watch else None
        workdir = tempfile.mkdtemp(prefix="noteexec-")
        reader, writer = os.pipe()
        go_reader, go_writer = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(go_writer)
            _note_process(job, reader, writer, go_reader, workdir)
        os.close(writer)
        os.close(go_reader)
        note = Running(job, pid, reader, go_writer, workdir, time.monotonic() + job["timeout"], vault_before)
        self.notes[pid] = note
        self.selector.register(reader, selectors.EVENT_READ, note)

    def _go(self, note: Running) -> None:
        note.stage = "running"
        note.deadline = time.monotonic() + note.job["timeout"]
        with contextlib.suppress(OSError):  # it died while waiting: reaping reports that
            os.write(note.go, b"g")
        self._close_go(note)

    def _discard_prepared(self) -> None:
        """Kill prepared processes (forked before the worker imported more) and requeue their jobs."""
        discarded = self._in_stage("prepared")
        for note in discarded:
            note.stage = "discarded"
            note.deadline = math.inf
            self._close_go(note)
            self._close_reader(note)
            with contextlib.suppress(ProcessLookupError):
                os.kill(note.pid, signal.SIGKILL)
        self.queue[:0] = [note.job for note in discarded]

    def _enforce_deadlines(self) -> None:
        now = time.monotonic()
        for note in self.notes.values():
            if not note.timed_out and now >= note.deadline:
                note.timed_out = True
                note.deadline = math.inf
                for target in (-note.pid, note.pid):  # its process group, then the process
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(target, signal.SIGKILL)

    def _read(self, note: Running) -> None:
        if note.reader == -1:
            return  # finished earlier in the same round of events
        try:
            chunk = os.read(note.reader, 1 << 16)
        except OSError:
            chunk = b""
        if chunk:
            note.feed(chunk)
        else:
            self._close_reader(note)
        self._finish_if_done(note)

    @staticmethod
    def _close_go(note: Running) -> None:
        if note.go != -1:
            os.close(note.go)
            note.go = -1

    def _close_reader(self, note: Running) -> None:
        if note.reader != -1:
            self.selector.unregister(note.reader)
            os.close(note.reader)
            note.reader = -1

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self._reaped(pid, status)

    def _reaped(self, pid: int, status: int) -> None:
        note = self.notes.get(pid)
        if note is not None:
            note.status = status
            # Whatever the note left behind is now an orphan of the worker: kill it all.
            kill_children(keep=frozenset(self.notes) - {pid})
            self._finish_if_done(note)
            if note.stage in ("finished", "discarded"):
                del self.notes[pid]
                shutil.rmtree(note.workdir, ignore_errors=True)

    def _collapse_when_alone(self) -> None:
        """Back the memory with huge pages again, once no note process shares it.

        Collapsing copies pages into huge ones: a process still mapping the old pages would
        keep a second copy of them alive. Finished and discarded notes are only exiting.
        """
        if self._in_stage("running") or self._in_stage("prepared"):
            return
        for note in list(self.notes.values()):
            with contextlib.suppress(ChildProcessError):
                self._reaped(*os.waitpid(note.pid, 0))
        back_with_huge_pages()

    def _finish_if_done(self, note: Running) -> None:
        """Write a note's result once it said ``done`` or its process was reaped.

        A note that said ``done`` has reaped everything it started and only exits; where the
        vault is only watched (no read-only view), the worker still waits for that exit.
        """
        if note.stage not in ("prepared", "running"):
            return
        if note.status is None and not (note.done and note.vault_before is None):
            return  # a prepared note never says done: it finishes only if its process ends
        if note.reader != -1 and note.status is not None:
            os.set_blocking(note.reader, False)
            try:
                while chunk := os.read(note.reader, 1 << 16):
                    note.feed(chunk)
            except BlockingIOError:
                pass  # a leftover child still holds the pipe; it has been killed
        self._close_reader(note)
        self._close_go(note)
        note.stage = "finished"
        self.finished_notes += 1
        note.deadline = math.inf
        changes: list[str] = []
        if note.vault_before is not None:
            before, after = note.vault_before, _vault_snapshot(note.job["readonly"])
            changes = sorted(path for path in set(before) | set(after) if before.get(path) != after.get(path))
        result = note.result(changes)
        _write_all(self.output_fd, (json.dumps(result, ensure_ascii=False) + "\n").encode())
        self._warm_up(note.imported)

    def _warm_up(self, modules: list[str]) -> None:
        """Import what a finished note imported lazily, so later forks inherit it for free.

        Only torch's own modules, only files older than the worker (a note that wrote or changed
        a file under torch/ gets nothing run outside its sandbox), and only while the worker stays
        single-threaded, which keeps forked children free of torch's thread-pool deadlock.
        """
        wanted = [
            name
            for name in sorted(modules)
            if name.startswith("torch.") and not name.startswith(_NEVER_WARM) and name not in sys.modules
        ]
        if not wanted or not self.warming:
            self.quiet_notes += 1
            return
        self.quiet_notes = 0
        known = len(sys.modules)
        threads = len(os.listdir("/proc/self/task"))
        for name in wanted:
            with contextlib.suppress(Exception):
                spec = importlib.util.find_spec(name)
                origin = spec.origin if spec is not None else None
                if origin and os.path.isfile(origin) and os.stat(origin).st_mtime < self.started:
                    importlib.import_module(name)
        if len(os.listdir("/proc/self/task")) != threads:
            self.warming = False
            print(f"noteexec worker: {wanted[0]} started a thread; warm-up stopped", file=sys.stderr)
        gc.freeze()
        if len(sys.modules) > known:
            self._discard_prepared()
            self._collapse_when_alone()


def main() -> None:
    """Entry point of the warm worker process (``python -m noteexec.sandbox.worker``)."""
    output_fd = os.dup(1)
    os.dup2(2, 1)  # stray prints must not corrupt the result stream
    import torch.nn.functional  # noqa: F401 - the prelude's modules, imported once, no op run

    gc.freeze()  # forked children share these objects without copying their pages
    back_with_huge_pages()  # and fork copies a page-table entry per 2 MiB instead of per 4 KiB
    Worker(output_fd).serve()


if __name__ == "__main__":
    main()
