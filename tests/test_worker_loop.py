"""The worker's loop against a scripted zygote: what the order of its messages may be."""

from __future__ import annotations

import json
import os
import selectors

import pytest

from noteexec.sandbox import worker as worker_module
from noteexec.sandbox.protocol import Job
from noteexec.sandbox.tree import Fork, Plan, Spawned

PID = 4242


class ScriptedZygote:
    """Answers each fork with ``PID``; before an answer, hands over the wait statuses that the
    script says came first (as ``Zygote._answer`` keeps them while it waits)."""

    pid = 1

    def __init__(self, before_each_answer: list[list[tuple[int, int]]]) -> None:
        self.exited: list[tuple[int, int]] = []
        self.before_each_answer = before_each_answer

    def fork(self, head: bytes, fds: list[int]) -> tuple[int, int]:
        self.exited.extend(self.before_each_answer.pop(0))
        return PID, os.open(os.devnull, os.O_RDONLY)

    def exits(self) -> list[tuple[int, int]]:
        exited, self.exited = self.exited, []
        return exited


def _job(number: int) -> Job:
    return {
        "id": number, "path": "", "blocks": [], "setup": [], "prelude": "", "timeout": 60.0,
        "memory_limit": None, "file_size_limit": None, "tmp_size": 1 << 20, "processes": 1,
        "readonly": [], "namespaces": True, "strict": False, "threads": 1, "alone": False,
    }  # fmt: skip


def test_a_status_of_a_reaped_pid_never_lands_on_the_next_note_that_gets_the_same_pid(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Note A's process (pid P) ends; the zygote reaps it and says so just before it answers
    the order for note B, whose process the kernel gave the freed pid P. A is reported as
    ended, once; B is still waiting for its turn (it was reported as A, and A lost, before)."""

    def spawn(job: Job, plan: Plan, groups: tuple[str, ...], fork: Fork, nursery: object = None) -> Spawned:
        pid, pidfd = fork(b"{}", [])
        reader, _ = os.pipe()
        _, go = os.pipe()
        return Spawned(pid, pidfd, reader, go)

    monkeypatch.setattr(worker_module, "spawn", spawn)
    monkeypatch.setattr(worker_module, "kill_pidfd", lambda pidfd: None)
    results, output = os.pipe()
    loop = worker_module.Worker.__new__(worker_module.Worker)
    loop.output_fd, loop.nursery, loop.queue, loop.notes, loop.first_processes = output, None, [], {}, {}
    loop.zygote = ScriptedZygote([[], [(PID, 0)]])  # type: ignore[assignment]
    loop.parallel, loop.selector, loop.root, loop.staging = 1, selectors.DefaultSelector(), False, "/"
    loop.groups, loop.groups_missing, loop.host_id_can_import = None, "none", False
    loop.landlock_missing, loop.world_error, loop.warmed, loop.started_notes, loop.spawned = (
        None,
        None,
        True,
        0,
        0,
    )
    loop._prepare(_job(0))
    loop._go(loop.notes[0])
    loop._prepare(_job(1))
    loop._take_exits()
    os.close(output)
    written = [json.loads(line) for line in os.read(results, 1 << 16).splitlines()]
    assert [message["id"] for message in written if "blocks" in message] == [0]
    assert loop.notes[1].stage == "prepared" and loop.notes[1].status is None
    assert loop.first_processes == {PID: loop.notes[1]}
