"""Sandbox guarantees, each tried for real: a note that misbehaves fails alone and leaves nothing."""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import platform
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from noteexec.check import check, iter_check
from noteexec.config import Config
from noteexec.results import NoteFile, NoteResult
from noteexec.sandbox import BlockRun, NoteRun, Sandbox, sandbox_environment
from noteexec.sandbox.execute import PIECES_CAP
from noteexec.sandbox.zygote import SHARED_COPIES
from tests.conftest import (
    RunNote,
    ancestors,
    callout,
    fence,
    noteexec,
    outcomes,
    processes_named,
    processes_with,
)


def short_timeout(seconds: float = 1) -> str:
    return f"---\nnoteexec: {{timeout: {seconds}}}\n---\n"


@pytest.fixture(params=[True, False], ids=["namespaces", "fallback"])
def isolation(request: pytest.FixtureRequest) -> Config:
    """Every guarantee holds with Linux namespaces and with the fallback (subreaper, watching)."""
    return Config(namespaces=request.param)


def test_infinite_loop_times_out_and_later_blocks_are_not_run(run_note: RunNote, isolation: Config) -> None:
    result = run_note(
        short_timeout() + fence("while True:\n    pass") + fence("print('never')"), config=isolation
    )
    assert outcomes(result) == ["failed", "failed"]
    assert "timed out after 1 s" in result.blocks[0].verdict.message
    assert result.blocks[1].verdict.message.startswith("not run")


def test_ignored_sigterm_does_not_save_a_runaway_note(run_note: RunNote, isolation: Config) -> None:
    code = "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nwhile True:\n    time.sleep(0.01)"
    result = run_note(short_timeout() + fence(code), config=isolation)
    assert "timed out" in result.blocks[0].verdict.message


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        ("import os\nos._exit(3)", "process exited with code 3"),
        ("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)", "SIGKILL"),
        ("import os, signal\nos.killpg(0, signal.SIGKILL)", "SIGKILL"),
        ("import os, signal\nos.kill(os.getpid(), signal.SIGTERM)", "SIGTERM"),
        ("import signal\nsignal.raise_signal(signal.SIGUSR1)", "SIGUSR1"),
        ("import signal, time\nsignal.alarm(1)\ntime.sleep(20)", "SIGALRM"),
        ("import ctypes\nctypes.string_at(0)", "SIGSEGV (segmentation fault)"),
        ("import os\nos.abort()", "SIGABRT (aborted)"),
        ("import sys\nsys.exit(4)", "called sys.exit(4)"),
    ],
    ids=[
        "os._exit",
        "sigkill",
        "killpg",
        "sigterm",
        "raise_signal",
        "alarm",
        "segfault",
        "abort",
        "sys.exit",
    ],
)
def test_process_endings_fail_the_running_block(
    run_note: RunNote, isolation: Config, code: str, reason: str
) -> None:
    result = run_note(fence("print('first')") + fence(code) + fence("print('later')"), config=isolation)
    assert outcomes(result) == ["passed", "failed", "failed"]
    assert reason in result.blocks[1].verdict.message
    assert "not run" in result.blocks[2].verdict.message


def test_a_forked_child_of_the_note_keeps_its_default_signals(run_note: RunNote, isolation: Config) -> None:
    """A note's children end by SIGTERM as they would anywhere, even when terminated before
    they have run a line (the note's process is no PID 1: nothing of its own handles them)."""
    code = (
        "import multiprocessing, time\n"
        "context = multiprocessing.get_context('fork')\n"
        "children = [context.Process(target=time.sleep, args=(30,)) for _ in range(8)]\n"
        "for child in children:\n"
        "    child.start()\n"
        "    child.terminate()  # at once: often before the child has run a line\n"
        "for child in children:\n"
        "    child.join(20)\n"
        "print({child.exitcode for child in children})"
    )
    result = run_note(fence(code), config=isolation)
    assert result.blocks[0].facts.stdout == f"{{{-signal.SIGTERM}}}\n", result.blocks[0].verdict.message


def test_huge_allocation_fails_the_block_not_the_machine(run_note: RunNote) -> None:
    code = "x = torch.empty(10 * 1024**3, dtype=torch.uint8)\nx.fill_(1)"
    result = run_note(fence(code) + fence("print('after')"), config=Config(memory_limit=1 << 30))
    assert outcomes(result)[0] == "failed"
    assert "memory" in result.blocks[0].verdict.message.lower()


def test_a_note_after_one_killed_for_memory_reuses_its_group_with_its_own_cap(tmp_path: Path) -> None:
    """A finished note's cgroup is the next note's: only the kills since a note started are its
    own, and its own cap is in force (the same, a lower one, then none)."""
    vault = tmp_path / "vault"
    vault.mkdir()

    def hog(mib: int) -> str:
        """A child holding ``mib`` MiB, then the note's process three times as much: the largest,
        so the one the kernel's out-of-memory killer picks."""
        child = f"b = b'x' * ({mib} << 20)\\nprint('held', flush=True)\\nimport time\\ntime.sleep(60)"
        return (
            "import subprocess, sys\n"
            f"child = subprocess.Popen([sys.executable, '-c', \"{child}\"], stdout=subprocess.PIPE)\n"
            "child.stdout.readline()\n"
            f"b = b'x' * ({3 * mib} << 20)\n"
            "print('survived')"
        )

    for name, code in (
        ("a-hog", hog(300)),
        ("b-exits", "import os\nos._exit(3)"),
        ("c-hog", hog(150)),
        ("d-free", hog(300)),
    ):
        (vault / f"{name}.md").write_text(fence(code))
    a, b, c, d = (NoteFile(path, vault) for path in sorted(vault.iterdir()))
    with Sandbox(parallel=1) as own:  # a note at a time: each finishes, and frees its group
        results = check([a], Config(memory_limit=1 << 30), own)
        results += check([b], Config(memory_limit=1 << 30), own)
        results += check([c], Config(memory_limit=512 << 20), own)
        results += check([d], Config(memory_limit=None), own)
    assert [outcomes(result) for result in results] == [["failed"], ["failed"], ["failed"], ["passed"]]
    ended = [result.facts.ended if result.facts else "" for result in results]
    assert ended[0] and ended[0].startswith("out of memory"), ended
    assert ended[1] == "process exited with code 3", ended  # not the kill before it, in its group
    assert ended[2] and ended[2].startswith("out of memory"), ended
    assert ended[3] is None, ended
    assert results[3].blocks[0].facts.stdout == "survived\n"


