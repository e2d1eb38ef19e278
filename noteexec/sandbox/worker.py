"""The warm worker: imports torch once, then forks a supervised, isolated process per note.

Process tree per note::

    worker (torch imported, no op ever run)
      └─ supervisor (new PID, network and mount namespaces where the OS allows)
           └─ note process (PID 1 of its namespace: when it ends, the kernel ends its children)

The supervisor enforces the per-block timeout, kills the whole tree, and turns how the note
process ended into facts. Everything crosses process boundaries as JSON lines.
"""

from __future__ import annotations

import ctypes
import json
import os
import selectors
import shutil
import signal
import sys
import time
from typing import Any

CHANNEL_FD = 1021
RESULT_FD = 1022

_CLONE_NEWNS = 0x00020000
_CLONE_NEWPID = 0x20000000
_CLONE_NEWNET = 0x40000000
_MS_RDONLY = 1
_MS_REMOUNT = 32
_MS_BIND = 4096
_MS_REC = 16384
_MS_PRIVATE = 1 << 18
_PR_SET_CHILD_SUBREAPER = 36
_PR_SET_PDEATHSIG = 1

_libc = ctypes.CDLL(None, use_errno=True)


def _libc_call(name: str, *args: Any) -> None:
    if getattr(_libc, name)(*args) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))


def _isolate(readonly: list[str], use_namespaces: bool) -> dict[str, Any]:
    """Enter new namespaces (in the supervisor, before forking the note process)."""
    if not use_namespaces:
        return {"namespaces": False, "network": "shared", "vault": "watched"}
    try:
        _libc_call("unshare", _CLONE_NEWPID | _CLONE_NEWNET | _CLONE_NEWNS)
    except OSError as error:
        return {
            "namespaces": False,
            "network": "shared",
            "vault": "watched",
            "reason": f"unshare: {error.strerror}",
        }
    isolation: dict[str, Any] = {"namespaces": True, "network": "none", "vault": "read-only"}
    try:
        _libc_call("mount", b"none", b"/", None, _MS_REC | _MS_PRIVATE, None)
        for path in readonly:
            encoded = os.fsencode(path)
            _libc_call("mount", encoded, encoded, None, _MS_BIND | _MS_REC, None)
            _libc_call("mount", None, encoded, None, _MS_BIND | _MS_REMOUNT | _MS_RDONLY | _MS_REC, None)
    except OSError as error:
        isolation.update(vault="watched", reason=f"read-only mount: {error.strerror}")
    return isolation


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


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
    found, pending = [], [root]
    while pending:
        for child in children.get(pending.pop(), []):
            found.append(child)
            pending.append(child)
    return found


def _kill_tree(pid: int, namespaces: bool) -> None:
    """SIGKILL the note process and everything it started, ``setsid`` children included.

    In a PID namespace the kernel kills every process in it when its init dies. Without one,
    the supervisor is a child subreaper, so orphans of the note come back to it to be killed.
    """
    for _ in range(50):
        victims = [pid] if namespaces else [pid, *_descendants(os.getpid())]
        alive = False
        for victim in victims:
            try:
                os.kill(victim, signal.SIGKILL)
                alive = True
            except ProcessLookupError:
                pass
        if not alive or namespaces:
            return
        time.sleep(0.005)


