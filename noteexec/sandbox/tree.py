"""The processes inside a note's tree: set up by the worker (:func:`spawn`), forked by the
zygote (:func:`fork_note`, :mod:`noteexec.sandbox.zygote`).

As root with namespaces, the note's PID 1 comes from the nursery (:mod:`noteexec.sandbox.nursery`)
and the zygote forks the note's process straight into its PID namespace (:func:`join`); it joins
PID 1's other namespaces, takes the note's id, makes the world's ``/tmp`` and ``/proc`` its own,
locks down. Otherwise, PID 1 is forked from the zygote too::

    zygote
      └─ PID 1 (:func:`init`): forked straight into the note's own user, PID, mount, network,
         IPC, UTS and cgroup namespaces; joins the note's cgroups, takes the note's id, builds
         its read-only world, locks it down
           └─ the note's process (:func:`note_process`, PID 2): prepares, waits for its turn,
              runs the blocks (:mod:`noteexec.sandbox.execute`)
                └─ whatever the note starts

Each keeps only the descriptors handed to it at fixed numbers: its order (``ORDER_FD``: the job
and plan, read first), the channel to the worker (``CHANNEL_FD``, JSON lines of
:data:`noteexec.sandbox.protocol.NoteEvent`), the ``go`` pipe (a byte when the note's turn
comes), the zygote's sync socket (PID 1's ids are mapped) or PID 1's pidfd, and the note's
cgroup files. Nothing may unwind into the zygote's code: each ends with
``os._exit``. When the note's process ends, a forked PID 1 reports how (an ``exit`` event) and
exits, and the kernel kills everything left in the namespace; a joined note's process is the
zygote's child, and the worker kills its PID 1. Without namespaces, PID 1 is a child subreaper
that kills what the note left.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import json
import os
import select
import signal
import socket
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple, NoReturn

from noteexec.sandbox.cgroups import join_self, open_procs
from noteexec.sandbox.isolation import (
    JOINED_NAMESPACES,
    NOTE_HOST_ID,
    PR_SET_CHILD_SUBREAPER,
    PR_SET_NAME,
    PR_SET_PDEATHSIG,
    build_world,
    drop_to_host_id,
    enter_world,
    fork_into_namespaces,
    fork_into_pid_namespace,
    keep_only,
    kill_pidfd,
    libc_call,
    map_ids,
    open_sources,
    reap_descendants,
    sethostname,
    setns,
    shown_paths,
)
from noteexec.sandbox.lockdown import (
    SECRETS_BESIDE,
    Sockets,
    become_note_user,
    cap_processes,
    confine,
    lock_down,
    readable_by_everyone,
    syscall_filter,
)
from noteexec.sandbox.nursery import Nursery
from noteexec.sandbox.protocol import Channel, ExceptionFacts, Isolation, Job

CHANNEL_FD = 1021
GO_FD = CHANNEL_FD - 1
SYNC_FD = CHANNEL_FD - 2
PID1_FD = CHANNEL_FD + 1
ORDER_FD = CHANNEL_FD + 2
"""The note's order, read first: its job, plan and whether it is a probe (a memfd)."""


class Spawned(NamedTuple):
    """A note's processes, as the worker holds them."""

    pid: int
    """The zygote's child: PID 1 (forked), or the note's process (joined)."""
    pidfd: int
    reader: int
    go: int
    pid1: int = -1
    """A joined note's PID 1, as a pidfd: the worker kills it once the note's process ends."""


@dataclass(frozen=True)
class Plan:
    """How one note's processes are set up: what the worker decided, handed down the fork."""

    namespaces: bool
    root: bool
    host_uid: int
    host_gid: int
    staging: str
    workdir: str
    isolation: Isolation
    host_id_can_import: bool = False
    confine: bool = False
    """Without namespaces: confine the note's tree with Landlock (see ``lockdown.confine``)."""

    @property
    def as_root(self) -> bool:
        return runs_as_root(self.namespaces, self.root, self.host_id_can_import)

    @property
    def sockets(self) -> Sockets:
        """What sockets the note may open (see ``lockdown.REFUSED``)."""
        return "any" if self.namespaces else "none" if self.as_root else "local"


def runs_as_root(namespaces: bool, root: bool, host_id_can_import: bool) -> bool:
    """Without namespaces, as root, when the unprivileged host id cannot import this Python (it
    lies in ``/root``): the note runs as uid 0, with no capability."""
    return not namespaces and root and not host_id_can_import


