"""One control group per note: a memory and a process cap for the note's whole tree.

A per-process address-space limit lets four children of 2 GiB each use 8 GiB; a cgroup counts
them together (tmpfs pages included). noteexec makes its groups below the one it runs in, on
cgroup v2 where the controllers are delegated to it, else on cgroup v1 (``memory`` and
``pids`` hierarchies). Where it may create neither (an ordinary user without a delegated
subtree), notes keep only per-process limits, and the isolation report says so.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

Limits = tuple["int | None", int]
"""A group's caps: memory in bytes (None: none), processes."""
REUSE_CHARGE = 16 << 20
"""Memory still charged to an emptied group above which it is not handed to another note: what a
note leaves behind (files in the host's ``/dev/shm`` without namespaces, shared memory its IPC
namespace frees a moment after it ended) must not count against the next note's cap. An emptied
group holds a few MiB of page cache."""


@dataclass
class NoteGroups:
    """The folders under which each note gets its groups, one per hierarchy.

    A finished note's groups, once empty, are the next note's: on cgroup v1, making or removing a
    group waits for the kernel's cgroup lock, which notes joining their groups hold in turn, and
    the worker would wait there for every note. A note's memory verdict counts only the kills
    since it started.
    """

    bases: tuple[str, ...]
    version: int
    free: list[tuple[str, ...]] = field(default_factory=list)
    """Groups left empty by finished notes, ready for the next."""
    limits: dict[tuple[str, ...], Limits] = field(default_factory=dict)
    kills: dict[tuple[str, ...], int] = field(default_factory=dict)
    """Out-of-memory kills counted in each group when its current note started."""

    @classmethod
    def create(
        cls, mounts: dict[str, str] | None = None, own: dict[str, str] | None = None
    ) -> NoteGroups | str:
        """Groups for this process's notes, or why there can be none. ``mounts`` and ``own``
        default to what /proc says (see ``_mounts`` and ``_own_groups``)."""
        parents = _parents(_mounts() if mounts is None else mounts, _own_groups() if own is None else own)
        parent = parents.get("cgroup2")
        if parent is not None and {"memory", "pids"} <= set(_read(parent, "cgroup.subtree_control").split()):
            base = _base(parent, os.getpid())
            try:
                _clean_stale(parent)
                os.mkdir(base)
                _write(base, "cgroup.subtree_control", "+memory +pids")
                return cls((base,), 2)
            except OSError as error:
                _remove(base)
                return f"cgroup v2: {error.strerror or error}"
        bases: list[str] = []
        for controller in ("memory", "pids"):
            parent = parents.get(controller)
            if parent is None:
                return f"no {controller} controller is delegated to noteexec (cgroup v1 or v2)"
            base = _base(parent, os.getpid())
            try:
                _clean_stale(parent)
                os.mkdir(base)
            except OSError as error:
                for made in bases:
                    _remove(made)
                return f"cgroup v1 {controller}: {error.strerror or error}"
            bases.append(base)
        return cls(tuple(bases), 1)

    def prepare(self, name: str, memory: int | None, processes: int) -> tuple[str, ...]:
        """A note's groups with its caps (emptied ones first, else made as ``name``); returns
        their folders (for join, :meth:`out_of_memory` and :meth:`release`)."""
        reused = self._reusable()
        if reused is not None:
            try:
                return self._capped(reused, memory, processes)
            except OSError:  # a lower cap the kernel could not reclaim down to: a new group
                pass
        return self._capped(self._make(name), memory, processes)

    def _capped(self, folders: tuple[str, ...], memory: int | None, processes: int) -> tuple[str, ...]:
        try:
            before = self.limits.get(folders)
            if before != (memory, processes):
                for folder in folders:
                    self._limit(folder, memory, processes, before)
                self.limits[folders] = (memory, processes)
        except OSError:
            self._forget(folders)
            remove(folders)
            raise
        self.kills[folders] = _oom_kills(folders)
        return folders

    def _forget(self, folders: tuple[str, ...]) -> None:
        self.limits.pop(folders, None)
        self.kills.pop(folders, None)

    def _reusable(self) -> tuple[str, ...] | None:
        """An emptied group still empty and holding next to no memory; others are dropped (a
        removed group keeps its charges to itself). Without namespaces, a note could have moved
        a process into one since, or left files in ``/dev/shm`` charged to it."""
        while self.free:
            folders = self.free.pop()
            if _empty(folders) and _charged(folders) <= REUSE_CHARGE:
                return folders
            self._forget(folders)
            remove(folders)
        return None

    def _make(self, name: str) -> tuple[str, ...]:
        made: list[str] = []
        try:
            for base in self.bases:
                folder = os.path.join(base, name)
                os.mkdir(folder)
                made.append(folder)
        except OSError:
            remove(tuple(made))
            raise
        return tuple(made)

    def _limit(self, folder: str, memory: int | None, processes: int, before: Limits | None) -> None:
        """Set a group's caps; ``before``: its caps until now (None: a new group, with none)."""
        if memory is None and before is None:
            memory_value = ""  # a new group has no memory cap
        else:
            memory_value = str(memory) if memory is not None else "max" if self.version == 2 else "-1"
        if self.version == 2:
            _write(folder, "pids.max", str(processes))
            if memory_value:
                _write(folder, "memory.max", memory_value)
                _write(folder, "memory.swap.max", "0", optional=True)
        elif os.path.exists(os.path.join(folder, "pids.max")):
            _write(folder, "pids.max", str(processes))
        elif memory_value:  # the v1 memory hierarchy, where memory and swap is never below memory
            names = ["memory.limit_in_bytes", "memory.memsw.limit_in_bytes"]
            previous = before[0] if before is not None else None
            if previous is not None and (memory is None or memory > previous):
                names.reverse()  # a cap raised: memory and swap first
            for name in names:
                _write(folder, name, memory_value, optional=name.startswith("memory.memsw"))

    def out_of_memory(self, folders: tuple[str, ...]) -> bool:
        """Whether the kernel killed a process of the current note for passing its memory cap."""
        return _oom_kills(folders) > self.kills.get(folders, 0)

    def release(self, folders: tuple[str, ...]) -> None:
        """A finished note's groups: kept for the next note if nothing is left in them, else
        removed (or, while a process of it is still exiting, left for :meth:`close`)."""
        if not folders:  # a note that got none
            return
        if _empty(folders):
            self.free.append(folders)
        elif remove(folders):
            self._forget(folders)

    def close(self) -> None:
        for base in self.bases:
            for name in _listing(base):
                _remove(os.path.join(base, name))
            _remove(base)


