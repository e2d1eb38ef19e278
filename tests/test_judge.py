"""judge: expectation × facts → verdict. Pure: facts are built by hand here."""

from __future__ import annotations

from noteexec.expect import Expectation
from noteexec.expect.documented import DocumentedError, DocumentedOutput, RandomDraw
from noteexec.facts import BlockFacts, Gradient, Raised
from noteexec.judge import Verdict, judge, not_runnable_here
from noteexec.model import CodeBlock

RUNTIME = ("RuntimeError", "Exception", "BaseException")
SEED_ERROR = DocumentedError("RuntimeError", "element 0 of tensors does not require grad...", 39, "comment")


def raised(type_: str, message: str, line: int | None, names: tuple[str, ...] = ()) -> BlockFacts:
    return BlockFacts(state="ran", exception=Raised(type_, names or (type_, "Exception"), message, line))


def grad(name: str = "w.grad", finite: bool = True) -> Gradient:
    return Gradient(name, (1,), "float32", finite, "[30]")


def test_documented_error_at_the_documented_line_passes() -> None:
    facts = raised(
        "RuntimeError", "element 0 of tensors does not require grad and does not have a grad_fn", 39, RUNTIME
    )
    verdict = judge(Expectation("raises", error=SEED_ERROR), facts)
    assert verdict.outcome == "passed"


def test_seed_note_as_written_explains_itself() -> None:
    facts = raised("NameError", "name 'compute_loss' is not defined", 33)
    verdict = judge(Expectation("raises", error=SEED_ERROR), facts)
    assert verdict.outcome == "failed"
    assert verdict.message == (
        'expected RuntimeError matching "element 0 of tensors does not require grad..." at line 39, '
        "got NameError: name 'compute_loss' is not defined at line 33"
    )


def test_wrong_type_wrong_message_wrong_line_and_no_exception() -> None:
    expectation = Expectation("raises", error=SEED_ERROR)
    wrong_type = raised("ValueError", "element 0 of tensors does not require grad", 39)
    wrong_message = raised("RuntimeError", "something else", 39, RUNTIME)
    wrong_line = raised("RuntimeError", "element 0 of tensors does not require grad", 40, RUNTIME)
    assert judge(expectation, wrong_type).outcome == "failed"
    assert judge(expectation, wrong_message).outcome == "failed"
    assert "got it at line 40" in judge(expectation, wrong_line).message
    nothing = judge(expectation, BlockFacts(state="ran"))
    assert nothing.outcome == "failed"
    assert "raised nothing" in nothing.message


def test_base_class_names_match() -> None:
    documented = DocumentedError("Exception", "", None, "output")
    facts = raised("RuntimeError", "anything", 3, RUNTIME)
    assert judge(Expectation("raises", error=documented), facts).outcome == "passed"
    lookup = DocumentedError("LookupError", "", None, "comment")
    key_error = raised("KeyError", "'x'", 3, ("KeyError", "LookupError", "Exception"))
    assert judge(Expectation("raises", error=lookup), key_error).outcome == "passed"


def test_undocumented_failure_passes_with_a_warning_unless_the_example_is_broken() -> None:
    expectation = Expectation("raises")
    verdict = judge(expectation, raised("RuntimeError", "boom", 3, RUNTIME))
    assert verdict.outcome == "passed"
    assert verdict.warnings and "nothing documented" in verdict.warnings[0]
    for broken in ("NameError", "SyntaxError", "ImportError"):
        assert judge(expectation, raised(broken, "x", 3)).outcome == "failed"
    not_found = raised("ModuleNotFoundError", "x", 3, ("ModuleNotFoundError", "ImportError", "Exception"))
    assert judge(expectation, not_found).outcome == "failed"
    assert judge(expectation, BlockFacts(state="ran")).outcome == "failed"


def test_gradients_present_missing_or_not_finite() -> None:
    expectation = Expectation("gradients")
    assert judge(expectation, BlockFacts(state="ran", gradients=(grad(),))).outcome == "passed"
    none = judge(expectation, BlockFacts(state="ran", leaves_without_grad=("b",)))
    assert none.outcome == "failed"
    assert "produced none" in none.message
    assert "b" in none.warnings[0]
    bad = judge(expectation, BlockFacts(state="ran", gradients=(grad(), grad("v.grad", finite=False))))
    assert bad.outcome == "failed"
    assert "v.grad" in bad.message
    crashed = judge(expectation, raised("RuntimeError", "x", 4, RUNTIME))
    assert crashed.outcome == "failed"


