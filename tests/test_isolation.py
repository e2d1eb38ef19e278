"""The raw ``clone`` that forks a note's PID 1 straight into its namespaces.

Each case runs in a Python of its own: the clone must come from a process that owns its threads.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )


def test_the_child_is_pid_1_of_a_new_namespace_and_forks_whole_children() -> None:
    ran = _python("""
        import os
        from noteexec.sandbox.isolation import fork_into_namespaces

        own = os.readlink("/proc/self/ns/pid")
        pid = fork_into_namespaces()
        if pid == 0:
            child = os.fork()  # glibc's own fork: the grandchild is a whole process
            if child == 0:
                os._exit(40 + os.getpid())
            _, status = os.waitpid(child, 0)
            os._exit(os.waitstatus_to_exitcode(status) if os.getpid() == 1 else 1)
        _, status = os.waitpid(pid, 0)
        print(os.waitstatus_to_exitcode(status), own == os.readlink("/proc/self/ns/pid"))
    """)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.split() == ["42", "True"]  # PID 1 saw its child as PID 2


def test_a_process_with_another_thread_is_refused_not_cloned() -> None:
    """Without glibc's fork handlers, a library's thread would look alive in the child (OpenBLAS
    then waits forever for it at the child's next fork)."""
    ran = _python("""
        import threading, time
        from noteexec.sandbox.isolation import fork_into_namespaces

        threading.Thread(target=time.sleep, args=(5,), daemon=True).start()
        try:
            fork_into_namespaces()
        except OSError as error:
            print("refused:", error)
    """)
    assert ran.returncode == 0, ran.stderr
    assert "refused: [Errno 16] clone: the worker runs 2 threads" in ran.stdout


def test_a_fork_stops_the_threads_libraries_start_at_import() -> None:
    """torch imports numpy, whose OpenBLAS starts a thread per core; the worker forks once so
    that its fork handler stops them before any clone."""
    ran = _python("""
        import os

        import torch.nn.functional
        from noteexec.sandbox.isolation import stop_library_threads

        print(stop_library_threads(), len(os.listdir("/proc/self/task")))
    """)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.split() == ["1", "1"]


def test_the_world_never_shows_the_hosts_root_or_tmp_whole() -> None:
    """A note's /tmp is its own tmpfs: a checked folder that is /tmp (or /) is not shown, which
    would have put the host's /tmp, writable, in its place; a folder below /tmp is."""
    from noteexec.sandbox.isolation import shown_paths

    shown = shown_paths(["/tmp", "/tmp/", "/", "/tmp/vault"])
    assert "/tmp" not in shown and "/tmp/" not in shown and "/" not in shown
    assert "/tmp/vault" in shown
