"""expect: what a note documents about each block. Pure."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from noteexec.expect import Expectation, Families, expect, expect_note
from noteexec.expect.documented import DocumentedError, DocumentedOutput, RandomDraw
from noteexec.parse import parse_note
from noteexec.textmatch import WILDCARD, _same, _tokens, matches
from tests.conftest import SEED_NOTE, callout, fence


def only_expectation(text: str, families: Families | None = None) -> Expectation:
    [block] = parse_note(text).blocks
    return expect(block, families or Families())


def test_seed_note_expectations() -> None:
    note = parse_note(SEED_NOTE.read_text(encoding="utf-8"))
    failing, succeeding = (expect(block) for block in note.blocks)
    assert failing.kind == "raises"
    assert failing.error == DocumentedError(
        "RuntimeError", "element 0 of tensors does not require grad...", 39, "comment"
    )
    assert succeeding.kind == "gradients"
    assert succeeding.outputs == ()  # "# 查看梯度" describes, it documents nothing


def test_callout_families_set_the_default() -> None:
    assert only_expectation(callout("missing", "x = 1")).kind == "raises"
    assert only_expectation(callout("done", "x = 1")).kind == "gradients"
    assert only_expectation(callout("tip", "x = 1")).kind == "runs"
    assert only_expectation(callout("mystery", "x = 1")).kind == "runs"
    assert only_expectation(fence("x = 1")).kind == "runs"


def test_families_are_configurable() -> None:
    families = Families(failure=frozenset({"bug"}), success=frozenset({"tip"}))
    assert only_expectation(callout("bug", "x = 1"), families).kind == "raises"
    assert only_expectation(callout("fail", "x = 1"), families).kind == "runs"
    assert only_expectation(callout("hint", "x = 1"), families).kind == "gradients"


def test_comment_line_pins_the_next_code_line() -> None:
    code = "a = 1\n# => ValueError: bad value\n\n# more words\nint('x')\n"
    expectation = only_expectation(fence(code))
    assert expectation.kind == "raises"
    assert expectation.error == DocumentedError("ValueError", "bad value", 1 + 5, "comment")


def test_trailing_comment_pins_its_own_line() -> None:
    expectation = only_expectation(callout("note", "y = 2\ny.backward()  # RuntimeError: Trying to backward"))
    assert expectation.kind == "raises"
    assert expectation.error == DocumentedError("RuntimeError", "Trying to backward", 2 + 2, "trailing")


def test_hash_inside_a_string_is_not_a_comment() -> None:
    expectation = only_expectation(fence('text = "# ValueError: not a comment"\n'))
    assert expectation.kind == "runs"
    assert expectation.error is None


def test_output_fence_with_a_traceback_documents_an_unpinned_error() -> None:
    text = fence("import torch\ntorch.zeros(2).numpy()") + (
        '```pytb\nTraceback (most recent call last):\n  File "x", line 2\n'
        "torch.OutOfMemoryError: big\n\n```\n"
    )
    expectation = only_expectation(text)
    assert expectation.error == DocumentedError("torch.OutOfMemoryError", "big", None, "output")


def test_output_fence_without_error_is_the_expected_stdout() -> None:
    expectation = only_expectation(fence("print(1)") + "```\n1\n```\n")
    assert expectation.kind == "runs"
    assert expectation.outputs == (DocumentedOutput("1\n"),)


def test_documented_warning_does_not_require_a_raise() -> None:
    code = "b = a * 2\n# UserWarning: The .grad attribute of a Tensor that is not a leaf...\nprint(b.grad)\n"
    expectation = only_expectation(callout("fail", code))
    assert expectation.kind == "runs"
    assert expectation.error is None
    assert expectation.warnings == (
        DocumentedError(
            "UserWarning", "The .grad attribute of a Tensor that is not a leaf...", 2 + 3, "comment"
        ),
    )


@pytest.mark.parametrize(
    ("comment", "documented"),
    [
        ("=> tensor([2.])", "tensor([2.])"),
        ("Output: 3", "3"),
        ("输出: [1, 2]", "[1, 2]"),
        ("tensor([1., 2.])", "tensor([1., 2.])"),
        ("True", "True"),
        ("-0.5", "-0.5"),
        ("(2, 3)", "(2, 3)"),
        ("查看梯度", None),
        ("prints the gradient", None),
        ("(更新参数)", None),
        ("[batch, seq_len]", None),
        ("(N, C, H, W)", None),
        ("(True, False)", "(True, False)"),
        ("('猫', '狗')", "('猫', '狗')"),
        ("torch.Size([2, 3])", "torch.Size([2, 3])"),
    ],
)
def test_trailing_output_comments(comment: str, documented: str | None) -> None:
    expectation = only_expectation(fence(f"print(x)  # {comment}"))
    expected = (DocumentedOutput(documented, 2, 2),) if documented is not None else ()
    assert expectation.outputs == expected


def test_bare_expressions_with_documented_values_are_echoed() -> None:
    expectation = only_expectation(fence("x = 3\nx * 2  # 6\nx + 1\nprint(x)  # 3"))
    assert expectation.echo_lines == (1 + 2,)
    assert [output.line for output in expectation.outputs] == [3, 5]


def test_value_comment_on_an_assignment_documents_nothing() -> None:
    assert only_expectation(fence("y = 2  # 2")).outputs == ()


def test_multi_line_print_spans_its_lines() -> None:
    expectation = only_expectation(fence("print(\n    1,\n)  # 1"))
    assert expectation.outputs == (DocumentedOutput("1", 2, 4),)


def test_skip_marks() -> None:
    note = parse_note("%% noteexec: skip %%\n" + fence("x = 1"))
    assert expect(note.blocks[0]).kind == "skip"
    assert expect(parse_note(fence("x = 1")).blocks[0], note_skip=True).kind == "skip"


def test_code_that_does_not_parse_still_yields_its_comment_documents() -> None:
    expectation = only_expectation(fence("# SyntaxError: invalid syntax\ndef broken(:\n"))
    assert expectation.error is not None
    assert expectation.error.name == "SyntaxError"
    assert expectation.error.line == 1 + 2


@pytest.mark.parametrize(
    ("documented", "actual", "prefix", "expected"),
    [
        ("tensor([2., 4.])", "tensor([2.0000, 4.0000])", False, True),
        ("tensor([2., 4.])", "tensor([2., 4.01])", False, False),
        ("tensor([1.0000e-07])", "tensor([1.00001e-07])", False, True),
        (
            "element 0 of tensors does not require grad...",
            "element 0 of tensors does not require grad and x",
            True,
            True,
        ),
        ("element 0 of tensors", "element 1 of tensors", True, False),
        ("a … c", "a b b c", False, True),
        ("grad   can be\n implicitly", "grad can be implicitly created", True, True),
        ("", "anything", True, True),
        ("tensor([nan])", "tensor([nan])", False, True),
        ("Can't call numpy()", "Can't call numpy() on Tensor that requires grad.", True, True),
        ("[[1, 2], [3, 4]]", "[[1, 2],\n [3, 4]]", False, True),
        ("1 2", "12", False, False),
        ("<MulBackward0 object at 0x7f3a2c1d5e80>", "<MulBackward0 object at 0x7f1100aa2b30>", False, True),
        ("<MulBackward0 object at 0x...>", "<MulBackward0 object at 0x7f1100aa2b30>", False, True),
        ("<MulBackward0 object at ...>", "<MulBackward0 object at 0x7f1100aa2b30>", False, True),
        ("<AddBackward0 object at 0x7f3a2c1d5e80>", "<MulBackward0 object at 0x7f1100aa2b30>", False, False),
        # IPython's display of the same object (a note written in Jupyter) has no "object"
        ("<AddBackward0 at 0x7f96b951ba90>", "<AddBackward0 object at 0x7f1100aa2b30>", False, True),
        ("<AddBackward0 at 0x7f96b951ba90>", "<MulBackward0 object at 0x7f1100aa2b30>", False, False),
        ("<AddBackward0 object at 0x7f3a2c1d5e80>", "<AddBackward0 at 0x7f1100aa2b30>", False, True),
        ("an object at home", "an at home", False, False),
        ("0x7f3a2c1d5e80", "0x7f1100aa2b30", False, False),
    ],
)
def test_matching(documented: str, actual: str, prefix: bool, expected: bool) -> None:
    assert matches(documented, actual, prefix=prefix) is expected


def reference_match(expected: str, actual: str, prefix: bool) -> bool:
    """Every way the documented tokens can line up with the actual ones (a dynamic programme)."""
    pattern = _tokens(expected) + ([WILDCARD] if prefix else [])
    words = [token for token in _tokens(actual) if token is not WILDCARD]
    reachable = [True] + [False] * len(words)  # the pattern so far can match exactly j words
    for token in pattern:
        if token is WILDCARD:
            for j in range(1, len(words) + 1):
                reachable[j] = reachable[j] or reachable[j - 1]
        else:
            for j in range(len(words), 0, -1):
                reachable[j] = reachable[j - 1] and _same(token, words[j - 1])
            reachable[0] = False
    return reachable[len(words)]


texts = st.lists(st.sampled_from(["a", "b", "(", "1", "1.00001", "2", "...", "…"]), max_size=9).map(" ".join)


@given(texts, texts, st.booleans())
def test_matching_agrees_with_trying_every_alignment(documented: str, actual: str, prefix: bool) -> None:
    assert matches(documented, actual, prefix=prefix) is reference_match(documented, actual, prefix)


TRICKY_STATEMENTS = """
import torch
x = 1
x  # 1
def f(a):
    print(a)  # 2
    class C:
        y = [z for z in range(3)]
        y  # [0, 1, 2]
    return lambda: (yield_ := 3)