def test_memory_a_note_leaves_behind_never_counts_against_a_later_note(tmp_path: Path) -> None:
    """Without namespaces, as the unprivileged host id, a note may leave files in the host's
    /dev/shm, charged to its cgroup (tmpfs without swap: never reclaimed): a group that still
    holds memory is not handed on. (As root without capabilities, when that id cannot read this
    Python, as here, Landlock refuses the files; ``tests/test_cgroups.py`` proves the charge
    threshold on its own.)"""
    tag = f"noteexec-test-{uuid.uuid4().hex}"
    leave = (
        "for part in range(4):\n"
        f"    with open(f'/dev/shm/{tag}-{{part}}', 'wb') as file:\n"
        "        file.write(b'x' * (100 << 20))"
    )
    vault = tmp_path / "vault"
    vault.mkdir()
    (vault / "a-leaves.md").write_text(fence(leave))
    for name in "bcde":
        (vault / f"{name}-needs.md").write_text(fence("x = b'x' * (200 << 20)\nprint('fits')"))
    try:
        with Sandbox(parallel=1) as own:
            notes = [NoteFile(path, vault) for path in sorted(vault.iterdir())]
            results = check(notes, Config(memory_limit=512 << 20, namespaces=False), own)
    finally:
        for part in range(4):
            Path(f"/dev/shm/{tag}-{part}").unlink(missing_ok=True)
    left = results[0].facts
    assert left is not None
    if left.isolation["user"].startswith("root without capabilities"):
        assert left.blocks[0].exception is not None and left.blocks[0].exception.type == "PermissionError"
    else:
        assert outcomes(results[0]) == ["passed"]
    assert [outcomes(result) for result in results[1:]] == [["passed"]] * 4, [
        r.facts and r.facts.ended for r in results
    ]


def test_a_note_that_prints_more_than_its_budget_is_cut_short_not_broken(run_note: RunNote) -> None:
    """Twenty blocks of 2 MiB of output each: every block is capped at 1 MiB, and once the note
    has sent nearly all it may (16 MiB), later blocks are reported without their output, so the
    worker never breaks an honest note's channel."""
    result = run_note("".join(fence("print('x' * (2 << 20))\nvalue = 1") for _ in range(20)))
    assert result.facts is not None and result.facts.ended is None, result.facts and result.facts.ended
    blocks = result.facts.blocks
    assert [block.state for block in blocks] == ["ran"] * 20
    assert all(block.truncated for block in blocks)
    assert blocks[0].stdout == "x" * (1 << 20) and blocks[-1].stdout == ""


def test_a_note_that_prints_from_line_to_line_is_cut_short_not_broken(run_note: RunNote) -> None:
    """Output alternating between two lines is many small pieces: 50 blocks of them pass the
    250,000 values a note may send, so later blocks are reported without their output."""
    block = "for step in range(1500):\n    print(step)\n    print(-step)"
    result = run_note("".join(fence(block) for _ in range(50)))
    assert result.facts is not None and result.facts.ended is None, result.facts and result.facts.ended
    blocks = result.facts.blocks
    assert [block.state for block in blocks] == ["ran"] * 50
    assert len(blocks[0].stdout_by_line) == PIECES_CAP and blocks[-1].stdout_by_line == ()


def test_network_is_unreachable(run_note: RunNote) -> None:
    code = (
        "import socket\ntry:\n    socket.create_connection(('1.1.1.1', 53), timeout=3)\n"
        "    print('connected')\nexcept OSError as error:\n    print('blocked')"
    )
    result = run_note(fence(code) + "```output\nblocked\n```\n")
    assert outcomes(result) == ["passed"]
    assert result.facts.isolation["network"] == "none"


def test_vault_cannot_be_written(tmp_path: Path, sandbox: Sandbox) -> None:
    vault = tmp_path / "vault"
    vault.mkdir()
    target = vault / "written.txt"
    note = vault / "note.md"
    code = f"open({str(target)!r}, 'w').write('x')  # OSError: [Errno 30] Read-only file system"
    note.write_text(fence(code))
    [result] = check([NoteFile(note, vault)], Config(), sandbox)
    assert outcomes(result) == ["passed"], result.blocks[0].verdict.message
    assert not target.exists()


def test_nothing_but_the_notes_own_tmp_is_writable_not_even_proc(tmp_path: Path, sandbox: Sandbox) -> None:
    """Every mount of a note's world is read-only but its own /tmp (and /dev/shm, the same
    tmpfs): its /proc too, through which it could otherwise add triggers to the host's pressure
    files (/proc/pressure/*, writable by everyone)."""
    vault = tmp_path / "vault"
    vault.mkdir()
    note = vault / "note.md"
    shown = ("/", "/proc", "/dev", "/usr", "/etc", "/sys", str(vault), "/tmp", "/tmp/note", "/dev/shm")
    note.write_text(
        fence(f"import os\nprint([path for path in {shown!r} if not os.statvfs(path).f_flag & os.ST_RDONLY])")
    )
    [result] = check([NoteFile(note, vault)], Config(), sandbox)
    assert result.blocks[0].facts.stdout == "['/tmp', '/tmp/note', '/dev/shm']\n", result.blocks[0].facts


def test_without_namespaces_landlock_keeps_the_vault_read_only(tmp_path: Path, sandbox: Sandbox) -> None:
    vault = tmp_path / "vault"
    vault.mkdir()
    target = vault / "written.txt"
    note = vault / "note.md"
    note.write_text(
        fence(f"import os\nprint(os.environ['TMPDIR'] != '/tmp')\nopen({str(target)!r}, 'w').write('x')")
    )
    [result] = check([NoteFile(note, vault)], Config(namespaces=False), sandbox)
    assert result.facts is not None and result.facts.isolation["vault"] == "read-only (Landlock)"
    block = result.blocks[0]
    assert block.facts is not None and block.facts.exception is not None
    assert block.facts.exception.type == "PermissionError"
    assert block.facts.stdout == "True\n"  # its temporary files go to its own folder
    assert not target.exists()


