"""Notes written the way people write study notes (issue 14), checked through the real sandbox.

Each note is realistic: a mix of prose, callouts and the forms of documenting output and errors
that real vaults use. A wrong value must fail; a right one, however it is written, must pass.
"""

from __future__ import annotations

from tests.conftest import RunNote, callout, fence, outcomes

LEAF_NOTE = "# 叶子节点与梯度\n\n> [!NOTE] 叶子节点\n> 用户创建的张量是叶子节点。\n\n" + fence(
    """
        w = torch.tensor([3.0], requires_grad=True)
        y = (w * w).sum()
        y.backward()
        print(f"grad = {w.grad}")  # grad = tensor([6.])
        print(f"输出形状: {w.grad.shape}")  # torch.Size([1])
        print("w.grad:", w.grad)  # tensor([6.])
        print(w.is_leaf)  # True -> w 是叶子
        print(y.grad_fn)  # <SumBackward0 object at 0x7f3a2c1d5e80>
        print(y.grad)  # None, because it's not a leaf node
        print(w.grad / 42)  # tensor([0.1429]) -> 6 / 42
        print(w.grad * 2)
        # 输出：tensor([12.])
        w.grad
        # Output: tensor([6.])
        """
)


def test_the_ways_people_document_output_pass_when_right(run_note: RunNote) -> None:
    result = run_note(LEAF_NOTE)
    assert outcomes(result) == ["passed"], [block.verdict for block in result.blocks]
    assert len(result.blocks[0].expectation.outputs) == 9


def test_a_wrong_labelled_value_fails(run_note: RunNote) -> None:
    result = run_note(LEAF_NOTE.replace("grad = tensor([6.])", "grad = tensor([99.])"))
    assert outcomes(result) == ["failed"]
    verdict = result.blocks[0].verdict
    assert verdict.message == "output of line 10 differs from the documented output"
    assert "-grad = tensor([99.])" in verdict.diff and "+grad = tensor([6.])" in verdict.diff


def test_each_form_catches_a_wrong_value(run_note: RunNote) -> None:
    wrong = [
        ("# torch.Size([1])", "# torch.Size([2])"),
        ("# True -> w 是叶子", "# False -> w 是叶子"),
        ("<SumBackward0 object", "<MulBackward0 object"),
        ("# None, because", "# tensor([1.]), because"),
        ("tensor([0.1429]) -> 6 / 42", "tensor([0.5]) -> 6 / 42"),
        ("# 输出：tensor([12.])", "# 输出：tensor([13.])"),
        ("# Output: tensor([6.])", "# Output: tensor([7.])"),
    ]
    for right, changed in wrong:
        assert right in LEAF_NOTE
        assert outcomes(run_note(LEAF_NOTE.replace(right, changed))) == ["failed"], changed


def test_an_output_comment_that_checks_nothing_says_so(run_note: RunNote) -> None:
    result = run_note(
        callout(
            "success",
            "x = torch.ones(1, requires_grad=True)\nloss = x.sum()\nloss.backward()\ng = x.grad\n# 输出：tensor([1.])",
        )
    )
    assert outcomes(result) == ["passed"]
    assert result.blocks[0].verdict.warnings == (
        "line 7: '# 输出：tensor([1.])' follows no print or bare expression: not checked",
    )


TRAINING_NOTE = (
    "## 一个训练步骤\n\n"
    + fence(
        """
        w = torch.tensor([1.0], requires_grad=True)
        loss = (w * 3 - 6).pow(2).sum()
        loss.backward()
        print(w.grad)
        """
    )
    + "\n训练流程：\n\n```text\n前向 → 损失 → 反向 → 更新\n```\n\n"
    + fence("print(loss.item())")
    + "\n输出：\n\n```\n9.0\n```\n"
)


def test_only_an_adjacent_or_introduced_fence_is_output(run_note: RunNote) -> None:
    result = run_note(TRAINING_NOTE)
    assert outcomes(result) == ["passed", "passed"], [block.verdict for block in result.blocks]
    assert result.blocks[0].block.output is None
    assert result.blocks[1].expectation.outputs[0].text == "9.0\n"
    assert outcomes(run_note(TRAINING_NOTE.replace("9.0\n```", "10.0\n```"))) == ["passed", "failed"]


RANDOM_NOTE = (
    "## 随机初始化\n\n"
    + fence(
        """
        x = torch.randn(2, 3)
        print(x)
        # 输出：
        # tensor([[ 0.3367,  0.1288,  0.2345],
        #         [ 0.2303, -1.1229, -0.1863]])
        print(x.shape)  # torch.Size([2, 3])
        """
    )
    + "\n```python\nlayer = nn.Linear(3, 1)\nlayer.weight\n```\n\n```\nParameter containing:\n"
    "tensor([[-0.1, 0.3, 0.2]], requires_grad=True)\n```\n"
)