def test_runs_and_skip_and_process_endings() -> None:
    assert judge(Expectation("runs"), BlockFacts(state="ran")).outcome == "passed"
    assert judge(Expectation("runs"), raised("ValueError", "x", 2)).outcome == "failed"
    assert judge(Expectation("skip", skip_reason="why"), None).outcome == "skipped"
    crashed = judge(Expectation("runs"), BlockFacts(state="crashed", reason="timed out after 1 s"))
    assert crashed.outcome == "failed"
    assert "timed out after 1 s" in crashed.message
    not_run = judge(Expectation("runs"), BlockFacts(state="not_run", reason="the hidden setup failed"))
    assert not_run.message == "not run: the hidden setup failed"


def test_documented_warnings() -> None:
    warning = DocumentedError("UserWarning", "The .grad attribute", 7, "comment")
    expectation = Expectation("runs", warnings=(warning,))
    seen = Raised("UserWarning", ("UserWarning", "Warning"), "The .grad attribute of a Tensor", 7)
    assert judge(expectation, BlockFacts(state="ran", warnings=(seen,))).outcome == "passed"
    elsewhere = Raised("UserWarning", ("UserWarning", "Warning"), "The .grad attribute of a Tensor", 8)
    assert judge(expectation, BlockFacts(state="ran", warnings=(elsewhere,))).outcome == "failed"
    missing = judge(expectation, BlockFacts(state="ran"))
    assert "no warning was emitted" in missing.message


def test_documented_output_right_and_wrong() -> None:
    line_output = Expectation("runs", outputs=(DocumentedOutput("tensor([2., 4.])", 5, 5),))
    right = BlockFacts(state="ran", stdout_by_line=((5, "tensor([2.0000, 4.0000])\n"),))
    assert judge(line_output, right).outcome == "passed"
    wrong = judge(line_output, BlockFacts(state="ran", stdout_by_line=((5, "tensor([3., 4.])\n"),)))
    assert wrong.outcome == "failed"
    assert "+tensor([3., 4.])" in wrong.diff
    block_output = Expectation("runs", outputs=(DocumentedOutput("a\n...\nz\n"),))
    assert judge(block_output, BlockFacts(state="ran", stdout="a\nb\nc\nz\n")).outcome == "passed"
    assert judge(block_output, BlockFacts(state="ran", stdout="a\nb\n")).outcome == "failed"


def printed(line: int, text: str) -> BlockFacts:
    return BlockFacts(state="ran", stdout_by_line=((line, text),))


def test_labelled_print_is_compared_whole_or_by_its_end() -> None:
    whole = Expectation("runs", outputs=(DocumentedOutput("grad = tensor([99.])", 5, 5),))
    wrong = judge(whole, printed(5, "grad = tensor([15.])\n"))
    assert wrong.outcome == "failed"
    assert "+grad = tensor([15.])" in wrong.diff
    assert judge(whole, printed(5, "grad = tensor([99.])\n")).outcome == "passed"
    tail = Expectation("runs", outputs=(DocumentedOutput("torch.Size([4, 3])", 5, 5, tail=True),))
    assert judge(tail, printed(5, "输出形状: torch.Size([4, 3])\n")).outcome == "passed"
    assert judge(tail, printed(5, "输出形状: torch.Size([4, 4])\n")).outcome == "failed"
    not_tail = Expectation("runs", outputs=(DocumentedOutput("torch.Size([4, 3])", 5, 5),))
    assert judge(not_tail, printed(5, "输出形状: torch.Size([4, 3])\n")).outcome == "failed"


def test_a_comment_on_a_print_of_several_values_may_show_only_the_last() -> None:
    """``print(y1, y1.requires_grad)  # True``: the line is ``tensor(1., grad_fn=...) True``."""
    last = Expectation("runs", outputs=(DocumentedOutput("True", 5, 5, tail=True),))
    assert judge(last, printed(5, "tensor(1., grad_fn=<PowBackward0>) True\n")).outcome == "passed"
    assert judge(last, printed(5, "tensor(1., grad_fn=<PowBackward0>) False\n")).outcome == "failed"
    assert judge(last, printed(5, "True\n")).outcome == "passed"


def test_prose_after_the_value_is_not_output_but_may_be() -> None:
    prose = Expectation("runs", outputs=(DocumentedOutput("True", 5, 5, prose=" -> w 是叶子"),))
    assert judge(prose, printed(5, "True\n")).outcome == "passed"
    assert judge(prose, printed(5, "False\n")).outcome == "failed"
    printed_words = Expectation("runs", outputs=(DocumentedOutput("2", 5, 5, prose=" apples"),))
    assert judge(printed_words, printed(5, "2 apples\n")).outcome == "passed"