def open_procs(folders: tuple[str, ...]) -> list[int]:
    """Open each group's ``cgroup.procs`` for the note's PID 1 to join it (:func:`join_self`):
    the kernel checks the opener's credentials, the worker's, and the worker does not wait
    while the kernel moves the process (tens of milliseconds on cgroup v1)."""
    opened: list[int] = []
    try:
        for folder in folders:
            opened.append(os.open(os.path.join(folder, "cgroup.procs"), os.O_WRONLY | os.O_CLOEXEC))
    except OSError:
        for fd in opened:
            os.close(fd)
        raise
    return opened


def join_self(procs: list[int]) -> None:
    """Move the calling process into the groups whose ``cgroup.procs`` are open as ``procs``."""
    for fd in procs:
        os.write(fd, b"0")
        os.close(fd)


def _empty(folders: tuple[str, ...]) -> bool:
    return all(not _read(folder, "cgroup.procs").strip() for folder in folders)


def _charged(folders: tuple[str, ...]) -> int:
    """Bytes of memory charged to these groups (v2 ``memory.current``, v1 ``memory.usage_in_bytes``)."""
    values = (text.strip() for text in _contents(folders, ("memory.current", "memory.usage_in_bytes")))
    return sum(int(value) for value in values if value.isdigit())


def _oom_kills(folders: tuple[str, ...]) -> int:
    """The processes the kernel has killed in these groups for passing their memory cap."""
    kills = 0
    for text in _contents(folders, ("memory.events", "memory.oom_control")):
        for line in text.splitlines():
            key, _, count = line.partition(" ")
            if key == "oom_kill" and count.strip().isdigit():
                kills += int(count)
    return kills