def test_random_values_are_not_reported_as_wrong_but_their_shape_is_checked(run_note: RunNote) -> None:
    result = run_note(RANDOM_NOTE)
    assert outcomes(result) == ["passed", "passed"], [block.verdict for block in result.blocks]
    first, second = (block.verdict.warnings for block in result.blocks)
    assert first == (
        "output of line 5: numbers differ from the documented ones, but torch.randn at line 4 draws random "
        "numbers without a seed, so only shape, dtype and structure were compared",
    )
    assert second == (
        "output of the block: numbers differ from the documented ones, but nn.Linear at line 13 draws random "
        "numbers without a seed, so only shape, dtype and structure were compared",
    )
    wrong_shape = RANDOM_NOTE.replace("torch.Size([2, 3])", "torch.Size([3, 2])")
    assert outcomes(run_note(wrong_shape)) == ["failed", "passed"]
    extra_row = RANDOM_NOTE.replace("-0.1863]])", "-0.1863],\n#         [ 1.0, 2.0, 3.0]])")
    assert outcomes(run_note(extra_row)) == ["failed", "passed"]


TRANSCRIPT_NOTE = (
    "## 在解释器里试一试\n\n```pycon\n"
    ">>> w = torch.tensor([3.0], requires_grad=True)\n"
    ">>> y = (w * w).sum()\n"
    ">>> y.backward()\n"
    ">>> w.grad\n"
    "tensor([6.])\n"
    ">>> print(w.is_leaf, y.is_leaf)\n"
    "True False\n"
    ">>> y.backward()\n"
    "Traceback (most recent call last):\n"
    '  File "<stdin>", line 1, in <module>\n'
    "RuntimeError: Trying to backward through the graph a second time...\n"
    "```\n\n"
    "在 Jupyter 里：\n\n"
    + fence(
        """
        %matplotlib inline
        !pip install d2l
        x = torch.arange(3.0)
        print(x * 2)  # tensor([0., 2., 4.])
        """
    )
)


def test_a_pycon_transcript_runs_and_each_output_is_checked(run_note: RunNote) -> None:
    result = run_note(TRANSCRIPT_NOTE)
    assert outcomes(result) == ["passed", "passed"], [block.verdict for block in result.blocks]
    assert result.blocks[1].verdict.warnings == (
        "line 20: IPython magic '%matplotlib inline' skipped: not Python",
        "line 21: shell command '!pip install d2l' skipped: not Python",
    )
    for right, wrong in [
        ("tensor([6.])\n", "tensor([7.])\n"),
        ("True False", "True True"),
        ("a second", "a third"),
    ]:
        assert outcomes(run_note(TRANSCRIPT_NOTE.replace(right, wrong))) == ["failed", "passed"], wrong


ERRORS_NOTE = (
    "## 常见错误\n\n"
    + callout(
        "FAIL",
        """
        w = torch.tensor([2.0])
        # RuntimeError
        w.sum().backward()
        """,
        title="❌ 没有 requires_grad",
    )
    + "\n"
    + callout(
        "FAIL",
        """
        a = torch.ones(2, 3)
        b = torch.ones(4, 5)
        c = torch.matmul(
            a,
            b,
        )  # RuntimeError: mat1 and mat2 shapes cannot be multiplied...
        """,
        title="❌ 形状不匹配",
    )
    + "\n"
    + callout(
        "FAIL",
        """
        def step(x):
            y = x * 2
            return y.backward()

        step(torch.ones(2, requires_grad=True))  # RuntimeError: grad can be implicitly created only for scalar outputs
        """,
        title="❌ 非标量输出",
    )
)


def test_documented_errors_as_people_write_them(run_note: RunNote) -> None:
    result = run_note(ERRORS_NOTE)
    assert outcomes(result) == ["passed"] * 3, [block.verdict for block in result.blocks]
    helper = result.blocks[2].facts.exception
    assert (helper.line, helper.top_line) == (24, 26)  # inside the helper; the call that ran it
    wrong_type = ERRORS_NOTE.replace("# RuntimeError\n", "# ValueError\n")
    assert outcomes(run_note(wrong_type)) == ["failed", "passed", "passed"]
    moved = ERRORS_NOTE.replace("True))  # Runtime", "True))\n> z = 1  # Runtime")
    assert outcomes(run_note(moved))[2] == "failed"


