"""The whole pipeline on fixture notes, with real sandbox runs."""

from __future__ import annotations

from pathlib import Path

from noteexec.check import check, iter_check
from noteexec.config import Config
from noteexec.expect import Families
from noteexec.facts import BlockFacts, NoteFacts
from noteexec.results import NoteFile
from noteexec.sandbox import NoteRun, Sandbox
from tests.conftest import SEED_NOTE, RunNote, callout, fence, outcomes


def test_unmodified_seed_note_cannot_run_either_block_naming_compute_loss(run_note: RunNote) -> None:
    """The seed note uses compute_loss without defining it: both blocks say they cannot run here
    and why (which still fails a run, unless --not-runnable report)."""
    result = run_note(SEED_NOTE.read_text(encoding="utf-8"))
    assert result.status == "not_runnable"
    assert outcomes(result) == ["not_runnable", "not_runnable"]
    assert [block.verdict.reason for block in result.blocks] == ["undefined_name", "undefined_name"]
    first, second = (block.verdict.message for block in result.blocks)
    assert first == (
        "not runnable here: 'compute_loss' is defined nowhere in the note; it failed with: "
        'expected RuntimeError matching "element 0 of tensors does not require grad..." at line 39, '
        "got NameError: name 'compute_loss' is not defined at line 33"
    )
    assert "compute_loss" in second
    assert "line 49" in second


def test_seed_note_with_hidden_setup_passes(run_note: RunNote) -> None:
    setup = (
        "\n%%\n```python\ndef compute_loss(w):\n    x = torch.tensor([3.0])\n"
        "    return F.mse_loss(torch.ones(1), x * w)\n```\n%%\n"
    )
    result = run_note(SEED_NOTE.read_text(encoding="utf-8") + setup)
    assert outcomes(result) == ["passed", "passed"], [b.verdict.message for b in result.blocks]
    gradients = result.blocks[1].facts.gradients
    assert [gradient.name for gradient in gradients] == ["w.grad"]
    assert result.blocks[1].facts.stdout == "tensor([30.])\n"
    [graph] = result.blocks[1].facts.graphs
    assert [label for _, label in graph.nodes] == ["MseLossBackward0", "MulBackward0", "AccumulateGrad (w)"]


def test_a_loop_records_each_distinct_graph_once(run_note: RunNote) -> None:
    code = (
        "w = torch.ones(2, requires_grad=True)\n"
        "for step in range(20):\n"
        "    (w * 2).sum().backward()\n"
        "(w ** 2).sum().backward()"
    )
    result = run_note(fence(code))
    facts = result.blocks[0].facts
    assert facts.backward_calls == 21
    assert [[label for _, label in graph.nodes] for graph in facts.graphs] == [
        ["SumBackward0", "MulBackward0", "AccumulateGrad (w)"],
        ["SumBackward0", "PowBackward0", "AccumulateGrad (w)"],
    ]


def test_each_documented_error_form(run_note: RunNote) -> None:
    text = (
        callout("fail", "x = torch.ones(2, requires_grad=True)\n# 报错! RuntimeError: grad can be implicitly created only for scalar outputs\n(x * 2).backward()")
        + "\n"
        + callout("fail", "y = torch.ones(1)\ny.backward()  # RuntimeError: element 0 of tensors does not require grad")
        + "\n"
        + callout("fail", "torch.ones(1, requires_grad=True).numpy()")[:-1]
        + "\n> ```pytb\n> Traceback (most recent call last):\n>   File \"<note>\", line 1, in <module>\n"
        "> RuntimeError: Can't call numpy() on Tensor that requires grad...\n> ```\n"
    )  # fmt: skip
    result = run_note(text)
    assert outcomes(result) == ["passed", "passed", "passed"], [b.verdict.message for b in result.blocks]
    assert [block.expectation.error.form for block in result.blocks] == ["comment", "trailing", "output"]


def test_wrong_line_is_reported(run_note: RunNote) -> None:
    code = "# RuntimeError: element 0 of tensors\ny = torch.ones(1)\ny.backward()"
    result = run_note(callout("fail", code))
    assert outcomes(result) == ["failed"]
    assert "got it at line 5" in result.blocks[0].verdict.message


