"""The sandbox protocol: what a note sends is checked in the worker, whatever it sends."""

from __future__ import annotations

import json
import math

import pytest

from noteexec.facts import NoteFacts
from noteexec.sandbox import BlockRun, NoteRun, Sandbox
from noteexec.sandbox.execute import MESSAGE_CAP, OUTPUT_CAP, PIECES_CAP, WARNINGS_CAP, Capture, _capped
from noteexec.sandbox.protocol import (
    RESULT_BUDGET,
    VALUE_BUDGET,
    Isolation,
    Job,
    NoteFactsJSON,
    RanBlock,
    WorkerResult,
)
from noteexec.sandbox.running import (
    EXIT_GRACE,
    BrokenChannel,
    Running,
    line_values,
    note_event,
)
from noteexec.sandbox.tree import Plan

RAN: RanBlock = {
    "exception": {"type": "ValueError", "names": ["ValueError"], "message": "m", "line": 3, "top_line": 3},
    "warnings": [{"category": "UserWarning", "names": ["UserWarning", "Warning"], "message": "w", "line": 2}],
    "stdout": "4\n",
    "stdout_by_line": [(2, "4\n"), (None, "x")],
    "stderr": "",
    "truncated": False,
    "duration": 0.25,
    "exit": None,
    "gradients": [{"name": "w.grad", "shape": [2], "dtype": "float32", "finite": True, "preview": "[1, 2]"}],
    "leaves_without_grad": ["b"],
    "backward_calls": 1,
    "graphs": [
        {"nodes": [{"id": "n0", "label": "SumBackward0"}], "edges": [("n0", "n0")], "truncated": False}
    ],
}


ISOLATION: Isolation = {
    "level": "reduced", "namespaces": False, "network": "shared", "vault": "watched", "user": "u",
    "limits": "l", "missing": ["m"], "reason": None,
}  # fmt: skip


def running(blocks: int = 2) -> Running:
    job: Job = {
        "id": 7, "path": "n.md", "blocks": [{"line": 1, "code": "", "echo_lines": []}] * blocks, "setup": [],
        "prelude": "", "timeout": 5.0, "memory_limit": None, "file_size_limit": None, "tmp_size": 1 << 20,
        "processes": 8, "readonly": [], "namespaces": True, "strict": False, "threads": 1, "alone": False,
    }  # fmt: skip
    plan = Plan(True, False, 0, 0, "/", "", ISOLATION)
    return Running(job, -1, -1, -1, plan, (), math.inf, None)


def line(event: object) -> bytes:
    return json.dumps(event).encode() + b"\n"


def as_json(value: object) -> object:
    return json.loads(json.dumps(value))


def test_honest_events_pass_unchanged_and_make_the_result_the_checker_reads() -> None:
    note = running()
    block = line({"event": "block", "index": 0, "facts": RAN})
    note.feed(line({"event": "ready"}) + line({"event": "start", "index": 0}))
    note.feed(block[:10])  # a line may arrive in pieces
    note.feed(block[10:])
    note.feed(line({"event": "done"}) + line({"event": "exit", "status": 0}))
    assert note.blocks[0] == RAN and note.done and note.exit_status == 0
    result: WorkerResult = json.loads(json.dumps(note.result([])))
    assert result["blocks"][0] == {**json.loads(json.dumps(RAN)), "state": "ran"}
    assert result["isolation"] == ISOLATION
    facts = NoteFacts.from_json(result)
    assert facts.blocks[0].stdout_by_line == ((2, "4\n"), (None, "x"))
    stored: NoteFactsJSON = json.loads(json.dumps(facts.to_json()))  # as the cache stores them
    assert as_json(NoteFacts.from_json(stored).to_json()) == stored


def test_only_the_keys_of_an_event_reach_the_worker() -> None:
    padded = note_event(
        line({"event": "block", "index": 1, "facts": {**RAN, "state": "ran", "x": 1}, "y": 2}), 2
    )
    plain = note_event(line({"event": "block", "index": 1, "facts": RAN}), 2)
    assert padded == plain


