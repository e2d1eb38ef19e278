"""Run notes in isolated processes forked from one warm zygote; get facts back.

This side runs in the caller's process and never imports torch: the worker's zygote does
(:mod:`noteexec.sandbox.worker`, :mod:`noteexec.sandbox.zygote`). Jobs and results cross the
pipe as JSON lines only, in the shapes of :mod:`noteexec.sandbox.protocol`.

The package, by job:

- ``__init__`` (here): the checker's side: ``Sandbox``, ``NoteRun``, the notes' environment.
- ``protocol``: every message and fact that crosses a pipe, typed once.
- ``worker``: the worker's event loop; ``running``: its view of one note (the events the note
  sent, checked; its result); ``tree``: the processes inside a note's tree (PID 1, the note's
  process) and how they are forked; ``zygote``: the process that holds torch and forks them;
  ``nursery``: as root, the notes' PID 1s; ``warm``: the zygote's warm-up.
- ``execute``: runs a note's blocks in its process; ``observe``: what autograd did meanwhile.
- ``isolation``, ``lockdown``, ``cgroups``: the Linux primitives (namespaces and the read-only
  world; capabilities, the system-call filter and Landlock; memory and process caps).
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import IO

from noteexec.environment import ENV_ALLOWLIST
from noteexec.facts import NoteFacts
from noteexec.sandbox.cgroups import kill_left_by
from noteexec.sandbox.isolation import not_dumpable
from noteexec.sandbox.protocol import BlockJob, FromWorker, Job, ToWorker


@dataclass(frozen=True)
class BlockRun:
    """One block to execute: its fence line (for line numbers), its code, values to echo."""

    line: int
    code: str
    echo_lines: tuple[int, ...] = ()


@dataclass(frozen=True)
class NoteRun:
    """Everything the sandbox needs to run one note, and nothing it must judge."""

    path: str
    blocks: tuple[BlockRun, ...]
    setup: tuple[BlockRun, ...] = ()
    prelude: str = ""
    timeout: float = 60.0
    memory_limit: int | None = 4 << 30
    file_size_limit: int | None = 256 << 20
    tmp_size: int = 512 << 20
    processes: int = 256
    readonly: tuple[str, ...] = ()
    namespaces: bool = True
    strict: bool = False
    """Refuse to run the note without the full sandbox (``--isolation strict``)."""


class IsolationRefused(Exception):
    """``--isolation strict`` and this machine cannot give notes the full sandbox."""


def sandbox_environment(environ: dict[str, str], passthrough: Iterable[str] = ()) -> dict[str, str]:
    """The environment notes see: an allowlist, so secrets never reach them. noteexec's own
    variables never do, whatever is passed through: ``NOTEEXEC_CACHE_SECRET`` signs the cache."""
    patterns = (*ENV_ALLOWLIST, *passthrough)
    return {
        name: value
        for name, value in environ.items()
        if any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)
        and not name.upper().startswith("NOTEEXEC_")
    }


@dataclass
class Sandbox:
    """A warm worker process, started on the first note submitted.

    ``submit`` queues a note and returns at once, so a caller can keep parsing while the worker
    imports torch and runs notes; ``next_facts`` returns facts in completion order. A reader thread
    drains the worker's results, so neither side can block the other on a full pipe.
    """

    parallel: int = 1
    env_passthrough: tuple[str, ...] = ()
    _process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    _feeder: _Feeder | None = field(default=None, init=False, repr=False)
    _next_id: int = field(default=0, init=False, repr=False)
    _stderr: IO[bytes] | None = field(default=None, init=False, repr=False)
    _outstanding: dict[int, NoteRun] = field(default_factory=dict, init=False, repr=False)
    _results: queue.Queue[FromWorker | None] = field(default_factory=queue.Queue, init=False, repr=False)
    _lost: deque[tuple[int, NoteFacts]] = field(default_factory=deque, init=False, repr=False)
    _death: str | None = field(default=None, init=False, repr=False)
    """Why the worker died for good (it died with no note running: a broken installation, not a
    note); later notes are not run by a worker started anew."""
    _running: set[int] = field(default_factory=set, init=False, repr=False)
    """Tickets the current worker has started and not finished: the suspects if it dies."""
    _suspected: set[int] = field(default_factory=set, init=False, repr=False)
    """Tickets that were running beside others when a worker died: they run again, alone."""
    _delivered: int = field(default=0, init=False, repr=False)
    """Results the current worker has delivered: one that dies idle after some is restarted."""

    def start(self) -> None:
        """Start the worker (it imports torch meanwhile); a no-op once started, or once it died.

        The process that starts a worker becomes not dumpable: a note that got out of its
        sandbox still could not read its environment or descriptors through /proc."""
        if self._process is not None or self._death is not None:
            return
        not_dumpable()
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close()
        env = sandbox_environment(dict(os.environ), self.env_passthrough)
        package_root = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
        self._process = subprocess.Popen(
            [sys.executable, "-m", "noteexec.sandbox.worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=env,
            cwd="/",
        )
        self._results = queue.Queue()
        threading.Thread(target=self._read_results, args=(self._process, self._results), daemon=True).start()
        self._feeder = _Feeder(self._process)
        self._send({"parallel": self.parallel})

    @staticmethod
    def _read_results(process: subprocess.Popen[bytes], results: queue.Queue[FromWorker | None]) -> None:
        assert process.stdout is not None
        try:
            for line in process.stdout:
                results.put(json.loads(line))
        except ValueError:  # a torn line: a worker killed while writing is as good as dead
            process.kill()
        finally:
            results.put(None)  # the worker is gone

    def _send(self, message: ToWorker) -> None:
        assert self._feeder is not None
        self._feeder.send(message)

    def submit(self, run: NoteRun) -> int:
        """Queue a note to run; returns the ticket its facts will carry."""
        ticket = self._next_id
        self._next_id += 1
        if self._death is not None:
            self._lost.append((ticket, NoteFacts.lost(len(run.blocks), self._death)))
            return ticket
        self.start()
        self._outstanding[ticket] = run
        self._send_run(ticket, run)
        return ticket

    def _send_run(self, ticket: int, run: NoteRun) -> None:
        self._send(_job(run, ticket, self._threads(), alone=ticket in self._suspected))

    def next_facts(self) -> tuple[int, NoteFacts]:
        """The facts of the next submitted note to finish (blocks until one does).

        If the worker dies, every note it did not finish gets facts saying so, one per call.
        """
        if not self._outstanding and not self._lost:
            raise LookupError("no submitted note is waiting for its facts")
        while True:
            if self._lost:
                return self._lost.popleft()
            data = self._results.get()
            if data is None:
                self._worker_died()
                continue
            if "started" in data:
                self._running.add(data["id"])
                continue
            self._running.discard(data["id"])
            self._delivered += 1
            run = self._outstanding.pop(data["id"], None)
            if run is None:
                continue
            if "refused" in data:
                raise IsolationRefused(data["refused"])
            return data["id"], NoteFacts.from_json(data)

    def _worker_died(self) -> None:
        """A dying worker costs at most one note: the note running alone when it died is lost
        (it is the cause); notes running beside others run again in a fresh worker, each alone,
        and are lost only if they kill that one too; notes not yet started simply run again.
        A worker that dies with no note running is broken: every note left is lost, once."""
        reason = self._death_reason()
        running = sorted(self._running & self._outstanding.keys())
        progressed, self._running, self._delivered = self._delivered > 0, set(), 0
        dead = self._process.pid if self._process is not None else None
        self.close()
        if dead is not None:
            kill_left_by(dead)  # what its notes started, where no namespace took it along
        if not running and not progressed:
            self._death = reason
            culprits = sorted(self._outstanding)
        elif not running:  # it died between notes, having run some: no note to blame
            culprits = []
        elif len(running) == 1:
            culprits = running
        else:
            culprits = [ticket for ticket in running if ticket in self._suspected]
            self._suspected.update(running)
        for ticket in culprits:
            run = self._outstanding.pop(ticket)
            blamed = f"{reason} while this note ran" if running else reason
            self._lost.append((ticket, NoteFacts.lost(len(run.blocks), blamed)))
        if self._outstanding and self._death is None:
            self.start()
            for ticket, run in sorted(self._outstanding.items()):
                self._send_run(ticket, run)

    def _death_reason(self) -> str:
        """The worker's last words (stderr), so a broken install is visible, not a mystery."""
        tail = ""
        if self._stderr is not None:
            self._stderr.seek(0)
            lines = self._stderr.read().decode("utf-8", "replace").strip().splitlines()
            tail = lines[-1] if lines else ""
        return "the sandbox worker died" + (f": {tail}" if tail else "")

    def _threads(self) -> int:
        return max(1, (os.cpu_count() or 1) // self.parallel)

    def close(self, at_once: bool = False) -> None:
        """Stop the worker once its queued notes are done, or ``at_once``: it kills them, cleans
        up and exits."""
        process, self._process = self._process, None
        feeder, self._feeder = self._feeder, None
        if process is None or feeder is None:
            return
        if self._next_id == 0:  # started early for a note that then ran nothing: nothing to clean
            process.kill()
        feeder.close(stop=at_once)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc_info: object) -> None:
        self.close(at_once=exc_type is not None)  # interrupted: queued notes are not waited for


