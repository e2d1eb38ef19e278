"""The sandbox's messages, defined once: every JSON line that crosses a pipe, and the facts.

Three pipes, each carrying JSON lines (nothing is pickled)::

    checker ──(Job, SetParallel, Stop)──▶ worker ──(Started, Refused, WorkerResult)──▶ checker
                                            ▲
                                            │ NoteEvent: a pipe per note, untrusted
                                            │
                              a note's PID 1 and its process

The checker and the worker trust each other: their messages are typed here and not checked
again on the hot path. A note's pipe is written by the note's own code too (it holds the
descriptor), so the worker checks every event against its type and copies only the known keys
(:func:`noteexec.sandbox.running.note_event`): what it passes on to the checker is always the
shape below, and a note that sends anything else breaks its own channel and nothing else.

Facts (:class:`RanBlock`, :class:`BlockFactsJSON`, :class:`NoteFactsJSON`) are also what
``noteexec.facts`` reads into frozen dataclasses and what the cache stores: their JSON shape is
a contract.
"""

from __future__ import annotations

import json
import os
import re
from typing import Literal, NotRequired, Required, TypedDict, final

RESULT_BUDGET = 16 << 20
"""Bytes a note's processes may send over its whole run. What a note says is kept by the worker
until it ends, then read again by the checker, both outside the note's caps: unbounded, a note
capped at 32 MiB made each of them hold gigabytes. The worker breaks the channel of a note that
sends more; an honest note's own process keeps inside it (``execute.run_note``)."""
VALUE_BUDGET = 250_000
"""JSON values (numbers, strings, lists, objects) a note may send over its whole run: each is a
Python object in the worker and in the checker, however few bytes it takes on the wire."""


_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')


def line_values(line: bytes) -> int:
    """How many values (containers included) a JSON line holds at most, counted before it is
    parsed: with its strings taken out, one per comma and per list or object opened, and one.
    Parsing first let one 16 MiB line of ``[{}]`` cost the worker 800 MB before it was counted.
    The note counts its lines the same way, so both sides agree."""
    bare = _JSON_STRING.sub(b"", line)
    return bare.count(b",") + bare.count(b"[") + bare.count(b"{") + 1


BlockState = Literal["ran", "crashed", "not_run"]
"""How a block's run ended: it ran (with or without an exception), its process died in it, or
an earlier block's end kept it from running."""

# --- facts ---------------------------------------------------------------------------------------


@final
class ExceptionFacts(TypedDict):
    """An exception a block (or the prelude, or the sandbox's set-up) raised."""

    type: str
    names: list[str]
    """Every class name it answers to, bare and qualified (``ValueError``, ``torch.…``)."""
    message: str
    line: int | None
    top_line: NotRequired[int | None]
    """The line of the block's top-level code that was running (absent for set-up errors)."""


@final
class WarningFacts(TypedDict):
    """A warning a block emitted (the cache stores it in the shape of :class:`ExceptionFacts`)."""

    category: str
    names: list[str]
    message: str
    line: int | None


RaisedFacts = ExceptionFacts | WarningFacts


class GradientFacts(TypedDict):
    """A gradient a block produced, summarised (never the tensor itself)."""

    name: str
    shape: list[int]
    dtype: str
    finite: bool
    preview: str


class GraphNode(TypedDict):
    id: str
    label: str


class GraphFacts(TypedDict):
    """A backward graph as ``backward``/``autograd.grad`` found it, capped in size."""

    nodes: list[GraphNode]
    edges: list[tuple[str, str]]
    truncated: bool


class RanBlock(TypedDict):
    """What the note's process observed while one block ran (sent in :class:`BlockEvent`)."""

    exception: ExceptionFacts | None
    warnings: list[RaisedFacts]
    stdout: str
    stdout_by_line: list[tuple[int | None, str]]
    stderr: str
    truncated: bool
    duration: float
    exit: str | None
    """``sys.exit(…)`` when the block asked to exit: the worker reports the block crashed."""
    gradients: list[GradientFacts]
    leaves_without_grad: list[str]
    backward_calls: int
    graphs: list[GraphFacts]


class BlockFactsJSON(TypedDict, total=False):
    """One block's facts in a result: a :class:`RanBlock` with its state, or only a state and
    the reason it did not run (or crashed). The cache stores the same shape, without ``exit``."""

    state: Required[BlockState]
    reason: str | None
    exception: ExceptionFacts | None
    warnings: list[RaisedFacts]
    stdout: str
    stdout_by_line: list[tuple[int | None, str]]
    stderr: str
    truncated: bool
    duration: float
    exit: str | None
    gradients: list[GradientFacts]
    leaves_without_grad: list[str]
    backward_calls: int
    graphs: list[GraphFacts]


class SetupFailed(TypedDict):
    """The prelude (``line`` None), a hidden setup block or the sandbox itself failed."""

    line: int | None
    exception: ExceptionFacts


class Isolation(TypedDict, total=False):
    """The isolation a note ran under, decided by the worker. Every key is there, except in the
    facts of a note the sandbox lost before it reported anything (then it is empty)."""

    level: Literal["full", "reduced"]
    namespaces: bool
    network: str
    vault: str
    user: str
    limits: str
    missing: list[str]
    reason: str | None


