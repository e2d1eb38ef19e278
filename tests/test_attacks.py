"""The trust boundary, attacked from notes: as root, as an ordinary user, and without namespaces.

Each vault holds the attacking note and an honest note whose verdict is "failed" (it documents
a wrong value): an attack that forged verdicts, killed the worker or stalled the run would
change that. The CLI runs as a subprocess, with a secret in its environment.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.conftest import ancestors, as_nobody, fence, parent_of, processes_named, processes_with

SECRET = f"noteexec-secret-{uuid.uuid4().hex}"
HONEST = fence("print(2 + 2)  # 5")

ATTACKS = {
    "secrets": """
import os, glob
found = [v for v in os.environ.values() if 'noteexec-secret' in v]
for path in glob.glob('/proc/*/environ'):
    try:
        data = open(path, 'rb').read().decode('latin-1')
    except OSError:
        continue
    if 'noteexec-secret' in data:
        found.append(path)
print('FOUND' if found else 'none', found)
""",
    "forge": """
import os, glob, json
line = json.dumps({"id": 1, "blocks": [{"state": "ran"}]}) + '\\n'
ancestors, pid = [], os.getppid()
while pid > 1:  # the checker's own processes only: other processes' files are not this test's
    try:
        if b'noteexec' not in open(f'/proc/{pid}/cmdline', 'rb').read():
            break
        ancestors.append(pid)
        pid = int(open(f'/proc/{pid}/stat').read().rsplit(')', 1)[1].split()[1])
    except OSError:
        break
targets = [f for pid in ancestors for f in glob.glob(f'/proc/{pid}/fd/*')]
for fd in range(3, 1024):
    try:
        os.write(fd, (line * 50).encode())
    except OSError:
        pass
for path in targets:
    try:
        with open(path, 'w') as handle:
            handle.write(line * 50)
    except OSError:
        pass
raise ValueError('what really happened')
""",
    "survivors": """
import ctypes, os, subprocess
subprocess.Popen(['sh', '-c', 'setsid sh -c "setsid sleep MARKER &" &'])
libc = ctypes.CDLL(None, use_errno=True)
pid = libc.syscall(56, 0x00008000 | 17, 0, 0, 0, 0)  # clone(CLONE_PARENT | SIGCHLD)
if pid == 0:
    os.execvp('sleep', ['sleep', 'MARKER'])
raise RuntimeError(f'sibling {pid} {ctypes.get_errno()}')
""",
    "pid1": """
import ctypes, os, signal, time
libc = ctypes.CDLL(None, use_errno=True)
reached = []
for name in ('environ', 'mem', 'maps', 'auxv', 'stack', 'syscall', 'fd', 'fdinfo', 'root', 'cwd', 'map_files'):
    path = f'/proc/1/{name}'
    try:
        if os.path.isdir(path):
            os.listdir(path)
        else:
            open(path, 'rb').read(1)
        reached.append(name)
    except OSError:
        pass
pidfd = os.pidfd_open(1)
if any(libc.syscall(438, pidfd, fd, 0) >= 0 for fd in range(64)):  # pidfd_getfd
    reached.append('getfd')
for number in (signal.SIGSTOP, signal.SIGTERM, signal.SIGKILL):
    try:
        os.kill(1, number)
    except OSError:
        continue
    time.sleep(0.05)
    if open('/proc/1/stat').read().rsplit(')', 1)[1].split()[0] not in 'S':
        reached.append(signal.Signals(number).name)
print(reached)
""",
    "root": """
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
results = {}
results['remount'] = libc.mount(None, VAULT.encode(), None, 32 | 1 << 5, None)  # MS_REMOUNT
results['mount'] = libc.mount(b'none', b'/tmp', b'tmpfs', 0, None)
results['ptrace'] = libc.ptrace(16, 1, 0, 0)
results['setns'] = libc.setns(os.open('/proc/self/ns/net', os.O_RDONLY), 0)
results['unshare'] = libc.unshare(0x10000000)
try:
    open(VAULT + '/written', 'w').close()
    results['vault'] = 0
except OSError:
    results['vault'] = -1
try:
    open('/proc/1/mem', 'r+b').close()
    results['mem'] = 0
except OSError:
    results['mem'] = -1
print(sorted(name for name, code in results.items() if code == 0))
""",
    "terminal": """