def _job(run: NoteRun, ticket: int, threads: int, alone: bool) -> Job:
    """The job message for ``run`` (see :class:`noteexec.sandbox.protocol.Job`)."""
    return {
        "path": run.path,
        "blocks": [_block_job(block) for block in run.blocks],
        "setup": [_block_job(block) for block in run.setup],
        "prelude": run.prelude,
        "timeout": run.timeout,
        "memory_limit": run.memory_limit,
        "file_size_limit": run.file_size_limit,
        "tmp_size": run.tmp_size,
        "processes": run.processes,
        "readonly": list(run.readonly),
        "namespaces": run.namespaces,
        "strict": run.strict,
        "id": ticket,
        "threads": threads,
        "alone": alone,
    }


def _block_job(block: BlockRun) -> BlockJob:
    return {"line": block.line, "code": block.code, "echo_lines": list(block.echo_lines)}


class _Feeder:
    """Writes to the worker's stdin from a thread of its own. The pipe holds 64 KiB, a few dozen
    jobs: a caller that waited on it while the zygote imports torch could not parse ahead then,
    and would parse later, taking a CPU from the notes."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        assert process.stdin is not None
        self.pending: queue.Queue[bytes | None] = queue.Queue()
        self.thread = threading.Thread(target=self._feed, args=(process.stdin,), daemon=True)
        self.thread.start()

    def _feed(self, stdin: IO[bytes]) -> None:
        try:
            while (line := self.pending.get()) is not None:
                stdin.write(line)
                if self.pending.empty():
                    stdin.flush()
        except OSError:
            pass  # the worker died; next_facts() reports every note it did not finish
        finally:
            with contextlib.suppress(OSError):
                stdin.close()

    def send(self, message: ToWorker) -> None:
        self.pending.put(json.dumps(message).encode() + b"\n")

    def close(self, stop: bool) -> None:
        """Write what is queued (``stop``: drop the jobs, tell the worker to stop), then end the
        input. The worker reads its input as long as it lives; one stuck is killed by the caller."""
        if stop:
            with contextlib.suppress(queue.Empty):
                while True:
                    self.pending.get_nowait()
            self.send({"stop": True})
        self.pending.put(None)
        self.thread.join(timeout=10)
