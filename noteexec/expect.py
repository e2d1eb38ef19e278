"""What a note documents about each python block, as pure data (no torch, no execution).

A block's expectation comes from its callout (failure family: must raise; success family:
must produce gradients; anything else: must run) and from what its author wrote: error
comments, trailing comments on the raising line, output fences, and documented output.
"""

from __future__ import annotations

import ast
import doctest
import io
import re
import textwrap
import tokenize
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Literal

from noteexec.model import CodeBlock

Kind = Literal["raises", "gradients", "runs", "skip"]

DEFAULT_FAILURE_FAMILY = ("failure",)
DEFAULT_SUCCESS_FAMILY = ("success",)

# `Name: message` where Name looks like an exception or warning class, optionally dotted.
_ERROR_NAME = (
    r"(?P<name>(?:[A-Za-z_]\w*\.)*"
    r"(?:[A-Z]\w*(?:Error|Exception|Warning|Exit|Interrupt)|StopIteration|Exception))"
)
_DOCUMENTED_ERROR = re.compile(rf"(?<![\w.]){_ERROR_NAME}\s*[:：]\s*(?P<message>.*)$")
_ERROR_NAME_ONLY = re.compile(
    rf"^(?:(?:报错|错误|异常|抛出|引发|raises?|throws?|error)\s*[!！:：]?|->|=>|→)?\s*{_ERROR_NAME}\s*[!！.。]?$",
    re.IGNORECASE,
)
"""A comment that is only an exception's name (``# RuntimeError``, ``# 报错! RuntimeError``): in a
failure block, the next line (or this one) must raise that type, with any message."""
_OUTPUT_WORD = r"(?:out(?:put)?|输出(?:结果)?|运行结果|打印结果|结果)\s*[:：]"
_OUTPUT_PREFIX = re.compile(rf"^(?:=>|->|{_OUTPUT_WORD})\s*", re.IGNORECASE)
_OWN_LINE_OUTPUT = re.compile(rf"^(?:=>|{_OUTPUT_WORD})\s*", re.IGNORECASE)
"""An own-line comment after a printing statement documents its output only with a prefix:
without one, ``# tensor(...)`` may as well be commented-out code or a note on the next line."""
_LOOKS_PRINTED = re.compile(
    r"^(?:tensor\(|Parameter containing|array\(|torch\.\w|<[A-Za-z_]|[-+]?\.?\d|[-+]?(?:nan|inf)\b"
    r"|\[|\(|\{|True\b|False\b|None\b)"
)
_VALUE_WORDS = frozenset(
    {"tensor", "torch", "Parameter", "containing", "array", "True", "False", "None", "nan", "inf"}
    | {"device", "dtype", "cpu", "cuda", "grad_fn", "requires_grad", "object", "at"}
)
"""Words that may follow a value in what torch prints, so they do not start prose."""
_PROSE_AFTER_VALUE = re.compile(
    r"\s*(?:->|=>|→|⇒|<-|←|--|—|#|//)"  # an arrow or another comment
    r"|[（(]?[\u3000-\u9fff\uff00-\uffef]"  # CJK text (or a full-width bracket)
    r"|\s*[,;:，；：。]\s*(?P<after_mark>[^\W\d_]+)"  # punctuation, then a word
    r"|\s+\(?(?P<after_space>[^\W\d_]+)"  # a space, then a word
)
_OPENING, _CLOSING = "([{<", ")]}>"
_DESCRIBES = re.compile(
    r"^[(（][^'\"]*[\u3000-\u9fff][^'\"]*[)）]\s*$"  # (更新参数): words in brackets, no quotes
    r"|^[\[(]\s*(?!(?:True|False|None|nan|inf)\b)[A-Za-z_]\w*"  # [batch, seq_len], (N, C, H, W)
    r"(?:\s*[,x×*]\s*(?!(?:True|False|None|nan|inf)\b)[A-Za-z_]\w*)*\s*[\])]\s*$"
)
"""A value-like comment that describes rather than shows what is printed: Python never prints
CJK words in brackets without quotes, nor a list or tuple of bare names."""