def test_notes_on_what_is_not_checked_are_shown_with_every_verdict() -> None:
    note = "line 3: '# Output: 2' follows no print or bare expression: not checked"
    expectation = Expectation("runs", notes=(note,))
    assert judge(expectation, BlockFacts(state="ran")).warnings == (note,)
    assert judge(expectation, raised("ValueError", "x", 2)).warnings == (note,)


def test_random_outputs_compare_shape_dtype_and_structure_and_say_so() -> None:
    draw = RandomDraw("torch.randn at line 3")
    documented = DocumentedOutput("tensor([[ 0.3367,  0.1288, -0.2345]])", 5, 5, random=draw)
    verdict = judge(
        Expectation("runs", outputs=(documented,)), printed(5, "tensor([[1.5410, -0.2934, -2.1788]])\n")
    )
    assert verdict.outcome == "passed"
    assert verdict.warnings == (
        "output of line 5: numbers differ from the documented ones, but torch.randn at line 3 draws random "
        "numbers without a seed, so only shape, dtype and structure were compared",
    )
    same = judge(
        Expectation("runs", outputs=(documented,)), printed(5, "tensor([[0.3367, 0.1288, -0.2345]])\n")
    )
    assert same.warnings == ()
    for wrong in ("tensor([[1.5410, -0.2934]])", "tensor([[1.5410, -0.2934, -2.1788]], dtype=torch.float64)"):
        assert judge(Expectation("runs", outputs=(documented,)), printed(5, wrong)).outcome == "failed"
    shape = DocumentedOutput("torch.Size([2, 3])", 5, 5, random=draw)
    assert judge(Expectation("runs", outputs=(shape,)), printed(5, "torch.Size([2, 4])")).outcome == "failed"
    integers = DocumentedOutput(
        "tensor([3, 1, 2])", 5, 5, random=RandomDraw("torch.randperm at line 3", True)
    )
    assert (
        judge(Expectation("runs", outputs=(integers,)), printed(5, "tensor([2, 0, 1])")).outcome == "passed"
    )


def test_any_line_of_the_documented_statement_counts() -> None:
    documented = DocumentedError("RuntimeError", "", 5, "trailing", 7)
    expectation = Expectation("raises", error=documented)
    for line in (5, 6, 7):
        assert judge(expectation, raised("RuntimeError", "x", line, RUNTIME)).outcome == "passed"
    assert "got it at line 8" in judge(expectation, raised("RuntimeError", "x", 8, RUNTIME)).message


def test_the_top_level_line_that_called_a_raising_helper_counts() -> None:
    expectation = Expectation("raises", error=DocumentedError("ValueError", "", 9, "trailing"))
    in_helper = BlockFacts(state="ran", exception=Raised("ValueError", ("ValueError",), "bad", 4, top_line=9))
    assert judge(expectation, in_helper).outcome == "passed"
    elsewhere = BlockFacts(state="ran", exception=Raised("ValueError", ("ValueError",), "bad", 4, top_line=8))
    assert judge(expectation, elsewhere).message == "expected ValueError at line 9, got it at line 4"


def test_a_type_alone_accepts_any_message() -> None:
    expectation = Expectation("raises", error=DocumentedError("RuntimeError", "", 5, "comment"))
    assert judge(expectation, raised("RuntimeError", "anything at all", 5, RUNTIME)).outcome == "passed"
    assert judge(expectation, raised("ValueError", "anything at all", 5)).outcome == "failed"


def test_every_output_mismatch_of_a_block_is_reported() -> None:
    outputs = tuple(DocumentedOutput(text, line, line) for text, line in (("1", 5), ("2", 6), ("3", 7)))
    facts = BlockFacts(state="ran", stdout_by_line=((5, "1\n"), (6, "20\n"), (7, "30\n")))
    verdict = judge(Expectation("runs", outputs=outputs), facts)
    assert verdict.message == "output of line 6, line 7 differ from the documented output"
    assert "--- documented (line 6)" in verdict.diff and "+++ actual (line 7)" in verdict.diff
    assert "+20" in verdict.diff and "+30" in verdict.diff


