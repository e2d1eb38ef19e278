"""Not runnable here, end to end: a real vault's snippets that cannot run apart from real mistakes."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ElementTree
from pathlib import Path

from tests.conftest import callout, fence, noteexec

VAULT = {
    "losses.md": fence("import torch\n\ndef compute_loss(w):\n    return (w * w).sum()"),
    "snippets.md": (
        "# Snippets from the course\n\n"
        + fence("import torchvision.models as models\nnet = models.resnet18()")
        + "\n"
        + fence("x = torch.ones(2).cuda()")
        + "\n"
        + fence("model = ...\nmodel.train()")
        + "\n"
        + fence("import torch\nw = torch.ones(2, requires_grad=True)\nloss = compute_loss(w)")
    ),
    "chain.md": (
        fence("import torch\nw = torch.ones(2, requires_grad=True)\nmodel = Model()")
        + "\n"
        + fence("print(model)")
    ),
    "mistake.md": fence("print(2 + 2)  # 5") + "\n" + callout("success", "import torch\nw = torch.ones(1)"),
}


def write(folder: Path) -> Path:
    vault = folder / "vault"
    vault.mkdir()
    for name, text in VAULT.items():
        (vault / name).write_text(text)
    return vault


def test_blocks_that_cannot_run_here_are_grouped_apart_from_mistakes(tmp_path: Path) -> None:
    vault = write(tmp_path)
    result = noteexec("check", "--no-cache", "--format", "json", vault)
    report = json.loads(result.stdout)
    blocks = {
        (Path(note["path"]).name, block["line"]): block
        for note in report["notes"]
        for block in note["blocks"]
    }
    reasons = {key: block["reason"] for key, block in blocks.items() if block["outcome"] == "not_runnable"}
    assert reasons == {
        ("snippets.md", 3): "missing_module",
        ("snippets.md", 8): "needs_cuda",
        ("snippets.md", 12): "placeholder",
        ("snippets.md", 17): "undefined_name",
        ("chain.md", 1): "undefined_name",  # Model: a class from the course, defined nowhere here
        ("chain.md", 7): "depends_on_failed",
    }
    assert "install torchvision" in blocks[("snippets.md", 3)]["message"]
    assert "'compute_loss' is defined in [[losses]]" in blocks[("snippets.md", 17)]["message"]
    assert "depends on the failed block at L1" in blocks[("chain.md", 7)]["message"]
    assert blocks[("mistake.md", 1)]["outcome"] == "failed"  # the real mistake stays a failure
    summary = report["summary"]
    assert summary["not_runnable"] == len(reasons)
    assert summary["not_runnable_reasons"]["placeholder"] == 1
    statuses = {Path(note["path"]).name: note["status"] for note in report["notes"]}
    assert statuses["snippets.md"] == "not_runnable" and statuses["mistake.md"] == "failed"
    assert result.returncode == 1


def test_not_runnable_fails_the_run_unless_asked_to_only_report_it(tmp_path: Path) -> None:
    vault = write(tmp_path)
    (vault / "mistake.md").unlink()
    (vault / "chain.md").unlink()
    text = noteexec("check", "--no-cache", vault)
    assert text.returncode == 1
    assert "not runnable here: install torchvision: 1 block" in text.stdout
    assert "4 not runnable here" in text.stdout
    assert noteexec("check", "--no-cache", "--not-runnable", "report", vault).returncode == 0
    (tmp_path / "noteexec.toml").write_text('not_runnable = "report"\n')  # trusted: above the vault
    assert noteexec("check", "--no-cache", vault).returncode == 0
    (tmp_path / "noteexec.toml").unlink()
    (vault / "noteexec.toml").write_text('not_runnable = "report"\n')  # the vault's own file may not
    refused = noteexec("check", "--no-cache", vault)
    assert refused.returncode == 2 and "'not_runnable' may not be loosened" in refused.stderr


def test_junit_skips_and_github_notices_name_the_reason(tmp_path: Path) -> None:
    vault = write(tmp_path)
    junit, github = tmp_path / "r.xml", tmp_path / "g.txt"
    noteexec("check", "--no-cache", "--format", f"junit:{junit}", "--format", f"github:{github}", vault)
    suite = ElementTree.parse(junit).getroot().find("testsuite")
    assert suite is not None
    skipped = [case.find("skipped") for case in suite.iter("testcase") if case.find("skipped") is not None]
    assert any("not runnable here: install torchvision" in (item.get("message") or "") for item in skipped)
    assert (
        "::notice file=" in github.read_text() and "title=noteexec%3A not runnable here" in github.read_text()
    )


def test_a_vault_without_configuration_mostly_not_runnable_gets_one_adoption_hint(tmp_path: Path) -> None:
    vault = write(tmp_path)
    result = noteexec("check", "--no-cache", vault)
    assert result.stderr.count("noteexec: hint:") == 1
    assert "opt_in = true" in result.stderr and "noteexec baseline" in result.stderr
    (vault / "noteexec.toml").write_text("exclude = []\n")  # a configured vault knows already
    assert "hint" not in noteexec("check", "--no-cache", vault).stderr
