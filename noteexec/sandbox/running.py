"""The worker's view of one note: its pipes and stage, what it said, and its result.

A note's processes (:mod:`noteexec.sandbox.tree`) write events to a pipe of their own; the
note's code holds that pipe too, so every line is checked against the protocol
(:func:`note_event`, against :mod:`noteexec.sandbox.protocol`) and a note that sends anything else is reported
with a broken channel, touching no other note. When the note has said ``done`` or its
processes have ended, :meth:`Running.result` assembles the facts the checker gets: each
block's state, and how the processes ended (a signal, a timeout, the memory cap, an exit).
"""

from __future__ import annotations

import json
import math
import os
import signal
import time
from dataclasses import dataclass, field

from noteexec.sandbox.protocol import (
    RESULT_BUDGET,
    VALUE_BUDGET,
    BlockFactsJSON,
    ExceptionFacts,
    GradientFacts,
    GraphFacts,
    GraphNode,
    Job,
    NoteEvent,
    RanBlock,
    SetupFailed,
    WarningFacts,
    WorkerResult,
    line_values,
)
from noteexec.sandbox.tree import Plan

EXIT_GRACE = 2.0
"""Seconds a note that said ``done`` counts as exiting, its slot free for the next note."""

_SIGNAL_MEANING = {
    "SIGSEGV": "segmentation fault",
    "SIGBUS": "bus error",
    "SIGABRT": "aborted",
    "SIGFPE": "floating-point exception",
    "SIGKILL": "out of memory, or killed by another process",
    "SIGXFSZ": "file size limit exceeded",
}


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def vault_snapshot(paths: list[str]) -> dict[str, tuple[int, ...]]:
    """Identity, size and times of every file, dot-folders included, to detect writes where no
    read-only view was possible. The change time cannot be set back by ``os.utime``."""
    snapshot: dict[str, tuple[int, ...]] = {}
    for root in paths:
        for directory, _, files in os.walk(root):
            for name in files:
                path = os.path.join(directory, name)
                try:
                    info = os.lstat(path)
                except OSError:
                    continue
                snapshot[path] = (info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)
    return snapshot


class BrokenChannel(Exception):
    """A note wrote something that is not the protocol to its own channel."""