def isolation_report(
    namespaces: bool, reason: str | None, root: bool, host_id_can_import: bool, landlock_missing: str | None,
    limits: str,
) -> Isolation:  # fmt: skip
    """What a note's isolation is, in words, for every report format (``reason``: why it has no
    namespaces)."""
    missing = []
    if not namespaces:
        missing.append("user, PID, mount, network and IPC namespaces")
        if landlock_missing:
            missing.append(f"a Landlock confinement ({landlock_missing})")
    if namespaces:
        user = "an unprivileged id in its own user namespace"
    elif host_id_can_import:
        user = f"the unprivileged host id {NOTE_HOST_ID}"
    elif root:
        user = "root without capabilities (the unprivileged id cannot read Python): no multiprocessing"
        missing.append("an unprivileged user")
    else:
        user = "the checker's own user"
    as_root = runs_as_root(namespaces, root, host_id_can_import)
    return {
        "level": "full" if namespaces else "reduced",
        "namespaces": namespaces,
        "network": "none" if namespaces or as_root else "Unix sockets only",
        "vault": "read-only" if namespaces else "watched" if landlock_missing else "read-only (Landlock)",
        "user": user,
        "limits": limits,
        "missing": missing,
        "reason": reason,
    }


Fork = Callable[[bytes, list[int]], tuple[int, int]]
"""Forks a note's first process from an order (:func:`fork_note`): its pid and a pidfd. The
zygote's (:meth:`noteexec.sandbox.zygote.Zygote.fork`), or the worker's own for its probe."""


def spawn(
    job: Job, plan: Plan, groups: tuple[str, ...], fork: Fork, nursery: Nursery | None = None,
    probe: bool = False,
) -> Spawned:  # fmt: skip
    """Everything of a note's processes that is not the fork, in the worker: its pipes, its job
    in a memfd, its cgroup files, and, with a ``nursery``, its PID 1 (as root, with namespaces);
    then ``fork`` forks. Nothing here waits for the note: the worker goes back to its running
    notes at once (the note's process waits for its PID 1's world)."""
    if plan.confine and plan.as_root:  # walked here, once, not in every note's PID 1
        for path in (*SECRETS_BESIDE, *job["readonly"]):
            readable_by_everyone(path)
    reader = writer = go_reader = go_writer = order = pid1 = -1
    procs: list[int] = []
    try:
        reader, writer = os.pipe()
        go_reader, go_writer = os.pipe()
        below_tmp: list[str] = []
        if nursery is not None:
            pid1, below_tmp = nursery.pid1(job["readonly"], plan.staging)
        order = os.memfd_create("noteexec-order", os.MFD_CLOEXEC)
        written = {"job": job, "plan": dataclasses.asdict(plan), "probe": probe, "below_tmp": below_tmp}
        description = memoryview(json.dumps(written).encode())
        while description:
            description = description[os.write(order, description) :]
        procs = open_procs(groups)
        head = {"joined": pid1 != -1, "namespaces": plan.namespaces, "sockets": plan.sockets}
        head["map_as_root"] = plan.namespaces and plan.root
        kept = [writer, go_reader, order, *((pid1,) if pid1 != -1 else ()), *procs]
        pid, pidfd = fork(json.dumps(head).encode(), kept)
    except BaseException:
        if pid1 != -1:
            kill_pidfd(pid1)
        for fd in (reader, go_writer, pid1):
            if fd != -1:
                os.close(fd)
        raise
    finally:
        for fd in (writer, go_reader, order, *procs):
            if fd != -1:
                os.close(fd)
    return Spawned(pid, pidfd, reader, go_writer, pid1)


def fork_note(head: bytes, fds: list[int]) -> int:
    """In the zygote: fork a note's first process on the worker's order (:func:`spawn`), and do
    the set-up only its parent can do (as root, PID 1's id map). Returns its pid; the caller
    closes ``fds``. Joined (``head["joined"]``): the note's process, forked into the PID
    namespace of the PID 1 among ``fds``; else PID 1 (forked into new namespaces, or without)."""
    order = json.loads(head)
    syscall_filter(order["sockets"])  # compiled here once, not in every note's process
    if order["joined"]:
        writer, go_reader, description, pid1, *procs = fds
        pid = fork_into_pid_namespace(pid1)
        if pid == 0:
            kept = {writer: CHANNEL_FD, go_reader: GO_FD, description: ORDER_FD, pid1: PID1_FD}
            join({**kept, **_group_fds(procs)})
        return pid
    writer, go_reader, description, *procs = fds
    sync_worker, sync_note = socket.socketpair()
    with sync_worker, sync_note:
        pid = fork_into_namespaces() if order["namespaces"] else os.fork()
        if pid == 0:
            kept = {writer: CHANNEL_FD, go_reader: GO_FD, description: ORDER_FD, sync_note.fileno(): SYNC_FD}
            init({**kept, **_group_fds(procs)})
        try:
            if order["map_as_root"]:
                map_ids(pid, NOTE_HOST_ID, NOTE_HOST_ID, deny_setgroups=False)
            sync_worker.sendall(b"m")
        except OSError:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    return pid