def _reap_leftovers() -> None:
    """Collect orphans that the subreaper inherited, until none is left."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            if not _descendants(os.getpid()):
                return
            _kill_tree(0, namespaces=False)
            time.sleep(0.005)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


_SIGNAL_MEANING = {
    "SIGSEGV": "segmentation fault",
    "SIGBUS": "bus error",
    "SIGABRT": "aborted",
    "SIGFPE": "floating-point exception",
    "SIGKILL": "out of memory, or killed by another process",
    "SIGXFSZ": "file size limit exceeded",
}


def supervise(job: dict[str, Any], result_fd: int) -> None:
    """Run one note in an isolated child; write one JSON result to ``result_fd``."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    isolation = _isolate(job["readonly"], job.get("namespaces", True))
    namespaces = isolation["namespaces"]
    if not namespaces:
        _libc_call("prctl", _PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    watched = _vault_snapshot(job["readonly"]) if isolation["vault"] == "watched" else None

    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(reader)
        os.close(result_fd)
        _become_note_process(job, writer, namespaces)
    os.close(writer)

    result = _collect(job, reader, pid, namespaces)
    result["isolation"] = isolation
    if watched is not None:
        after = _vault_snapshot(job["readonly"])
        result["vault_changes"] = sorted(
            path for path in set(watched) | set(after) if watched.get(path) != after.get(path)
        )
    workdir = result.pop("workdir", None)
    if workdir:
        shutil.rmtree(workdir, ignore_errors=True)
    _write_all(result_fd, (json.dumps(result, ensure_ascii=False) + "\n").encode())
    os._exit(0)


def _become_note_process(job: dict[str, Any], writer: int, namespaces: bool) -> None:
    """Run the note; in a PID namespace, first become its init and run the note in a child.

    A namespace's init ignores signals it has no handler for, even SIGKILL sent from inside,
    so the note runs one level down where signals behave normally; init reports how it ended.
    """
    exit_code = 70
    try:
        os.dup2(writer, CHANNEL_FD, inheritable=False)
        os.close(writer)
        _libc_call("prctl", _PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if namespaces:
            note = os.fork()
            if note != 0:
                exit_code = 0
                _report_note_end(note)
                return
        else:
            os.setsid()
        from noteexec.sandbox.execute import Channel, run_note

        run_note(job, Channel(CHANNEL_FD))
        exit_code = 0
    except BaseException:  # the note process must never unwind into the worker's code
        exit_code = 70
    finally:
        os._exit(exit_code)


def _report_note_end(note: int) -> None:
    """As init of the namespace: reap every orphan until the note itself ends, then tell how."""
    while True:
        pid, status = os.waitpid(-1, 0)
        if pid == note:
            _write_all(CHANNEL_FD, (json.dumps({"event": "ended", "status": status}) + "\n").encode())
            return


def _collect(job: dict[str, Any], reader: int, pid: int, namespaces: bool) -> dict[str, Any]:
    """Read events, enforce each block's timeout, and turn how the process ended into facts."""
    timeout = job["timeout"]
    blocks: dict[int, dict[str, Any]] = {}
    result: dict[str, Any] = {"id": job["id"], "setup_failed": None, "blocks": []}
    running: int | None = None
    deadline = time.monotonic() + timeout
    buffer = b""
    ended: str | None = None
    timed_out = False
    done = False
    note_status: int | None = None
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            timed_out = True
            _kill_tree(pid, namespaces)
            break
        selector = selectors.DefaultSelector()
        selector.register(reader, selectors.EVENT_READ)
        ready = selector.select(remaining)
        selector.close()
        if not ready:
            continue
        chunk = os.read(reader, 1 << 16)
        if not chunk:
            break
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            event = json.loads(line)
            kind = event["event"]
            if kind == "workdir":
                result["workdir"] = event["path"]
            elif kind == "start":
                running = event["index"]
                deadline = time.monotonic() + timeout
            elif kind == "block":
                blocks[event["index"]] = event["facts"]
                running = None
                deadline = time.monotonic() + timeout
            elif kind == "setup_failed":
                result["setup_failed"] = {"line": event["line"], "exception": event["exception"]}
            elif kind == "done":
                done = True
            elif kind == "ended":
                note_status = event["status"]
    os.close(reader)
    _, status = os.waitpid(pid, 0)
    if note_status is not None:
        status = note_status
    if not namespaces:
        _kill_tree(pid, namespaces=False)
        _reap_leftovers()
    if timed_out:
        ended = f"timed out after {timeout:g} s"
    elif os.WIFSIGNALED(status):
        name = _signal_name(os.WTERMSIG(status))
        meaning = _SIGNAL_MEANING.get(name)
        ended = f"process killed by {name}" + (f" ({meaning})" if meaning else "")
    elif not done and result["setup_failed"] is None:
        code = os.WEXITSTATUS(status)
        ended = f"process exited with code {code}"
    result["ended"] = ended
    for index in range(len(job["blocks"])):
        facts = blocks.get(index)
        if facts is None:
            if result["setup_failed"] is not None:
                facts = {"state": "not_run", "reason": "the hidden setup failed"}
            elif index == running:
                facts = {"state": "crashed", "reason": ended or "the process ended"}
            else:
                facts = {
                    "state": "not_run",
                    "reason": "the process ended in an earlier block",
                }
        elif facts.get("exit") is not None:
            facts = {**facts, "state": "crashed", "reason": f"called {facts['exit']}"}
            ended = ended or f"called {facts['exit']}"
        else:
            facts = {**facts, "state": "ran"}
        result["blocks"].append(facts)
    return result


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class Worker:
    """Reads jobs (JSON lines) on stdin, runs up to ``parallel`` notes at once, writes results."""

    def __init__(self, output_fd: int) -> None:
        self.output_fd = output_fd
        self.queue: list[dict[str, Any]] = []
        self.running: dict[int, tuple[int, dict[str, Any], bytearray]] = {}  # fd → pid, job, data
        self.parallel = 1
        self.selector = selectors.DefaultSelector()

    def serve(self) -> None:
        stdin = sys.stdin.fileno()
        self.selector.register(stdin, selectors.EVENT_READ, "jobs")
        pending = b""
        accepting = True
        while accepting or self.queue or self.running:
            for key, _ in self.selector.select():
                if key.data == "jobs":
                    chunk = os.read(stdin, 1 << 16)
                    if not chunk:
                        accepting = False
                        self.selector.unregister(stdin)
                        continue
                    pending += chunk
                    *lines, pending = pending.split(b"\n")
                    for line in lines:
                        message = json.loads(line)
                        if "parallel" in message:
                            self.parallel = max(1, int(message["parallel"]))
                        else:
                            self.queue.append(message)
                else:
                    self._read_result(key.fd)
            self._start_jobs()

    def _start_jobs(self) -> None:
        while self.queue and len(self.running) < self.parallel:
            job = self.queue.pop(0)
            reader, writer = os.pipe()
            pid = os.fork()
            if pid == 0:
                try:
                    os.close(reader)
                    os.dup2(writer, RESULT_FD, inheritable=False)
                    os.close(writer)
                    supervise(job, RESULT_FD)
                finally:
                    os._exit(70)
            os.close(writer)
            self.running[reader] = (pid, job, bytearray())
            self.selector.register(reader, selectors.EVENT_READ, "result")

    def _read_result(self, fd: int) -> None:
        pid, job, data = self.running[fd]
        chunk = os.read(fd, 1 << 16)
        if chunk:
            data += chunk
            return
        self.selector.unregister(fd)
        os.close(fd)
        del self.running[fd]
        os.waitpid(pid, 0)
        if data.strip():
            _write_all(self.output_fd, bytes(data))
        else:
            lost = {"id": job["id"], "supervisor_failed": "the note's supervisor process died"}
            _write_all(self.output_fd, (json.dumps(lost) + "\n").encode())


def main() -> None:
    """Entry point of the warm worker process (``python -m noteexec.sandbox.worker``)."""
    output_fd = os.dup(1)
    os.dup2(2, 1)  # stray prints from imports must not corrupt the result stream
    import torch
    import torch.nn
    import torch.nn.functional  # noqa: F401

    Worker(output_fd).serve()


if __name__ == "__main__":
    main()