def _contents(folders: tuple[str, ...], names: tuple[str, ...]) -> Iterator[str]:
    """Each of ``names`` in each folder that has it (v1 and v2 name the same counters apart)."""
    for folder in folders:
        for name in names:
            yield _read(folder, name)


def remove(folders: tuple[str, ...]) -> bool:
    """Remove a note's groups; False while a process of it is still exiting."""
    return all([_remove(folder) for folder in folders])


def _remove(folder: str) -> bool:
    try:
        os.rmdir(folder)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return True


def kill_left_by(worker: int, within: float = 2.0) -> None:
    """Kill what the notes of a dead ``worker`` left in their groups, then remove the groups.

    Without namespaces, a note's descendants in a session of their own outlive a worker that
    died (its subreapers died with it): only their groups still hold them. Called by the
    checker once the worker is gone."""
    for parent in _parents(_mounts(), _own_groups()).values():
        base = _base(parent, worker)
        for name in _listing(base):
            folder = os.path.join(base, name)
            deadline = time.monotonic() + within
            while (pids := _read(folder, "cgroup.procs").split()) and time.monotonic() < deadline:
                for pid in pids:
                    with contextlib.suppress(ProcessLookupError, PermissionError, ValueError):
                        os.kill(int(pid), signal.SIGKILL)
                time.sleep(0.01)
            _remove(folder)
        _remove(base)


def _parents(mounts: dict[str, str], own: dict[str, str]) -> dict[str, str]:
    """The folder this process's groups lie in, by hierarchy (``cgroup2``, ``memory``,
    ``pids``), where it is mounted."""
    hierarchies = {"cgroup2": "", "memory": "memory", "pids": "pids"}
    return {
        name: mounts[name] + own[key] for name, key in hierarchies.items() if name in mounts and key in own
    }


def _base(parent: str, worker: int) -> str:
    """The folder under which a worker makes its notes' groups."""
    return os.path.join(parent, f"noteexec-{worker}")


def _clean_stale(parent: str) -> None:
    """Groups left by a worker that was killed: removed once nothing runs in them."""
    for name in _listing(parent):
        owner = name.removeprefix("noteexec-")
        if name.startswith("noteexec-") and owner.isdigit() and not os.path.exists(f"/proc/{owner}"):
            base = os.path.join(parent, name)
            for note in _listing(base):
                _remove(os.path.join(base, note))
            _remove(base)


def _listing(folder: str) -> list[str]:
    try:
        return [entry.name for entry in os.scandir(folder) if entry.is_dir(follow_symlinks=False)]
    except OSError:
        return []


def _read(folder: str, name: str) -> str:
    try:
        with open(os.path.join(folder, name)) as handle:
            return handle.read()
    except OSError:
        return ""


def _write(folder: str, name: str, value: str, optional: bool = False) -> None:
    try:
        with open(os.path.join(folder, name), "w") as handle:
            handle.write(value)
    except OSError:
        if not optional:
            raise


def _mounts() -> dict[str, str]:
    """Mount points by controller name (``cgroup2`` for the unified hierarchy)."""
    found: dict[str, str] = {}
    with contextlib.suppress(OSError), open("/proc/self/mountinfo") as mountinfo:
        for line in mountinfo:
            before, _, after = line.partition(" - ")
            fields, tail = before.split(), after.split()
            if len(fields) < 5 or len(tail) < 3:
                continue
            if tail[0] == "cgroup2":
                found.setdefault("cgroup2", fields[4])
            elif tail[0] == "cgroup":
                for option in tail[2].split(","):
                    if option in ("memory", "pids"):
                        found.setdefault(option, fields[4])
    return found


def _own_groups() -> dict[str, str]:
    """This process's group path by controller (``""`` for the unified hierarchy)."""
    found: dict[str, str] = {}
    with contextlib.suppress(OSError), open("/proc/self/cgroup") as groups:
        for line in groups:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            for controller in controllers.split(",") if controllers else [""]:
                found[controller] = path.rstrip("/")
    return found
