"""noteexec benchmarks: one script, one table, every ratio against a baseline measured in the same run.

    python bench/run.py                # everything
    python bench/run.py --only core    # a section: core, scale, site
    python bench/run.py --only scale --sizes 200,1000 --repeat 6   # fewer vault sizes

pytest-markdown-docs, the baseline of the scale section, gets a virtual environment of its own,
made from the interpreter that runs the bench, with exactly the torch and numpy this one has
(``torch==2.13.0+cpu``, constraints.txt's CPU build); ``--markdown-docs-python`` reuses one made earlier.

Vaults are generated from the bundled ``notes/`` into a temporary folder.
"""

from __future__ import annotations

import argparse
import compileall
import ctypes
import itertools
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from importlib.metadata import version
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
NOTES = REPO / "notes"
SEED = NOTES / "autograd-计算图与梯度.md"
PYTHON = sys.executable

Row = tuple[str, str, str, str]  # what, value, baseline, ratio / target


def wall(command: Sequence[str | Path], cwd: Path = REPO, env: dict[str, str] | None = None) -> float:
    started = time.perf_counter()
    completed = subprocess.run(
        [str(part) for part in command], cwd=cwd, env=env, capture_output=True, text=True
    )
    elapsed = time.perf_counter() - started
    _check_exit(command, completed.returncode, completed.stdout + completed.stderr)
    return elapsed


def _check_exit(command: Sequence[str | Path], returncode: int, output: str = "") -> None:
    """Every bundled note passes, so noteexec must exit 0: a run whose worker died at once (a
    missing module, a broken sandbox) fails every block in no time, and its timing means nothing.
    pytest-markdown-docs exits 1, as the failure examples raise by design."""
    accepted = (0,) if [str(part) for part in command[1:3]] == ["-m", "noteexec"] else (0, 1)
    if returncode not in accepted:
        raise SystemExit(f"benchmark command failed ({returncode}): {command}\n{output[-2000:]}")


def median_wall(command: Sequence[str | Path], repeat: int, **kwargs: object) -> float:
    return statistics.median(wall(command, **kwargs) for _ in range(repeat))  # type: ignore[arg-type]


def alternating_walls(commands: Sequence[Sequence[str | Path]], repeat: int) -> list[float]:
    """Median wall time of each command, run in turns (a b a b ...) so drift weighs on all alike."""
    runs: list[list[float]] = [[] for _ in commands]
    for _ in range(repeat):
        for command, times in zip(commands, runs, strict=True):
            times.append(wall(command))
    return [statistics.median(times) for times in runs]