async def g():
    async with h() as k:
        await k  # ignored
    async for item in k:
        item
try:
    f(1)
except ValueError as error:
    error
else:
    "else"
finally:
    "finally"
match x:
    case 1:
        "one"
    case _:
        pass
while False:
    "loop"
else:
    "loop else"
with open("p") as p, open("q") as q:
    p.read()
if x:
    (lambda: 0)()
"""


def test_statement_walk_finds_every_expression_statement_ast_walk_finds() -> None:
    import ast
    from pathlib import Path

    from noteexec.expect.syntax import statements as _statements

    sources = [TRICKY_STATEMENTS] + [
        block.code
        for path in sorted((Path(__file__).parent.parent / "notes").glob("*.md"))
        for block in parse_note(path.read_text(encoding="utf-8")).blocks
    ]
    for source in sources:
        tree = ast.parse(source)
        walked = {id(node) for node in ast.walk(tree) if isinstance(node, ast.Expr)}
        assert {id(node) for node in _statements(tree) if isinstance(node, ast.Expr)} == walked
    assert len(sources) > 30


@pytest.mark.parametrize(
    ("line", "documented"),
    [
        ('print(f"grad = {w.grad}")  # grad = tensor([99.])', DocumentedOutput("grad = tensor([99.])", 2, 2)),
        ('print("grad:", w.grad)  # grad: tensor([6.])', DocumentedOutput("grad: tensor([6.])", 2, 2)),
        (
            'print(f"输出形状: {out.shape}")  # torch.Size([4, 3])',
            DocumentedOutput("torch.Size([4, 3])", 2, 2, tail=True),
        ),
        ('print(f"grad = {w.grad}")  # 梯度', None),
        ('print(f"{w.grad}")  # tensor([1.])', DocumentedOutput("tensor([1.])", 2, 2)),
        ("print(x.dtype)  # torch.float32", DocumentedOutput("torch.float32", 2, 2)),
        # several values on one line: the comment may show only the last (a real note's style)
        ("print(y1, y1.requires_grad)  # True", DocumentedOutput("True", 2, 2, tail=True)),
        ("print(*shapes)  # torch.Size([3])", DocumentedOutput("torch.Size([3])", 2, 2, tail=True)),
        (
            "print(y.grad_fn)  # <MulBackward0 object at ...>",
            DocumentedOutput("<MulBackward0 object at ...>", 2, 2),
        ),
    ],
)
def test_labelled_prints_document_their_line(line: str, documented: DocumentedOutput | None) -> None:
    assert only_expectation(fence(line)).outputs == ((documented,) if documented else ())


@pytest.mark.parametrize(
    ("comment", "value", "prose"),
    [
        ("True -> w 是叶子", "True", " -> w 是叶子"),
        ("None, because it's a leaf node", "None", ", because it's a leaf node"),
        ("tensor(0.1429) -> 25 / 175", "tensor(0.1429)", " -> 25 / 175"),
        ("True（叶子节点）", "True", "（叶子节点）"),
        ("6.0 因为 dy/dx = 2x", "6.0", " 因为 dy/dx = 2x"),
        ("tensor([1., 2.], requires_grad=True)", "tensor([1., 2.], requires_grad=True)", ""),
        ("True, False", "True, False", ""),
        ("torch.float32 cpu", "torch.float32 cpu", ""),
        ("Parameter containing: tensor([1.])", "Parameter containing: tensor([1.])", ""),
        (
            "<MulBackward0 object at 0x7f3a2c1d5e80> # the node",
            "<MulBackward0 object at 0x7f3a2c1d5e80>",
            " # the node",
        ),
    ],
)
def test_prose_after_the_value_is_kept_apart(comment: str, value: str, prose: str) -> None:
    [output] = only_expectation(fence(f"print(x)  # {comment}")).outputs
    assert (output.text, output.prose) == (value, prose)
    assert output.text + output.prose == comment


def test_labelled_comment_with_prose_after_the_value() -> None:
    [output] = only_expectation(
        fence('print(f"w.grad = {w.grad}")  # w.grad = tensor([6.]) -> 2 * 3')
    ).outputs
    assert (output.text, output.prose, output.tail) == ("w.grad = tensor([6.])", " -> 2 * 3", False)


@pytest.mark.parametrize(
    "code",
    [
        "print(w.grad)\n# 输出：tensor([6.])",
        "print(w.grad)\n\n# Output: tensor([6.])",
        "print(w.grad)\n# out: tensor([6.])",
        "print(w.grad)  # 查看梯度\n# => tensor([6.])",
        "print(\n    w.grad\n)\n# 输出结果: tensor([6.])",
    ],
)
def test_own_line_output_comment_documents_the_print_before_it(code: str) -> None:
    [output] = only_expectation(fence(code)).outputs
    assert output.text == "tensor([6.])"
    assert output.line == 2


def test_own_line_output_prefix_alone_takes_the_comment_lines_after_it() -> None:
    code = "print(x)\n# 输出：\n# tensor([[1., 2.],\n#         [3., 4.]])\ny = 1\n# not output"
    [output] = only_expectation(fence(code)).outputs
    assert output.text == "tensor([[1., 2.],\n        [3., 4.]])"
    assert (output.line, output.end_line) == (2, 2)


def test_own_line_output_stops_at_an_empty_comment_line() -> None:
    code = "print(x)\n# Output:\n# tensor([1., 2.])\n#\n# 注意：这是一个向量"
    [output] = only_expectation(fence(code)).outputs
    assert output.text == "tensor([1., 2.])"


def test_own_line_output_comment_after_no_printing_statement_is_a_note() -> None:
    expectation = only_expectation(fence("y = 2\n# Output: 2"))
    assert expectation.outputs == ()
    assert expectation.notes == ("line 3: '# Output: 2' follows no print or bare expression: not checked",)


def test_own_line_value_comment_without_a_prefix_documents_nothing() -> None:
    assert only_expectation(fence("print(x)\n# tensor([6.])\ny = 1")).outputs == ()


def test_own_line_output_comment_after_a_bare_expression_echoes_it() -> None:
    expectation = only_expectation(fence("w.grad\n# Output: tensor([6.])"))
    assert expectation.echo_lines == (2,)


def note_expectations(text: str) -> tuple[Expectation, ...]:
    note = parse_note(text)
    return expect_note(note.blocks, Families(), note.options.skip, note.setup)


def test_unseeded_random_draws_mark_the_outputs_of_their_block_and_later_blocks() -> None:
    text = (
        fence("print(torch.ones(1))  # tensor([1.])")
        + fence("x = torch.randn(2, 3)\nprint(x)  # tensor([[...]])")
        + fence("print(x.sum())  # tensor(0.5)")
    )
    first, second, third = note_expectations(text)
    assert first.outputs[0].random is None
    assert second.outputs[0].random == RandomDraw("torch.randn at line 5")
    assert third.outputs[0].random == RandomDraw("torch.randn at line 5")


@pytest.mark.parametrize(
    ("code", "draw"),
    [
        ("torch.manual_seed(42)\nx = torch.randn(3)\nprint(x)  # tensor([1., 2., 3.])", None),
        (
            "x = torch.randn(3)\ntorch.manual_seed(42)\nprint(x)  # tensor([1., 2., 3.])",
            "torch.randn at line 2",
        ),
        ("x = torch.empty(3)\nprint(x)  # tensor([0., 0., 0.])", "torch.empty at line 2"),
        ("layer = nn.Linear(2, 1)\nprint(layer.weight)  # tensor([[0.1, 0.2]])", "nn.Linear at line 2"),
        ("x = torch.randint(0, 9, (3,))\nprint(x)  # tensor([1, 2, 3])", "torch.randint at line 2"),
        ("x = torch.arange(3.)\nprint(x)  # tensor([0., 1., 2.])", None),
    ],
)
def test_which_draws_are_unseeded(code: str, draw: str | None) -> None:
    [output] = only_expectation(fence(code)).outputs
    assert (output.random.where if output.random else None) == draw
    assert output.random is None or output.random.integers == ("randint" in code)


def test_hidden_setup_draws_count_and_a_seed_in_another_block_does_not() -> None:
    text = "%%\n" + fence("base = torch.rand(2)") + "%%\n\n" + fence("print(base)  # tensor([0.5, 0.5])")
    [expectation] = note_expectations(text)
    assert expectation.outputs[0].random == RandomDraw("torch.rand at line 3")
    seeded_elsewhere = fence("torch.manual_seed(0)") + fence("print(torch.randn(2))  # tensor([1., 2.])")
    assert note_expectations(seeded_elsewhere)[1].outputs[0].random is not None


def test_the_last_bare_expression_before_an_output_fence_is_echoed_like_jupyter() -> None:
    expectation = only_expectation(
        fence("layer = nn.Linear(3, 1)\nlayer.weight") + "```\nParameter containing:\n```\n"
    )
    assert expectation.echo_lines == (3,)
    printing = only_expectation(fence("x = 1\nprint(x)") + "```\n1\n```\n")
    assert printing.echo_lines == ()


SESSION = """>>> w = torch.tensor([3.0], requires_grad=True)
>>> y = w * w
>>> y.backward()
>>> w.grad
tensor([6.])
>>> for step in range(2):
...     print(step)
0
1
>>> y.backward()
Traceback (most recent call last):
  ...
