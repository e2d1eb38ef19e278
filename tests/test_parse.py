"""parse: markdown → Note. Pure, no sandbox."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from noteexec.markdown import parse_callout_header
from noteexec.model import CALLOUT_ALIASES
from noteexec.parse import parse_note
from noteexec.source import normalize_source, normalize_utf8
from tests.conftest import SEED_NOTE, callout, fence


def test_seed_note_blocks_lines_and_callouts() -> None:
    note = parse_note(SEED_NOTE.read_text(encoding="utf-8"))
    assert note.problems == ()
    assert note.frontmatter["title"].startswith("PyTorch")
    assert [block.line for block in note.blocks] == [28, 44]
    assert [block.callout.kind for block in note.blocks] == ["failure", "success"]
    assert note.blocks[0].callout.raw_type == "FAIL"
    assert note.blocks[0].callout.title == "❌ 错误的做法"
    assert note.blocks[0].code.startswith("# w 的 requires_grad 默认为 False\n")
    assert ">" not in note.blocks[0].code
    assert note.blocks[0].code_line(39).strip() == "mse.backward()"


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [(alias, canonical) for canonical, aliases in CALLOUT_ALIASES.items() for alias in (canonical, *aliases)],
)
def test_every_alias_maps_to_its_canonical_type(raw: str, canonical: str) -> None:
    for spelling in (raw, raw.upper(), raw.title()):
        note = parse_note(callout(spelling, "x = 1"))
        assert note.blocks[0].callout.kind == canonical
        assert note.blocks[0].callout.raw_type == spelling


def test_header_fold_metadata_and_title() -> None:
    header = parse_callout_header("[!Tip|wide]- Folded *title*")
    assert header is not None
    assert (header.kind, header.fold, header.metadata, header.title) == ("tip", "-", "wide", "Folded *title*")
    assert parse_callout_header("[!note]+").fold == "+"
    assert parse_callout_header("[!note]").display_title == "Note"
    assert parse_callout_header("[!my-type_2] x").kind == "my-type_2"
    assert not parse_callout_header("[!my-type_2] x").known
    assert parse_callout_header("[!no spaces allowed]") is None
    assert parse_callout_header("[note]") is None


def test_nested_callouts_innermost_wins_and_depth_is_unbounded() -> None:
    depth = 12
    lines = []
    for level in range(depth):
        lines.append(">" * (level + 1) + f" [!{'note' if level % 2 else 'fail'}] level {level}")
    prefix = ">" * depth + " "
    lines += [prefix + "```python", prefix + "raise ValueError('deep')", prefix + "```"]
    note = parse_note("\n".join(lines) + "\n")
    [block] = note.blocks
    assert len(block.callouts) == depth
    assert block.callout.title == f"level {depth - 1}"
    assert block.line == depth + 1


def test_blockquote_marker_without_space_and_with_tab() -> None:
    text = (
        ">[!FAIL]\n>```python\n>raise ValueError\n>```\n\n>\t[!success] tabbed\n>\t```py\n>\tx = 1\n>\t```\n"
    )
    note = parse_note(text)
    assert [block.callout.kind for block in note.blocks] == ["failure", "success"]
    assert note.blocks[0].code == "raise ValueError\n"
    assert note.blocks[1].code == "x = 1\n"


def test_title_only_callout_and_plain_blockquote() -> None:
    note = parse_note("> [!warning] Only a title\n\n> just a quote\n> ```python\n> y = 2\n> ```\n")
    assert note.blocks[0].callout is None


def test_languages_and_fences_inside_fences_are_literal() -> None:
    text = (
        "````markdown\n> [!FAIL]\n> ```python\n> raise RuntimeError\n> ```\n````\n\n"
        + fence("a = 1", "py")
        + fence("b = 2", "python3 title='x'")
        + fence("c = 3", "javascript")
        + fence("d = 4", "Python")
    )
    note = parse_note(text)
    assert [block.code.strip() for block in note.blocks] == ["a = 1", "b = 2", "d = 4"]
    assert all(block.callout is None for block in note.blocks)


def test_blocks_in_lists_keep_their_lines() -> None:
    text = "1. step one\n\n   ```python\n   x = 1\n   ```\n- item\n  > [!fail]\n  > ```python\n  > raise KeyError\n  > ```\n"
    note = parse_note(text)
    assert [(block.line, block.code) for block in note.blocks] == [(3, "x = 1\n"), (8, "raise KeyError\n")]
    assert note.blocks[1].callout.kind == "failure"


def test_bom_crlf_and_frontmatter_keep_file_lines() -> None:
    text = "\ufeff---\r\ntitle: t\r\ntags: [a]\r\n---\r\n\r\n```python\r\nx = 1\r\n```\r\n"
    note = parse_note(text)
    assert note.frontmatter == {"title": "t", "tags": ["a"]}
    assert note.blocks[0].line == 6
    assert note.blocks[0].code == "x = 1\n"
    assert parse_note("a\rb\r```python\rx\r```\r").blocks[0].line == 3


@given(st.text(alphabet=st.sampled_from(["\r", "\n", "\ufeff", "a", "计", "🔥", "\u0d0a", "\u0a0d"])))
def test_notes_normalised_as_bytes_and_as_text_agree(text: str) -> None:
    """A warm run normalises a cached note's bytes without decoding them."""
    assert normalize_utf8(text.encode()) == normalize_source(text).encode()