def test_where_nothing_keeps_the_vault_read_only_a_same_size_edit_set_back_in_time_is_seen(
    tmp_path: Path,
) -> None:
    """The last line without namespaces or Landlock: every file's identity, size and times,
    dot-folders included; ``os.utime`` cannot set the change time back."""
    from noteexec.sandbox.running import vault_snapshot as _vault_snapshot

    vault = tmp_path / "vault"
    (vault / ".noteexec").mkdir(parents=True)
    for path in (vault / "note.md", vault / ".noteexec" / "cache.sqlite"):
        path.write_text("abc")
    before = _vault_snapshot([str(vault)])
    for path in (vault / "note.md", vault / ".noteexec" / "cache.sqlite"):
        stat = path.stat()
        time.sleep(0.01)
        path.write_text("xyz")
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    after = _vault_snapshot([str(vault)])
    changed = sorted(path for path in before if before[path] != after[path])
    assert changed == sorted([str(vault / ".noteexec" / "cache.sqlite"), str(vault / "note.md")])


def test_leftover_and_setsid_children_are_killed(run_note: RunNote, isolation: Config) -> None:
    marker = f"{uuid.uuid4().int % 10**6}.{os.getpid()}"
    code = (
        "import subprocess\n"
        f"subprocess.Popen(['sleep', '{marker}'])\n"
        f"subprocess.Popen(['sleep', '{marker}'], start_new_session=True)\n"
        f"subprocess.Popen(['sh', '-c', 'setsid sleep {marker} & wait'])"
    )
    result = run_note(fence(code) + fence("import time\ntime.sleep(0.3)"), config=isolation)
    assert outcomes(result) == ["passed", "passed"]
    assert processes_with(f"sleep\x00{marker}") == []


def test_closed_stdout_and_stderr_do_not_lose_results(run_note: RunNote, isolation: Config) -> None:
    code = "import os, sys\nos.close(0)\nos.close(1)\nos.close(2)\nsys.stdout.close()\nprint('still here')"
    result = run_note(fence(code) + fence("print('next')  # next"), config=isolation)
    assert outcomes(result) == ["passed", "passed"]
    assert result.blocks[0].facts.stdout == "still here\n"


def test_input_reads_an_empty_stdin(run_note: RunNote) -> None:
    result = run_note(fence("input()  # EOFError: EOF when reading a line"))
    assert outcomes(result) == ["passed"]


def test_a_machine_out_of_memory_loses_a_note_first(run_note: RunNote, isolation: Config) -> None:
    """As root, a note's processes are the OOM killer's first choice: not the checker, the
    worker, the zygote (whose death would cost every note after it), the nursery's PID 1s and
    world servers (which share one memory, so die together), or anything else."""
    if os.geteuid() != 0:
        pytest.skip("an ordinary user's note cannot open its own /proc files to say so (CI runs as root)")
    code = "import subprocess\nprint(open('/proc/self/oom_score_adj').read(), subprocess.check_output(['cat', '/proc/self/oom_score_adj']))"
    result = run_note(fence(code), config=isolation)
    assert result.blocks[0].facts.stdout == "1000\n b'1000\\n'\n", result.blocks[0].facts
    assert Path("/proc/self/oom_score_adj").read_text() != "1000\n"


def test_cwd_is_a_fresh_empty_directory(run_note: RunNote) -> None:
    result = run_note(fence("import os\nprint(os.listdir('.'))  # []\nopen('scratch.txt', 'w').write('ok')"))
    assert outcomes(result) == ["passed"]


def test_a_monkeypatched_torch_does_not_leak_into_the_next_note(tmp_path: Path, sandbox: Sandbox) -> None:
    first, second = tmp_path / "a.md", tmp_path / "b.md"
    first.write_text(fence("torch.tensor = None\ntorch.nn.Linear = None"))
    second.write_text(fence("print(torch.tensor([1.0]))  # tensor([1.])\nnn.Linear(1, 1)"))
    results = check([NoteFile(first, tmp_path), NoteFile(second, tmp_path)], Config(), sandbox)
    assert [outcomes(result) for result in results] == [["passed"], ["passed"]]


