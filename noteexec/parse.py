"""Markdown text → :class:`Note`: frontmatter, python blocks, callouts, hidden setup, skips.

Everything comes from markdown-it tokens (see :mod:`noteexec.markdown`); line numbers are
the 1-based lines of the file as an editor shows them.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml
from markdown_it.token import Token

from noteexec.config import MAX_TIMEOUT
from noteexec.markdown import block_parser
from noteexec.memory import collector_paused
from noteexec.model import (
    OUTPUT_LANGUAGES,
    PYTHON_LANGUAGES,
    CalloutHeader,
    CodeBlock,
    Note,
    NoteOptions,
    OutputFence,
    Problem,
)
from noteexec.source import decode_source, normalize_source, read_source

SKIP_DIRECTIVE = "noteexec: skip"
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: ~10x faster
MAX_YAML_NESTING = 200
"""Deeper frontmatter is read by the pure-Python loader: libyaml recurses in C and a few
thousand nested ``[`` overflow the C stack (a segfault), where Python raises RecursionError."""
MAX_FRONTMATTER_VALUES = 100_000
"""Frontmatter that expands to more values (YAML aliases: "billion laughs") is refused."""


def read_note(path: Path) -> Note:
    """Read and parse a note file; unreadable or undecodable files become a note with a problem."""
    read = read_source(path)
    text = read if isinstance(read, Problem) else decode_source(read)
    if isinstance(text, Problem):
        return Note(path=path, utf8=b"", problems=(text,))
    return parse_note(text, path)


def parse_note(text: str, path: Path = Path("<note>")) -> Note:
    source = normalize_source(text)
    with collector_paused():  # collecting while a 20 MB note parses would triple the time
        tokens = block_parser().parse(source)
    problems: list[Problem] = []
    if "\0" in source:
        line = source.count("\n", 0, source.index("\0")) + 1
        problems.append(Problem(line, "contains a NUL byte: not a UTF-8 text file (UTF-16?)"))
    frontmatter: dict[str, Any] = {}
    if tokens and tokens[0].type == "front_matter":
        frontmatter = _load_frontmatter(tokens[0], problems)
    options = _note_options(frontmatter, tokens[0].content if frontmatter else "", problems)
    unrecognised: list[tuple[int, str]] = []
    blocks, setup = _python_blocks(tokens, problems, unrecognised)
    if unrecognised and not blocks and not setup:
        fences = ", ".join(f"```{info}``` at line {line}" for line, info in unrecognised[:3])
        more = f" and {len(unrecognised) - 3} more" if len(unrecognised) > 3 else ""
        problems.append(
            Problem(
                unrecognised[0][0],
                f"no checkable block: {fences}{more} look like Python but are not run "
                "(write ```python, or ```pycon for a >>> session)",
            )
        )
    return Note(
        path=path,
        utf8=source.encode("utf-8", "surrogatepass"),
        frontmatter=frontmatter,
        blocks=blocks,
        setup=setup,
        options=options,
        problems=tuple(problems),
    )


def _load_frontmatter(token: Token, problems: list[Problem]) -> dict[str, Any]:
    text = token.content
    loader = _YAML_LOADER if _nesting_bound(text) <= MAX_YAML_NESTING else yaml.SafeLoader
    try:
        data = yaml.load(text, Loader=loader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
        line = 2 + mark.line if mark is not None else 1  # content starts after the "---" line
        reason = getattr(error, "problem", None) or str(error).splitlines()[0]
        problems.append(Problem(line, f"invalid YAML frontmatter: {reason}"))
        return {}
    except RecursionError:
        problems.append(Problem(1, "invalid YAML frontmatter: nested too deeply"))
        return {}
    except (ValueError, TypeError, OverflowError) as error:  # e.g. a date like 2024-13-45
        problems.append(Problem(1, f"invalid YAML frontmatter: {error}"))
        return {}
    if data is None:
        return {}
    if not isinstance(data, dict):
        problems.append(
            Problem(1, f"frontmatter must be a mapping of properties, not a {type(data).__name__}")
        )
        return {}
    too_big = _expansion_problem(data)
    if too_big is not None:
        problems.append(Problem(1, f"invalid YAML frontmatter: {too_big}"))
        return {}
    return {_property_name(key): value for key, value in data.items()}


def _property_name(key: Any) -> str:
    """Property names are text, as YAML wrote them (``null:`` is the property "null")."""
    if isinstance(key, str):
        return key
    if key is None or isinstance(key, bool):
        return {None: "null", True: "true", False: "false"}[key]
    return str(key)


def _nesting_bound(text: str) -> int:
    """An upper bound of the nesting depth of a YAML document, found without parsing it.

    A block collection nests deeper only on a more indented line or after an indicator on the
    same line (``- - x``, ``a: b: c``); a flow collection after a bracket.
    """
    bound = flow = 0
    for line in text.split("\n"):
        stripped = line.lstrip(" ")
        opens = line.count("[") + line.count("{")
        indicators = stripped.count("-") + stripped.count("?") + stripped.count(":")
        bound = max(bound, 2 * (len(line) - len(stripped)) + indicators + flow + opens + 2)
        flow = max(0, flow + opens - line.count("]") - line.count("}"))
    return bound


def _expansion_problem(data: Any) -> str | None:
    """Why loaded YAML is unsafe to walk: aliases that expand it enormously, or refer to themselves.

    Every later stage (the cache's JSON, the site's property list) walks the frontmatter as a
    tree, which expands each alias again; counting the tree's values with one memo per shared
    node costs as much as the document itself.
    """
    sizes: dict[int, int] = {}
    visiting: set[int] = set()

    def size(value: Any) -> int:
        if isinstance(value, dict):
            children: Any = value.values()
        elif isinstance(value, list | tuple | set):
            children = value
        else:
            return 1
        key = id(value)
        if key in sizes:
            return sizes[key]
        if key in visiting:
            raise _AliasCycle
        visiting.add(key)
        total = 1 + sum(size(child) for child in children)
        visiting.discard(key)
        sizes[key] = total
        return total

    try:
        total = size(data)
    except _AliasCycle:
        return "a YAML alias refers to itself"
    except RecursionError:
        return "nested too deeply"
    if total > MAX_FRONTMATTER_VALUES:
        return f"expands to {total:,} values (YAML aliases?); at most {MAX_FRONTMATTER_VALUES:,} are read"
    return None


class _AliasCycle(Exception):
    pass


def _note_options(frontmatter: dict[str, Any], yaml_text: str, problems: list[Problem]) -> NoteOptions:
    raw = frontmatter.get("noteexec")
    if raw is None:
        return NoteOptions()
    line = _key_line(yaml_text, "noteexec")
    if isinstance(raw, bool):  # `noteexec: true` opts in (see opted_in); `false` opts out
        return NoteOptions(skip=not raw)
    if not isinstance(raw, dict):
        problems.append(Problem(line, "'noteexec' must be true, false or a mapping such as {skip: true}"))
        return NoteOptions()
    skip = raw.get("skip", False)
    if not isinstance(skip, bool):
        problems.append(Problem(line, f"'noteexec.skip' must be true or false, not {skip!r}"))
        skip = False
    timeout = raw.get("timeout")
    # compared, never converted first: float(10**400) overflows, and nan fails every comparison
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout <= MAX_TIMEOUT
    ):
        shown = repr(timeout) if len(repr(timeout)) <= 60 else repr(timeout)[:57] + "..."
        problems.append(
            Problem(
                line,
                f"'noteexec.timeout' must be a positive number of seconds, at most {MAX_TIMEOUT:g} "
                f"(one day), not {shown}",
            )
        )
        timeout = None
    unknown = sorted(str(key) for key in raw if key not in ("skip", "timeout"))
    if unknown:
        problems.append(Problem(line, f"unknown 'noteexec' option(s): {', '.join(unknown)}"))
    return NoteOptions(skip=skip, timeout=float(timeout) if timeout is not None else None)


def _key_line(yaml_text: str, key: str) -> int:
    """The file line of a top-level frontmatter key (the YAML starts on line 2)."""
    for offset, text in enumerate(yaml_text.split("\n")):
        if text.startswith(f"{key}:"):
            return offset + 2
    return 1


def _fence_language(token: Token) -> str:
    """The fence's language; ``python`` for a d2l cell (```` ```{.python .input} ````)."""
    if _D2L_CELL.match(token.info):
        return "python"
    return token.info.strip().split(maxsplit=1)[0].lower() if token.info.strip() else ""


_D2L_CELL = re.compile(r"^\s*\{\s*\.python\s+\.input\b")
_D2L_TAB = re.compile(r"^\s*(?:#\s*@tab|%%tab)\s+(?P<tabs>.+)$")
"""d2l's framework line: ``#@tab pytorch`` (d2l-zh) or the cell magic ``%%tab pytorch`` (d2l-en)."""
_LOOKS_PYTHON = re.compile(r"^\s*\{?\s*\.?(?:i?py(?:thon)?[\w.-]*|jupyter[\w-]*)", re.IGNORECASE)
"""A fence language someone may have meant as Python (``python2``, ``ipython``, ``{.python}``)."""


def _d2l_tabs(token: Token) -> tuple[str, ...]:
    """The frameworks a d2l cell is for: its first ``#@tab``/``%%tab`` line, else mxnet (d2l's default)."""
    if not _D2L_CELL.match(token.info):
        return ()
    first = token.content.lstrip("\n").split("\n", 1)[0]
    tab = _D2L_TAB.match(first)
    return tuple(name.lower() for name in re.split(r"[\s,]+", tab["tabs"].strip())) if tab else ("mxnet",)


def _python_blocks(
    tokens: list[Token], problems: list[Problem], unrecognised: list[tuple[int, str]], line_offset: int = 0
) -> tuple[tuple[CodeBlock, ...], tuple[CodeBlock, ...]]:
    """Visible python blocks in file order, and the hidden setup blocks inside ``%%`` comments;
    fences that look like Python but are not run go to ``unrecognised`` (line, info string).

    A fence's sibling context (same container) decides two things: a ``%% noteexec: skip %%``
    comment right before it skips it, and the next output fence after it documents it.
    """
    visible: list[CodeBlock] = []
    setup: list[CodeBlock] = []
    callouts: list[CalloutHeader] = []
    previous_sibling: dict[int, Token | None] = {}
    awaiting_output: dict[int, int] = {}  # level → index in `visible` of a block without output

    for index, token in enumerate(tokens):
        if token.level in awaiting_output and token.type != "fence" and not _introduces_output(tokens, index):
            del awaiting_output[token.level]  # a heading, a callout, prose: what follows is not output
        if token.nesting == 1:
            if token.meta.get("too_deep") and token.map is not None:
                problems.append(
                    Problem(
                        token.map[0] + 1 + line_offset,
                        "nested too deeply (callouts, quotes and lists): what is inside is not read",
                    )
                )
            if token.type == "callout_open":
                callouts.append(token.meta["callout"])
            previous_sibling[token.level + 1] = None
            awaiting_output.pop(token.level + 1, None)
            continue
        if token.nesting == -1:
            if token.type == "callout_close":
                callouts.pop()
            awaiting_output.pop(token.level + 1, None)
            previous_sibling[token.level] = token
            continue

        if token.type == "obsidian_comment":
            _comment_contents(token, problems, setup, line_offset)
        elif token.type == "fence" and token.map is not None:
            line = token.map[0] + 1 + line_offset
            if token.meta.get("unterminated"):
                problems.append(Problem(line, f"code fence '{token.markup}' is never closed"))
            language = _fence_language(token)
            if language in PYTHON_LANGUAGES:
                before = previous_sibling.get(token.level)
                skip = (
                    before is not None
                    and before.type == "obsidian_comment"
                    and before.content.strip() == SKIP_DIRECTIVE
                )
                visible.append(
                    CodeBlock(
                        line=line,
                        code=token.content,
                        lang=language,
                        callouts=tuple(callouts),
                        skip=skip,
                        tabs=_d2l_tabs(token),
                    )
                )
                awaiting_output[token.level] = len(visible) - 1
            else:
                owner = awaiting_output.pop(token.level, None)
                if owner is not None and language in OUTPUT_LANGUAGES:
                    block = visible[owner]
                    visible[owner] = _with_output(block, OutputFence(line, token.info, token.content))
                elif language not in OUTPUT_LANGUAGES and _LOOKS_PYTHON.match(token.info):
                    unrecognised.append((line, token.info.strip()))
        previous_sibling[token.level] = token
    return tuple(visible), tuple(setup)


_OUTPUT_INTRO = re.compile(
    r"^\W*(?:输出|输出结果|运行结果|打印结果|结果|报错|报错信息|错误信息|out|output|outputs|result|prints?"
    r"|error|traceback)\W*[:：]\W*$",
    re.IGNORECASE,
)
"""A one-line paragraph between a block and a fence that says the fence is its output:
``输出：``, ``**Output:**``."""


def _introduces_output(tokens: list[Token], index: int) -> bool:
    """Whether ``tokens[index]`` belongs to a paragraph that only introduces the next fence."""
    token = tokens[index]
    if token.type == "paragraph_open":
        inline = tokens[index + 1]
    elif token.type == "inline":
        inline = token
    elif token.type == "paragraph_close":
        inline = tokens[index - 1]
    else:
        return False
    return "\n" not in inline.content and _OUTPUT_INTRO.match(inline.content) is not None


def _with_output(block: CodeBlock, output: OutputFence) -> CodeBlock:
    return replace(block, output=output)


def _comment_contents(
    token: Token, problems: list[Problem], setup: list[CodeBlock], line_offset: int
) -> None:
    """Python fences inside a ``%%`` block are the note's hidden setup."""
    assert token.map is not None
    opening_line = token.map[0] + 1 + line_offset
    if token.meta.get("unterminated"):
        problems.append(Problem(opening_line, "'%%' comment is never closed"))
    if token.meta.get("inline"):
        return
    body_offset = token.meta["body_line"] + line_offset
    inner = block_parser().parse(token.content)
    hidden, nested_setup = _python_blocks(inner, problems, [], body_offset)
    setup.extend(block for block in hidden if not block.skip)
    setup.extend(nested_setup)