MALFORMED = {
    "not JSON": b"{oops\n",
    "not an object": b"[1, 2]\n",
    "invalid UTF-8": b'{"event": "\xff"}\n',
    "nested past the recursion limit": b"[" * 100_000 + b"]" * 100_000 + b"\n",
    "an unknown event": line({"event": "verdict", "passed": True}),
    "no event": line({"index": 0}),
    "an index out of range": line({"event": "start", "index": 2}),
    "a negative index": line({"event": "start", "index": -1}),
    "an index that is not a number": line({"event": "start", "index": "0"}),
    "facts that are not an object": line({"event": "block", "index": 0, "facts": [1]}),
    "facts missing a key": line({"event": "block", "index": 0, "facts": {k: v for k, v in RAN.items() if k != "stdout"}}),
    "an exception that is not an object": line({"event": "block", "index": 0, "facts": {**RAN, "exception": 5}}),
    "an exception without names": line(
        {"event": "block", "index": 0, "facts": {**RAN, "exception": {"type": "E", "message": "", "line": 1}}}
    ),
    "a warning with a number for a message": line(
        {"event": "block", "index": 0, "facts": {**RAN, "warnings": [{**RAN["warnings"][0], "message": 1}]}}
    ),
    "output that is not text": line({"event": "block", "index": 0, "facts": {**RAN, "stdout": 4}}),
    "a piece of output that is not a pair": line({"event": "block", "index": 0, "facts": {**RAN, "stdout_by_line": [[1]]}}),
    "an infinite duration": b'{"event": "block", "index": 0, "facts": ' + json.dumps({**RAN, "duration": 1}).encode().replace(b'"duration": 1', b'"duration": Infinity') + b"}\n",
    "a gradient with a fractional size": line(
        {"event": "block", "index": 0, "facts": {**RAN, "gradients": [{**RAN["gradients"][0], "shape": [1.5]}]}}
    ),
    "a graph edge of three ends": line(
        {"event": "block", "index": 0, "facts": {**RAN, "graphs": [{**RAN["graphs"][0], "edges": [["a", "b", "c"]]}]}}
    ),
    "a count that is a boolean": line({"event": "block", "index": 0, "facts": {**RAN, "backward_calls": True}}),
    "an exit status that is infinite": b'{"event": "exit", "status": Infinity}\n',
    "an exit status out of range": line({"event": "exit", "status": 1 << 40}),
    "a setup failure without an exception": line({"event": "setup_failed", "line": None}),
    "a setup failure at a line that is text": line(
        {"event": "setup_failed", "line": "1", "exception": RAN["exception"]}
    ),
    "a block reported that never started": line({"event": "block", "index": 0, "facts": RAN}),
    "a number too large for a float": line({"event": "block", "index": 0, "facts": RAN}).replace(
        b'"duration": ', b'"duration": 1' + b"0" * 400 + b", \"x\": "
    ),
    # What a note ran under is the worker's plan: a note that claims its own is lying.
    "a claim of its own isolation": line({"event": "isolation", "isolation": {**ISOLATION, "level": "full"}}),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_a_note_that_sends_anything_else_breaks_its_own_channel(name: str) -> None:
    note = running()
    with pytest.raises(BrokenChannel, match="the note broke its result channel"):
        note.feed(MALFORMED[name])


def test_a_note_that_forges_its_facts_is_reported_broken_and_the_checker_goes_on() -> None:
    """A forged block whose exception is not an object once crashed the checker reading it."""
    forge = (
        "import json, os\n"
        "line = json.dumps({'event': 'block', 'index': 0, 'facts': {'exception': 5}}) + '\\n'\n"
        "os.write(1021, line.encode())\n"
        "os._exit(0)\n"
    )
    with Sandbox() as sandbox:
        forged = sandbox.submit(
            NoteRun(path="/forge.md", blocks=(BlockRun(1, forge), BlockRun(7, "print(1)")))
        )
        honest = sandbox.submit(NoteRun(path="/honest.md", blocks=(BlockRun(1, "print(2 + 2)"),)))
        facts = dict(sandbox.next_facts() for _ in range(2))
    assert facts[forged].ended is not None and "broke its result channel" in facts[forged].ended
    assert [block.state for block in facts[forged].blocks] == ["crashed", "not_run"]
    assert facts[honest].blocks[0].stdout == "4\n"


def test_a_note_cannot_restart_its_own_timeout_or_report_a_block_it_did_not_start() -> None:
    """Each block gets the timeout once: a note that says a block started again (or out of
    order) to reset its deadline breaks its channel instead."""
    for events in (
        [{"event": "start", "index": 0}, {"event": "start", "index": 0}],
        [
            {"event": "start", "index": 1},
            {"event": "block", "index": 1, "facts": RAN},
            {"event": "start", "index": 0},
        ],
        [{"event": "start", "index": 0}, {"event": "block", "index": 1, "facts": RAN}],
    ):
        note = running()
        with pytest.raises(BrokenChannel, match="out of order"):
            for event in events:
                note.feed(line(event))


def test_a_note_that_forges_its_exit_is_killed_and_the_run_goes_on() -> None:
    """The exit event travels on the channel the note holds: a note that sends it early and
    then spins (a child sleeping beside it) once stopped the worker for good."""
    forge = (
        "import json, os, subprocess\n"
        "subprocess.Popen(['sleep', '600'])\n"
        "os.write(1021, (json.dumps({'event': 'exit', 'status': 0}) + '\\n').encode())\n"
        "while True:\n"
        "    pass\n"
    )
    with Sandbox() as sandbox:
        forged = sandbox.submit(NoteRun(path="/forge.md", blocks=(BlockRun(1, forge),), timeout=30))
        honest = [
            sandbox.submit(NoteRun(path=f"/n{i}.md", blocks=(BlockRun(1, "print(2 + 2)"),))) for i in range(3)
        ]
        facts = dict(sandbox.next_facts() for _ in range(4))
    assert "timed out" not in (facts[forged].ended or "")  # killed when it said it ended, not at 30 s
    assert facts[forged].blocks[0].state == "crashed"
    assert all(facts[ticket].blocks[0].stdout == "4\n" for ticket in honest)


def test_a_note_sends_a_bounded_number_of_bytes_and_values_over_its_whole_run() -> None:
    """Whatever a note says is kept by the worker and read again by the checker, outside the
    note's caps: its bytes (one endless line, or many lines) and its values are budgeted."""
    endless = running()
    with pytest.raises(BrokenChannel, match=f"more than {RESULT_BUDGET >> 20} MiB"):
        for _ in range(RESULT_BUDGET >> 16):
            endless.feed(b"x" * (1 << 16))
        endless.feed(b"x")
    many = running(blocks=4)
    block = {**RAN, "stdout": "y" * (RESULT_BUDGET // 3)}
    with pytest.raises(BrokenChannel, match="MiB of results"):
        for index in range(4):
            many.feed(
                line({"event": "start", "index": index})
                + line({"event": "block", "index": index, "facts": block})
            )
    assert set(many.blocks) <= {0, 1, 2}  # what came before the budget ran out is kept
    tiny = running()
    facts = {**RAN, "stdout_by_line": [[0, ""]] * (VALUE_BUDGET // 3 + 1)}
    with pytest.raises(BrokenChannel, match="values in its results"):
        tiny.feed(line({"event": "start", "index": 0}) + line({"event": "block", "index": 0, "facts": facts}))
    assert line_values(b'{"a": [1, [2, "3, [{"]], "b": "\\"{", "c": []}') == 9  # 8, and an empty list twice
    flood = b'{"event": "block", "index": 0, "facts": [' + b"[{}]," * (VALUE_BUDGET // 3) + b"[]]}\n"
    with pytest.raises(BrokenChannel, match="values in its results"):  # refused before it is parsed
        running().feed(line({"event": "start", "index": 0}) + flood)


def test_an_honest_note_stays_inside_its_budgets() -> None:
    """Output pieces, warnings and messages are capped in the note's process, so a chatty honest
    block is reported (cut short), never a broken channel."""
    capture = Capture("n.md")
    capture.pieces = [(line_number % 2, f"{line_number}\n") for line_number in range(3 * PIECES_CAP)]
    pieces = capture.by_line()
    assert len(pieces) == PIECES_CAP and pieces[-1][0] is None
    assert "".join(text for _, text in pieces) == capture.text
    assert len(_capped("e" * (MESSAGE_CAP + 10))) < MESSAGE_CAP + 40
    assert _capped("short") == "short"
    note = running()
    chatty: RanBlock = {
        **RAN,
        "stdout": "z" * OUTPUT_CAP,
        "stdout_by_line": pieces,
        "warnings": [{**RAN["warnings"][0], "message": "w" * MESSAGE_CAP}] * WARNINGS_CAP,
    }
    note.feed(line({"event": "start", "index": 0}) + line({"event": "block", "index": 0, "facts": chatty}))
    assert note.blocks[0]["stdout"] == "z" * OUTPUT_CAP


def test_a_note_that_says_done_and_goes_on_holds_its_slot() -> None:
    """``done`` frees a note's slot while it exits; one that said it and still runs after the
    grace (a forged ``done``) counts as running again, so --jobs holds."""
    note = running()
    assert not note.exiting()  # still running: it holds its slot
    note.feed(line({"event": "done"}))
    assert note.exiting()
    note.done_at -= EXIT_GRACE
    assert not note.exiting()
    note.feed(line({"event": "done"}))  # said again: no more grace
    assert not note.exiting()