def test_multithreaded_matmul_in_parallel_children_does_not_deadlock(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    code = "a = torch.randn(400, 400)\nfor _ in range(20):\n    a = torch.tanh(a @ a)\nprint(torch.get_num_threads())"
    files = []
    for index in range(4):
        path = tmp_path / f"m{index}.md"
        path.write_text(short_timeout(30) + fence(code))
        files.append(NoteFile(path, tmp_path))
    results = check(files, Config(), sandbox)
    assert all(outcomes(result) == ["passed"] for result in results)
    assert results[0].blocks[0].facts.stdout.strip() == str(max(1, (os.cpu_count() or 1) // 2))


def test_secrets_never_reach_a_note(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "hunter2")
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_secret")
    monkeypatch.setenv("MY_ALLOWED", "yes")
    note = tmp_path / "env.md"
    code = (
        "import os\nprint(os.environ.get('AWS_SECRET_ACCESS_KEY'), os.environ.get('GITHUB_TOKEN'))  # None None\n"
        "print(os.environ.get('MY_ALLOWED'))  # yes"
    )
    note.write_text(fence(code))
    with Sandbox(env_passthrough=("MY_ALLOWED",)) as own:
        [result] = check([NoteFile(note, tmp_path)], Config(), own)
    assert outcomes(result) == ["passed"], result.blocks[0].verdict.diff


def test_environment_allowlist() -> None:
    environment = sandbox_environment(
        {"PATH": "/bin", "LC_ALL": "C", "HOME": "/root", "OMP_NUM_THREADS": "1", "SECRET": "x"}
    )
    assert environment == {"PATH": "/bin", "LC_ALL": "C", "OMP_NUM_THREADS": "1"}
    key = {"NOTEEXEC_CACHE_SECRET": "k", "PATH": "/bin"}
    assert sandbox_environment(key, ["NOTEEXEC_CACHE_SECRET"]) == {"PATH": "/bin"}  # the cache's key, never


def test_output_is_capped(run_note: RunNote) -> None:
    result = run_note(fence("print('x' * (3 << 20))"))
    facts = result.blocks[0].facts
    assert facts.truncated
    assert len(facts.stdout) <= (1 << 20) + 1


def test_a_note_cannot_plant_code_that_the_worker_or_a_later_run_imports(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    """The world is read-only: no file under torch, no ``.pth`` in site-packages, back-dated or not."""
    import importlib.util
    import site

    spec = importlib.util.find_spec("torch")
    assert spec is not None and spec.submodule_search_locations
    package = Path(next(iter(spec.submodule_search_locations)))
    planted = package / f"_noteexec_planted_{uuid.uuid4().hex}.py"
    hook = Path(site.getsitepackages()[0]) / f"_noteexec_planted_{uuid.uuid4().hex}.pth"
    vault = tmp_path / "vault"
    vault.mkdir()
    note = vault / "plant.md"
    code = "import os\n"
    for target in (planted, hook):
        code += (
            f"try:\n    open({str(target)!r}, 'w').write('import os')\n    os.utime({str(target)!r}, (0, 0))\n"
            f"    print('planted')\nexcept OSError as error:\n    print(type(error).__name__)\n"
        )
    note.write_text(fence(code))
    try:
        [result] = check([NoteFile(note, vault)], Config(), sandbox)
        assert result.blocks[0].facts.stdout == "OSError\nOSError\n"
        assert not planted.exists() and not hook.exists()
    finally:
        planted.unlink(missing_ok=True)
        hook.unlink(missing_ok=True)


def test_a_worker_that_cannot_start_fails_every_note_with_its_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "fake"
    (fake / "torch").mkdir(parents=True)
    (fake / "torch" / "__init__.py").write_text("raise ImportError('torch is broken here')\n")
    monkeypatch.setenv("PYTHONPATH", str(fake))
    notes = []
    for name in ("a.md", "b.md"):
        (tmp_path / name).write_text(fence("x = 1"))
        notes.append(NoteFile(tmp_path / name, tmp_path))
    (tmp_path / "c.md").write_text(fence("x = 1"))
    notes.append(NoteFile(tmp_path / "c.md", tmp_path))
    launches: list[object] = []
    real_popen = subprocess.Popen
    monkeypatch.setattr(
        "noteexec.sandbox.subprocess.Popen", lambda *a, **k: launches.append(a) or real_popen(*a, **k)
    )
    with Sandbox() as broken:
        results = list(iter_check(notes, Config(), broken, lookahead=1))
    assert [outcomes(result) for result in results] == [["failed"]] * 3
    for result in results:
        message = result.blocks[0].verdict.message
        assert message.startswith("not run: the sandbox worker died")
        assert "torch is broken here" in message
    assert len(launches) == 1  # notes submitted after the death are not run by a new worker


def _kill_worker_when(
    sandbox: Sandbox, marker: str, killed: list[int], zygote: bool = False
) -> threading.Thread:
    """In the background: once a process of ``marker`` runs, SIGKILL the worker that runs it, or
    its ``zygote`` (dying of its own bug, or of the host's OOM killer)."""

    def watch() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            worker = sandbox._process
            if worker is not None and processes_with(marker):
                victim = _zygote_of(worker.pid) if zygote else worker.pid
                os.kill(victim, signal.SIGKILL)
                killed.append(victim)
                return
            time.sleep(0.02)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def _sleeping(marker: str) -> NoteRun:
    """A note that runs ``sleep`` (findable by its ``marker`` argument), then passes."""
    code = f"import subprocess\nsubprocess.run(['sleep', '1.{marker}'])\nprint('slept')"
    return NoteRun(path=f"{marker}.md", blocks=(BlockRun(1, code),))


@pytest.mark.parametrize("victim", ["worker", "zygote"])
def test_a_dying_worker_costs_only_the_note_it_was_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, victim: str
) -> None:
    """The worker, or its zygote (the worker ends when its zygote dies)."""
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    marker = str(uuid.uuid4().int % 10**8)
    killed: list[int] = []
    with Sandbox(parallel=1) as sandbox:
        tickets = [
            sandbox.submit(_sleeping(marker)),
            sandbox.submit(_sleeping("0")),
            sandbox.submit(_sleeping("1")),
        ]
        watcher = _kill_worker_when(sandbox, f"1.{marker}", killed, zygote=victim == "zygote")
        facts = dict(sandbox.next_facts() for _ in tickets)
        watcher.join()
    assert len(killed) == 1
    lost = facts[tickets[0]].blocks[0]
    assert (
        lost.state == "not_run"
        and "the sandbox worker died" in lost.reason
        and "while this note ran" in lost.reason
    )
    assert [facts[ticket].blocks[0].stdout for ticket in tickets[1:]] == ["slept\n", "slept\n"]


def _nursery_of(worker: int) -> int | None:
    """The worker's child in its own PID namespace that is not its zygote."""
    own = os.readlink(f"/proc/{worker}/ns/pid")
    for task in os.listdir(f"/proc/{worker}/task"):
        with contextlib.suppress(OSError):
            for child in map(int, Path(f"/proc/{worker}/task/{task}/children").read_text().split()):
                with contextlib.suppress(OSError):
                    zygote = Path(f"/proc/{child}/comm").read_text().strip() == "noteexec-zygote"
                    if os.readlink(f"/proc/{child}/ns/pid") == own and not zygote:
                        return child
    return None


def _children(pid: int) -> list[int]:
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _init_of(nursery: int) -> tuple[int, list[int], list[int]]:
    """The init of the nursery's PID namespace (its only child), the world servers (the init's
    children in its namespace) and the PID 1s (its children in namespaces of their own)."""
    (init,) = _children(nursery)
    own = os.readlink(f"/proc/{init}/ns/pid")
    children = _children(init)
    servers = [pid for pid in children if os.readlink(f"/proc/{pid}/ns/pid") == own]
    return init, servers, [pid for pid in children if pid not in servers]


def test_a_dying_nursery_costs_at_most_the_notes_in_flight(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As root, each note's PID 1 comes from the worker's nursery. If the nursery dies (only root or
    the out-of-memory killer can kill it), the notes in flight die with their PID 1s and say so; the
    worker lives on and forks the PID 1s of later notes itself. The init of the nursery's PID
    namespace and its world server die with it at once, closing the worker's channel, rather
    than when the worker notices."""
    if os.geteuid() != 0:
        pytest.skip("only root's worker has a nursery (CI runs as root)")
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    marker = str(uuid.uuid4().int % 10**8)
    killed: list[int] = []
    servers: list[str] = []

    def watch(sandbox: Sandbox) -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            worker = sandbox._process
            if worker is not None and processes_with(f"1.{marker}"):
                nursery = _nursery_of(worker.pid)
                assert nursery is not None
                init, world_servers, _ = _init_of(nursery)
                servers.extend([init, *world_servers])
                os.kill(nursery, signal.SIGKILL)
                killed.append(nursery)
            time.sleep(0.02)

    with Sandbox(parallel=1) as sandbox:
        tickets = [sandbox.submit(_sleeping(name)) for name in (marker, "0", "1", "2")]
        watcher = threading.Thread(target=watch, args=(sandbox,), daemon=True)
        watcher.start()
        facts = dict(sandbox.next_facts() for _ in tickets)
        watcher.join()
    assert len(killed) == 1
    first = facts[tickets[0]].blocks[0]
    assert first.state == "crashed" and "SIGKILL" in (first.reason or ""), first
    assert not any("the sandbox worker died" in (facts[ticket].blocks[0].reason or "") for ticket in tickets)
    assert [facts[ticket].blocks[0].stdout for ticket in tickets[2:]] == ["slept\n", "slept\n"]
    assert len(servers) == 2  # the init and its world server
    for pid in servers:
        assert not Path(f"/proc/{pid}").exists() or ") Z " in Path(f"/proc/{pid}/stat").read_text()


def test_notes_of_different_worlds_side_by_side_each_see_only_their_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Notes whose worlds differ (other checked folders, another /tmp size) alternate while the
    one before still runs: as root, each asks the nursery for another world, which ends the
    world server that made the running note's PID 1. The running note goes on, and each note
    sees its own folder (read-only, though it lies below /tmp) and its own /tmp, not the other's."""
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    folders = [tmp_path / "a", tmp_path / "b"]
    for folder in folders:
        folder.mkdir()
        (folder / "own.txt").write_text(folder.name)
    runs = []
    for index in range(6):
        own, other = folders[index % 2], folders[1 - index % 2]
        code = (
            "import os, time\ntime.sleep(0.3)\n"
            f"print(open({str(own / 'own.txt')!r}).read(), os.path.exists({str(other)!r}), "
            "os.statvfs('/tmp').f_blocks * os.statvfs('/tmp').f_frsize >> 20)\n"
            f"open({str(own / 'new.txt')!r}, 'w')  # OSError: [Errno 30] Read-only file system"
        )
        runs.append(
            NoteRun(
                path=str(own / f"{index}.md"),
                blocks=(BlockRun(1, code),),
                readonly=(str(own),),
                tmp_size=(8 + 8 * (index % 2)) << 20,
            )
        )
    with Sandbox(parallel=2) as sandbox:
        tickets = [sandbox.submit(run) for run in runs]
        facts = dict(sandbox.next_facts() for _ in tickets)
    for index, ticket in enumerate(tickets):
        block = facts[ticket].blocks[0]
        assert block.stdout == f"{'ab'[index % 2]} False {8 + 8 * (index % 2)}\n", (index, block)
        assert block.exception is not None and "Read-only file system" in block.exception.message, block


_PAUSE = {"x86_64": {"34"}, "aarch64": {"73", "133"}}  # pause; glibc's ppoll or rt_sigsuspend without it
_KCMP = {"x86_64": 312, "aarch64": 272}
KCMP_FILES, KCMP_VM = 2, 1


def _same(first: int, second: int, kind: int) -> bool:
    """Whether two processes share their memory (``KCMP_VM``) or descriptor table (``KCMP_FILES``)."""
    libc = ctypes.CDLL(None, use_errno=True)
    result = libc.syscall(_KCMP[platform.machine()], first, second, kind, 0, 0)
    assert result >= 0, os.strerror(ctypes.get_errno())
    return bool(result == 0)


def test_a_notes_pid1_from_the_nursery_runs_no_code_and_holds_no_stream_of_the_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As root, PID 1 is a clone of the nursery's world server that shares its memory and
    descriptors, and only waits in pause(): it runs nothing a note could steer, and the table it
    shares holds neither of the worker's job and result streams. (That the note cannot reach it
    is ``tests/test_attacks.py``'s ``pid1`` attack.)"""
    if os.geteuid() != 0:
        pytest.skip("only root's worker has a nursery (CI runs as root)")
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    marker = str(uuid.uuid4().int % 10**8)
    seen: dict[str, object] = {}

    def inspect(sandbox: Sandbox) -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            worker = sandbox._process
            if worker is not None and processes_with(f"1.{marker}"):
                nursery = _nursery_of(worker.pid)
                assert nursery is not None
                _, servers, pid1s = _init_of(nursery)
                streams = {
                    os.readlink(f"/proc/{worker.pid}/fd/{fd}") for fd in os.listdir(f"/proc/{worker.pid}/fd")
                }
                seen["pid1s"], seen["servers"] = len(pid1s), len(servers)
                seen["shared"] = [
                    target
                    for pid in [*servers, *pid1s]
                    for fd in os.listdir(f"/proc/{pid}/fd")
                    if (target := os.readlink(f"/proc/{pid}/fd/{fd}")).startswith("pipe:")
                    and target in streams
                ]
                seen["waiting"] = [Path(f"/proc/{pid}/syscall").read_text().split()[0] for pid in pid1s]
                mounts = [
                    line.split() for line in Path(f"/proc/{servers[0]}/mountinfo").read_text().splitlines()
                ]
                seen["below"] = sorted(
                    (fields[4], fields[5].split(",")[0])
                    for fields in mounts
                    if fields[4] in ("/tmp", "/dev/shm")
                )
                seen["shares"] = [
                    _same(pid, servers[0], KCMP_VM) and _same(pid, servers[0], KCMP_FILES) for pid in pid1s
                ]
                return
            time.sleep(0.02)

    with Sandbox(parallel=1) as sandbox:
        ticket = sandbox.submit(_sleeping(marker))
        watcher = threading.Thread(target=inspect, args=(sandbox,), daemon=True)
        watcher.start()
        facts = dict([sandbox.next_facts()])
        watcher.join()
    assert facts[ticket].blocks[0].stdout == "slept\n"
    assert seen["pid1s"] >= 1 and seen["servers"] == 1, seen
    assert seen["shared"] == [], seen
    assert set(seen["waiting"]) <= _PAUSE[platform.machine()], seen["waiting"]  # type: ignore[arg-type]
    assert seen["shares"] == [True] * len(seen["waiting"]), seen  # type: ignore[arg-type]
    # What each note's own /tmp and /dev/shm cover, shared by every note of that world, is read-only.
    assert seen["below"] == [("/dev/shm", "ro"), ("/tmp", "ro")], seen


def test_a_note_that_clears_its_parent_death_signal_still_dies_with_the_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, isolation: Config
) -> None:
    """The note's own process may clear its PR_SET_PDEATHSIG; its PID 1 (or, without
    namespaces, its subreaper), which the note cannot reach, still takes it along."""
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    marker = str(uuid.uuid4().int % 10**8)
    code = (
        "import ctypes, subprocess\n"
        "libc = ctypes.CDLL(None)\n"
        "libc.prctl(1, 0, 0, 0, 0)  # PR_SET_PDEATHSIG: none\n"
        f"libc.prctl(15, b'nx{marker}', 0, 0, 0)  # PR_SET_NAME, to be found\n"
        f"subprocess.Popen(['sleep', '9{marker}'], start_new_session=True)\n"
        "while True:\n"
        "    pass\n"
    )
    killed: list[int] = []
    run = NoteRun(path=f"{marker}.md", blocks=(BlockRun(1, code),), namespaces=isolation.namespaces)
    with Sandbox(parallel=1) as sandbox:
        ticket = sandbox.submit(run)
        watcher = _kill_worker_when(sandbox, f"9{marker}", killed)
        facts = dict([sandbox.next_facts()])
        watcher.join()
    assert len(killed) == 1 and "the sandbox worker died" in (facts[ticket].blocks[0].reason or "")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and (processes_with(f"9{marker}") or processes_named(f"nx{marker}")):
        time.sleep(0.05)
    assert processes_with(f"9{marker}") == [] and processes_named(f"nx{marker}") == []


def test_notes_running_beside_a_dying_worker_run_again_alone_and_a_second_death_loses_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two notes run side by side when the worker dies: both are suspects and run again, each
    alone, in a fresh worker. The one that is running when that worker dies too is lost; the
    other passes, and so does a note queued behind them."""
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    culprit, innocent = (str(uuid.uuid4().int % 10**8) for _ in range(2))
    killed: list[int] = []
    with Sandbox(parallel=2) as sandbox:
        warm = sandbox.submit(NoteRun(path="warm.md", blocks=(BlockRun(1, "x = 1"),)))
        assert sandbox.next_facts()[0] == warm  # the first note runs alone; then two at a time
        tickets = [sandbox.submit(_sleeping(culprit)), sandbox.submit(_sleeping(innocent))]
        deadline = time.monotonic() + 120
        while not (processes_with(f"1.{culprit}") and processes_with(f"1.{innocent}")):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        first = sandbox._process
        assert first is not None
        os.kill(first.pid, signal.SIGKILL)
        killed.append(first.pid)
        while processes_with(f"1.{culprit}"):  # the first worker's notes die with it
            time.sleep(0.02)
        later = sandbox.submit(_sleeping("2"))
        watcher = _kill_worker_when(sandbox, f"1.{culprit}", killed)
        facts = dict(sandbox.next_facts() for _ in (*tickets, later))
        watcher.join()
    assert len(set(killed)) == 2
    assert "while this note ran" in facts[tickets[0]].blocks[0].reason
    assert facts[tickets[1]].blocks[0].stdout == "slept\n"
    assert facts[later].blocks[0].stdout == "slept\n"


def check_folder(vault: Path, parallel: int) -> list[NoteResult]:
    """Check every note of a folder, in name order, with a sandbox of its own."""
    with Sandbox(parallel=parallel) as own:
        return check([NoteFile(path, vault) for path in sorted(vault.iterdir())], Config(), own)


def test_a_note_waiting_for_its_turn_is_not_timed_out(tmp_path: Path) -> None:
    """The next note's process is prepared while the current one runs; its timeout starts with its turn."""
    vault = tmp_path / "vault"
    vault.mkdir()
    slow = vault / "a-slow.md"
    slow.write_text(fence("import time\ntime.sleep(2.5)"))
    quick = vault / "b-quick.md"
    quick.write_text(short_timeout(1) + fence("x = 1"))
    results = check_folder(vault, parallel=1)
    assert [outcomes(result) for result in results] == [["passed"], ["passed"]]


def test_later_notes_start_warm_but_never_with_what_a_note_imported(tmp_path: Path) -> None:
    """The worker warms itself with its own fixed list after the first note, never because of a note."""
    vault = tmp_path / "vault"
    vault.mkdir()
    module = "torch.utils.show_pickle"
    (vault / "a-imports.md").write_text(fence(f"import {module}"))
    for name in ("b", "c"):
        (vault / f"{name}-finds.md").write_text(
            fence(f"import sys\nprint({module!r} in sys.modules, 'torch._dynamo' in sys.modules)")
        )
    results = check_folder(vault, parallel=1)
    assert [result.blocks[0].facts.stdout for result in results[1:]] == ["False True\n", "False True\n"]


def test_many_notes_through_one_slot_each_get_their_own_result(tmp_path: Path) -> None:
    vault = tmp_path / "vault"
    vault.mkdir()
    for index in range(12):
        (vault / f"{index:02d}.md").write_text(
            fence(f"import os\nprint({index}, os.getpid() != os.getppid())")
        )
    results = check_folder(vault, parallel=1)
    assert [result.blocks[0].facts.stdout for result in results] == [f"{index} True\n" for index in range(12)]


def _zygote_of(worker: int) -> int:
    [zygote] = [
        child
        for child in map(int, Path(f"/proc/{worker}/task/{worker}/children").read_text().split())
        if Path(f"/proc/{child}/comm").read_text().strip() == "noteexec-zygote"
    ]
    return zygote


def _huge_kib(pid: int) -> int:
    rollup = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
    return next(int(line.split()[1]) for line in rollup if line.startswith("AnonHugePages:"))


def test_the_worker_never_maps_torch_and_the_zygote_keeps_its_huge_pages(tmp_path: Path) -> None:
    """The event loop runs apart from the process that forks the notes: it never loads torch,
    and its work no longer splits the forking process's 2 MiB pages (each write to one shared
    with a note split it), so every fork copies as few page-table entries as after the warm-up."""
    vault = tmp_path / "vault"
    vault.mkdir()
    for index in range(16):
        (vault / f"{index:02d}.md").write_text(
            fence(f"import torch\nprint(torch.ones(2).sum().item() + {index})")
        )
    notes = [NoteFile(path, vault) for path in sorted(vault.glob("*.md"))]
    with Sandbox(parallel=2) as sandbox:
        results = iter_check(notes, Config(), sandbox, lookahead=16)
        first = [next(results), next(results)]  # the warm-up came before the second at the latest
        assert sandbox._process is not None
        worker = sandbox._process.pid
        zygote = _zygote_of(worker)
        huge_at_first = _huge_kib(zygote)
        rest = list(results)
        huge_at_last = _huge_kib(zygote)
        worker_maps, zygote_maps = (Path(f"/proc/{pid}/maps").read_text() for pid in (worker, zygote))
    assert [result.blocks[0].facts.stdout for result in (*first, *rest)] == [
        f"{2.0 + index}\n" for index in range(16)
    ]
    assert "libtorch" not in worker_maps and "libtorch" in zygote_maps
    assert (huge_at_first > 0) == _collapse_available()
    assert huge_at_last >= huge_at_first - 4096, (
        huge_at_first,
        huge_at_last,
    )  # a 2 MiB page or two at most


def _children(pid: int) -> list[int]:
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _private_dirty_kib(pid: int) -> int:
    rollup = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
    return next(int(line.split()[1]) for line in rollup if line.startswith("Private_Dirty:"))


def test_a_note_keeps_a_bounded_copy_of_the_pages_the_zygote_moves_to_huge_pages(tmp_path: Path) -> None:
    """The zygote moves its memory to 2 MiB pages between orders, while notes run; each stretch
    it moves leaves the notes forked before it with the old pages. While a note sleeps, the
    zygote moves at most ``SHARED_COPIES`` more stretches (without that bound, all of them: the
    note kept some 150 MiB); once it is gone, the rest."""
    if not _collapse_available():
        pytest.fail("this test needs MADV_COLLAPSE (Linux 6.1) with huge pages allowed")
    vault = tmp_path / "vault"
    vault.mkdir()
    (vault / "00.md").write_text(fence("import time\ntime.sleep(4)"))
    for index in range(1, 6):
        (vault / f"{index:02d}.md").write_text(fence(f"print({index})"))
    notes = [NoteFile(path, vault) for path in sorted(vault.glob("*.md"))]
    results: list[NoteResult] = []
    kept: dict[int, int] = {}  # each note process seen: the most private memory it had, KiB
    with Sandbox(parallel=2) as sandbox:
        running = threading.Thread(target=lambda: results.extend(iter_check(notes, Config(), sandbox)))
        running.start()
        zygote = None
        while zygote is None:
            time.sleep(0.01)
            with contextlib.suppress(ValueError):  # not yet forked
                zygote = _zygote_of(sandbox._process.pid) if sandbox._process is not None else None
        while not results and running.is_alive():  # results come in file order: the sleeper's first
            for child in _children(zygote):
                with contextlib.suppress(OSError, StopIteration):
                    kept[child] = max(kept.get(child, 0), _private_dirty_kib(child))
            time.sleep(0.05)
        running.join()
        deadline = time.monotonic() + 30
        while _huge_kib(zygote) < 64 << 10 and time.monotonic() < deadline:
            time.sleep(0.1)  # the zygote goes on between orders, and when it has none
        at_last = _huge_kib(zygote)
    assert [result.status for result in results] == ["passed"] * 6
    assert kept and max(kept.values()) <= (SHARED_COPIES * 2 + 24) << 10, kept  # its own writes: a few MiB
    assert at_last >= 64 << 10, at_last


HUGE_PAGE_PROBE = """
import json, mmap
from noteexec.sandbox.warm import HugePages

def anonymous():
    fields = dict(line.split(":", 1) for line in open("/proc/self/smaps_rollup").read().splitlines()[1:])
    return {key: int(fields[key].split()[0]) << 10 for key in ("Anonymous", "AnonHugePages")}

PRIVATE = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS
dense = mmap.mmap(-1, 32 << 20, flags=PRIVATE)
dense.write(b"x" * (32 << 20))  # every page present
sparse = mmap.mmap(-1, 32 << 20, flags=PRIVATE)
for offset in range(0, 32 << 20, 1 << 20):
    sparse[offset] = 1  # one page in 256
before = anonymous()
huge_pages, collapsed = HugePages(), 0
while huge_pages.pending:
    collapsed += huge_pages.collapse_next()
print(json.dumps({"before": before, "after": anonymous(), "collapsed": collapsed}))
"""


def _collapse_available() -> bool:
    """Whether MADV_COLLAPSE exists here (Linux 6.1) and huge pages are not switched off."""
    thp = Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text()
    release = tuple(int(part) for part in os.uname().release.split(".")[:2])
    return release >= (6, 1) and "[never]" not in thp


def test_dense_anonymous_memory_is_backed_by_huge_pages_and_sparse_memory_is_left_alone() -> None:
    """What makes fork cheap for a worker holding torch, without adding memory."""
    probe = subprocess.run(
        [sys.executable, "-c", HUGE_PAGE_PROBE], capture_output=True, text=True, check=True
    )
    report = json.loads(probe.stdout)
    before, after = report["before"], report["after"]
    assert after["Anonymous"] - before["Anonymous"] < 2 << 20  # the sparse 32 MiB was not filled in
    if _collapse_available():
        assert report["collapsed"] >= 28 << 20
        assert after["AnonHugePages"] - before["AnonHugePages"] >= 28 << 20
    else:
        assert report["collapsed"] == 0


def test_a_note_that_interrupts_itself_gets_a_keyboard_interrupt(run_note: RunNote) -> None:
    """Python's own SIGINT handler, as in any interpreter, not the zygote's (Ctrl-C ends it)."""
    code = "import os, signal, time\ntry:\n    os.kill(os.getpid(), signal.SIGINT)\n    time.sleep(5)\n"
    result = run_note(fence(code + "except KeyboardInterrupt:\n    print('caught')"))
    assert result.blocks[0].facts is not None and result.blocks[0].facts.stdout == "caught\n"


def test_a_block_that_does_not_compile_fails_at_its_line_and_the_note_goes_on(run_note: RunNote) -> None:
    result = run_note(
        fence("x = 1")
        + fence("# SyntaxError: invalid syntax\ndef broken(:\n    pass")
        + fence("y = (\n")
        + fence("print(x + 1)")
    )
    assert outcomes(result) == ["passed", "passed", "failed", "passed"]
    documented, undocumented = result.blocks[1].facts, result.blocks[2].facts
    assert documented is not None and documented.exception is not None
    assert (documented.exception.type, documented.exception.line) == ("SyntaxError", 6)
    assert undocumented is not None and undocumented.exception is not None
    assert undocumented.exception.type == "SyntaxError" and undocumented.exception.line == 10
    assert result.blocks[3].facts is not None and result.blocks[3].facts.stdout == "2\n"


def test_notes_waiting_together_run_warm_and_side_by_side_and_a_lone_note_runs_cold(tmp_path: Path) -> None:
    """With several notes waiting, the worker warms up before the first (every note finds torch's
    lazy parts imported) and then runs them side by side; a lone note does not wait for that."""
    vault = tmp_path / "vault"
    vault.mkdir()
    code = (
        "import sys, time\nstarted = time.time()\ntime.sleep(0.3)\n"
        "print(started, time.time(), 'torch._dynamo' in sys.modules)"
    )
    for index in range(8):
        (vault / f"{index:02d}.md").write_text(fence(code))
    results = check_folder(vault, parallel=2)
    assert all(outcomes(result) == ["passed"] for result in results)
    runs = [result.blocks[0].facts.stdout.split() for result in results]
    assert [warm for *_, warm in runs] == ["True"] * 8
    spans = [(float(start), float(end)) for start, end, _ in runs]
    assert any(a[0] < b[1] and b[0] < a[1] for index, a in enumerate(spans) for b in spans[index + 1 :])
    alone = tmp_path / "alone"
    alone.mkdir()
    (alone / "only.md").write_text(fence(code))
    [result] = check_folder(alone, parallel=2)
    assert result.blocks[0].facts.stdout.split()[2] == "False"


def test_a_lone_surrogate_in_output_or_a_message_arrives_as_a_replacement_character(
    run_note: RunNote,
) -> None:
    code = 'print("\\ud800 out")\nraise ValueError("\\udcff in")  # ValueError: \ufffd in'
    result = run_note(callout("fail", code))
    [block] = result.blocks
    assert block.facts.state == "ran", block.facts.reason
    assert block.facts.stdout == "\ufffd out\n"
    assert block.facts.exception.message == "\ufffd in"
    assert block.verdict.outcome == "passed", block.verdict.message


def test_a_note_cannot_forge_results_or_stall_the_run_through_the_workers_descriptors(tmp_path: Path) -> None:
    forge = (
        "import os\n"
        'fake = \'\'.join(\'{"id": %d, "blocks": [{"state": "ran"}]}\\n\' % i for i in range(3000))\n'
        "for fd in range(3, 1020):\n"
        "    for line in (fake, 'not json\\n'):\n"
        "        try:\n"
        "            os.write(fd, line.encode())\n"
        "        except OSError:\n"
        "            pass\n"
        "raise ValueError('what really happened')"
    )
    (tmp_path / "a-forger.md").write_text(fence(forge))
    (tmp_path / "b-honest.md").write_text(fence("print(2)  # 2"))
    result = noteexec("check", "--no-cache", "--format", "json", tmp_path)  # times out if stalled
    notes = {Path(note["path"]).name: note for note in json.loads(result.stdout)["notes"]}
    [forged] = notes["a-forger.md"]["blocks"]
    assert forged["outcome"] == "failed" and "ValueError: what really happened" in forged["message"]
    assert notes["b-honest.md"]["status"] == "passed"


def _sleepers(under: int) -> list[int]:
    """``sleep 347`` processes descending from the process ``under`` (or orphaned from it)."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            if entry.isdigit() and Path(f"/proc/{entry}/cmdline").read_bytes() == b"sleep\0" + b"347\0":
                found.append(int(entry))
        except OSError:
            continue
    return [pid for pid in found if _descends(pid, under)]


def _descends(pid: int, ancestor: int) -> bool:
    """Whether ``pid`` is below ``ancestor``; an orphan (reparented to PID 1) counts, so a
    survivor is never missed."""
    chain = ancestors(pid)
    return ancestor in chain or 1 in chain


def test_an_interrupted_run_stops_its_notes_at_once_and_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    own_tmp = tmp_path / "tmp"  # the worker's folders go here: nothing else on the machine counts
    own_tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(own_tmp))
    vault = tmp_path / "vault"
    vault.mkdir()
    code = (
        "import subprocess, time\nsubprocess.Popen(['sleep', '347'], start_new_session=True)\ntime.sleep(347)"
    )
    run = NoteRun(path=str(vault / "n.md"), blocks=(BlockRun(1, code),), readonly=(str(vault),))
    interrupted = time.monotonic()
    with pytest.raises(KeyboardInterrupt), Sandbox(parallel=2, env_passthrough=("TMPDIR",)) as sandbox:
        for _ in range(3):  # one runs, one waits prepared, one is queued
            sandbox.submit(run)
        assert sandbox._process is not None
        worker = sandbox._process.pid
        deadline = time.monotonic() + 120
        while not _sleepers(under=worker) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _sleepers(under=worker)
        interrupted = time.monotonic()
        raise KeyboardInterrupt
    assert time.monotonic() - interrupted < 5
    assert list(own_tmp.iterdir()) == []
    assert _sleepers(under=worker) == []


def test_a_run_started_with_sigint_ignored_ignores_it_throughout(tmp_path: Path) -> None:
    """A background job of a script starts with SIGINT ignored: a Ctrl-C meant for the script's
    foreground part must not end the zygote (and so the run), nor the note."""
    vault = tmp_path / "vault"
    vault.mkdir()
    marker = str(uuid.uuid4().int % 10**8)
    (vault / "n.md").write_text(
        fence(f"import subprocess\nsubprocess.run(['sleep', '1.{marker}'])\nprint('slept')")
    )
    checker = subprocess.Popen(
        [sys.executable, "-m", "noteexec", "check", "--no-cache", "--format", "json", str(vault)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    deadline = time.monotonic() + 120
    while not processes_with(f"1.{marker}") and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(checker.pid, signal.SIGINT)
    stdout, stderr = checker.communicate(timeout=120)
    assert checker.returncode == 0, stderr.decode()
    [note] = json.loads(stdout)["notes"]
    assert note["blocks"][0]["stdout"] == "slept\n"