@dataclass
class Running:
    """A note's processes, as the worker sees them: pipes, stage, what the note said so far.

    Stages: *prepared* (forked and set up, waiting for ``go``), *running*, *finished* (its
    result is written; the processes may still be exiting), *discarded* (a prepared note that
    was killed before its turn; its job went back to the queue).
    """

    job: Job
    pidfd: int
    """The note's first process (the zygote's child), to kill it without a pid reuse race."""
    reader: int
    go: int
    plan: Plan
    groups: tuple[str, ...]
    deadline: float
    vault_before: dict[str, tuple[int, ...]] | None
    stage: str = "prepared"
    pending: list[bytes] = field(default_factory=list)
    """What arrived since the last line break, in pieces: joined once a line is complete."""
    received: int = 0
    """Bytes and JSON values received so far, against the budgets."""
    values: int = 0
    blocks: dict[int, RanBlock] = field(default_factory=dict)
    current: int | None = None
    last_started: int = -1
    setup_failed: SetupFailed | None = None
    status: int | None = None
    exit_status: int | None = None
    done_at: float = math.inf
    """When the note said ``done`` (its first time)."""
    timed_out: bool = False
    broken: str | None = None
    out_of_memory: bool = False
    pid1: int = -1
    """A joined note's PID 1 (a pidfd) until it has exited (see ``tree.spawn``)."""

    def feed(self, chunk: bytes) -> None:
        """Take what the note's processes wrote; raises BrokenChannel on anything malformed.

        A chunk without a line break is only kept: a note writing one endless line costs the
        worker a copy per chunk, not a scan of everything so far."""
        self.received += len(chunk)
        if self.received > RESULT_BUDGET:
            raise BrokenChannel(f"the note sent more than {RESULT_BUDGET >> 20} MiB of results")
        if b"\n" not in chunk:
            self.pending.append(chunk)
            return
        *lines, rest = b"".join([*self.pending, chunk]).split(b"\n")
        self.pending = [rest] if rest else []
        for line in lines:
            try:
                self.values += line_values(line)
                if self.values > VALUE_BUDGET:
                    raise BrokenChannel(f"the note sent more than {VALUE_BUDGET:,} values in its results")
                event = note_event(line, len(self.job["blocks"]))
            except (ValueError, RecursionError, OverflowError) as error:  # Malformed, or not JSON at all
                raise BrokenChannel(f"the note broke its result channel ({type(error).__name__})") from None
            self._receive(event)

    def _receive(self, event: NoteEvent) -> None:
        # Blocks start in order, each once, and report the one started: a note cannot restart
        # its own timeout at will, only once per block.
        if event["event"] == "ready":
            if self.stage == "prepared":
                self.deadline = math.inf  # waiting for its turn is not running
        elif event["event"] == "start":
            if self.current is not None or event["index"] <= self.last_started:
                raise BrokenChannel("the note broke its result channel (a block started out of order)")
            self.current = self.last_started = event["index"]
            self.deadline = time.monotonic() + self.job["timeout"]
        elif event["event"] == "block":
            if event["index"] != self.current:
                raise BrokenChannel("the note broke its result channel (a block reported out of order)")
            self.blocks[event["index"]] = event["facts"]
            self.current = None
            self.deadline = time.monotonic() + self.job["timeout"]
        elif event["event"] == "setup_failed":
            self.setup_failed = {"line": event["line"], "exception": event["exception"]}
        elif event["event"] == "done" and not self.done:  # said again, it buys no more grace
            self.done_at = time.monotonic()
        elif event["event"] == "exit":
            self.exit_status = event["status"]

    @property
    def done(self) -> bool:
        return self.done_at != math.inf

    def exiting(self) -> bool:
        """Said ``done`` a moment ago: only tearing down. One that said so and still runs (a
        forged ``done``) counts as running again (see ``Worker._start_jobs``)."""
        return self.done and time.monotonic() - self.done_at < EXIT_GRACE

    def vault_changes(self) -> list[str]:
        """Files of a watched vault (no read-only view) that changed since the note was forked."""
        if self.vault_before is None:
            return []
        before, after = self.vault_before, vault_snapshot(self.job["readonly"])
        return sorted(path for path in set(before) | set(after) if before.get(path) != after.get(path))

    def result(self, vault_changes: list[str]) -> WorkerResult:
        ended = self._how_it_ended()
        blocks: list[BlockFactsJSON] = []
        for index in range(len(self.job["blocks"])):
            ran = self.blocks.get(index)
            facts: BlockFactsJSON
            if ran is None:
                if self.setup_failed is not None:
                    facts = {"state": "not_run", "reason": "the hidden setup failed"}
                elif index == self.current or (self.broken and self.current is None and not self.blocks):
                    facts = {"state": "crashed", "reason": ended or "the process ended"}
                else:
                    facts = {"state": "not_run", "reason": "the process ended in an earlier block"}
            elif ran["exit"] is not None:
                facts = {**ran, "state": "crashed", "reason": f"called {ran['exit']}"}
                ended = ended or f"called {ran['exit']}"
            else:
                # No "reason" key, as ever (strict mypy wants every optional key named).
                facts = {**ran, "state": "ran"}  # type: ignore[typeddict-item]
            blocks.append(facts)
        return {
            "id": self.job["id"],
            "blocks": blocks,
            "setup_failed": self.setup_failed,
            "ended": ended,
            "isolation": self.plan.isolation,
            "vault_changes": vault_changes,
        }

    def _how_it_ended(self) -> str | None:
        if self.broken:
            return self.broken
        if self.timed_out:
            return f"timed out after {self.job['timeout']:g} s"
        status = self.exit_status if self.exit_status is not None else (self.status or 0)
        if self.out_of_memory:
            return "out of memory: the note's processes together passed its memory_limit"
        if os.WIFSIGNALED(status):
            name = _signal_name(os.WTERMSIG(status))
            meaning = _SIGNAL_MEANING.get(name)
            return f"process killed by {name}" + (f" ({meaning})" if meaning else "")
        if not self.done and self.setup_failed is None:
            return f"process exited with code {os.WEXITSTATUS(status)}"
        return None


# --- what a note sends, checked ------------------------------------------------------------------


class Malformed(ValueError):
    """A note sent something that is not the protocol (its channel is then broken)."""


def note_event(line: bytes, blocks: int) -> NoteEvent:
    """Parse and check one line a note's processes sent; ``blocks`` is how many blocks it has.

    Returns a new event holding only the keys of its type, so nothing the note made up reaches
    the checker. Raises :class:`Malformed` (or ``ValueError``/``RecursionError`` from the JSON
    parser) on anything else.
    """
    data = json.loads(line)
    if not isinstance(data, dict):
        raise Malformed("event")
    kind = data.get("event")
    if kind == "start":
        return {"event": "start", "index": _index(data.get("index"), blocks)}
    if kind == "block":
        return {
            "event": "block",
            "index": _index(data.get("index"), blocks),
            "facts": _ran(data.get("facts")),
        }
    if kind == "ready":
        return {"event": "ready"}
    if kind == "done":
        return {"event": "done"}
    if kind == "exit":
        status = data.get("status")
        if not isinstance(status, int) or not 0 <= status <= 0xFFFF:
            raise Malformed("status")
        return {"event": "exit", "status": status}
    if kind == "setup_failed":
        return {
            "event": "setup_failed",
            "line": _line(data.get("line")),
            "exception": _exception(data.get("exception")),
        }
    if kind == "probed":
        return {"event": "probed"}
    raise Malformed("event")