import glob, os
for path in glob.glob(f'/proc/{os.getppid()}/fd/[12]') + glob.glob('/proc/1/fd/[12]'):
    try:
        with open(path, 'w') as handle:
            handle.write('\\x1b]0;pwned\\x07\\x1b[2J')
    except OSError:
        pass
""",
    "network": """
import socket
reached = []
for family, address in ((socket.AF_INET, ('127.0.0.1', PORTNUMBER)), (socket.AF_UNIX, ABSTRACTNAME)):
    try:
        with socket.socket(family, socket.SOCK_STREAM) as connection:
            connection.settimeout(5)
            connection.connect(address)
            reached.append(family.name)
    except OSError:
        pass
try:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as datagrams:
        datagrams.sendto(b'out', ('127.0.0.1', DATAGRAMPORT))
        reached.append('UDP')
except OSError:
    pass
print(reached)
""",
    "files": """
readable = []
for path in ('/etc/shadow', OUTSIDE, VAULT + '/.env'):
    try:
        open(path, 'rb').read(1)
        readable.append(path)
    except OSError:
        pass
print(readable)
""",
    "owner": """
import os
path, changed = VAULT + '/b-honest.md', []  # the checker's file: as root, uid 0's
for name, change in (('chmod', lambda: os.chmod(path, 0o4777)), ('utime', lambda: os.utime(path, (0, 0))),
                     ('xattr', lambda: os.setxattr(path, 'user.noteexec', b'1'))):
    try:
        change()
        changed.append(name)
    except OSError:
        pass
print(changed)
""",
    "ipc": """
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
held = []
try:
    os.memfd_create('hold')
    held.append('memfd')
except OSError:
    pass
if libc.shmget(0, 1 << 20, 0o1600) != -1:  # IPC_PRIVATE, IPC_CREAT | 0600
    held.append('shm')
if libc.msgget(0, 0o1600) != -1:
    held.append('msg')
print(held)
""",
    "timeout": """
import json, os, time
for _ in range(90):  # say block 0 started again, to restart its timeout, past the run's 30 s
    os.write(1021, (json.dumps({"event": "start", "index": 0}) + '\\n').encode())
    time.sleep(1)
""",
    "exit": """
import json, os, subprocess
subprocess.Popen(['sleep', 'MARKER'])
os.write(1021, (json.dumps({"event": "exit", "status": 0}) + '\\n').encode())  # PID 1's report, forged
while True:
    pass
""",
    "kill": """
import os, signal
targets, pid = {1}, os.getppid()
while pid > 1:  # the checker's processes above the note (none is visible from its namespace)
    try:
        if b'noteexec' in open(f'/proc/{pid}/cmdline', 'rb').read():
            targets.add(pid)
        pid = int(open(f'/proc/{pid}/stat').read().rsplit(')', 1)[1].split()[1])
    except OSError:
        break
for pid in sorted(targets - {os.getpid()}):  # its own PID 1 among them
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass
print('still here')
""",
}


READ_OWN_MEMORY = """
import ctypes
first, rest = b'print(2 ', b'+ 2)'  # the honest note's code, never whole in this one's
found = 0
with open('/proc/self/maps') as maps:
    regions = [line.split() for line in maps]
for fields in regions:  # its own memory, read directly: all a copy of its parent's holds
    if not fields[1].startswith('rw') or (len(fields) > 5 and fields[5] != '[heap]'):
        continue
    start, end = (int(bound, 16) for bound in fields[0].split('-'))
    data = ctypes.string_at(start, end - start)
    at = data.find(first)
    while at != -1:
        found += data[at + len(first) : at + len(first) + len(rest)] == rest
        at = data.find(first, at + 1)