def note_intervals(command: Sequence[str | Path]) -> list[float]:
    """Time between consecutive notes' result lines: the cost of each additional note.

    With ``--jobs 1`` notes finish in file order and each is reported the moment it finishes.
    """
    process = subprocess.Popen([str(part) for part in command], cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    stamps = [time.perf_counter() for line in process.stdout if line.startswith(("PASS", "FAIL", "ERROR"))]
    _check_exit(command, process.wait())
    return [later - earlier for earlier, later in itertools.pairwise(stamps)]


def make_vault(size: int, into: Path) -> Path:
    """``size`` notes cycling through the bundled lessons (the index note left out).

    Each copy ends with a block of its own: identical copies would share one cached run, so a
    cold run of noteexec would execute each lesson only once, and the comparison would be unfair.
    """
    lessons = sorted(path for path in NOTES.glob("*.md") if path.name != "README.md")
    vault = into / f"vault-{size}"
    vault.mkdir()
    for index in range(size):
        source = lessons[index % len(lessons)]
        text = source.read_text(encoding="utf-8") + f"\n```python\ncopy_number = {index}\n```\n"
        (vault / f"{index:04d}-{source.name}").write_text(text, encoding="utf-8")
    return vault


def noteexec(*arguments: str | Path) -> list[str | Path]:
    return [PYTHON, "-m", "noteexec", *arguments]


def core(workdir: Path, repeat: int, options: argparse.Namespace) -> list[Row]:
    """Issue 2: cold check of the seed note vs importing torch; per-note overhead."""
    rows: list[Row] = []
    seed_only = workdir / "seed"
    seed_only.mkdir()
    shutil.copy(SEED, seed_only / SEED.name)
    import_torch, cold = alternating_walls(
        [[PYTHON, "-c", "import torch"], noteexec("check", "--no-cache", seed_only / SEED.name)], repeat
    )
    rows.append(
        (
            "cold `noteexec check` of the seed note",
            f"{cold:.3f} s",
            f"import torch {import_torch:.3f} s",
            f"{cold / import_torch:.2f}x (target <= 1.2x); {repeat} alternating runs",
        )
    )
    vault = make_vault(200, workdir)
    gaps, later_gaps = [], []
    for _ in range(repeat):
        run_gaps = note_intervals(noteexec("check", "--no-cache", "--jobs", "1", vault))
        gaps.extend(run_gaps)
        later_gaps.extend(run_gaps[len(run_gaps) // 2 :])  # by then the zygote is mostly on 2 MiB pages
    rows.append(
        (
            "per additional note, 200-note vault, --jobs 1",
            f"{statistics.median(gaps) * 1000:.1f} ms median",
            f"mean {statistics.mean(gaps) * 1000:.1f} ms (with one-time lazy imports); "
            f"second half of each run {statistics.median(later_gaps) * 1000:.1f} ms median",
            f"target <= 20 ms median; {len(gaps)} intervals",
        )
    )
    jobs = os.cpu_count() or 1
    rounds = max(1, repeat // 2)
    parallel = median_wall(noteexec("check", "--no-cache", "--jobs", str(jobs), vault), rounds)
    serial = median_wall(noteexec("check", "--no-cache", "--jobs", "1", vault), rounds)
    rows.append(
        (
            f"200-note vault, --jobs {jobs}",
            f"{parallel:.2f} s",
            f"--jobs 1 {serial:.2f} s",
            f"{serial / parallel:.2f}x faster",
        )
    )
    return rows


MARKDOWN_DOCS_CONFTEST = """
import torch
import torch.nn as nn
import torch.nn.functional as F


def pytest_markdown_docs_globals():
    return {"torch": torch, "nn": nn, "F": F}
"""


MARKDOWN_DOCS = "pytest-markdown-docs==0.9.2"  # wants markdown-it-py < 4: not noteexec's constraints.txt


def markdown_docs_python(workdir: Path) -> Path:
    """A virtual environment of its own with pytest-markdown-docs and the very torch noteexec runs here.

    Made from the interpreter that runs the bench and isolated from every other site-packages: with
    ``--system-site-packages`` it saw only the base interpreter's packages, which have no torch when
    noteexec lives in a virtual environment. torch and numpy are pinned to the versions installed
    here, local part included (``torch==2.13.0+cpu``, constraints.txt's CPU build; pip takes it from
    its cache or a local wheel): an unpinned torch would pull several GB of CUDA.
    """
    environment = workdir / "markdown-docs-venv"
    subprocess.run([PYTHON, "-m", "venv", environment], check=True)
    python = environment / "bin" / "python"
    pins = [f"{name}=={version(name)}" for name in ("torch", "numpy")]
    installed = subprocess.run(
        [python, "-m", "pip", "install", "-q", MARKDOWN_DOCS, *pins], capture_output=True, text=True
    )
    if installed.returncode != 0:
        raise SystemExit(f"could not install {MARKDOWN_DOCS} {' '.join(pins)}:\n{installed.stderr[-2000:]}")
    return python


def tree_peak_pss(command: Sequence[str | Path], cwd: Path = REPO) -> tuple[float, int]:
    """Wall time and peak PSS (bytes) of a command's whole process tree, sampled every 50 ms.

    PSS counts a page shared by n processes as 1/n of it, so pages shared after fork count once.
    """
    started = time.perf_counter()
    process = subprocess.Popen([str(part) for part in command], cwd=cwd, stdout=subprocess.DEVNULL)
    peak = 0
    while process.poll() is None:
        peak = max(peak, sum(_pss(pid) for pid in _one_per_address_space(_tree(process.pid))))
        time.sleep(0.05)
    elapsed = time.perf_counter() - started
    _check_exit(command, process.returncode)
    return elapsed, peak


def _tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_bytes().rsplit(b")", 1)[1].split()
            except OSError:
                continue
            children.setdefault(int(stat[1]), []).append(int(entry))
    found, pending = [root], [root]
    while pending:
        for child in children.get(pending.pop(), []):
            found.append(child)
            pending.append(child)
    return found


_KCMP = {"x86_64": 312, "aarch64": 272}.get(platform.machine(), -1)
KCMP_VM = 1


def _one_per_address_space(pids: list[int]) -> list[int]:
    """One process of each address space: processes cloned with ``CLONE_VM`` (as root, the
    notes' PID 1s share their world server's) would count its PSS once each."""
    libc = ctypes.CDLL(None, use_errno=True)
    kept: list[int] = []
    for pid in pids:
        if not any(libc.syscall(_KCMP, pid, other, KCMP_VM, 0, 0) == 0 for other in kept):
            kept.append(pid)  # a distinct one, or one kcmp may not compare (counted: never less)
    return kept


def _pss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def scale(workdir: Path, repeat: int, options: argparse.Namespace) -> list[Row]:
    """Issue 5: cold check vs pytest-markdown-docs vs importing torch; warm re-check; memory."""
    rows: list[Row] = []
    markdown_docs = options.markdown_docs_python or markdown_docs_python(workdir)
    import_torch = median_wall([PYTHON, "-c", "import torch"], repeat)
    _, torch_pss = tree_peak_pss([PYTHON, "-c", "import torch, time; time.sleep(0.5)"])
    rows.append(("python -c 'import torch'", f"{import_torch:.2f} s", f"PSS {torch_pss / 2**20:.0f} MiB", ""))
    rounds = max(1, repeat // 2)
    docs_command = [markdown_docs, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--markdown-docs"]
    for size in options.sizes:
        vault = make_vault(size, workdir)
        (vault.parent / "conftest.py").write_text(MARKDOWN_DOCS_CONFTEST)
        # Rounds alternate the two tools, so a machine that speeds up or slows down during the
        # run (a shared VM does) weighs on both alike.
        colds, docs_runs = [], []
        for round_index in range(rounds):
            cache_dir = workdir / f"cache-{size}-{round_index}"  # a new cache: a cold run that fills it
            colds.append(wall(noteexec("check", "--jobs", "2", "--cache-dir", cache_dir, vault)))
            docs_runs.append(wall([*docs_command, vault.name], cwd=vault.parent))
        cold, docs = statistics.median(colds), statistics.median(docs_runs)
        # Memory is sampled in a run of its own: reading smaps costs CPU that the timing must not pay.
        _, peak = tree_peak_pss(noteexec("check", "--jobs", "2", "--no-cache", vault))
        warm = median_wall(noteexec("check", "--jobs", "2", "--cache-dir", cache_dir, vault), repeat)
        rows.append(
            (
                f"{size} notes: cold check --jobs 2",
                f"{cold:.2f} s",
                f"pytest --markdown-docs {docs:.2f} s",
                f"{cold / docs:.2f}x (target <= 1.0x); {rounds} alternating runs; "
                f"{cold / import_torch:.1f}x import torch",
            )
        )
        rows.append(
            (
                f"{size} notes: warm re-check (all cached)",
                f"{warm:.3f} s",
                f"cold {cold:.2f} s",
                f"{warm / cold:.3f}x (target <= 0.1x{', < 0.5 s' if size == 1000 else ''})",
            )
        )
        rows.append(
            (
                f"{size} notes: peak PSS of the process tree",
                f"{peak / 2**20:.0f} MiB",
                f"import torch {torch_pss / 2**20:.0f} MiB",
                f"{peak / torch_pss:.2f}x (target <= 2x, flat in size)",
            )
        )
    return rows


SECTIONS: dict[str, Callable[[Path, int, argparse.Namespace], list[Row]]] = {"core": core, "scale": scale}


def print_table(rows: list[Row]) -> None:
    header = ("measure", "value", "baseline (same run)", "ratio / target")
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(4)]
    for row in [header, tuple("-" * width for width in widths), *rows]:
        print(
            "| " + " | ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)) + " |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", choices=sorted(SECTIONS), action="append")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--sizes",
        type=lambda text: [int(size) for size in text.split(",")],
        default=[50, 200, 1000],
        help="vault sizes of the scale section, comma-separated (default 50,200,1000)",
    )
    parser.add_argument(
        "--markdown-docs-python",
        type=Path,
        help="a python that has pytest-markdown-docs and this torch (default: a new virtual environment)",
    )
    arguments = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    # Bytecode as `pip install` leaves it: an editable checkout under PYTHONDONTWRITEBYTECODE
    # would otherwise compile noteexec's modules again in every measured run.
    compileall.compile_dir(REPO / "noteexec", quiet=1)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="noteexec-bench-") as directory:
        for name in arguments.only or SECTIONS:
            section = Path(directory) / name
            section.mkdir()
            rows.extend(SECTIONS[name](section, arguments.repeat, arguments))
    print_table(rows)


if __name__ == "__main__":
    main()