def test_a_block_is_not_blamed_for_tensors_it_never_touched(run_note: RunNote) -> None:
    text = (
        fence("w = torch.tensor([1.0], requires_grad=True)")
        + callout("success", "b = torch.tensor([2.0], requires_grad=True)\nx = torch.ones(1)\nprint(x)")
        + callout(
            "success", "v = torch.tensor([2.0], requires_grad=True)\n(v * 2).sum().backward()\nprint(w)"
        )
    )
    result = run_note(text)
    assert result.blocks[1].facts.leaves_without_grad == ("b",)
    assert result.blocks[1].verdict.warnings == ("tensors that require grad got none: b",)
    assert result.blocks[2].facts.leaves_without_grad == ("w",)  # named by the block: printed, no gradient


def test_a_failure_message_shows_every_wrong_output_and_non_finite_values(run_note: RunNote) -> None:
    text = fence("print(1)  # 1\nprint(2)  # 3\nprint(4)  # 5") + callout(
        "success", "w = torch.tensor([0.0], requires_grad=True)\ntorch.sqrt(w).sum().backward()"
    )
    first, second = run_note(text).blocks
    assert first.verdict.message == "output of line 3, line 4 differ from the documented output"
    assert second.verdict.message == "non-finite gradients (nan or inf): w.grad = [inf]"


D2L_NOTE = (
    "# 自动微分\n\n"
    "```{.python .input}\nfrom mxnet import autograd, np, npx\nnpx.set_np()\n```\n\n"
    "```{.python .input}\n#@tab pytorch\nx = torch.arange(4.0, requires_grad=True)\ny = 2 * torch.dot(x, x)\n"
    "y.backward()\nx.grad\n```\n\n"
    "```{.python .input}\n#@tab tensorflow\nimport tensorflow as tf\n```\n\n"
    "```{.python .input}\n#@tab all\nprint(x.grad == 4 * x)  # tensor([True, True, True, True])\n```\n"
)


def test_d2l_pytorch_cells_run_and_other_frameworks_are_skipped(run_note: RunNote) -> None:
    result = run_note(D2L_NOTE)
    assert outcomes(result) == ["skipped", "passed", "skipped", "passed"], [b.verdict for b in result.blocks]
    assert result.blocks[0].verdict.message == "skipped: a d2l cell for mxnet, not pytorch"
    assert outcomes(run_note(D2L_NOTE.replace("True])", "False])"))) == [
        "skipped",
        "passed",
        "skipped",
        "failed",
    ]


def test_a_note_of_unrecognised_python_fences_is_not_a_pass(run_note: RunNote) -> None:
    result = run_note("# Old notes\n\n" + fence("print 'hello'", "python2"))
    assert result.status == "error"
    assert result.blocks == ()
    assert "no checkable block: ```python2``` at line 3" in result.error


def test_an_ellipsis_in_an_output_comment_matches_anything(run_note: RunNote) -> None:
    code = (
        "w = torch.ones(3, requires_grad=True)\n"
        "y = (w * 2).sum()\n"
        "print(y.grad_fn)  # <SumBackward0 object at ...>\n"
        "print(torch.arange(100))  # tensor([ 0,  1,  2, ..., 97, 98, 99])\n"
    )
    assert outcomes(run_note(fence(code))) == ["passed"]
    assert outcomes(run_note(fence(code.replace("<SumBackward0", "<MulBackward0")))) == ["failed"]
    assert outcomes(run_note(fence(code.replace("97, 98, 99", "97, 98, 100")))) == ["failed"]


def test_a_bare_number_and_a_second_comment_after_the_value(run_note: RunNote) -> None:
    code = (
        "w = torch.tensor(1.0, requires_grad=True)\n"
        "((w * 2 - 5) ** 2).backward()\n"
        "print(w.grad)  # -12\n"
        "b = torch.tensor([2.0], requires_grad=True)\n"
        "(3.0 * b).sum().backward()\n"
        "print(b.grad)  # tensor([3.])  # 因为 dy/db = 3\n"
    )
    assert outcomes(run_note(fence(code))) == ["passed"]
    assert outcomes(run_note(fence(code.replace("# -12", "# -13")))) == ["failed"]
    assert outcomes(run_note(fence(code.replace("tensor([3.])  #", "tensor([4.])  #")))) == ["failed"]


def test_output_pasted_under_an_expression_is_checked_not_run(run_note: RunNote) -> None:
    code = (
        "x = torch.tensor([[1, 2, 3],\n"
        "                  [4, 5, 6]])\n"
        "x.sum(dim=0)\n"
        "tensor([5, 7, 9])   # [1+4, 2+5, 3+6]\n"
        "x.sum(dim=1, keepdim=True)\n"
        "tensor([[ 6],\n"
        "        [15]])        # shape [2, 1]\n"
    )
    assert outcomes(run_note(fence(code, "Python"))) == ["passed"]
    assert outcomes(run_note(fence(code.replace("[15]]", "[16]]"), "Python"))) == ["failed"]