@dataclass(frozen=True)
class DocumentedError:
    """An exception or warning the note says a block raises or emits."""

    name: str
    message: str
    line: int | None
    """The note line it must come from, or None when the note pins no line."""
    form: Literal["comment", "trailing", "output", "transcript"]
    end_line: int | None = None
    """The last line of the statement at ``line``: any line of it counts."""

    @property
    def is_warning(self) -> bool:
        return self.name.endswith("Warning")

    def describe(self) -> str:
        text = f"{self.name}: {self.message}" if self.message else self.name
        return f"{text} at {self.where()}" if self.line is not None else text

    def where(self) -> str:
        """``line 5``, or ``lines 5-7`` for a statement written over several lines."""
        if self.end_line is None or self.end_line == self.line:
            return f"line {self.line}"
        return f"lines {self.line}-{self.end_line}"


@dataclass(frozen=True)
class DocumentedOutput:
    """Text a block (``line`` None) or one statement (lines ``line``..``end_line``) prints."""

    text: str
    line: int | None = None
    end_line: int | None = None
    tail: bool = False
    """The text may be the end of what was printed: the print adds a label before the value
    (``print(f"grad = {w.grad}")  # tensor([15.])``)."""
    prose: str = ""
    """Words the author wrote after the value (``# True -> w 是叶子``), exactly as written, so
    that ``text + prose`` is the whole comment: either matching what was printed passes."""
    random: RandomDraw | None = None
    """Set when the block prints after an unseeded random draw: its numbers need not be the
    author's, so only what is deterministic (shape, dtype, structure) must match."""


@dataclass(frozen=True)
class Families:
    """Which callout types demonstrate a failure and which a working fix (configurable)."""

    failure: frozenset[str] = frozenset(DEFAULT_FAILURE_FAMILY)
    success: frozenset[str] = frozenset(DEFAULT_SUCCESS_FAMILY)


@dataclass(frozen=True)
class Expectation:
    kind: Kind
    error: DocumentedError | None = None
    warnings: tuple[DocumentedError, ...] = ()
    outputs: tuple[DocumentedOutput, ...] = ()
    echo_lines: tuple[int, ...] = ()
    """Lines of bare expressions whose value the note documents: the sandbox prints them."""
    skip_reason: str | None = None
    code: str | None = None
    """What runs instead of the block's text, line for line: a ``>>>`` transcript without its
    prompts and outputs, IPython's ``%magic`` and ``!shell`` lines blanked. None: the text runs."""
    notes: tuple[str, ...] = ()
    """What the author wrote that looks documented but is not checked, and why: shown with the
    verdict, so that nothing is checked silently."""

    def runs(self, block: CodeBlock) -> str:
        """The code the sandbox runs for ``block``."""
        return block.code if self.code is None else self.code

    def describe(self) -> str:
        """The expectation in words, for reports and the site."""
        if self.kind == "skip":
            return f"skipped ({self.skip_reason})"
        if self.kind == "raises":
            text = (
                f"expects {self.error.describe()}" if self.error else "expects an exception (none documented)"
            )
        elif self.kind == "gradients":
            text = "expects to run and produce finite gradients"
        else:
            text = "expects to run without an exception"
        extras = [f"warns {warning.describe()}" for warning in self.warnings]
        lines = sorted({output.line for output in self.outputs if output.line is not None})
        checked = [f"line{'s' if len(lines) > 1 else ''} {', '.join(map(str, lines))}"] if lines else []
        if any(output.line is None for output in self.outputs):
            checked.append("the block")
        if checked:
            extras.append(f"checks the output of {' and '.join(checked)}")
        return "; ".join([text, *extras])


def expect(block: CodeBlock, families: Families = Families(), note_skip: bool = False) -> Expectation:
    """One block's expectation, as if it were the only block of its note."""
    return _expect(block, families, note_skip, None)[0]


