"""Adopting noteexec with a baseline: today's failures are known, new ones fail, fixed ones are told."""

from __future__ import annotations

import json
from pathlib import Path

from noteexec.baseline import Baseline
from tests.conftest import callout, fence, noteexec

PROSE = "# Autograd\n\nSome prose about leaves.\n\n"
WRONG = fence("print(2 + 2)  # 5")
LEAF = callout("success", "import torch\nw = torch.ones(2, requires_grad=True)\n(w * 3).sum().backward()")


def vault_with_failures(tmp_path: Path) -> Path:
    vault = tmp_path / "repo" / "notes"
    vault.mkdir(parents=True)
    (vault / "wrong.md").write_text(PROSE + WRONG + "\n" + LEAF)
    (vault / "broken.md").write_text("---\ntags: [unclosed\n---\n" + fence("x = 1"))
    (vault / "good.md").write_text(LEAF)
    return vault


def test_known_failures_pass_new_ones_fail_and_fixed_ones_are_told(tmp_path: Path) -> None:
    vault = vault_with_failures(tmp_path)
    baseline = tmp_path / "repo" / "noteexec-baseline.json"
    recorded = noteexec("baseline", "--no-cache", vault, "-o", baseline)
    assert recorded.returncode == 0, recorded.stderr
    assert "recorded 2 failures of 3 notes" in recorded.stdout
    document = json.loads(baseline.read_text())
    assert [entry["note"] for entry in document["failures"]] == ["notes/broken.md", "notes/wrong.md"]
    assert document["failures"][1]["line"] == 5

    before = noteexec("check", "--no-cache", vault)
    assert before.returncode == 1
    known = noteexec("check", "--no-cache", "--format", "json", "--baseline", baseline, vault)
    assert known.returncode == 0, known.stdout
    report = json.loads(known.stdout)
    assert report["summary"]["known"] == 2 and report["summary"]["failed"] == 0
    skipped = [block for note in report["notes"] for block in note["blocks"] if block["outcome"] == "skipped"]
    assert all(block["message"].startswith("known failure (in noteexec-baseline.json)") for block in skipped)

    # Prose edited around the block, the block moved: still the same known failure.
    (vault / "wrong.md").write_text(PROSE + "More prose.\n\nAnd more.\n\n" + WRONG + "\n" + LEAF)
    assert noteexec("check", "--no-cache", "--baseline", baseline, vault).returncode == 0

    # The block edited: a new failure (exit 1), and the recorded one is gone.
    (vault / "wrong.md").write_text(PROSE + fence("print(3 + 3)  # 7") + "\n" + LEAF)
    edited = noteexec("check", "--no-cache", "--baseline", baseline, vault)
    assert edited.returncode == 1
    assert "1 failures recorded in" in edited.stderr and "fixed: notes/wrong.md:5" in edited.stderr

    # The mistake fixed: exit 0, and the baseline can shrink.
    (vault / "wrong.md").write_text(PROSE + fence("print(2 + 2)  # 4") + "\n" + LEAF)
    fixed = noteexec("check", "--no-cache", "--baseline", baseline, vault)
    assert fixed.returncode == 0
    assert "shrink it: noteexec baseline" in fixed.stderr
    assert "(1 of them known failures from the baseline)" in fixed.stdout


def test_a_broken_baseline_is_a_usage_error_naming_the_file_and_line(tmp_path: Path) -> None:
    vault = vault_with_failures(tmp_path)
    broken = tmp_path / "baseline.json"
    broken.write_text('{\n  "noteexec_baseline": 1,\n  "failures": [,]\n}\n')
    result = noteexec("check", "--no-cache", "--baseline", broken, vault)
    assert result.returncode == 2
    assert f"{broken}:3: not a noteexec baseline" in result.stderr
    assert "Traceback" not in result.stderr
    other = tmp_path / "other.json"
    other.write_text('{"something": "else"}')
    assert "not a noteexec baseline" in noteexec("check", "--baseline", other, vault).stderr
    assert "cannot read the baseline" in noteexec("check", "--baseline", tmp_path / "none.json", vault).stderr


def test_a_baseline_file_is_stable_and_sorted(tmp_path: Path) -> None:
    vault = vault_with_failures(tmp_path)
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    assert noteexec("baseline", "--no-cache", vault, "-o", first).returncode == 0
    assert noteexec("baseline", "--no-cache", "-j", "1", vault, "-o", second).returncode == 0
    assert first.read_text() == second.read_text()
    loaded = Baseline.load(first)
    assert sorted(loaded.accepted) == [
        (failure.note, failure.key) for failure in sorted(loaded.accepted.values())
    ]