RuntimeError: Trying to backward through the graph a second time...
"""


@pytest.mark.parametrize("lang", ["pycon", "python"])
def test_a_transcript_runs_without_prompts_and_documents_each_output(lang: str) -> None:
    expectation = only_expectation(fence(SESSION, lang))
    assert expectation.code == (
        "w = torch.tensor([3.0], requires_grad=True)\ny = w * w\ny.backward()\nw.grad\n\n"
        "for step in range(2):\n    print(step)\n\n\ny.backward()\n\n\n\n"
    )
    assert expectation.outputs == (
        DocumentedOutput("", 2, 2),
        DocumentedOutput("", 3, 3),
        DocumentedOutput("", 4, 4),
        DocumentedOutput("tensor([6.])\n", 5, 5),
        DocumentedOutput("0\n1\n", 7, 8),
    )
    assert expectation.echo_lines == (4, 5)  # REPL echoes, not assignments
    assert expectation.kind == "raises"
    assert expectation.error == DocumentedError(
        "RuntimeError", "Trying to backward through the graph a second time...", 11, "transcript", 11
    )


def test_a_transcript_that_goes_on_after_its_exception_says_what_is_not_checked() -> None:
    expectation = only_expectation(
        fence(">>> int('x')\nTraceback (most recent call last):\nValueError: bad\n>>> 1 + 1\n2")
    )
    assert expectation.outputs == ()
    assert expectation.notes == (
        "line 5: the transcript goes on after the exception documented at line 2, but a block stops at its "
        "first exception: not checked",
    )


def test_a_transcript_doctest_cannot_read_is_run_as_written_and_says_why() -> None:
    expectation = only_expectation(fence(">>>x = 1", "pycon"))
    assert expectation.code is None
    assert expectation.notes and expectation.notes[0].startswith("not read as a >>> transcript:")


def test_magic_and_shell_lines_are_skipped_and_named() -> None:
    code = "%matplotlib inline\n!pip install d2l\nx = torch.ones(1)\nprint(x)  # tensor([1.])"
    expectation = only_expectation(fence(code))
    assert expectation.code == "\n\nx = torch.ones(1)\nprint(x)  # tensor([1.])\n"
    assert expectation.notes == (
        "line 2: IPython magic '%matplotlib inline' skipped: not Python",
        "line 3: shell command '!pip install d2l' skipped: not Python",
    )
    assert expectation.outputs == (DocumentedOutput("tensor([1.])", 5, 5),)
    assert only_expectation(fence("x = (4\n% 3)")).code is None  # valid Python stays as it is


def test_a_d2l_en_tab_magic_is_dropped_silently() -> None:
    """d2l-en marks a cell's frameworks with ``%%tab pytorch``: the parser chose the cell by it,
    so it is no magic to warn about (a note would be on every cell of a chapter)."""
    expectation = only_expectation(
        fence("%%tab pytorch\nx = torch.ones(1)\nprint(x)  # tensor([1.])", "{.python .input}")
    )
    assert expectation.code == "\nx = torch.ones(1)\nprint(x)  # tensor([1.])\n"
    assert expectation.notes == ()
    assert expectation.outputs == (DocumentedOutput("tensor([1.])", 4, 4),)


@pytest.mark.parametrize(
    "comment", ["# RuntimeError", "# 报错! RuntimeError", "# raises RuntimeError.", "# -> RuntimeError"]
)
def test_a_failure_block_may_document_only_the_type(comment: str) -> None:
    code = f"y = torch.ones(1)\n{comment}\ny.backward()"
    assert only_expectation(callout("fail", code)).error == DocumentedError(
        "RuntimeError", "", 2 + 3, "comment"
    )
    trailing = only_expectation(callout("fail", f"y = torch.ones(1)\ny.backward()  {comment}"))
    assert trailing.error == DocumentedError("RuntimeError", "", 2 + 2, "trailing")


def test_a_type_alone_outside_a_failure_block_documents_nothing() -> None:
    assert only_expectation(fence("# RuntimeError\nx = 1")).error is None
    assert only_expectation(callout("fail", "# RuntimeError handling below\nx = 1")).error is None


def test_an_error_comment_covers_every_line_of_its_statement() -> None:
    trailing = only_expectation(
        callout("fail", "loss = compute(\n    w,\n    target,\n)  # RuntimeError: shape")
    )
    assert trailing.error == DocumentedError("RuntimeError", "shape", 2 + 1, "trailing", 2 + 4)
    above = only_expectation(
        callout("fail", "# RuntimeError: shape\nloss = compute(\n    w,\n)\nprint(loss)")
    )
    assert above.error == DocumentedError("RuntimeError", "shape", 2 + 2, "comment", 2 + 4)
    in_loop = only_expectation(
        callout("fail", "for step in range(3):\n    loss.backward()  # RuntimeError: twice")
    )
    assert in_loop.error == DocumentedError("RuntimeError", "twice", 2 + 2, "trailing")
    assert in_loop.error.describe() == "RuntimeError: twice at line 4"
    assert trailing.error.describe() == "RuntimeError: shape at lines 3-6"


def test_d2l_cells_for_other_frameworks_are_skipped_with_a_reason() -> None:
    cells = "".join(
        fence(code, "{.python .input}")
        for code in ("x = 1", "#@tab pytorch\nx = 1", "#@tab mxnet, tensorflow", "#@tab all")
    )
    kinds = [(expectation.kind, expectation.skip_reason) for expectation in note_expectations(cells)]
    assert kinds == [
        ("skip", "a d2l cell for mxnet, not pytorch"),
        ("runs", None),
        ("skip", "a d2l cell for mxnet, tensorflow, not pytorch"),
        ("runs", None),
    ]


def test_a_prefixed_description_of_the_output_is_not_compared() -> None:
    assert only_expectation(fence("print(out.shape)  # Output: [batch, seq_len, hidden]")).outputs == ()
    own_line = only_expectation(fence("print(out.shape)\n# Output: (N, C, H, W)"))
    assert own_line.outputs == ()
    assert own_line.notes == (
        "line 3: '# Output: (N, C, H, W)' describes the output, it does not show it: not checked",
    )


def test_output_comments_before_any_code_describe_an_example_not_the_block() -> None:
    code = "# 示例 1：\n# 输入：n = 13\n# 输出：6\ndef count(n):\n    return n\nprint(count(6))  # 6"
    expectation = only_expectation(fence(code))
    assert [output.line for output in expectation.outputs] == [7]
    assert expectation.notes == ()


PASTED = """x = torch.tensor([[1, 2, 3],
                  [4, 5, 6]])