def expect_note(
    blocks: Iterable[CodeBlock],
    families: Families = Families(),
    note_skip: bool = False,
    setup: Iterable[CodeBlock] = (),
) -> tuple[Expectation, ...]:
    """Every block's expectation. Values drawn at random without a seed, in the hidden setup or
    a block that ran before, may be what a later block prints: its numbers are not the author's."""
    random: RandomDraw | None = None
    for block in setup:
        random = _merge(random, _unseeded_draw(_syntax_tree(block.code), block.line))
    found = []
    for block in blocks:
        expectation, random = _expect(block, families, note_skip, random)
        found.append(expectation)
    return tuple(found)


def _expect(
    block: CodeBlock, families: Families, note_skip: bool, random: RandomDraw | None
) -> tuple[Expectation, RandomDraw | None]:
    """A block's expectation, and the unseeded random draws once it has run."""
    if note_skip:
        return Expectation(kind="skip", skip_reason="the note sets noteexec: {skip: true}"), random
    if block.skip:
        return Expectation(kind="skip", skip_reason="%% noteexec: skip %%"), random
    if block.tabs and not {"pytorch", "all"} & set(block.tabs):
        return Expectation(
            kind="skip", skip_reason=f"a d2l cell for {', '.join(block.tabs)}, not pytorch"
        ), random

    notes: list[str] = []
    transcript = _transcript(block, notes) if _is_transcript(block) else None
    code = transcript[0] if transcript is not None else block.code
    code, tree = _without_shell_lines(code, block.line, notes)
    code, tree = _dedented(code, tree)
    pasted: list[DocumentedOutput] = []
    if transcript is None:
        code, tree, pasted = _pasted_outputs(code, tree, block.line)
    runnable = replace(block, code=code)
    random = _merge(random, _unseeded_draw(tree, block.line))
    failure = block.callout is not None and block.callout.kind in families.failure
    documented = (
        transcript[1] if transcript is not None else list(_comment_documents(runnable, tree, failure, notes))
    )
    documented.extend(pasted)
    output_error, block_output = _output_fence_documents(block)
    if output_error is not None:
        documented.append(output_error)
    errors = [doc for doc in documented if isinstance(doc, DocumentedError) and not doc.is_warning]
    warnings = tuple(doc for doc in documented if isinstance(doc, DocumentedError) and doc.is_warning)
    outputs = [doc for doc in documented if isinstance(doc, DocumentedOutput)]
    if block_output is not None:
        outputs.append(block_output)
    echo_lines = _bare_expression_lines(runnable, outputs, tree)
    if random is not None:
        outputs = [replace(output, random=random) for output in outputs]

    callout = block.callout.kind if block.callout else None
    kind: Kind
    if errors or (callout in families.failure and not warnings):
        kind = "raises"
    elif callout in families.success:
        kind = "gradients"
    else:
        kind = "runs"
    expectation = Expectation(
        kind=kind,
        error=errors[0] if errors else None,
        warnings=warnings,
        outputs=tuple(outputs),
        echo_lines=echo_lines,
        code=code if code != block.code else None,
        notes=tuple(notes),
    )
    return expectation, random


TRANSCRIPT_LANGUAGES = frozenset({"pycon", "python-repl", "doctest"})


def _is_transcript(block: CodeBlock) -> bool:
    return block.lang in TRANSCRIPT_LANGUAGES or block.code.lstrip().startswith(">>>")


def _transcript(
    block: CodeBlock, notes: list[str]
) -> tuple[str, list[DocumentedError | DocumentedOutput]] | None:
    """A ``>>>`` session read as doctest reads it: the code to run, line for line, and each
    example's output (or exception) as documented. None when doctest cannot read it."""
    try:
        examples = doctest.DocTestParser().get_examples(_blank_output_lines(block.code))
    except ValueError as error:  # a prompt without its space, inconsistent indentation
        notes.append(f"not read as a >>> transcript: {error}")
        return None
    lines = block.code.split("\n")
    runnable = [""] * len(lines)
    documented: list[DocumentedError | DocumentedOutput] = []
    raised_at: int | None = None
    for example in examples:
        first = block.line + example.lineno + 1
        end = first + example.source.count("\n") - 1
        for number in range(example.lineno, example.lineno + example.source.count("\n")):
            runnable[number] = lines[number][example.indent + 4 :]
        if raised_at is not None:
            notes.append(
                f"line {first}: the transcript goes on after the exception documented at line "
                f"{raised_at}, but a block stops at its first exception: not checked"
            )
            continue
        error = _DOCUMENTED_ERROR.match(example.exc_msg.strip().splitlines()[-1]) if example.exc_msg else None
        if error is not None:
            documented.append(
                DocumentedError(error["name"], error["message"].strip(), first, "transcript", end)
            )
            raised_at = first
        else:
            documented.append(DocumentedOutput(example.want.replace(_BLANKLINE, ""), first, end))
    return "\n".join(runnable), documented