def fork_here(head: bytes, fds: list[int]) -> tuple[int, int]:
    """:data:`Fork` in this very process (the worker's probe: its child, waited for)."""
    pid = fork_note(head, fds)
    try:
        return pid, os.pidfd_open(pid)
    except OSError:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        raise


def _group_fds(procs: list[int]) -> dict[int, int]:
    return {fd: SYNC_FD - 1 - index for index, fd in enumerate(procs)}


def _take_over(fds: dict[int, int]) -> tuple[Channel, list[int], Job, Plan, bool, list[str]]:
    """What a process the zygote forks does first: drop the zygote's signal plumbing, keep only
    its own descriptors, read its order. Returns its channel, the note's cgroup files, its job,
    its plan, whether it is a probe and, joined, what its PID 1's world shows below ``/tmp``."""
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:  # Python's own, as a note expects
        signal.signal(signal.SIGINT, signal.default_int_handler)
    libc_call("prctl", PR_SET_NAME, b"noteexec-note", 0, 0, 0)  # not the zygote's name
    # A machine out of memory loses a note first, not the checker or anything else of its user's.
    # (Root only: a process that is not dumpable cannot open its own /proc files as another user.)
    with contextlib.suppress(OSError), open("/proc/self/oom_score_adj", "w") as score:
        score.write("1000")
    keep_only(fds)
    description = json.loads(os.pread(ORDER_FD, os.fstat(ORDER_FD).st_size, 0))
    os.close(ORDER_FD)
    plan = Plan(**description["plan"])
    groups = sorted(fd for fd in fds.values() if fd < SYNC_FD)
    job, probe, below_tmp = description["job"], description["probe"], description["below_tmp"]
    return Channel(CHANNEL_FD), groups, job, plan, probe, below_tmp


def _end_set_up(channel: Channel, error: OSError | None) -> NoReturn:
    """A probe's end (``error`` None: the set-up worked) or a failed set-up's, reported."""
    if error is None:
        channel.send({"event": "probed"})
    else:
        channel.send({"event": "setup_failed", "line": None, "exception": sandbox_error(error)})
    os._exit(0)


def join(fds: dict[int, int]) -> None:
    """The note's process, forked by the zygote into its PID 1's PID namespace (PID 2): joins
    the note's cgroups while it is still the worker's user, joins PID 1's other namespaces,
    takes the note's id, makes the world's ``/tmp`` and ``/proc`` its own, locks down, runs."""
    exit_code = 70
    try:
        channel, group_fds, job, plan, probe, below_tmp = _take_over(fds)
        try:
            join_self(group_fds)
            setns(PID1_FD, JOINED_NAMESPACES)
            os.close(PID1_FD)
            become_note_user(drop_groups=True)
            sethostname("noteexec")
            enter_world(job["tmp_size"], below_tmp)
            if not group_fds:
                cap_processes(job["processes"], own_user_namespace=True)
            lock_down(plan.sockets)
            if probe:
                _end_set_up(channel, None)
        except OSError as error:
            _end_set_up(channel, error)
        note_process(job, channel, "/tmp/note", plan)
    except BaseException:  # never unwind into the worker's loop
        exit_code = 70
    finally:
        os._exit(exit_code)


PROBE: Job = {
    "id": -1, "path": "", "blocks": [], "setup": [], "prelude": "", "timeout": 0.0, "memory_limit": None,
    "file_size_limit": None, "tmp_size": 1 << 20, "processes": 1, "readonly": [], "namespaces": True,
    "strict": False, "threads": 1, "alone": False,
}  # fmt: skip
"""The job of the probe that checks, once, that a note's world can be built here (no note)."""