class NoteFactsJSON(TypedDict):
    """Everything that happened when a note ran: what ``NoteFacts`` reads and the cache stores."""

    blocks: list[BlockFactsJSON]
    setup_failed: SetupFailed | None
    ended: str | None
    """How the note's processes ended when they did not finish normally."""
    isolation: Isolation
    vault_changes: list[str]
    """Files of the vault that changed while the note ran (only where the vault was watched)."""


# --- checker → worker (stdin) --------------------------------------------------------------------


class BlockJob(TypedDict):
    """One block to run: its fence line (for line numbers), its code, lines whose value to echo."""

    line: int
    code: str
    echo_lines: list[int]


@final
class Job(TypedDict):
    """Sent by the checker for every note to run (again, after a worker died): the worker
    queues it and answers with :class:`Started` and then a :class:`WorkerResult` or a
    :class:`Refused` carrying the same ``id``."""

    id: int
    path: str
    blocks: list[BlockJob]
    setup: list[BlockJob]
    prelude: str
    timeout: float
    memory_limit: int | None
    file_size_limit: int | None
    tmp_size: int
    processes: int
    readonly: list[str]
    namespaces: bool
    strict: bool
    """Refuse rather than run without the full sandbox (``--isolation strict``)."""
    threads: int
    """torch's intra-op threads for this note: the cores divided among the parallel notes."""
    alone: bool
    """The note was running when a worker died: it runs with no other note beside it."""


@final
class SetParallel(TypedDict):
    """Sent by the checker first: how many notes the worker may run at once."""

    parallel: int


@final
class Stop(TypedDict):
    """Sent by the checker when the run is interrupted: drop the queue, kill every note."""

    stop: Literal[True]


ToWorker = Job | SetParallel | Stop


# --- worker → checker (stdout) -------------------------------------------------------------------


@final
class Started(TypedDict):
    """Sent by the worker when a note starts running: if the worker dies, the notes started
    and not finished are the suspects."""

    id: int
    started: Literal[True]


@final
class Refused(TypedDict):
    """Sent by the worker instead of running a strict note without the full sandbox."""

    id: int
    refused: str


@final
class WorkerResult(NoteFactsJSON):
    """Sent by the worker once a note's processes said ``done`` or ended: its facts."""

    id: int


FromWorker = Started | Refused | WorkerResult


# --- the note's processes → worker (one pipe per note) -------------------------------------------


@final
class ReadyEvent(TypedDict):
    """Sent by the note's process once prepared (prelude run, blocks compiled): waiting for its
    turn does not count against its timeout."""

    event: Literal["ready"]


@final
class StartEvent(TypedDict):
    """Sent by the note's process before each block: the block to blame if the process dies;
    its timeout starts again."""

    event: Literal["start"]
    index: int


@final
class BlockEvent(TypedDict):
    """Sent by the note's process after each block: what happened."""

    event: Literal["block"]
    index: int
    facts: RanBlock


@final
class SetupFailedEvent(TypedDict):
    """Sent by PID 1 when the sandbox cannot be set up, or by the note's process when the
    prelude or a hidden setup block raised: no block runs."""

    event: Literal["setup_failed"]
    line: int | None
    exception: ExceptionFacts


@final
class DoneEvent(TypedDict):
    """Sent by the note's process after its last block: the note is finished."""

    event: Literal["done"]


@final
class ExitEvent(TypedDict):
    """Sent by PID 1 once the note's process and everything it started are gone: how it ended
    (a wait status)."""

    event: Literal["exit"]
    status: int


@final
class ProbedEvent(TypedDict):
    """Sent by the PID 1 of the worker's probe (no note): the note's world can be built here."""

    event: Literal["probed"]


NoteEvent = ReadyEvent | StartEvent | BlockEvent | SetupFailedEvent | DoneEvent | ExitEvent | ProbedEvent
"""No isolation event: what a note ran under is the worker's own plan, never the note's word."""


# --- encoding --------------------------------------------------------------------------------


def json_line(message: object) -> bytes:
    """One JSON line, UTF-8; a lone surrogate (``print("\\ud800")``) is sent as U+FFFD."""
    text = json.dumps(message, ensure_ascii=False, default=str) + "\n"
    try:
        return text.encode()
    except UnicodeEncodeError:
        return "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in text).encode()


BLOCK_RESERVE = 8 << 10
"""Bytes of the budget kept back for each block still to run: its start and, cut short, its facts."""
VALUES_RESERVE = 400
"""JSON values kept back for each block still to run, likewise."""


class Channel:
    """JSON lines to the supervisor over a private file descriptor that survives fd 0-2 closing;
    ``left`` and ``values_left`` count down the note's budgets (PID 1's few events set aside)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.left = RESULT_BUDGET - BLOCK_RESERVE
        self.values_left = VALUE_BUDGET - VALUES_RESERVE

    def send(self, event: NoteEvent) -> None:
        line = json_line(event)
        self.send_line(line, line_values(line))

    def fits(self, line: bytes, values: int, blocks_to_come: int) -> bool:
        """Whether a line leaves room for the blocks still to run."""
        return (
            len(line) <= self.left - BLOCK_RESERVE * blocks_to_come
            and values <= self.values_left - VALUES_RESERVE * blocks_to_come
        )

    def send_line(self, line: bytes, values: int) -> None:
        self.left -= len(line)
        self.values_left -= values
        view = memoryview(line)
        while view:
            written = os.write(self.fd, view)
            view = view[written:]
