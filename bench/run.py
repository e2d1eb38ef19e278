"""noteexec benchmarks: one script, one table, every ratio against a baseline measured in the same run.

    python bench/run.py                # everything
    python bench/run.py --only core    # a section: core, scale, site

Vaults are generated from the bundled ``notes/`` into a temporary folder.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
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
    if completed.returncode not in (0, 1):
        raise SystemExit(f"benchmark command failed: {command}\n{completed.stderr[-2000:]}")
    return elapsed


def median_wall(command: Sequence[str | Path], repeat: int, **kwargs: object) -> float:
    return statistics.median(wall(command, **kwargs) for _ in range(repeat))  # type: ignore[arg-type]


def make_vault(size: int, into: Path) -> Path:
    """``size`` notes cycling through the bundled lessons (the index note left out)."""
    lessons = sorted(path for path in NOTES.glob("*.md") if path.name != "README.md")
    vault = into / f"vault-{size}"
    vault.mkdir()
    for index in range(size):
        source = lessons[index % len(lessons)]
        shutil.copy(source, vault / f"{index:04d}-{source.name}")
    return vault


def noteexec(*arguments: str | Path) -> list[str | Path]:
    return [PYTHON, "-m", "noteexec", *arguments]


def core(workdir: Path, repeat: int) -> list[Row]:
    """Issue 2: cold check of the seed note vs importing torch; per-note overhead."""
    rows: list[Row] = []
    import_torch = median_wall([PYTHON, "-c", "import torch"], repeat)
    seed_only = workdir / "seed"
    seed_only.mkdir()
    shutil.copy(SEED, seed_only / SEED.name)
    cold = median_wall(noteexec("check", seed_only / SEED.name), repeat)
    rows.append(
        (
            "cold `noteexec check` of the seed note",
            f"{cold:.3f} s",
            f"import torch {import_torch:.3f} s",
            f"{cold / import_torch:.2f}x (target <= 1.2x)",
        )
    )
    vault = make_vault(200, workdir)
    one = make_vault(1, workdir)
    per_note = []
    for _ in range(repeat):
        many = wall(noteexec("check", "--jobs", "1", vault))
        single = wall(noteexec("check", "--jobs", "1", one))
        per_note.append((many - single) / 199)
    overhead = statistics.median(per_note)
    rows.append(
        (
            "per additional note, 200-note vault, --jobs 1",
            f"{overhead * 1000:.1f} ms",
            "(T200 - T1) / 199",
            "target <= 25 ms",
        )
    )
    jobs = os.cpu_count() or 1
    parallel = median_wall(noteexec("check", "--jobs", str(jobs), vault), max(1, repeat // 2))
    serial = median_wall(noteexec("check", "--jobs", "1", vault), max(1, repeat // 2))
    rows.append(
        (
            f"200-note vault, --jobs {jobs}",
            f"{parallel:.2f} s",
            f"--jobs 1 {serial:.2f} s",
            f"{serial / parallel:.2f}x faster",
        )
    )
    return rows


SECTIONS: dict[str, Callable[[Path, int], list[Row]]] = {"core": core}


def print_table(rows: list[Row]) -> None:
    header = ("measure", "value", "baseline (same run)", "ratio / target")
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(4)]
    for row in [header, tuple("-" * width for width in widths), *rows]:
        print("| " + " | ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=sorted(SECTIONS), action="append")
    parser.add_argument("--repeat", type=int, default=5)
    arguments = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="noteexec-bench-") as directory:
        for name in arguments.only or SECTIONS:
            section = Path(directory) / name
            section.mkdir()
            rows.extend(SECTIONS[name](section, arguments.repeat))
    print_table(rows)


if __name__ == "__main__":
    main()