def test_invalid_yaml_reports_its_line() -> None:
    note = parse_note("---\ntitle: ok\ntags: [a, b\nother: 1\n---\n\n" + fence("x = 1"))
    [problem] = note.problems
    assert "invalid YAML" in problem.message
    assert 3 <= problem.line <= 5
    assert len(note.blocks) == 1


@pytest.mark.parametrize(
    ("frontmatter", "fragment"),
    [
        ("- a\n- b", "mapping"),
        ("just text", "mapping"),
        ("noteexec: [1]", "'noteexec' must be true, false or a mapping"),
        ("noteexec: {timeout: -1}", "timeout"),
        ("noteexec: {timeout: ten}", "timeout"),
        ("noteexec: {skip: maybe}", "skip"),
        ("noteexec: {colour: red}", "unknown"),
    ],
)
def test_frontmatter_of_the_wrong_shape_is_a_problem(frontmatter: str, fragment: str) -> None:
    note = parse_note(f"---\n{frontmatter}\n---\n")
    assert any(fragment in problem.message for problem in note.problems)


def test_hidden_setup_is_not_a_visible_block() -> None:
    text = (
        "intro\n\n%%\n```python\ndef helper():\n    return 1\n```\n%%\n\n"
        + callout("success", "y = helper()")
        + "\n> [!note]\n> %%\n> ```python\n> nested_setup = True\n> ```\n> %%\n"
    )
    note = parse_note(text)
    assert [block.code for block in note.blocks] == ["y = helper()\n"]
    assert [(block.line, block.code) for block in note.setup] == [
        (4, "def helper():\n    return 1\n"),
        (17, "nested_setup = True\n"),
    ]


def test_unterminated_comment_is_flagged_and_hides_what_follows() -> None:
    note = parse_note("text\n\n%%\n" + fence("x = 1"))
    assert note.problems[0].line == 3
    assert "never closed" in note.problems[0].message
    assert note.blocks == ()


def test_skip_directive_applies_to_the_next_fence_in_the_same_container() -> None:
    text = (
        "%% noteexec: skip %%\n" + fence("skipped = 1") + "\n" + fence("runs = 1")
        + "\n> [!fail]\n> %% noteexec: skip %%\n> ```python\n> raise ValueError\n> ```\n"
        + "\n%% noteexec: skip %%\n> [!note]\n> ```python\n> inner = 1\n> ```\n"
    )  # fmt: skip
    note = parse_note(text)
    assert [block.skip for block in note.blocks] == [True, False, True, False]


def test_note_level_skip_and_timeout_options() -> None:
    note = parse_note("---\nnoteexec:\n  skip: true\n  timeout: 5\n---\n")
    assert note.options.skip is True
    assert note.options.timeout == 5.0


