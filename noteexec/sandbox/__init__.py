"""Run notes in isolated processes forked from one warm worker; get facts back.

This side runs in the caller's process and never imports torch: the worker does
(:mod:`noteexec.sandbox.worker`). Jobs and results cross the pipe as JSON lines only.
"""

from __future__ import annotations

import fnmatch
import json
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import IO

from noteexec.facts import NoteFacts

ENV_ALLOWLIST = (
    "PATH", "LANG", "LC_*", "TZ", "PYTHON*", "OMP_*", "MKL_*", "OPENBLAS_*", "TORCH_*", "CUDA_*",
)  # fmt: skip


@dataclass(frozen=True)
class BlockRun:
    """One block to execute: its fence line (for line numbers), its code, values to echo."""

    line: int
    code: str
    echo_lines: tuple[int, ...] = ()


@dataclass(frozen=True)
class NoteRun:
    """Everything the sandbox needs to run one note, and nothing it must judge."""

    path: str
    blocks: tuple[BlockRun, ...]
    setup: tuple[BlockRun, ...] = ()
    prelude: str = ""
    timeout: float = 60.0
    memory_limit: int | None = 4 << 30
    file_size_limit: int | None = 256 << 20
    readonly: tuple[str, ...] = ()
    namespaces: bool = True


def sandbox_environment(environ: dict[str, str], passthrough: Iterable[str] = ()) -> dict[str, str]:
    """The environment notes see: an allowlist, so secrets never reach them."""
    patterns = (*ENV_ALLOWLIST, *passthrough)
    return {
        name: value
        for name, value in environ.items()
        if any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)
    }


@dataclass
class Sandbox:
    """A warm worker process; ``run`` yields each note's facts as soon as it is known."""

    parallel: int = 1
    env_passthrough: tuple[str, ...] = ()
    _process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    _next_id: int = field(default=0, init=False, repr=False)
    _stderr: IO[bytes] | None = field(default=None, init=False, repr=False)

    def start(self) -> None:
        if self._process is not None:
            return
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close()
        env = sandbox_environment(dict(os.environ), self.env_passthrough)
        package_root = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
        self._process = subprocess.Popen(
            [sys.executable, "-m", "noteexec.sandbox.worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=env,
            cwd="/",
        )

    def run(self, runs: Sequence[NoteRun]) -> Iterator[tuple[int, NoteFacts]]:
        """Yield ``(index into runs, facts)`` in completion order."""
        if not runs:
            return
        self.start()
        process = self._process
        assert process is not None and process.stdin is not None and process.stdout is not None
        first_id = self._next_id
        self._next_id += len(runs)
        pending = set(range(len(runs)))

        def submit() -> None:
            try:
                assert process.stdin is not None
                process.stdin.write(json.dumps({"parallel": self.parallel}).encode() + b"\n")
                for index, run in enumerate(runs):
                    job = {**asdict(run), "id": first_id + index, "threads": self._threads()}
                    process.stdin.write(json.dumps(job).encode() + b"\n")
                process.stdin.flush()
            except OSError:
                pass  # the worker died; the reader below reports every note it did not finish

        writer = threading.Thread(target=submit, daemon=True)
        writer.start()
        while pending:
            line = process.stdout.readline()
            if not line:
                break
            data = json.loads(line)
            index = data["id"] - first_id
            if index not in pending:
                continue
            pending.discard(index)
            if "supervisor_failed" in data:
                yield index, NoteFacts.lost(len(runs[index].blocks), data["supervisor_failed"])
            else:
                yield index, NoteFacts.from_json(data)
        writer.join()
        if pending:
            reason = self._death_reason()
            self.close()
            for index in sorted(pending):
                yield index, NoteFacts.lost(len(runs[index].blocks), reason)

    def _death_reason(self) -> str:
        """The worker's last words (stderr), so a broken install is visible, not a mystery."""
        tail = ""
        if self._stderr is not None:
            self._stderr.seek(0)
            lines = self._stderr.read().decode("utf-8", "replace").strip().splitlines()
            tail = lines[-1] if lines else ""
        return "the sandbox worker died" + (f": {tail}" if tail else "")

    def _threads(self) -> int:
        return max(1, (os.cpu_count() or 1) // self.parallel)

    def close(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        try:
            if process.stdin is not None:
                process.stdin.close()
        except OSError:
            pass
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