def _index(value: object, count: int) -> int:
    if not isinstance(value, int) or not 0 <= value < count:
        raise Malformed("index")
    return value


def _dict(value: object, what: str) -> dict[str, object]:
    if not isinstance(value, dict):
        raise Malformed(what)
    return value


def _str(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise Malformed(what)
    return value


def _bool(value: object, what: str) -> bool:
    if not isinstance(value, bool):
        raise Malformed(what)
    return value


def _line(value: object) -> int | None:
    if value is not None and not isinstance(value, int):
        raise Malformed("line")
    return value


def _optional_str(value: object, what: str) -> str | None:
    return None if value is None else _str(value, what)


def _strings(value: object, what: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise Malformed(what)
    return value


def _list(value: object, what: str) -> list[object]:
    if not isinstance(value, list):
        raise Malformed(what)
    return value


def _exception(value: object) -> ExceptionFacts:
    data = _dict(value, "exception")
    facts: ExceptionFacts = {
        "type": _str(data.get("type"), "exception"),
        "names": _strings(data.get("names"), "exception"),
        "message": _str(data.get("message"), "exception"),
        "line": _line(data.get("line")),
    }
    if "top_line" in data:
        facts["top_line"] = _line(data["top_line"])
    return facts


def _warning(value: object) -> WarningFacts:
    data = _dict(value, "warning")
    return {
        "category": _str(data.get("category"), "warning"),
        "names": _strings(data.get("names"), "warning"),
        "message": _str(data.get("message"), "warning"),
        "line": _line(data.get("line")),
    }


def _gradient(value: object) -> GradientFacts:
    data = _dict(value, "gradient")
    shape = _list(data.get("shape"), "gradient")
    sizes = [size for size in shape if type(size) is int]
    if len(sizes) != len(shape):
        raise Malformed("gradient")
    return {
        "name": _str(data.get("name"), "gradient"),
        "shape": sizes,
        "dtype": _str(data.get("dtype"), "gradient"),
        "finite": _bool(data.get("finite"), "gradient"),
        "preview": _str(data.get("preview"), "gradient"),
    }


def _graph(value: object) -> GraphFacts:
    data = _dict(value, "graph")
    nodes: list[GraphNode] = []
    for item in _list(data.get("nodes"), "graph"):
        node = _dict(item, "graph")
        nodes.append({"id": _str(node.get("id"), "graph"), "label": _str(node.get("label"), "graph")})
    edges: list[tuple[str, str]] = []
    for item in _list(data.get("edges"), "graph"):
        edge = _strings(item, "graph")
        if len(edge) != 2:
            raise Malformed("graph")
        edges.append((edge[0], edge[1]))
    return {"nodes": nodes, "edges": edges, "truncated": _bool(data.get("truncated"), "graph")}


def _piece(value: object) -> tuple[int | None, str]:
    piece = _list(value, "stdout_by_line")
    if len(piece) != 2:
        raise Malformed("stdout_by_line")
    return _line(piece[0]), _str(piece[1], "stdout_by_line")


def _ran(value: object) -> RanBlock:
    data = _dict(value, "facts")
    exception = data.get("exception")
    duration = data.get("duration")
    if not isinstance(duration, int | float) or isinstance(duration, bool) or not math.isfinite(duration):
        raise Malformed("duration")
    calls = data.get("backward_calls")
    if not isinstance(calls, int) or isinstance(calls, bool):
        raise Malformed("backward_calls")
    return {
        "exception": None if exception is None else _exception(exception),
        "warnings": [_warning(item) for item in _list(data.get("warnings"), "warnings")],
        "stdout": _str(data.get("stdout"), "stdout"),
        "stdout_by_line": [_piece(item) for item in _list(data.get("stdout_by_line"), "stdout_by_line")],
        "stderr": _str(data.get("stderr"), "stderr"),
        "truncated": _bool(data.get("truncated"), "truncated"),
        "duration": float(duration),
        "exit": _optional_str(data.get("exit"), "exit"),
        "gradients": [_gradient(item) for item in _list(data.get("gradients"), "gradients")],
        "leaves_without_grad": _strings(data.get("leaves_without_grad"), "leaves_without_grad"),
        "backward_calls": calls,
        "graphs": [_graph(item) for item in _list(data.get("graphs"), "graphs")],
    }
