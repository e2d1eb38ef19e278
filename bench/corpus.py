"""False verdicts of noteexec on real study notes: a manifest of public notes, checked block by block.

    python bench/corpus.py                       # notes from the mirror (/work/.mirror or --mirror)
    python bench/corpus.py --notes-dir DIR       # notes already laid out as DIR/owner+name/path
    python bench/corpus.py --draft new.toml      # write noteexec's outcomes as a manifest to review

The repository keeps only ``bench/corpus.toml``: for each note its repository, commit and path, and
for each python block the verdict a careful human expects, with why. The notes themselves are
third-party text, so they are materialised from bare git mirrors (``MIRROR/owner+name/repo``) or a
folder into a temporary vault, never committed. Expectations:

- ``pass``: the block runs alone (with the note's earlier blocks) and shows what the note says;
- ``fail``: the note documents something that is not what happens (a real mistake);
- ``not_runnable``: it cannot run here alone (another note's names, a dataset, a GPU, a package);
- ``skip``: noteexec should not run it at all (a d2l cell for another framework).

A false failure is a block a human passes that noteexec fails or calls not runnable; a false pass
is a real mistake that noteexec passes; a false skip is a block to check that noteexec never ran
(it "checks silently nothing"). Other disagreements are a real mistake called not runnable, or
the reverse. Ratios are of the blocks a human passes, of the real mistakes, and of the blocks not
to skip.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import tomllib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MANIFEST = REPO / "bench" / "corpus.toml"
EXPECTATIONS = ("pass", "fail", "not_runnable", "skip")
# noteexec's block outcome, as the human verdict it stands for
OUTCOME = {"passed": "pass", "failed": "fail", "not_runnable": "not_runnable", "skipped": "skip"}


@dataclass(frozen=True)
class Note:
    """One manifest entry: where the note comes from and what each block should get."""

    repo: str
    commit: str
    path: str
    blocks: dict[int, tuple[str, str]]  # fence line -> (expectation, why)

    @property
    def local(self) -> Path:
        """Where the note lies in the materialised vault: one folder per repository."""
        return Path(self.repo.replace("/", "+")) / self.path


def load_manifest(path: Path) -> list[Note]:
    """Read and validate the manifest, so a typo in an expectation is an error, not a disagreement."""
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    notes = []
    for entry in data.get("note", []):
        blocks: dict[int, tuple[str, str]] = {}
        for block in entry.get("block", []):
            if block["expect"] not in EXPECTATIONS:
                raise SystemExit(
                    f"{path}: {entry['path']}:{block['line']}: unknown expect {block['expect']!r}"
                )
            blocks[int(block["line"])] = (block["expect"], block.get("why", ""))
        notes.append(Note(entry["repo"], entry["commit"], entry["path"], blocks))
    return notes


def git_dir(mirror: Path, repo: str) -> Path | None:
    """The bare git directory of a mirrored repository (fetch lays out either repo/ or repo/.git)."""
    base = mirror / repo.replace("/", "+") / "repo"
    for candidate in (base / ".git", base):
        if (candidate / "objects").is_dir():
            return candidate
    return None


def materialise(notes: list[Note], vault: Path, mirror: Path, notes_dir: Path | None) -> list[Note]:
    """Write every note that can be had into the vault; return those written."""
    written = []
    for note in notes:
        target = vault / note.local
        if notes_dir is not None:
            source = notes_dir / note.local
            if not source.is_file():
                continue
            text = source.read_bytes()
        else:
            git = git_dir(mirror, note.repo)
            if git is None:
                continue
            shown = subprocess.run(
                ["git", f"--git-dir={git}", "show", f"{note.commit}:{note.path}"],
                capture_output=True,
                check=False,
            )
            if shown.returncode != 0:
                print(f"corpus: {note.repo} has no {note.path} at {note.commit[:12]}", file=sys.stderr)
                continue
            text = shown.stdout
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(text)
        written.append(note)
    return written


def run_noteexec(vault: Path, noteexec: list[str]) -> dict[Path, list[dict]]:
    """Check the whole vault once, uncached, and return each note's blocks by relative path."""
    command = [*noteexec, "check", "--format", "json", "--no-cache", str(vault)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode not in (0, 1):
        raise SystemExit(f"corpus: {' '.join(command)} exited {done.returncode}:\n{done.stderr[-2000:]}")
    report = json.loads(done.stdout)
    return {
        Path(note["path"]).resolve().relative_to(vault.resolve()): note["blocks"] for note in report["notes"]
    }


def compare(notes: list[Note], results: dict[Path, list[dict]]) -> tuple[Counter[str], list[str]]:
    """Count agreements and each kind of false verdict; list every disagreement to read."""
    counts: Counter[str] = Counter()
    lines = []
    for note in notes:
        got = {block["line"]: block for block in results.get(note.local, [])}
        for line, (expect, why) in sorted(note.blocks.items()):
            counts["blocks"] += 1
            counts[f"expect_{expect}"] += 1
            block = got.get(line)
            if block is None:
                counts["missing"] += 1
                lines.append(f"  missing  {note.local}:{line}: noteexec reported no block here ({why})")
                continue
            outcome = OUTCOME.get(block["outcome"], block["outcome"])
            if outcome == expect:
                counts["agreements"] += 1
                counts["agreed_skip"] += expect == "skip"
                continue
            if expect == "pass" and outcome in ("fail", "not_runnable"):
                kind = "false_failures"
            elif expect == "fail" and outcome == "pass":
                kind = "false_passes"
            elif outcome == "skip" and expect in ("pass", "fail"):
                kind = "false_skips"
            else:
                kind = "other"
            counts[kind] += 1
            message = (block.get("message") or "").replace("\n", " ")[:160]
            lines.append(f"  {kind:<15}{note.local}:{line}: human {expect}, noteexec {outcome}: {message}")
            lines.append(f"  {'':<15}human: {why}")
        for line in sorted(set(got) - set(note.blocks)):
            counts["unlabelled"] += 1
            lines.append(f"  unlabelled {note.local}:{line}: noteexec {got[line]['outcome']}")
    return counts, lines


def draft(notes: list[Note], results: dict[Path, list[dict]], out: Path) -> None:
    """Write noteexec's own outcomes as a manifest: a starting point a human corrects, never the truth."""
    parts = []
    for note in notes:
        parts.append(f'[[note]]\nrepo = "{note.repo}"\ncommit = "{note.commit}"\npath = "{note.path}"\n')
        for block in results.get(note.local, []):
            outcome = OUTCOME.get(block["outcome"], block["outcome"])
            message = json.dumps(f"DRAFT {block['outcome']}: {(block.get('message') or '')[:150]}")
            parts.append(f'[[note.block]]\nline = {block["line"]}\nexpect = "{outcome}"\nwhy = {message}\n')
    out.write_text("\n".join(parts), encoding="utf-8")


def ratio(part: int, whole: int) -> str:
    """A share as a percentage, safe on an empty corpus."""
    return f"{100 * part / whole:.1f}%" if whole else "n/a"


def main(argv: list[str] | None = None) -> int:
    """Materialise, check, compare; exit 0 with a message when no note can be had (no mirror here)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", type=Path, default=MANIFEST)
    parser.add_argument(
        "--mirror", type=Path, default=Path(os.environ.get("NOTEEXEC_MIRROR", "/work/.mirror"))
    )
    parser.add_argument("--notes-dir", type=Path, help="notes laid out as DIR/owner+name/path")
    parser.add_argument("--keep", type=Path, help="materialise into this folder and keep it")
    parser.add_argument("--draft", type=Path, help="write noteexec's outcomes as a manifest here")
    parser.add_argument("--noteexec", default=f"{sys.executable} -m noteexec", help="command to run noteexec")
    args = parser.parse_args(argv)

    notes = load_manifest(args.manifest)
    with tempfile.TemporaryDirectory(prefix="noteexec-corpus-") as temporary:
        vault = args.keep or Path(temporary) / "vault"
        vault.mkdir(parents=True, exist_ok=True)
        present = materialise(notes, vault, args.mirror, args.notes_dir)
        if not present:
            where = args.notes_dir or args.mirror
            print(
                f"corpus: none of the {len(notes)} notes of {args.manifest.name} can be had from {where} "
                "(fetch the repositories it names into a mirror, or pass --notes-dir); nothing measured"
            )
            return 0
        if len(present) < len(notes):
            print(f"corpus: {len(notes) - len(present)} of {len(notes)} notes missing; measuring the rest")
        results = run_noteexec(vault, args.noteexec.split())
        if args.draft:
            draft(present, results, args.draft)
            print(f"corpus: draft manifest written to {args.draft}; review every expectation")
            return 0
        counts, lines = compare(present, results)

    blocks = counts["blocks"]
    repos = len({note.repo for note in present})
    print(f"corpus: {len(present)} notes from {repos} repositories, {blocks} labelled blocks")
    if lines:
        print("disagreements:")
        print("\n".join(lines))
    expected = ", ".join(f"{counts[f'expect_{name}']} {name}" for name in EXPECTATIONS)
    ran = blocks - counts["expect_skip"]
    print(f"{'blocks (human: ' + expected + ')':<56}{blocks:>5}")
    rows = (
        ("agreements", "agreements", blocks),
        ("agreements_run", "agreements, skips left out", ran),
        ("false_failures", "false failures (human pass; noteexec fail or N/A)", counts["expect_pass"]),
        ("false_passes", "false passes (a real mistake passed)", counts["expect_fail"]),
        (
            "false_skips",
            "false skips (a block to check, never run)",
            counts["expect_pass"] + counts["expect_fail"],
        ),
        ("other", "other disagreements (fail vs N/A)", ran),
        ("missing", "labelled blocks noteexec did not report", blocks),
    )
    counts["agreements_run"] = counts["agreements"] - counts["agreed_skip"]
    for key, label, whole in rows:
        print(f"{label:<56}{counts[key]:>5}  {ratio(counts[key], whole)} of {whole}")
    if counts["unlabelled"]:
        print(f"{'blocks without a label (not counted)':<56}{counts['unlabelled']:>5}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