_BLANKLINE = "<BLANKLINE>"


def _blank_output_lines(code: str) -> str:
    """A transcript pasted from a REPL keeps the blank lines its output printed (a loop's
    ``print(..., "\\n")``), where doctest wants ``<BLANKLINE>``: a blank line with more output
    after it, before the next ``>>>``, is one (doctest would end the output there)."""
    lines = code.split("\n")
    indent: str | None = None  # the last prompt's, which doctest wants its output lines to keep
    for number, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith(">>>"):
            indent = line[: len(line) - len(line.lstrip())]
        if stripped or indent is None:
            continue
        following = next((later.strip() for later in lines[number + 1 :] if later.strip()), None)
        if following is not None and not following.startswith(">>>"):
            lines[number] = indent + _BLANKLINE
    return "\n".join(lines)


def _pasted_outputs(
    code: str, tree: ast.Module | None, fence_line: int
) -> tuple[str, ast.Module | None, list[DocumentedOutput]]:
    """Output pasted under an expression as if it were code, as a notebook shows it::

        x.sum(dim=0)
        tensor([5, 7, 9])   # [1+4, 2+5, 3+6]

    A top-level ``tensor(...)`` call right after a bare expression, in a block that never
    defines ``tensor``, is that expression's documented output: it does not run.
    """
    if tree is None or _defines(tree, "tensor"):
        return code, tree, []
    lines = code.split("\n")
    found: list[DocumentedOutput] = []
    previous: ast.stmt | None = None
    for statement in tree.body:
        value = statement.value if isinstance(statement, ast.Expr) else None
        if (
            isinstance(value, ast.Call)
            and isinstance(value.func, ast.Name)
            and value.func.id == "tensor"
            and isinstance(previous, ast.Expr)
            and previous.end_lineno is not None
            and statement.end_lineno is not None
        ):
            text = ast.get_source_segment(code, statement) or ""
            found.append(
                DocumentedOutput(text, fence_line + previous.lineno, fence_line + previous.end_lineno)
            )
            for number in range(statement.lineno, statement.end_lineno + 1):
                lines[number - 1] = ""
            continue  # the expression before it stays the one documented
        previous = statement
    if not found:
        return code, tree, []
    code = "\n".join(lines)
    return code, _syntax_tree(code), found