print(found)
"""
"""Counts copies of the honest note's code in the note's own memory (its process is a copy of
the process it was forked from)."""


def run_attack(tmp_path: Path, name: str, user: str, *options: str) -> tuple[dict[str, dict], str, str]:
    """Check a vault holding the attack and the honest note; the JSON report by note, stdout, stderr."""
    vault = tmp_path / "vault"
    vault.mkdir()
    shown_vault = str(vault) if user == "root" else "/mnt/vault"
    with contextlib.ExitStack() as listening:
        tcp = listening.enter_context(socket.create_server(("127.0.0.1", 0)))  # a service of the host
        abstract = listening.enter_context(socket.socket(socket.AF_UNIX, socket.SOCK_STREAM))
        abstract_name = f"\0noteexec-test-{uuid.uuid4().hex}"
        abstract.bind(abstract_name)
        abstract.listen()
        port = tcp.getsockname()[1]
        udp = listening.enter_context(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
        udp.bind(("127.0.0.1", 0))  # a port of its own: another test's TCP port may be taken for UDP
        outside = tmp_path / "outside" / "outside.txt"  # beside the vault, readable by everyone
        outside.parent.mkdir()
        outside.write_text(SECRET)
        binds = {vault: "/mnt/vault", outside.parent: "/mnt/outside"}
        shown_outside = str(outside) if user == "root" else "/mnt/outside/outside.txt"
        if user == "root":  # in the checked folder, root's alone (a note left as uid 0 owns it)
            dotenv = vault / ".env"
            dotenv.write_text(SECRET)
            dotenv.chmod(0o600)
        code = (
            ATTACKS[name].replace("MARKER", MARKER).replace("VAULT", repr(shown_vault))
            .replace("PORTNUMBER", str(port)).replace("ABSTRACTNAME", repr(abstract_name))
            .replace("DATAGRAMPORT", str(udp.getsockname()[1]))
            .replace("OUTSIDE", repr(shown_outside))
        )  # fmt: skip
        found = _check_attack(tmp_path, vault, code, user, options, binds)
        udp.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            pytest.fail(f"a datagram from the note reached the host: {udp.recv(16)!r}")
        return found


def _check_attack(
    tmp_path: Path,
    vault: Path,
    code: str,
    user: str,
    options: tuple[str, ...],
    binds: dict[Path, str] | None = None,
) -> tuple[dict[str, dict], str, str]:
    (vault / "a-attack.md").write_text(fence(code))
    (vault / "b-honest.md").write_text(HONEST)
    arguments = ["check", "--no-cache", "--format", "json", "--timeout", "30", *options]
    env = {
        **os.environ,
        "NOTEEXEC_TEST_TOKEN": SECRET,
        "NOTEEXEC_CACHE_SECRET": SECRET,
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    python = [sys.executable, "-m", "noteexec"]
    if user == "root":
        command = [*python, *arguments, str(vault)]
    else:
        command = as_nobody([*python, *arguments, "/mnt/vault"], tmp_path, binds or {vault: "/mnt/vault"})
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path)
    assert result.returncode in (0, 1), result.stderr
    notes = {Path(note["path"]).name: note for note in json.loads(result.stdout)["notes"]}
    return notes, result.stdout, result.stderr


MARKER = str(4000 + uuid.uuid4().int % 1000)


def _survivors() -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        try:
            if (
                entry.isdigit()
                and Path(f"/proc/{entry}/cmdline").read_bytes() == f"sleep\0{MARKER}\0".encode()
            ):
                found.append(int(entry))
        except OSError:
            continue
    return found


def _honest_is_intact(notes: dict[str, dict]) -> None:
    honest = notes["b-honest.md"]
    assert honest["status"] == "failed", honest
    assert honest["blocks"][0]["stdout"] == "4\n"


@pytest.fixture(params=["root", "nobody"])
def user(request: pytest.FixtureRequest) -> str:
    if os.geteuid() != 0:
        pytest.fail("these attacks are run as root (and, through setpriv, as nobody): run the tests as root")
    return str(request.param)


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_an_attack_from_a_note_fails_and_other_verdicts_stand(tmp_path: Path, user: str, name: str) -> None:
    notes, stdout, stderr = run_attack(tmp_path, name, user)
    _honest_is_intact(notes)
    attack = notes["a-attack.md"]["blocks"][0]
    assert attack["outcome"] in ("passed", "failed")
    assert SECRET not in stdout and SECRET not in stderr
    assert "\x1b" not in stdout and "\x1b" not in stderr
    assert "WARNING" not in stderr  # the full sandbox was in force
    assert json.loads(stdout)["summary"]["isolation"] == "full"
    if name == "secrets":
        assert attack["stdout"].startswith("none"), attack["stdout"]
    elif name == "forge":
        assert attack["outcome"] == "failed"  # its own channel garbled, or its own error: never passed
    elif name == "survivors":
        assert "sibling -1 1" in attack["message"]  # EPERM from the system-call filter
        assert _survivors() == []
    elif name == "pid1":
        assert attack["stdout"] == "[]\n", attack["stdout"]  # its memory, descriptors and signals
    elif name == "root":
        assert attack["stdout"] == "[]\n", attack["stdout"]
        assert not (tmp_path / "vault" / "written").exists()
    elif name == "kill":
        assert attack["stdout"] == "still here\n"
    elif name == "network":
        assert attack["stdout"] == "[]\n", attack["stdout"]  # neither the host's TCP nor its abstract sockets
    elif name in ("files", "ipc", "owner"):
        assert attack["stdout"] == "[]\n", attack["stdout"]
    elif name == "timeout":
        assert "a block started out of order" in attack["message"]
    elif name == "exit":
        assert attack["outcome"] == "failed" and _survivors() == []


def test_a_note_finds_no_other_notes_code_in_its_own_memory(tmp_path: Path, user: str) -> None:
    """The honest note comes first, so its job has reached the worker before the reader is
    forked; the reader's process is a copy of the zygote, which never holds a job (a copy of
    the worker held every job it had been sent)."""
    vault = tmp_path / "vault"
    vault.mkdir()
    (vault / "a-honest.md").write_text(HONEST)
    (vault / "b-reader.md").write_text(fence(READ_OWN_MEMORY))
    command = [sys.executable, "-m", "noteexec", "check", "--no-cache", "--format", "json", "--jobs", "1"]
    if user == "root":
        command.append(str(vault))
    else:
        command = as_nobody([*command, "/mnt/vault"], tmp_path, {vault: "/mnt/vault"})
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    notes = {Path(note["path"]).name: note for note in json.loads(result.stdout)["notes"]}
    _honest_is_intact({"b-honest.md": notes["a-honest.md"]})
    reader = notes["b-reader.md"]["blocks"][0]
    assert reader["outcome"] == "passed" and reader["stdout"] == "0\n", reader


@pytest.mark.parametrize("namespaces", [True, False], ids=["namespaces", "fallback"])
def test_a_note_that_clears_its_parent_death_signal_does_not_outlive_a_dead_worker(
    tmp_path: Path, user: str, namespaces: bool
) -> None:
    """The worker dies (the OOM killer) while a note runs that cleared its own parent-death
    signal and left a child in a session of its own: neither survives it. (Without namespaces
    and without a cgroup, as nobody here, the child in its own session may: SECURITY.md says so.)"""
    vault = tmp_path / "vault"
    vault.mkdir()
    name = f"nx{MARKER}"
    code = (
        "import ctypes, subprocess\n"
        "libc = ctypes.CDLL(None)\n"
        f"print(libc.prctl(1, 0, 0, 0, 0), libc.prctl(15, b'{name}', 0, 0, 0))\n"
        f"subprocess.Popen(['sleep', '{MARKER}'], start_new_session=True)\n"
        "while True:\n    pass\n"
    )
    (vault / "a.md").write_text(fence(code))
    arguments = ["check", "--no-cache", "--format", "json", "--timeout", "300"]
    arguments += [] if namespaces else ["--no-namespaces"]
    python = [sys.executable, "-m", "noteexec"]
    command = [*python, *arguments, str(vault)]
    if user == "nobody":
        command = as_nobody([*python, *arguments, "/mnt/vault"], tmp_path, {vault: "/mnt/vault"})
    checker = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path)
    deadline = time.monotonic() + 120
    while not _survivors() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _survivors(), "the note never started its child"
    workers = [pid for pid in processes_with("noteexec.sandbox.worker") if checker.pid in ancestors(pid)]
    top = [pid for pid in workers if parent_of(pid) not in workers]
    assert len(top) == 1, workers
    os.kill(top[0], 9)
    stdout, _ = checker.communicate(timeout=120)
    assert "the sandbox worker died" in stdout.decode()
    child_taken_along = namespaces or user == "root"
    deadline = time.monotonic() + 10
    while (processes_named(name) or (child_taken_along and _survivors())) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert processes_named(name) == []  # the filter kept its parent-death signal
    if child_taken_along:
        assert _survivors() == []
    for pid in _survivors():
        os.kill(pid, 9)


FLOOD = """
import os
head = '{"event": "block", "index": %d, "facts": {"exception": null, "warnings": [], "stdout": "", "stdout_by_line": ['
tail = ('[0, ""]], "stderr": "", "truncated": false, "duration": 0, "exit": null, "gradients": [], '
        '"leaves_without_grad": [], "backward_calls": 0, "graphs": []}}\\n')