def test_non_finite_gradients_show_their_values() -> None:
    nan = Gradient("v.grad", (2,), "float32", False, "[nan, 1]")
    verdict = judge(Expectation("gradients"), BlockFacts(state="ran", gradients=(grad(), nan)))
    assert verdict.message == "non-finite gradients (nan or inf): v.grad = [nan, 1]"


def test_a_long_message_that_differs_says_where() -> None:
    documented = DocumentedError(
        "RuntimeError", "element 0 of tensors does not require grad and has no grad_fn", 5, "comment"
    )
    real = "element 0 of tensors does not require grad and does not have a grad_fn"
    verdict = judge(Expectation("raises", error=documented), raised("RuntimeError", real, 5, RUNTIME))
    assert verdict.message.endswith(
        "; the messages differ from character 48: documented '…ot require grad and has no grad_fn', "
        "actual '…ot require grad and does not have a grad'"
    )
    other_type = judge(Expectation("raises", error=documented), raised("ValueError", real, 5))
    assert "differ from character" not in other_type.message


def test_a_bare_number_documents_a_one_element_tensor() -> None:
    documented = Expectation("runs", outputs=(DocumentedOutput("-12", 5, 5),))
    for shown in ("tensor(-12.)\n", "tensor([-12.])\n", "tensor(-12., grad_fn=<MulBackward0>)\n", "-12\n"):
        assert judge(documented, printed(5, shown)).outcome == "passed", shown
    for shown in ("tensor(-13.)\n", "tensor([-12., 1.])\n", "tensor([[-12.]])\n", "array(-12.)\n"):
        assert judge(documented, printed(5, shown)).outcome == "failed", shown


def test_a_tuple_of_sizes_documents_a_torch_size() -> None:
    documented = Expectation("runs", outputs=(DocumentedOutput("(4, 3)", 5, 5, tail=True),))
    assert judge(documented, printed(5, "shape: torch.Size([4, 3])\n")).outcome == "passed"
    assert judge(documented, printed(5, "shape: (4, 3)\n")).outcome == "passed"
    assert judge(documented, printed(5, "shape: torch.Size([4, 4])\n")).outcome == "failed"
    one = Expectation("runs", outputs=(DocumentedOutput("(7,)", 5, 5),))
    assert judge(one, printed(5, "torch.Size([7])\n")).outcome == "passed"


def test_output_documented_on_a_gpu_is_not_runnable_here_not_a_mistake() -> None:
    """``>>> x.to(device)`` pasted from a CUDA machine: the device differs, not the note's claim."""
    gpu = Expectation("runs", outputs=(DocumentedOutput("device(type='cuda', index=0)", 5, 5),))
    facts = printed(5, "device(type='cpu')\n")
    verdicts = not_runnable_here(
        [(CodeBlock(line=3, code="device", lang="python"), facts, judge(gpu, facts))]
    )
    assert (verdicts[0].outcome, verdicts[0].reason) == ("not_runnable", "needs_cuda")
    wrong = Expectation("runs", outputs=(DocumentedOutput("device(type='cpu', index=0)", 5, 5),))
    assert (
        not_runnable_here([(CodeBlock(3, "device", "python"), facts, judge(wrong, facts))])[0].outcome
        == "failed"
    )
    assert judge(gpu, printed(5, "device(type='cuda', index=0)\n")).outcome == "passed"


def test_a_skipped_cell_defines_nothing_for_later_blocks() -> None:
    """d2l: ``from d2l import mxnet as d2l`` in a skipped mxnet cell does not make a later
    ``d2l.tensor(...)`` a real NameError when the pytorch cell's import could not run here."""
    nameerror = BlockFacts(
        state="ran", exception=Raised("NameError", ("NameError",), "name 'd2l' is not defined", 2)
    )
    missing = BlockFacts(
        state="ran",
        exception=Raised(
            "ModuleNotFoundError", ("ModuleNotFoundError", "ImportError"), "No module named 'd2l'", 2
        ),
    )
    runs = Expectation("runs")
    judged = [
        (CodeBlock(1, "from d2l import torch as d2l", "python"), missing, judge(runs, missing)),
        (CodeBlock(5, "from d2l import mxnet as d2l", "python"), None, Verdict("skipped", "mxnet cell")),
        (CodeBlock(9, "d2l.tensor([1.0])", "python"), nameerror, judge(runs, nameerror)),
    ]
    verdicts = not_runnable_here(judged)
    assert [verdict.outcome for verdict in verdicts] == ["not_runnable", "skipped", "not_runnable"]
    assert verdicts[2].reason == "depends_on_failed"