def test_output_fence_is_the_next_fence_in_the_same_container() -> None:
    text = (
        "> [!fail]\n> ```python\n> raise ValueError('x')\n> ```\n> ```pytb\n> ValueError: x\n> ```\n\n"
        "```text\nnot attached: different container\n```\n"
        + fence("print(1)") + fence("print(2)") + "```output\n2\n```\n"
    )  # fmt: skip
    note = parse_note(text)
    assert note.blocks[0].output is not None
    assert note.blocks[0].output.text == "ValueError: x\n"
    assert note.blocks[1].output is None
    assert note.blocks[2].output.text == "2\n"
    assert note.blocks[2].output.line == 18


@pytest.mark.parametrize("intro", ["输出：", "**Output:**", "运行结果:", "out:", "报错信息："])
def test_a_paragraph_that_introduces_the_output_keeps_it_attached(intro: str) -> None:
    note = parse_note(fence("print(1)") + f"{intro}\n\n```text\n1\n```\n")
    assert note.blocks[0].output is not None or intro.startswith(">")
    quoted = parse_note(
        "> [!note]\n> ```python\n> print(1)\n> ```\n" + f"> {intro.lstrip('> ')}\n> ```\n> 1\n> ```\n"
    )
    assert quoted.blocks[0].output is not None


@pytest.mark.parametrize(
    "between",
    [
        "训练流程：",
        "## 训练流程",
        "> [!tip] 训练流程\n> 先前向，再反向。",
        "Some prose.\nOutput:",
        "---",
        "- item",
    ],
)
def test_an_unrelated_fence_after_prose_a_heading_or_a_callout_is_not_output(between: str) -> None:
    note = parse_note(fence("print(1)") + f"\n{between}\n\n```text\nforward → loss → backward\n```\n")
    assert note.blocks[0].output is None


D2L = (
    "```{.python .input}\nfrom mxnet import np\n```\n\n"
    "```{.python .input}\n#@tab pytorch\nimport torch\n```\n\n"
    "```{.python .input  n=3}\n#@tab mxnet, tensorflow\nx = 1\n```\n\n"
    "```{.python .input}\n#@tab all\nprint(1)\n```\n"
)


def test_d2l_cells_are_python_blocks_with_their_frameworks() -> None:
    note = parse_note(D2L)
    assert [(block.line, block.lang, block.tabs) for block in note.blocks] == [
        (1, "python", ("mxnet",)),
        (5, "python", ("pytorch",)),
        (10, "python", ("mxnet", "tensorflow")),
        (15, "python", ("all",)),
    ]
    assert note.problems == ()
    assert parse_note(fence("x = 1")).blocks[0].tabs == ()


def test_d2l_en_cells_name_their_frameworks_with_a_tab_magic() -> None:
    """d2l-en writes ``%%tab pytorch`` where d2l-zh writes ``#@tab pytorch``: both choose the cell."""
    note = parse_note(
        "```{.python .input}\n%%tab mxnet\nfrom mxnet import np\n```\n\n"
        "```{.python .input  n=1}\n%%tab pytorch\nimport torch\n```\n\n"
        "```{.python .input}\n%%tab mxnet, pytorch, jax\nx = 1\n```\n\n"
        "```{.python .input}\n%%tab all\nprint(1)\n```\n"
    )
    assert [block.tabs for block in note.blocks] == [
        ("mxnet",),
        ("pytorch",),
        ("mxnet", "pytorch", "jax"),
        ("all",),
    ]


def test_a_note_whose_python_fences_are_all_unrecognised_has_no_checkable_block() -> None:
    note = parse_note(fence("print 1", "python2") + fence("x = 1", "{.python}") + fence("ok", "pytb"))
    assert [problem.line for problem in note.problems] == [1]
    assert note.problems[0].message == (
        "no checkable block: ```python2``` at line 1, ```{.python}``` at line 4 look like Python but are not run "
        "(write ```python, or ```pycon for a >>> session)"
    )
    assert parse_note(fence("print 1", "python2") + fence("x = 1")).problems == ()
    assert parse_note(fence("x = 1", "javascript") + "prose\n").problems == ()
    assert [block.lang for block in parse_note(fence("%matplotlib inline", "ipython")).blocks] == ["ipython"]