def probe(plan: Plan, nursery: Nursery | None = None) -> str | None:
    """Set up a note's world with no note in it, forked by the worker itself (with a PID 1 from
    the ``nursery``, if given): None if it works, else why not."""
    try:
        pid, pidfd, reader, go, pid1 = spawn(PROBE, plan, (), fork_here, nursery, probe=True)
    except OSError as error:
        return str(error)
    os.close(go)
    os.close(pidfd)
    output = b""
    while chunk := os.read(reader, 1 << 16):
        output += chunk
    os.close(reader)
    _, status = os.waitpid(pid, 0)
    if pid1 != -1:
        kill_pidfd(pid1)
        select.select([pid1], [], [])
        os.close(pid1)
    for line in output.splitlines():
        with contextlib.suppress(ValueError, TypeError, KeyError):
            event = json.loads(line)
            if event["event"] == "setup_failed":
                return str(event["exception"]["message"]).removeprefix("the sandbox could not be set up: ")
    if b'"probed"' not in output:
        return f"the namespaces could not be entered (exit status {os.waitstatus_to_exitcode(status)})"
    return None


def init(fds: dict[int, int]) -> None:
    """The note's PID 1 (or, without namespaces, a subreaper), forked by the zygote into the
    note's namespaces: joins the note's cgroups, takes the note's id, builds its world, locks it
    down, starts the note, reports how it ended and takes everything left with it. A ``probe``
    (the worker's, with no note) stops once the world is built and says ``probed``."""
    exit_code = 70
    try:
        channel, group_fds, job, plan, probe, _ = _take_over(fds)
        try:
            join_self(group_fds)
            if os.read(SYNC_FD, 1) != b"m":  # as root, the worker has mapped this process's ids
                os._exit(exit_code)
            os.close(SYNC_FD)
            if plan.namespaces:
                sources = open_sources(job["readonly"])
                if not plan.root:
                    map_ids("self", plan.host_uid, plan.host_gid, deny_setgroups=True)
                become_note_user(drop_groups=plan.root)
            elif plan.root and plan.host_id_can_import:
                drop_to_host_id(NOTE_HOST_ID)
            # After the change of ids, which clears it: if the worker dies, so does the note.
            libc_call("prctl", PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
            if not group_fds:
                cap_processes(job["processes"], own_user_namespace=plan.namespaces)
            if plan.namespaces:
                sethostname("noteexec")
                build_world(plan.staging, sources, job["tmp_size"])
                cwd = "/tmp/note"
            else:
                libc_call("prctl", PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
                cwd = os.path.join(plan.workdir, "cwd")
                os.mkdir(cwd, 0o700)
                temporary = os.path.join(plan.workdir, "tmp")
                os.mkdir(temporary, 0o700)
                os.environ["TMPDIR"] = tempfile.tempdir = temporary  # /tmp is not the note's
                if plan.confine:
                    confine(plan.workdir, shown_paths(job["readonly"]), plan.as_root, job["readonly"])
            lock_down(plan.sockets)
            if probe:
                _end_set_up(channel, None)
        except OSError as error:
            _end_set_up(channel, error)
        note = os.fork()
        if note == 0:
            note_process(job, channel, cwd, plan)
        os.close(GO_FD)
        while True:
            pid, status = os.waitpid(-1, 0)
            if pid == note:
                break
        if plan.namespaces:  # everything left in the namespace, at once
            with contextlib.suppress(ProcessLookupError):
                os.kill(-1, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                while True:
                    os.waitpid(-1, 0)
        else:
            reap_descendants()
        channel.send({"event": "exit", "status": status})  # nothing the note started is left
        exit_code = 0
    except BaseException:  # never unwind into the worker's loop
        exit_code = 70
    finally:
        os._exit(exit_code)  # as PID 1, this ends every process left in the note's namespace


def sandbox_error(error: OSError) -> ExceptionFacts:
    """A set-up failure, reported as the exception that kept the note from running."""
    message = f"the sandbox could not be set up: {error}"
    return {"type": "SandboxError", "names": ["SandboxError"], "message": message, "line": None}


def note_process(job: Job, channel: Channel, cwd: str, plan: Plan) -> None:
    """The note's own process: prepare, wait for its turn (a byte on ``go``), run."""
    exit_code = 70
    try:
        # Forks do not inherit it: the note's process dies with its PID 1 (or, without
        # namespaces, its subreaper), which dies with the worker; the filter keeps it set.
        libc_call("prctl", PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        os.setsid()
        gc.enable()

        def wait_for_turn() -> bool:
            channel.send({"event": "ready"})
            turn = os.read(GO_FD, 1) == b"g"
            os.close(GO_FD)
            return turn

        from noteexec.sandbox.execute import run_note  # imported by the worker: torch is not imported here

        if run_note(job, channel, cwd, wait_for_turn):
            channel.send({"event": "done"})
        exit_code = 0
    except BaseException:  # the note process must never unwind into its parents' code
        exit_code = 70
    finally:
        os._exit(exit_code)