def test_module_parameters_and_autograd_grad_count_as_gradients(run_note: RunNote) -> None:
    text = (
        callout("success", "model = nn.Linear(3, 1)\nmodel(torch.ones(2, 3)).sum().backward()")
        + "\n"
        + callout("success", "a = torch.tensor(2.0, requires_grad=True)\n(g,) = torch.autograd.grad(a ** 2, a)")
        + "\n"
        + callout("success", "params = [torch.ones(2, requires_grad=True)]\n(params[0] * 3).sum().backward()")
    )  # fmt: skip
    result = run_note(text)
    assert outcomes(result) == ["passed", "passed", "passed"], [b.verdict.message for b in result.blocks]
    names = [[g.name for g in block.facts.gradients] for block in result.blocks]
    assert names == [
        ["model.weight.grad", "model.bias.grad"],
        ["torch.autograd.grad(...)[0]"],
        ["params[0].grad"],
    ]


def test_missing_and_non_finite_gradients_fail(run_note: RunNote) -> None:
    text = (
        callout("success", "w = torch.ones(1, requires_grad=True)\nloss = (w * 2).sum()")
        + "\n"
        + callout("success", "v = torch.zeros(1, requires_grad=True)\ntorch.sqrt(v).sum().backward()\nv.grad")
        + "\n"
        + callout("success", "w.grad = None\n(w * 3).sum().backward()\nprint(w.grad)")
    )  # fmt: skip
    result = run_note(text)
    assert outcomes(result) == ["failed", "failed", "passed"]
    assert "produced none" in result.blocks[0].verdict.message
    assert "w" in result.blocks[0].verdict.warnings[0]
    assert "v.grad" in result.blocks[1].verdict.message


def test_accumulated_gradient_counts_as_changed(run_note: RunNote) -> None:
    text = (
        callout("success", "w = torch.ones(1, requires_grad=True)\n(w * 2).sum().backward()")
        + "\n"
        + callout("success", "(w * 2).sum().backward()\nprint(w.grad)  # tensor([4.])")
    )
    assert outcomes(run_note(text)) == ["passed", "passed"]


def test_warnings_documented_and_missing(run_note: RunNote) -> None:
    code = (
        "a = torch.ones(1, requires_grad=True)\nb = a * 2\nb.sum().backward()\n"
        "# UserWarning: The .grad attribute of a Tensor that is not a leaf Tensor is being accessed\n"
        "print(b.grad)  # None"
    )
    quiet = "a = torch.ones(1)\n# UserWarning: something\nprint(a)"
    result = run_note(callout("fail", code) + "\n" + callout("note", quiet))
    assert outcomes(result) == ["passed", "failed"], [b.verdict.message for b in result.blocks]
    assert result.blocks[0].facts.warnings[0].line == 7
    assert "no warning was emitted" in result.blocks[1].verdict.message


def test_documented_output_right_wrong_and_echoed(run_note: RunNote) -> None:
    text = (
        fence("x = torch.tensor([1.0, 2.0])\nprint(x * 2)  # tensor([2., 4.])\nx * 3  # => tensor([3., 6.])")
        + fence("print('a')\nprint('b')") + "```text\na\nb\n```\n"
        + fence("print(torch.tensor([1.5]))  # tensor([1.4])")
        + fence("print('x')") + "```output\ny\n```\n"
    )  # fmt: skip
    result = run_note(text)
    assert outcomes(result) == ["passed", "passed", "failed", "failed"]
    assert "-tensor([1.4])" in result.blocks[2].verdict.diff
    assert "+tensor([1.5000])" in result.blocks[2].verdict.diff


def test_session_state_is_shared_in_file_order(run_note: RunNote) -> None:
    result = run_note(fence("counter = 1") + fence("counter += 1\nprint(counter)  # 2"))
    assert outcomes(result) == ["passed", "passed"]


def test_each_block_starts_with_seed_0_and_grad_mode_on(run_note: RunNote) -> None:
    text = fence("torch.set_grad_enabled(False)\nfirst = torch.rand(3)") + fence(
        "assert torch.is_grad_enabled()\nassert torch.equal(torch.rand(3), first)"
    )
    assert outcomes(run_note(text)) == ["passed", "passed"]


def test_skipped_blocks_do_not_run(run_note: RunNote) -> None:
    text = "%% noteexec: skip %%\n" + fence("raise SystemExit(3)") + fence("print('ran')")
    result = run_note(text)
    assert outcomes(result) == ["skipped", "passed"]
    assert result.blocks[1].facts.stdout == "ran\n"
    whole = run_note("---\nnoteexec: {skip: true}\n---\n" + fence("raise ValueError"))
    assert outcomes(whole) == ["skipped"]
    assert whole.status == "passed"