chunk = ('[0, ""], ' * 10_000).encode()
for index in range(5):  # complete, well-formed results of 1.2 million tiny values, for blocks to come
    if index:
        os.write(1021, b'{"event": "start", "index": %d}\\n' % index)
    os.write(1021, (head % index).encode())
    for _ in range(120):
        os.write(1021, chunk)
    os.write(1021, tail.encode())
"""
MAXRSS = (
    "import resource, subprocess, sys\n"
    "code = subprocess.run(sys.argv[1:]).returncode\n"
    "print('maxrss', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)\n"
    "sys.exit(code)\n"
)


def test_a_note_that_floods_its_channel_costs_the_worker_and_the_checker_little_memory(
    tmp_path: Path, user: str
) -> None:
    """Forged results of millions of tiny values, under a 32 MiB cap, once made the worker and
    the checker (outside every cap) hold gigabytes: now the note's channel breaks at its budget.
    The largest process of the run (``ru_maxrss``: the worker, the checker, a note) stays near
    what the worker holds with torch imported."""
    vault = tmp_path / "vault"
    vault.mkdir()
    (vault / "a-attack.md").write_text("".join(fence(code) for code in (FLOOD, "1", "2", "3", "4")))
    (vault / "b-honest.md").write_text(HONEST)
    shown = str(vault) if user == "root" else "/mnt/vault"
    arguments = ["check", "--no-cache", "--format", "json", "--memory-limit", "32MiB", "-j", "1", shown]
    command = [sys.executable, "-c", MAXRSS, sys.executable, "-m", "noteexec", *arguments]
    if user == "nobody":
        command = as_nobody(command, tmp_path, {vault: "/mnt/vault"})
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    notes = {Path(note["path"]).name: note for note in json.loads(result.stdout)["notes"]}
    _honest_is_intact(notes)
    flooded = notes["a-attack.md"]["blocks"][0]
    assert flooded["outcome"] == "failed" and "values in its results" in flooded["message"], flooded
    assert all(block["outcome"] == "failed" for block in notes["a-attack.md"]["blocks"][1:])  # never ran
    peak_kib = int(result.stderr.rsplit("maxrss ", 1)[1])
    assert peak_kib < 700 << 10, peak_kib  # 0.45 GB; before, 1.07 GB here and 2-5 GB with more blocks


@pytest.mark.parametrize("namespaces", [True, False], ids=["namespaces", "fallback"])
def test_the_process_cap_holds_with_or_without_a_cgroup(tmp_path: Path, user: str, namespaces: bool) -> None:
    """``--processes 16``: as root a cgroup's ``pids.max`` holds it; as nobody (who may create
    no cgroup here) ``RLIMIT_NPROC``, in the note's own user namespace or, without one, on top
    of what nobody runs. Root without namespaces (the kernel exempts uid 0 from the rlimit) has
    the cgroup."""
    code = (
        "import subprocess, threading, time\n"
        "started = []\n"
        "for _ in range(40):\n"
        "    try:\n"
        "        thread = threading.Thread(target=time.sleep, args=(3,))\n"
        "        thread.start()\n"
        "        started.append(thread)\n"
        "    except RuntimeError:\n"
        "        break\n"
        "try:\n"
        "    subprocess.run(['true'])\n"
        "    spawned = True\n"
        "except OSError:\n"
        "    spawned = False\n"
        "print(len(started), spawned)\n"
    )
    options = ("--processes", "16", "-j", "1") + (() if namespaces else ("--no-namespaces",))
    notes, _, _ = _check_attack(tmp_path, _vault(tmp_path), code, user, options)
    _honest_is_intact(notes)
    assert notes["a-attack.md"]["isolation"]["namespaces"] is namespaces
    started, spawned = notes["a-attack.md"]["blocks"][0]["stdout"].split()
    assert 10 <= int(started) < 16 and spawned == "False", (started, spawned)


def _vault(tmp_path: Path) -> Path:
    vault = tmp_path / "vault"
    vault.mkdir()
    return vault


def test_the_tree_shares_one_memory_cap_and_the_disk_is_capped(tmp_path: Path) -> None:
    """Four children of 400 MiB each under a 1 GiB cap: the tree is killed, not the machine;
    /tmp is a tmpfs of tmp_size."""
    vault = tmp_path / "vault"
    vault.mkdir()
    hog = (
        "import subprocess, sys\n"
        "code = 'b = bytearray(400 << 20)\\nimport time\\ntime.sleep(5)'\n"
        "children = [subprocess.Popen([sys.executable, '-c', code]) for _ in range(4)]\n"
        "codes = [child.wait() for child in children]\n"
        "print(codes)\n"
    )
    disk = "try:\n    open('/tmp/big', 'wb').write(bytes(100 << 20))\nexcept OSError as error:\n    print(error.errno)"
    (vault / "a-hog.md").write_text(fence(hog))
    (vault / "b-disk.md").write_text(fence(disk))
    result = subprocess.run(
        [sys.executable, "-m", "noteexec", "check", "--no-cache", "--format", "json",
         "--memory-limit", "1GiB", "--tmp-size", "64MiB", str(vault)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    notes = {Path(note["path"]).name: note for note in json.loads(result.stdout)["notes"]}
    hogged = notes["a-hog.md"]["blocks"][0]
    codes = hogged["stdout"]
    assert "-9" in codes or "out of memory" in hogged["message"], hogged
    assert notes["b-disk.md"]["blocks"][0]["stdout"] == "28\n", notes["b-disk.md"]  # ENOSPC


def test_without_namespaces_secrets_results_the_terminal_and_the_vault_stay_out_of_reach(
    tmp_path: Path, user: str
) -> None:
    """The fallback (``--no-namespaces``): a checker that is not dumpable, a filtered
    environment, a subreaper, the system-call filter and Landlock (files, TCP, abstract sockets,
    signals) still hold these; the run says loudly what is missing."""
    for name in ("secrets", "forge", "terminal", "survivors", "root", "kill", "network", "timeout", "exit",
                 "files", "ipc", "owner"):  # fmt: skip
        folder = tmp_path / name
        folder.mkdir()
        notes, stdout, stderr = run_attack(folder, name, user, "--no-namespaces")
        _honest_is_intact(notes)
        assert SECRET not in stdout and "\x1b" not in stdout and "\x1b" not in stderr
        assert "WARNING: 2 of 2 notes ran without part of the sandbox" in stderr
        assert "Landlock" not in stderr  # it was in force: only the namespaces are missing
        attack = notes["a-attack.md"]["blocks"][0]
        if name == "secrets":
            assert attack["stdout"].startswith("none"), attack["stdout"]
        elif name == "survivors":
            assert "sibling -1 1" in attack["message"]
            assert _survivors() == []
        elif name == "root":
            assert attack["stdout"] == "[]\n", attack["stdout"]
            assert not (folder / "vault" / "written").exists()
        elif name == "kill":
            # Its own subreaper, in its Landlock domain, it may kill, and then dies with it (its
            # parent-death signal); the worker and the checker, outside the domain, it may not.
            assert attack["stdout"] == "still here\n" or "process killed by" in attack["message"]
            assert "the sandbox worker died" not in attack["message"], attack["message"]
        elif name in ("network", "files", "ipc", "owner"):  # the datagram: no socket but a Unix one
            assert attack["stdout"] == "[]\n", attack["stdout"]
        elif name == "timeout":
            assert "a block started out of order" in attack["message"]
        elif name == "exit":
            assert attack["outcome"] == "failed" and _survivors() == []


def test_strict_isolation_refuses_to_run_without_the_full_sandbox(tmp_path: Path) -> None:
    vault = tmp_path / "vault"
    vault.mkdir()
    ran = tmp_path / "ran"
    (vault / "note.md").write_text(fence(f"open({str(ran)!r}, 'w').close()"))
    result = subprocess.run(
        [sys.executable, "-m", "noteexec", "check", "--no-cache", "--isolation", "strict", "--no-namespaces",
         str(vault)], capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 2
    assert "error" in result.stderr and "strict" in result.stderr
    assert not ran.exists()
