"""The note's control groups, on both cgroup versions.

cgroup v1 is proved against the kernel by ``tests/test_attacks.py`` (one memory cap for a whole
tree); no machine this project runs on delegates the memory and pids controllers of cgroup v2,
so here the v2 layout is checked against a folder laid out like a delegated v2 subtree: which
files noteexec writes, and what it refuses.
"""

from __future__ import annotations

import os
from pathlib import Path

from noteexec.sandbox.cgroups import REUSE_CHARGE, NoteGroups, remove


def _delegated_v2(tmp_path: Path, controllers: str) -> tuple[dict[str, str], dict[str, str]]:
    """A cgroup2 mount at tmp_path whose group ``/user`` offers ``controllers`` to its children."""
    parent = tmp_path / "user"
    parent.mkdir()
    (parent / "cgroup.subtree_control").write_text(controllers)
    return {"cgroup2": str(tmp_path)}, {"": "/user"}


def test_on_a_delegated_v2_subtree_each_note_gets_memory_and_pids_caps(tmp_path: Path) -> None:
    mounts, own = _delegated_v2(tmp_path, "cpu memory pids")
    groups = NoteGroups.create(mounts, own)
    assert isinstance(groups, NoteGroups) and groups.version == 2
    base = tmp_path / "user" / f"noteexec-{os.getpid()}"
    assert groups.bases == (str(base),)
    assert (base / "cgroup.subtree_control").read_text() == "+memory +pids"
    [folder] = groups.prepare("note-1", 1 << 30, 64)
    note = Path(folder)
    assert (note / "memory.max").read_text() == str(1 << 30)
    assert (note / "memory.swap.max").read_text() == "0"
    assert (note / "pids.max").read_text() == "64"
    for name in ("memory.max", "memory.swap.max", "pids.max"):  # a real cgroup's folder is empty to rmdir
        (note / name).unlink()
    assert remove((folder,))
    assert not note.exists()


def test_a_v2_subtree_without_memory_and_pids_is_not_used(tmp_path: Path) -> None:
    mounts, own = _delegated_v2(tmp_path, "cpu hugetlb")  # this machine's unified hierarchy
    reason = NoteGroups.create(mounts, own)
    assert reason == "no memory controller is delegated to noteexec (cgroup v1 or v2)"


def test_groups_left_by_a_killed_worker_are_removed(tmp_path: Path) -> None:
    mounts, own = _delegated_v2(tmp_path, "memory pids")
    dead = 2**22 + 1  # above pid_max's default: no such process
    stale = tmp_path / "user" / f"noteexec-{dead}" / "note-3"
    stale.mkdir(parents=True)
    groups = NoteGroups.create(mounts, own)
    assert isinstance(groups, NoteGroups)
    assert not stale.parent.exists()


def test_an_emptied_group_is_the_next_notes_with_its_caps_and_its_own_kills(tmp_path: Path) -> None:
    mounts, own = _delegated_v2(tmp_path, "memory pids")
    groups = NoteGroups.create(mounts, own)
    assert isinstance(groups, NoteGroups)
    first = groups.prepare("note-1", 1 << 30, 64)
    note = Path(first[0])
    (note / "memory.events").write_text("low 0\noom 1\noom_kill 1\n")
    assert groups.out_of_memory(first)
    groups.release(first)  # no cgroup.procs here: nothing left in it
    second = groups.prepare("note-2", None, 32)
    assert second == first and not (tmp_path / "user" / f"noteexec-{os.getpid()}" / "note-2").exists()
    assert (note / "memory.max").read_text() == "max" and (note / "pids.max").read_text() == "32"
    assert not groups.out_of_memory(second)  # the kill was the first note's
    (note / "memory.events").write_text("low 0\noom 2\noom_kill 2\n")
    assert groups.out_of_memory(second)
    (note / "cgroup.procs").write_text("4242\n")  # a process moved in: never handed out again
    groups.release(second)
    third = groups.prepare("note-3", 1 << 20, 8)
    assert third != second and third == (str(note.parent / "note-3"),)


def test_an_emptied_group_whose_cap_cannot_be_set_gives_way_to_a_new_one(tmp_path: Path) -> None:
    """On the kernel, a lower cap fails while a group's charges cannot be reclaimed below it."""
    mounts, own = _delegated_v2(tmp_path, "memory pids")
    groups = NoteGroups.create(mounts, own)
    assert isinstance(groups, NoteGroups)
    first = groups.prepare("note-1", 1 << 30, 64)
    groups.release(first)
    cap = Path(first[0]) / "memory.max"
    cap.unlink()
    cap.mkdir()  # writing the cap now fails
    second = groups.prepare("note-2", 1 << 20, 8)
    assert second == (str(Path(first[0]).parent / "note-2"),)
    assert (Path(second[0]) / "memory.max").read_text() == str(1 << 20)


def test_an_emptied_group_still_holding_memory_is_not_handed_on(tmp_path: Path) -> None:
    mounts, own = _delegated_v2(tmp_path, "memory pids")
    groups = NoteGroups.create(mounts, own)
    assert isinstance(groups, NoteGroups)
    first = groups.prepare("note-1", 1 << 30, 64)
    (Path(first[0]) / "memory.current").write_text(f"{REUSE_CHARGE + 1}\n")  # left in /dev/shm
    groups.release(first)
    second = groups.prepare("note-2", 1 << 30, 64)
    assert second == (str(Path(first[0]).parent / "note-2"),)
    (Path(second[0]) / "memory.current").write_text(f"{REUSE_CHARGE}\n")  # a little page cache
    groups.release(second)
    assert groups.prepare("note-3", 1 << 30, 64) == second
