"""check --update / --diff: a stale note rewritten to what really happened, every other byte kept."""

from __future__ import annotations

import difflib
import json
from pathlib import Path

import pytest

from noteexec.update import NotePlan, apply
from tests.conftest import callout, fence, noteexec

STALE = (
    "# 叶子节点\n\n"
    + callout(
        "FAIL",
        "import torch\n"
        "w = torch.tensor([3.0])\n"
        "# 报错! RuntimeError: element 0 of tensors needs a gradient (an old torch said so)\n"
        "(w * w).sum().backward()",
        title="错误写法",
    )
    + "\n说明文字。\n\n"
    + callout(
        "SUCCESS",
        "import torch\n"
        "w = torch.tensor([3.0], requires_grad=True)\n"
        "(w * w).sum().backward()\n"
        "print(w.grad)  # tensor([99.]) -> w 的梯度",
        title="正确写法",
    )
    + "\n"
    + fence("print(torch.ones(2) * 2)")
    + "```text\ntensor([5., 5.])\n```\n"
    + "\n"
    + callout("failure", "x = 1  # ValueError: stopped raising")
)


def write_crlf_with_bom(path: Path, text: str) -> None:
    path.write_bytes(b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode())


def test_diff_shows_and_update_makes_a_stale_note_pass_changing_only_documented_lines(tmp_path: Path) -> None:
    vault = tmp_path / "vault"
    vault.mkdir()
    note = vault / "leaf.md"
    write_crlf_with_bom(note, STALE)
    before = note.read_bytes()

    shown = noteexec("check", "--no-cache", "--diff", vault)
    assert shown.returncode == 1
    assert note.read_bytes() == before  # --diff writes nothing
    assert "-> # 报错! RuntimeError: element 0 of tensors needs a gradient" in shown.stdout.replace("\r", "")
    assert "+> # 报错! RuntimeError: element 0 of tensors does not require grad" in shown.stdout.replace(
        "\r", ""
    )
    assert "leaf.md:29: its outcome changed (it no longer raises what it documents)" in shown.stderr

    updated = noteexec("check", "--no-cache", "--update", vault)
    assert "updated" in updated.stderr
    after = note.read_bytes()
    assert after.startswith(b"\xef\xbb\xbf") and b"\r\n" in after and b"\n" not in after.replace(b"\r\n", b"")
    changed = [
        line
        for line in difflib.ndiff(before.decode().splitlines(), after.decode().splitlines())
        if line[:1] in "+-"
    ]
    assert changed == [
        "- > # 报错! RuntimeError: element 0 of tensors needs a gradient (an old torch said so)",
        "+ > # 报错! RuntimeError: element 0 of tensors does not require grad and does not have a grad_fn",
        "- > print(w.grad)  # tensor([99.]) -> w 的梯度",
        "+ > print(w.grad)  # tensor([6.]) -> w 的梯度",
        "- tensor([5., 5.])",
        "+ tensor([2., 2.])",
    ]
    again = noteexec("check", "--no-cache", "--format", "json", vault)
    outcomes = [block["outcome"] for block in json.loads(again.stdout)["notes"][0]["blocks"]]
    assert outcomes == ["passed", "passed", "passed", "failed"]  # only the demo that stopped raising


def test_a_note_changed_since_it_ran_is_refused(tmp_path: Path) -> None:
    note = tmp_path / "n.md"
    note.write_text("x\n")
    with pytest.raises(ValueError, match="changed since it was checked"):
        apply(note, NotePlan(note, (), ()), "y\n")


def test_a_not_runnable_note_is_never_rewritten(tmp_path: Path) -> None:
    vault = tmp_path / "vault"
    vault.mkdir()
    note = vault / "snippet.md"
    note.write_text(fence("import torchvision\nprint(torchvision.__version__)  # 0.1"))
    before = note.read_bytes()
    result = noteexec("check", "--no-cache", "--update", vault)
    assert note.read_bytes() == before
    assert "not runnable here, not rewritten" in result.stderr


def test_a_transcripts_outputs_are_rewritten_under_their_prompts(tmp_path: Path) -> None:
    vault = tmp_path / "vault"
    vault.mkdir()
    note = vault / "repl.md"
    transcript = ">>> import torch\n>>> w = torch.tensor([3.0], requires_grad=True)\n"
    transcript += ">>> (w * w).sum().backward()\n>>> w.grad\ntensor([9.])\n>>> print('a\\nb')\na\n"
    note.write_text("# REPL\n\n" + callout("note", transcript, lang="pycon"))
    noteexec("check", "--no-cache", "--update", vault)
    text = note.read_text()
    assert "> >>> w.grad\n> tensor([6.])\n> >>> print('a\\nb')\n> a\n> b\n" in text
    assert noteexec("check", "--no-cache", vault).returncode == 0