def _defines(tree: ast.Module, name: str) -> bool:
    """Whether the code assigns or imports ``name`` anywhere."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id == name and isinstance(node.ctx, ast.Store):
            return True
        if isinstance(node, ast.alias) and (node.asname or node.name.split(".")[0]) == name:
            return True
        if isinstance(node, ast.FunctionDef | ast.ClassDef) and node.name == name:
            return True
    return False


_SHELL_LINE = re.compile(r"^\s*[%!]")
_D2L_TAB_MAGIC = re.compile(r"^\s*%%tab\b")
"""d2l-en's framework line (``%%tab pytorch``): the parser already chose the cell by it, so it goes
silently, where any other magic is named in the verdict."""


def _without_shell_lines(code: str, fence_line: int, notes: list[str]) -> tuple[str, ast.Module | None]:
    """IPython's ``%magic`` and ``!shell`` lines are not Python: code that does not parse
    otherwise runs without them, and the verdict names each one."""
    tree = _syntax_tree(code)
    if tree is not None or not any(_SHELL_LINE.match(line) for line in code.split("\n")):
        return code, tree
    kept = []
    for number, line in enumerate(code.split("\n"), start=1):
        if number == 1 and _D2L_TAB_MAGIC.match(line):
            line = ""
        elif _SHELL_LINE.match(line):
            kind = "IPython magic" if line.lstrip().startswith("%") else "shell command"
            notes.append(f"line {fence_line + number}: {kind} '{line.strip()}' skipped: not Python")
            line = ""
        kept.append(line)
    code = "\n".join(kept)
    return code, _syntax_tree(code)


_RANDOM_FLOATS = frozenset(
    {"randn", "rand", "randn_like", "rand_like", "normal", "normal_", "uniform_", "uniform", "gauss"}
    | {"empty", "empty_like", "empty_strided", "exponential_", "cauchy_", "log_normal_", "random"}
    | {"dropout", "Dropout", "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_"}
    | {"trunc_normal_", "orthogonal_", "Linear", "Bilinear", "Conv1d", "Conv2d", "Conv3d", "Embedding"}
    | {"ConvTranspose1d", "ConvTranspose2d", "RNN", "LSTM", "GRU", "MultiheadAttention"}
)
"""Calls whose results are random (or uninitialised) floating-point numbers."""
_RANDOM_INTEGERS = frozenset(
    {"randint", "randint_like", "randperm", "multinomial", "random_", "choice", "shuffle", "sample"}
)
_SEEDS = frozenset({"manual_seed", "seed", "manual_seed_all", "set_rng_state"})


@dataclass(frozen=True)
class RandomDraw:
    """Where a note first draws random numbers without a seed, and whether any are integers."""

    where: str
    """``torch.randn at line 12``."""
    integers: bool = False


def _merge(before: RandomDraw | None, now: RandomDraw | None) -> RandomDraw | None:
    """The latest draw is named (most likely what a block prints); integers once drawn stay."""
    if before is None or now is None:
        return before or now
    return RandomDraw(now.where, before.integers or now.integers)


def _unseeded_draw(tree: ast.Module | None, fence_line: int) -> RandomDraw | None:
    """The first random draw of a block that no seed earlier in the same block fixes (the
    sandbox seeds every block with 0, so a seed from another block is not the author's)."""
    if tree is None:
        return None
    seeded_at = None
    draws: list[tuple[int, int, str, bool]] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        function = node.func
        name = function.attr if isinstance(function, ast.Attribute) else getattr(function, "id", "")
        position = (node.lineno, node.col_offset)
        if name in _SEEDS:
            seeded_at = min(seeded_at or position, position)
        elif name in _RANDOM_FLOATS or name in _RANDOM_INTEGERS:
            draws.append((*position, ast.unparse(function), name in _RANDOM_INTEGERS))
    unseeded = sorted(draw for draw in draws if seeded_at is None or draw[:2] < seeded_at)
    if not unseeded:
        return None
    line, _, name, _ = unseeded[0]
    return RandomDraw(f"{name} at line {fence_line + line}", any(draw[3] for draw in unseeded))


def _dedented(code: str, tree: ast.Module | None) -> tuple[str, ast.Module | None]:
    """A snippet indented as a whole (copied out of a function body or a list item) is meant to
    run as it reads: dedented, lines unchanged. A block that documents an IndentationError is
    left as written, as it may demonstrate one."""
    if tree is not None or "IndentationError" in code:
        return code, tree
    dedented = textwrap.dedent(code)
    dedented_tree = _syntax_tree(dedented) if dedented != code else None
    return (dedented, dedented_tree) if dedented_tree is not None else (code, tree)


def _syntax_tree(code: str) -> ast.Module | None:
    try:
        return ast.parse(code)
    except (SyntaxError, ValueError):
        return None


def _comments(code: str) -> list[tuple[int, int, str]]:
    """(code line, column, text after '#') of every comment; tokenize knows strings from comments."""
    if "#" not in code:
        return []
    found = []
    try:
        for token in tokenize.generate_tokens(io.StringIO(code).readline):
            if token.type == tokenize.COMMENT:
                found.append((token.start[0], token.start[1], token.string[1:].strip()))
    except (tokenize.TokenError, SyntaxError, IndentationError):
        # Code that does not tokenize will fail with a SyntaxError; its full-line comments still
        # say what the author meant.
        found = []
        for number, text in enumerate(code.splitlines(), start=1):
            stripped = text.lstrip()
            if stripped.startswith("#"):
                found.append((number, len(text) - len(stripped), stripped[1:].strip()))
    return found


def _comment_documents(
    block: CodeBlock, tree: ast.Module | None, failure: bool, notes: list[str]
) -> Iterable[DocumentedError | DocumentedOutput]:
    lines = block.code.splitlines()
    statements = _statement_spans(tree)
    ending, starting = _statement_extents(tree)
    comments = _comments(block.code)
    own_lines = {number: text for number, column, text in comments if not lines[number - 1][:column].strip()}
    for number, _, text in comments:
        trailing = number not in own_lines
        error = _DOCUMENTED_ERROR.search(text) or (_ERROR_NAME_ONLY.match(text) if failure else None)
        if error is not None:
            # A trailing comment ends the statement it documents; a comment line starts it.
            first = ending.get(number, number) if trailing else _next_code_line(lines, number)
            last = number if trailing else starting.get(first or 0)
            yield DocumentedError(
                name=error["name"],
                message=(error.groupdict().get("message") or "").strip(),
                line=block.line + first if first is not None else None,
                form="trailing" if trailing else "comment",
                end_line=block.line + last if first is not None and last not in (None, first) else None,
            )
        elif trailing:
            statement = statements.get(number)
            if statement is not None:
                output = _documented_output(text, statement, block.line)
                if output is not None:
                    yield output
        else:
            yield from _own_line_output(block, number, text, lines, own_lines, statements, notes)


def _documented_output(comment: str, statement: ast.Expr, fence_line: int) -> DocumentedOutput | None:
    """What a comment on a printing statement says it prints, or None for a description."""
    prefixed = _OUTPUT_PREFIX.match(comment)
    text = comment[prefixed.end() :] if prefixed else comment
    label = _print_label(statement)
    after_label = _after_prefix(text, label) if label.strip() else None
    if after_label is not None:
        value, prose = _value_and_prose(text[after_label:])
        value = text[:after_label] + value
        tail = False
    elif (prefixed or _LOOKS_PRINTED.match(text)) and not _DESCRIBES.match(text):
        value, prose = _value_and_prose(text)
        tail = bool(label.strip()) or _prints_several(statement)
    else:
        return None
    assert statement.end_lineno is not None
    return DocumentedOutput(
        text=value,
        line=fence_line + statement.lineno,
        end_line=fence_line + statement.end_lineno,
        tail=tail,
        prose=prose,
    )


def _own_line_output(
    block: CodeBlock,
    number: int,
    text: str,
    lines: list[str],
    own_lines: dict[int, str],
    statements: dict[int, ast.Expr],
    notes: list[str],
) -> Iterable[DocumentedOutput]:
    """``# 输出：tensor([6.])`` / ``# Output:`` on its own line, after the statement it documents.

    With nothing after the prefix, the comment lines that follow hold the output, up to a code
    line or an empty ``#`` line (after which the author may go on explaining).
    """
    prefixed = _OWN_LINE_OUTPUT.match(text)
    if prefixed is None:
        _note_unchecked_output(block, number, text, lines, own_lines, statements, notes)
        return
    previous = _previous_code_line(lines, number)
    if previous is None:  # comments before any code: a problem statement's example, not this block's
        return
    statement = statements.get(previous)
    if statement is None:
        notes.append(
            f"line {block.line + number}: '# {text}' follows no print or bare expression: not checked"
        )
        return
    shown = text[prefixed.end() :]
    if not shown.strip():
        following = []
        for later in range(number + 1, len(lines) + 1):
            if later not in own_lines or not own_lines[later]:  # code, or a bare '#': the output ends
                break
            following.append(lines[later - 1].strip()[1:].removeprefix(" "))
        shown = "\n".join(following)
    output = _documented_output(shown, statement, block.line)
    if output is None and _DESCRIBES.match(shown.strip()):
        notes.append(
            f"line {block.line + number}: '# {text}' describes the output, it does not show it: not checked"
        )
        return
    if output is None:  # after an explicit prefix, even text that reads like words is the output
        assert statement.end_lineno is not None
        output = DocumentedOutput(shown, block.line + statement.lineno, block.line + statement.end_lineno)
    yield output


def _prints_several(statement: ast.Expr) -> bool:
    """Whether a ``print`` writes several values on its line (``print(y, y.requires_grad)``):
    a comment after it often shows only the last one (``# True``), so it may be the line's end."""
    call = statement.value
    return (
        _is_print(statement)
        and isinstance(call, ast.Call)
        and (len(call.args) > 1 or any(isinstance(arg, ast.Starred) for arg in call.args))
    )


def _note_unchecked_output(
    block: CodeBlock,
    number: int,
    text: str,
    lines: list[str],
    own_lines: dict[int, str],
    statements: dict[int, ast.Expr],
    notes: list[str],
) -> None:
    """A value pasted as a comment under a print, without a prefix (``print(w.grad)`` then
    ``# tensor([1.])``), is not checked (it may be commented-out code); say so, so that a wrong
    value there does not pass silently."""
    if number - 1 in own_lines or not _LOOKS_PRINTED.match(text) or _DESCRIBES.match(text):
        return  # a continuation of a comment run, or no value
    previous = _previous_code_line(lines, number)
    if previous is None or previous not in statements:
        return
    if any(lines[between - 1].strip() for between in range(previous + 1, number)):
        return
    notes.append(
        f"line {block.line + number}: '# {_shorten(text)}' looks like the output of line"
        f" {block.line + previous} but is not checked: write '# Output:' before it to check it"
    )


def _shorten(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _print_label(statement: ast.Expr) -> str:
    """The literal text a ``print`` call writes before its first value, if it starts with one:
    ``print(f"grad = {w.grad}")`` → ``grad = ``; ``print("grad:", w.grad)`` → ``grad: ``."""
    call = statement.value
    if not _is_print(statement) or not isinstance(call, ast.Call) or not call.args:
        return ""
    first = call.args[0]
    if isinstance(first, ast.JoinedStr) and len(first.values) > 1:
        head = first.values[0]
        return head.value if isinstance(head, ast.Constant) and isinstance(head.value, str) else ""
    if isinstance(first, ast.Constant) and isinstance(first.value, str) and len(call.args) > 1:
        separator = next((k.value for k in call.keywords if k.arg == "sep"), ast.Constant(" "))
        if isinstance(separator, ast.Constant) and isinstance(separator.value, str):
            return first.value + separator.value
    return ""


def _after_prefix(text: str, prefix: str) -> int | None:
    """Where ``text`` goes on after ``prefix``, whitespace ignored on both; None if it does not
    start with it."""
    position = 0
    for character in prefix:
        if character.isspace():
            continue
        while position < len(text) and text[position].isspace():
            position += 1
        if position == len(text) or text[position] != character:
            return None
        position += 1
    return position


def _value_and_prose(text: str) -> tuple[str, str]:
    """Split ``tensor(0.1429) -> 25 / 175`` into the value and the words after it.

    Prose starts, outside brackets, at an arrow, CJK text, or a word that is not part of what
    torch prints (``None, because ...``, ``True w is a leaf``).
    """
    depth = 0
    for position, character in enumerate(text):
        if character in _OPENING and (character != "<" or text[position + 1 : position + 2].isalpha()):
            depth += 1
        elif character in _CLOSING and depth and (character != ">" or text[position - 1 : position] != "-"):
            depth -= 1
        elif depth == 0 and position > 0:
            prose = _PROSE_AFTER_VALUE.match(text, position)
            if prose is None:
                continue
            word = prose["after_mark"] or prose["after_space"]
            if word is None or word not in _VALUE_WORDS:
                return text[:position].rstrip(), text[position:]
    return text, ""


def _previous_code_line(lines: list[str], before: int) -> int | None:
    for number in range(before - 1, 0, -1):
        stripped = lines[number - 1].strip()
        if stripped and not stripped.startswith("#"):
            return number
    return None


def _next_code_line(lines: list[str], after: int) -> int | None:
    for number in range(after + 1, len(lines) + 1):
        stripped = lines[number - 1].strip()
        if stripped and not stripped.startswith("#"):
            return number
    return None


def _statement_spans(tree: ast.Module | None) -> dict[int, ast.Expr]:
    """Last code line of each printing statement → the statement: where its output is from.

    A statement prints when it is a bare expression (a ``print(...)`` call or a value that the
    sandbox echoes like a REPL would).
    """
    if tree is None:
        return {}
    return {
        node.end_lineno: node
        for node in _statements(tree)
        if isinstance(node, ast.Expr) and node.end_lineno is not None
    }


def _statement_extents(tree: ast.Module | None) -> tuple[dict[int, int], dict[int, int]]:
    """Where statements written over several lines begin and end: the first line of the
    innermost statement ending at each line, and the last line of the outermost one starting
    at each line (a comment above a loop documents the whole loop)."""
    ending: dict[int, int] = {}
    starting: dict[int, int] = {}
    if tree is None:
        return ending, starting
    for node in _statements(tree):
        assert isinstance(node, ast.stmt | ast.excepthandler | ast.match_case)
        first = getattr(node, "lineno", None) or getattr(getattr(node, "pattern", None), "lineno", None)
        last = getattr(node, "end_lineno", None) or getattr(
            getattr(node, "body", [None])[-1], "end_lineno", None
        )
        if first is None or last is None:
            continue
        if last not in ending or first > ending[last]:
            ending[last] = first
        starting[first] = max(starting.get(first, last), last)
    return ending, starting


def _statements(tree: ast.Module) -> Iterator[ast.AST]:
    """Every statement, nested ones included, without visiting expressions (``ast.walk`` visits
    every name and constant too, and statements never sit inside an expression)."""
    pending: list[ast.AST] = list(tree.body)
    while pending:
        node = pending.pop()
        yield node
        for value in vars(node).values():
            if isinstance(value, list) and value and isinstance(value[0], _HOLDS_STATEMENTS):
                pending.extend(value)


_HOLDS_STATEMENTS = (ast.stmt, ast.excepthandler, ast.match_case)


def _bare_expression_lines(
    block: CodeBlock, outputs: list[DocumentedOutput], tree: ast.Module | None
) -> tuple[int, ...]:
    """Documented expressions that are not ``print`` calls: their values must be shown.

    With an output fence, the block's last statement is one when it is a bare expression, as
    Jupyter (and d2l's exported notebooks) shows the value of a cell's last line.
    """
    documented = {output.line for output in outputs if output.line is not None}
    if tree is None:
        return ()
    if any(output.line is None for output in outputs) and tree.body and isinstance(tree.body[-1], ast.Expr):
        documented.add(block.line + tree.body[-1].lineno)
    lines = [
        block.line + node.lineno
        for node in _statements(tree)
        if isinstance(node, ast.Expr) and block.line + node.lineno in documented and not _is_print(node)
    ]
    return tuple(sorted(lines))


def _is_print(statement: ast.Expr) -> bool:
    call = statement.value
    return isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "print"


def _output_fence_documents(
    block: CodeBlock,
) -> tuple[DocumentedError | None, DocumentedOutput | None]:
    """An output fence documents either the error the block ends with or its whole stdout."""
    if block.output is None:
        return None, None
    text = block.output.text
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return None, DocumentedOutput(text="")
    error = _DOCUMENTED_ERROR.match(lines[-1].strip())
    if error is not None:
        return (
            DocumentedError(name=error["name"], message=error["message"].strip(), line=None, form="output"),
            None,
        )
    return None, DocumentedOutput(text=text)
