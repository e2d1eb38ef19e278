"""The worker: runs an isolated process tree per note, forked from a zygote that holds torch.

::

    worker (the event loop; never imports torch; not dumpable; a child subreaper; enforces timeouts)
      ├─ nursery (as root): its init's world server builds the read-only world    (nursery)
      │    └─ PID 1 of the note's own user, PID, mount, network, IPC, UTS and cgroup
      │       namespaces: a clone of the world server that only waits
      └─ zygote (torch imported, no op ever run; forks on the worker's orders)       (zygote)
           └─ the note's process (PID 2, forked into PID 1's namespaces): joins the note's
              cgroups and PID 1's namespaces, makes its /tmp and /proc, locks down, prepares,
              waits for its turn, runs the blocks (tree.join, execute, observe)
                └─ whatever the note starts

As an ordinary user, or without namespaces, PID 1 is forked from the zygote (tree.init). Each
fork of the zygote copies the page tables of torch's address space, the main cost of a note:
hence a PID 1 from the small nursery where it can be, the next note's processes made while the
current one runs, and the event loop here, apart from the zygote. When the note's process ends,
the kernel kills everything left in its PID namespace with PID 1; without namespaces, PID 1 is
a subreaper that kills what the note left. Results travel as JSON lines over a pipe per note
(:mod:`noteexec.sandbox.protocol`). One note as the worker sees it is
:mod:`noteexec.sandbox.running`, its processes :mod:`noteexec.sandbox.tree`.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import selectors
import shutil
import signal
import sys
import tempfile
import time

from noteexec.sandbox.cgroups import NoteGroups
from noteexec.sandbox.isolation import (
    NOTE_HOST_ID,
    PR_SET_CHILD_SUBREAPER,
    ended_children,
    host_id_can_import,
    kill_children,
    kill_pidfd,
    libc_call,
    not_dumpable,
    reap_descendants,
)
from noteexec.sandbox.lockdown import landlock_missing
from noteexec.sandbox.nursery import Nursery, NurseryGone
from noteexec.sandbox.protocol import FromWorker, Job, ToWorker, json_line
from noteexec.sandbox.running import BrokenChannel, Running, vault_snapshot
from noteexec.sandbox.tree import Plan, isolation_report, probe, sandbox_error, spawn
from noteexec.sandbox.warm import torch_cache_folder
from noteexec.sandbox.zygote import Zygote, ZygoteGone


def _write(fd: int, message: FromWorker) -> None:
    """One message to the checker, whole."""
    view = memoryview(json_line(message))
    while view:
        view = view[os.write(fd, view) :]


class Worker:
    """Reads jobs (JSON lines) on stdin, runs up to ``parallel`` notes at once, writes results.

    The processes of the next note are forked and prepared while the current ones run, so a
    finished note's slot is refilled by a single write, and a note frees its slot as soon as it
    says it is done: tearing down its address space overlaps with the next note (its result is
    written once it is reaped).
    """

    SPARES = 1

    def __init__(self, output_fd: int, nursery: Nursery | None, zygote: Zygote) -> None:
        self.output_fd = output_fd
        self.nursery = nursery
        self.zygote = zygote
        self.queue: list[Job] = []
        self.notes: dict[int, Running] = {}  # job id → note, in the order they were forked
        self.first_processes: dict[int, Running] = {}  # pid → note, until the zygote reports its end
        self.parallel = 1
        self.selector = selectors.DefaultSelector()
        self.wake_reader, wake_writer = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(wake_writer)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        libc_call("prctl", PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
        self.root = os.geteuid() == 0
        self.staging = tempfile.mkdtemp(prefix="noteexec-root-")
        os.chmod(self.staging, 0o755)
        groups = NoteGroups.create()
        self.groups = groups if isinstance(groups, NoteGroups) else None
        self.groups_missing = groups if isinstance(groups, str) else None
        self.host_id_can_import = self.root and host_id_can_import()
        self.landlock_missing = landlock_missing()
        self.world_error: str | None = None
        self.world_error = self._probe_world()  # while the zygote imports torch
        self.warmed = False
        self.started_notes = 0
        self.spawned = 0
        self.torch_cache: str | None = None  # torch's compile cache, made for the warm-up
        try:
            threaded = zygote.threaded()
        except ZygoteGone:
            self.close()
            raise
        if threaded:
            print(f"noteexec worker: {threaded}; notes get no namespaces", file=sys.stderr)
            self.world_error = self.world_error or threaded
        self.selector.register(zygote.fileno(), selectors.EVENT_READ, "zygote")

    def _plan(self, namespaces_wanted: bool, workdir: str = "") -> Plan:
        namespaces = namespaces_wanted and self.world_error is None
        disabled = "namespaces disabled by configuration"
        reason = None if namespaces else self.world_error if namespaces_wanted else disabled
        # Without a cgroup, rlimits cap them: weaker, not a hole in the boundary (same level).
        limits = f"cgroup v{self.groups.version}" if self.groups else f"per process ({self.groups_missing})"
        isolation = isolation_report(
            namespaces, reason, self.root, self.host_id_can_import, self.landlock_missing, limits
        )
        return Plan(
            namespaces, self.root, os.geteuid(), os.getegid(), self.staging, workdir, isolation,
            self.host_id_can_import, not namespaces and not self.landlock_missing,
        )  # fmt: skip

    def _probe_world(self) -> str | None:
        """Set up a note's world once, with no note in it: None if it works, else why not. A
        nursery whose PID 1 fails is dropped: PID 1 is forked from the zygote instead."""
        plan = self._plan(True)
        plan = Plan(True, plan.root, plan.host_uid, plan.host_gid, plan.staging, "", plan.isolation)
        if self.nursery is not None:
            error = probe(plan, self.nursery)
            if error is None:
                return None
            print(f"noteexec worker: no PID 1 from the nursery ({error}); forking them", file=sys.stderr)
            self._close_nursery()
        return probe(plan)

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
                elif isinstance(key.data, tuple):  # a joined note's PID 1 has exited
                    self._pid1_gone(key.data[1])
                elif key.data == "children":
                    with contextlib.suppress(BlockingIOError):
                        while os.read(self.wake_reader, 512):
                            pass
                    self._reap()
                elif key.data != "zygote":
                    self._read(key.data)
            self._take_exits()  # the zygote's messages, and those that came while waiting on it
            self._enforce_deadlines()
            self._start_jobs()
        self.close()

    def _close_nursery(self) -> None:
        if self.nursery is not None:
            self.nursery.close()
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.nursery.pid, signal.SIGKILL)
            self.nursery = None

    def close(self) -> None:
        """End the nursery, the zygote and every process left; remove what the run made."""
        self._close_nursery()
        self.zygote.close()
        reap_descendants()  # PID 1s still tearing down their namespaces: nothing outlives the worker
        if self.groups is not None:
            self.groups.close()
        with contextlib.suppress(OSError):
            os.rmdir(self.staging)
        if self.torch_cache is not None:
            shutil.rmtree(self.torch_cache, ignore_errors=True)
        for note in self.notes.values():  # in flight when the zygote died
            if note.plan.workdir:
                shutil.rmtree(note.plan.workdir, ignore_errors=True)

    def _accept(self, message: ToWorker) -> None:
        if "parallel" in message:
            self.parallel = max(1, message["parallel"])
        elif "stop" in message:
            self._stop()
        else:
            self.queue.append(message)

    def _kill(self, note: Running) -> None:
        """Kill a note's first process and its PID 1, and so its namespace (pidfds: no reuse race)."""
        if note.status is None:
            kill_pidfd(note.pidfd)
        if note.pid1 != -1:
            kill_pidfd(note.pid1)

    def _stop(self) -> None:
        """The run was interrupted: drop the queue and kill every note now; reaping them still
        removes their folders, and the worker exits once its input ends."""
        self.queue.clear()
        for note in self.notes.values():
            if note.stage in ("prepared", "running"):
                self._kill(note)

    def _in_stage(self, stage: str) -> list[Running]:
        return [note for note in self.notes.values() if note.stage == stage]

    def _next_deadline(self) -> float | None:
        if self.zygote.exited:  # wait statuses that came while the worker waited for an answer
            return 0.0
        deadline = min((note.deadline for note in self.notes.values()), default=math.inf)
        return None if deadline == math.inf else max(0.0, deadline - time.monotonic())

    def _slots(self) -> int:
        """One note at a time until the worker has warmed up, then ``parallel``: run side by
        side, the first notes would each import torch's lazy parts."""
        return self.parallel if self.warmed else 1

    def _start_jobs(self) -> None:
        """Fill free slots from the prepared notes (oldest first), keep ``SPARES`` prepared."""
        self._warm_up()
        while True:
            running, prepared = self._in_stage("running"), self._in_stage("prepared")
            # A note suspected of killing a worker runs alone: if it kills this one too, only it is lost.
            alone = any(note.job["alone"] for note in running) or (
                bool(prepared) and prepared[0].job["alone"] and bool(running)
            )
            # A done note is only exiting: up to as many as there are slots free theirs, so at
            # most twice the slots have processes. Until the warm-up, the first one holds its slot.
            exiting = sum(note.exiting() for note in running) if self.warmed else 0
            free = len(running) - min(exiting, self._slots()) < self._slots() and not alone
            if prepared and free:
                self._go(prepared[0])
            elif self.queue and (free or len(prepared) < self.SPARES):
                self._prepare(self.queue.pop(0))
            else:
                return

    def _prepare(self, job: Job) -> None:
        if job["strict"] and not (job["namespaces"] and self.world_error is None):
            reason = self.world_error or "namespaces are disabled by the configuration"
            _write(self.output_fd, {"id": job["id"], "refused": reason})
            return
        isolated = job["namespaces"] and self.world_error is None
        workdir = "" if isolated else tempfile.mkdtemp(prefix="noteexec-")
        plan = self._plan(job["namespaces"], workdir)
        if workdir and self.host_id_can_import:
            os.chown(workdir, NOTE_HOST_ID, NOTE_HOST_ID)
        watched = not plan.namespaces and not plan.confine  # neither a read-only view nor Landlock
        vault_before = vault_snapshot(job["readonly"]) if watched else None
        groups: tuple[str, ...] = ()
        self.spawned += 1
        if self.groups is not None:
            try:
                groups = self.groups.prepare(f"note-{self.spawned}", job["memory_limit"], job["processes"])
            except OSError as error:
                print(f"noteexec worker: no cgroup for a note: {error}", file=sys.stderr)
        try:
            spawned = None
            if plan.namespaces and self.nursery is not None:
                try:
                    spawned = spawn(job, plan, groups, self.zygote.fork, self.nursery)
                except NurseryGone:
                    self._close_nursery()
            spawned = spawned or spawn(job, plan, groups, self.zygote.fork)
        except OSError as error:  # no process for it (the kernel's limit on namespaces, memory)
            note = Running(job, -1, -1, -1, plan, groups, math.inf, None, stage="finished")
            note.setup_failed = {"line": None, "exception": sandbox_error(error)}
            _write(self.output_fd, note.result([]))
            if self.groups is not None:
                self.groups.release(groups)
            if workdir:
                shutil.rmtree(workdir, ignore_errors=True)
            return
        deadline = time.monotonic() + job["timeout"]
        pid, pidfd, reader, go, pid1 = spawned
        note = Running(job, pidfd, reader, go, plan, groups, deadline, vault_before, pid1=pid1)
        # Statuses that came while the zygote forked are of pids reaped before: maybe this one.
        stale, self.zygote.exited = self.zygote.exited, []
        for reaped in stale:
            self._reaped(*reaped)
        self.notes[job["id"]] = note
        self.first_processes[pid] = note
        self.selector.register(reader, selectors.EVENT_READ, note)

    def _go(self, note: Running) -> None:
        """Let a prepared note run, and tell the checker: if this worker dies, the notes that were
        running are the suspects (see ``Sandbox._worker_died``)."""
        note.stage = "running"
        self.started_notes += 1
        _write(self.output_fd, {"id": note.job["id"], "started": True})
        note.deadline = time.monotonic() + note.job["timeout"]
        with contextlib.suppress(OSError):  # it died while waiting: reaping reports that
            os.write(note.go, b"g")
        self._close_go(note)

    def _discard_prepared(self) -> None:
        """Kill prepared notes (forked before the worker imported more) and requeue their jobs."""
        discarded = self._in_stage("prepared")
        for note in discarded:
            note.stage = "discarded"
            note.deadline = math.inf
            self._close_go(note)
            self._close_reader(note)
            self._kill(note)
        self.queue[:0] = [note.job for note in discarded]

    def _enforce_deadlines(self) -> None:
        now = time.monotonic()
        for note in self.notes.values():
            if not note.timed_out and now >= note.deadline:
                note.timed_out = True
                note.deadline = math.inf
                self._kill(note)

    def _read(self, note: Running) -> None:
        if note.reader == -1:
            return  # finished earlier in the same round of events
        try:
            chunk = os.read(note.reader, 1 << 16)
        except OSError:
            chunk = b""
        if chunk:
            try:
                note.feed(chunk)
            except BrokenChannel as error:
                self._break(note, str(error))
        else:
            self._close_reader(note)
        self._finish_if_done(note)

    def _break(self, note: Running, reason: str) -> None:
        """A note that garbles its channel is killed and reported with the reason; no other note
        is touched."""
        note.broken = reason
        note.pending.clear()
        self._close_reader(note)
        self._kill(note)

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

    def _own_children(self) -> frozenset[int]:
        return frozenset({self.zygote.pid} | ({self.nursery.pid} if self.nursery else set()))

    def _reap(self) -> None:
        """The worker's own children: the nursery, the zygote, and orphans it adopted."""
        for pid, status in ended_children():
            if pid == self.zygote.pid:
                raise ZygoteGone(f"the zygote died (wait status {status})")
            kill_children(keep=self._own_children())

    def _take_exits(self) -> None:
        for pid, status in self.zygote.exits():
            self._reaped(pid, status)

    def _reaped(self, pid: int, status: int) -> None:
        """A note's first process has ended (its wait status, from the zygote)."""
        note = self.first_processes.pop(pid, None)
        if note is None:
            return  # a child the zygote killed at once, unknown here
        note.status = status
        # Without a PID namespace, what the note left is now the worker's (the subreaper's): kill it.
        if not note.plan.namespaces:
            kill_children(keep=self._own_children())
        if note.pid1 != -1:  # a joined note's namespace ends with its PID 1
            kill_pidfd(note.pid1)
            self.selector.register(note.pid1, selectors.EVENT_READ, ("pid1", note))
        self._finish_if_done(note)
        self._forget_if_gone(note)

    def _pid1_gone(self, note: Running) -> None:
        """A joined note's PID 1 has exited, so has everything in its namespace."""
        self.selector.unregister(note.pid1)
        os.close(note.pid1)
        note.pid1 = -1
        self._finish_if_done(note)
        self._forget_if_gone(note)

    def _forget_if_gone(self, note: Running) -> None:
        if note.stage in ("finished", "discarded") and note.status is not None and note.pid1 == -1:
            del self.notes[note.job["id"]]
            os.close(note.pidfd)
            if self.groups is not None:
                self.groups.release(note.groups)
            if note.plan.workdir:
                shutil.rmtree(note.plan.workdir, ignore_errors=True)

    def _finish_if_done(self, note: Running) -> None:
        """Write a note's result once its PID 1 has been reaped: then nothing the note started is
        left (the kernel ends a PID namespace with its PID 1 before the worker can reap it;
        without namespaces, PID 1 killed what the note left before it exited).

        PID 1 reports how the note's process ended (an ``exit`` event) before it exits, but that
        event comes down the channel the note's own code holds too, so it only ends the note:
        killed at once (an honest PID 1 is exiting anyway), reported when reaped, with the
        status reported. A broken channel ends the note the same way.
        """
        if note.stage not in ("prepared", "running"):
            return
        if note.status is None or note.pid1 != -1:
            if note.exit_status is not None or note.broken is not None:
                self._kill(note)
            return
        if note.reader != -1:
            os.set_blocking(note.reader, False)
            try:
                while chunk := os.read(note.reader, 1 << 16):
                    note.feed(chunk)
            except BlockingIOError:
                pass  # a leftover child still holds the pipe; it has been killed
            except BrokenChannel as error:
                note.broken = str(error)
        self._close_reader(note)
        self._close_go(note)
        note.stage = "finished"
        note.deadline = math.inf
        note.out_of_memory = not note.done and bool(self.groups and self.groups.out_of_memory(note.groups))
        _write(self.output_fd, note.result(note.vault_changes()))

    def _warm_up(self) -> None:
        """Have the zygote import the parts of torch that notes load lazily (a fixed list, never
        what a note asked for), then move its memory to huge pages as it serves: before the
        first note when two or more are waiting, else once a lone first note has finished and
        more have come (a lone note would wait a second for nothing). Prepared notes, forked
        before, are discarded: they would import those parts again."""
        waiting = len(self.queue) > (1 if self.started_notes == 0 else 0)
        if self.warmed or not waiting or self._in_stage("running"):
            return
        self.warmed = True
        self._discard_prepared()
        # Without the read-only world, a note may have written the very files imported: no import.
        import_lazy_parts = self.world_error is None and all(job["namespaces"] for job in self.queue)
        self.torch_cache = torch_cache_folder() if import_lazy_parts else None
        threaded = self.zygote.warm_up(import_lazy_parts, self.torch_cache)
        if threaded:
            print("noteexec worker: the warm-up started a thread", file=sys.stderr)


def main() -> None:
    """Entry point of the worker process (``python -m noteexec.sandbox.worker``)."""
    not_dumpable()
    zygote = Zygote.start()  # it imports torch meanwhile
    # Only root can join a PID namespace for its next child and come back (tree.fork_note).
    nursery = Nursery.start() if os.geteuid() == 0 else None
    output_fd = os.dup(1)
    os.dup2(2, 1)  # stray prints must not corrupt the result stream
    try:
        worker = Worker(output_fd, nursery, zygote)
    except ZygoteGone:  # it could not import torch: its traceback is the last word on stderr
        sys.exit(70)
    try:
        worker.serve()
    except ZygoteGone as error:  # its notes in flight died with it: the checker is told by this death
        print(f"noteexec worker: {error}", file=sys.stderr)
        worker.close()
        sys.exit(70)


if __name__ == "__main__":
    main()