def test_failing_hidden_setup_is_a_note_error(run_note: RunNote) -> None:
    result = run_note("%%\n```python\nundefined_name\n```\n%%\n" + fence("x = 1"))
    assert result.status == "error"
    assert "hidden setup at line 2" in result.error
    assert "NameError" in result.error
    assert outcomes(result) == ["failed"]
    assert result.blocks[0].verdict.message == "not run: the hidden setup failed"


def test_bad_yaml_is_a_note_error_with_its_line(run_note: RunNote) -> None:
    result = run_note("---\ntitle: [unclosed\n---\n" + fence("x = 1"))
    assert result.status == "error"
    assert "note.md:" in result.error
    assert "invalid YAML" in result.error


def test_configured_prelude_and_families(run_note: RunNote) -> None:
    config = Config(prelude="import math\n", families=Families(failure=frozenset({"bug"})))
    text = callout("bug", "math.sqrt(-1)  # ValueError: math domain error") + fence(
        "print(math.pi)  # 3.14159"
    )
    result = run_note(text, config=config)
    assert outcomes(result) == ["passed", "passed"], [b.verdict.message for b in result.blocks]


def test_crlf_and_bom_note_reports_file_lines(run_note: RunNote) -> None:
    text = "\ufeff# t\r\n\r\n```python\r\nx = 1\r\nraise ValueError('v')\r\n```\r\n"
    result = run_note(text)
    assert result.blocks[0].facts.exception.line == 5


def test_error_raised_in_an_earlier_block_function_is_pinned_to_the_calling_line(run_note: RunNote) -> None:
    text = fence("def f():\n    raise ValueError('v')") + callout("fail", "print('hi')\nf()  # ValueError: v")
    result = run_note(text)
    assert outcomes(result) == ["passed", "passed"]
    assert result.blocks[1].facts.exception.line == 8


def _vault(tmp_path: Path, count: int) -> list[NoteFile]:
    """Notes that pass, fail, run nothing and have an error, in turn."""
    kinds = [
        fence("print(1)  # 1"),
        callout("fail", "x = 1  # ValueError: never raised"),
        "# Prose only\n",
        "---\ntags: [unclosed\n---\n" + fence("x = 1"),
    ]
    files = []
    for index in range(count):
        path = tmp_path / f"{index:03d}.md"
        path.write_text(kinds[index % len(kinds)])
        files.append(NoteFile(path, tmp_path))
    return files


def test_results_stream_in_file_order_whatever_the_lookahead(tmp_path: Path, sandbox: Sandbox) -> None:
    files = _vault(tmp_path, 9)
    everything = check(files, Config(), sandbox)
    streamed = list(iter_check(files, Config(), sandbox, lookahead=2))
    assert [result.note.path for result in streamed] == [file.path for file in files]
    assert [(r.status, outcomes(r)) for r in streamed] == [(r.status, outcomes(r)) for r in everything]
    assert [r.status for r in streamed[:4]] == ["passed", "failed", "passed", "error"]


class _InstantSandbox:
    """Runs nothing: every block 'ran' silently; facts come back newest first (out of order)."""

    def __init__(self) -> None:
        self.waiting: dict[int, NoteRun] = {}
        self.submitted: list[str] = []

    def start(self) -> None:
        """Nothing to start."""

    def submit(self, run: NoteRun) -> int:
        self.submitted.append(Path(run.path).name)
        self.waiting[len(self.submitted)] = run
        return len(self.submitted)

    def next_facts(self) -> tuple[int, NoteFacts]:
        ticket = max(self.waiting)
        run = self.waiting.pop(ticket)
        return ticket, NoteFacts(tuple(BlockFacts(state="ran") for _ in run.blocks))


def test_no_more_than_the_lookahead_is_loaded_ahead_of_the_results(tmp_path: Path) -> None:
    files = _vault(tmp_path, 40)
    sandbox = _InstantSandbox()
    for given, result in enumerate(iter_check(files, Config(), sandbox, lookahead=5)):  # type: ignore[arg-type]
        assert result.note.path == files[given].path
        furthest = max(int(name.removesuffix(".md")) for name in sandbox.submitted)
        assert furthest < given + 5
    assert len(sandbox.submitted) == 20  # the notes that run something: two in four