x.sum(dim=0)
tensor([5, 7, 9])   # [1+4, 2+5, 3+6]
x.sum(dim=1, keepdim=True)
tensor([[ 6],
        [15]])        # shape [2, 1]
"""


def test_output_pasted_as_code_under_an_expression_is_its_output() -> None:
    expectation = only_expectation(fence(PASTED, "Python"))
    assert expectation.outputs == (
        DocumentedOutput("tensor([5, 7, 9])", 4, 4),
        DocumentedOutput("tensor([[ 6],\n        [15]])", 6, 6),
    )
    assert expectation.echo_lines == (4, 6)
    assert expectation.code == (
        "x = torch.tensor([[1, 2, 3],\n                  [4, 5, 6]])\nx.sum(dim=0)\n\nx.sum(dim=1, keepdim=True)\n\n\n"
    )


def test_a_tensor_call_is_code_when_the_block_defines_tensor_or_follows_no_expression() -> None:
    defined = only_expectation(fence("from torch import tensor\nx = tensor([1])\nx\ntensor([1])"))
    assert (defined.outputs, defined.code) == ((), None)
    after_assignment = only_expectation(fence("y = 1\ntensor([1])"))
    assert (after_assignment.outputs, after_assignment.code) == ((), None)


def test_a_value_under_a_print_without_a_prefix_is_named_as_not_checked() -> None:
    """``print(w.grad)`` then ``# tensor([1.])`` (a real note's wrong value passed silently): not
    checked, since it may be commented-out code, but the verdict says so, once per comment run."""
    code = "w = torch.ones(1)\nprint(w)\n\n# tensor([1.])\n# more\nx = 1\n# (True, False)\n# 查看梯度"
    expectation = only_expectation(fence(code))
    assert expectation.outputs == ()
    assert expectation.notes == (
        "line 5: '# tensor([1.])' looks like the output of line 3 but is not checked:"
        " write '# Output:' before it to check it",
    )
    # not after a statement that is no expression, nor a description
    assert only_expectation(fence("x = torch.ones(2)\n# tensor([1., 1.])")).notes == ()
    assert only_expectation(fence("print(x)\n# (更新参数)")).notes == ()
    checked = only_expectation(fence("print(torch.ones(1))\n# Output: tensor([1.])"))
    assert checked.notes == () and len(checked.outputs) == 1


def test_a_snippet_indented_as_a_whole_runs_dedented() -> None:
    """Copied out of a function body: ``    device = ...`` was an IndentationError, not a mistake."""
    note = "```py\n    x = torch.ones(2)\n    if True:\n        print(x.sum())  # tensor(2.)\n```\n"
    expectation = only_expectation(note)
    assert expectation.code == "x = torch.ones(2)\nif True:\n    print(x.sum())  # tensor(2.)\n"
    assert expectation.outputs == (DocumentedOutput("tensor(2.)", 4, 4),)
    assert only_expectation("```py\n    x = 1\ny = 2\n```\n").code is None  # not indented as a whole
    demo = "```py\n    x = 1  # IndentationError: unexpected indent\n```\n"
    assert only_expectation(demo).code is None  # a demonstrated IndentationError stays


@pytest.mark.parametrize("indent", ["", "   "])
def test_blank_lines_inside_a_pasted_transcripts_output_are_part_of_it(indent: str) -> None:
    """A REPL paste keeps the blank lines a loop printed; doctest would end the output at the
    first one (wallace-lai's notes: only the first of six parameters was compared)."""
    transcript = [
        ">>> for i in range(2):",
        "...     print(i, '\\n')",
        "...",
        "0",
        "",
        "1",
        "",
        ">>> x = 1",
        ">>> x",
        "1",
    ]
    body = "\n".join(indent + line if line else "" for line in transcript)
    expectation = only_expectation(f"```pycon\n{body}\n```\n")
    assert [(output.text.split(), output.line) for output in expectation.outputs] == [
        (["0", "1"], 2),
        ([], 9),
        (["1"], 10),
    ]
    assert expectation.notes == ()
