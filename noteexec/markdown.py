"""Obsidian syntax as markdown-it-py rules, shared by the checker and the site.

Two extensions matter to every stage:
- ``%% ... %%`` comment blocks become ``obsidian_comment`` tokens (a block rule), so fences
  inside them never become visible blocks, and the checker can read them as hidden setup;
- ``> [!type]`` blockquotes become ``callout_open``/``callout_close`` tokens (a core rule over
  blockquote tokens) whose ``meta["callout"]`` holds the parsed header.

Two flags let the checker report what markdown-it passes over in silence: a fence that is never
closed (it runs to the end of its container) gets ``meta["unterminated"]``, and a container
opened at markdown-it's nesting limit (``maxNesting``: its content is not parsed at all, which
is what keeps deep nesting from exhausting Python's stack) gets ``meta["too_deep"]``.
"""

from __future__ import annotations

import re
from functools import cache

from markdown_it import MarkdownIt
from markdown_it.rules_block import StateBlock, fence
from markdown_it.rules_core import StateCore
from markdown_it.token import Token
from mdit_py_plugins.front_matter import front_matter_plugin

from noteexec.model import CANONICAL_CALLOUT, CalloutHeader

COMMENT_MARK = "%%"

_CALLOUT_HEADER = re.compile(
    r"^\[!(?P<type>[A-Za-z0-9_-]+)(?:\|(?P<metadata>[^\]]*))?\](?P<fold>[+-])?(?:[ \t]+(?P<title>.*))?$"
)


def parse_callout_header(line: str) -> CalloutHeader | None:
    match = _CALLOUT_HEADER.match(line.strip())
    if match is None:
        return None
    raw_type = match["type"]
    lowered = raw_type.lower()
    return CalloutHeader(
        kind=CANONICAL_CALLOUT.get(lowered, lowered),
        raw_type=raw_type,
        title=(match["title"] or "").strip(),
        fold=match["fold"],
        metadata=match["metadata"].strip() if match["metadata"] is not None else None,
        known=lowered in CANONICAL_CALLOUT,
    )


def _line_text(state: StateBlock, line: int) -> str:
    return state.src[state.bMarks[line] + state.tShift[line] : state.eMarks[line]]


def _comment_block(state: StateBlock, start_line: int, end_line: int, silent: bool) -> bool:
    """``%%`` on its own line opens a comment that a line ending in ``%%`` closes.

    A one-line ``%% text %%`` is a comment block too (``%% noteexec: skip %%``). An
    unterminated comment runs to the end of its container, as in Obsidian, and is flagged.
    """
    if state.sCount[start_line] - state.blkIndent >= 4:
        return False
    first = _line_text(state, start_line).rstrip()
    if not first.startswith(COMMENT_MARK):
        return False
    opening_rest = first[len(COMMENT_MARK) :]
    one_line = opening_rest.endswith(COMMENT_MARK)
    if not one_line and COMMENT_MARK in opening_rest:
        return False  # "%% a %% more text": an inline comment inside a paragraph
    if silent:
        return True

    if one_line:
        token = state.push("obsidian_comment", "", 0)
        token.map = [start_line, start_line + 1]
        token.content = opening_rest[: -len(COMMENT_MARK)].strip()
        token.meta = {"inline": True, "unterminated": False}
        state.line = start_line + 1
        return True

    close_line = start_line + 1
    while close_line < end_line and not _line_text(state, close_line).rstrip().endswith(COMMENT_MARK):
        close_line += 1
    unterminated = close_line >= end_line
    body_end = end_line if unterminated else close_line
    # keepLastLF on a last line with no line break makes markdown-it-py read past the source
    keep_last_newline = state.eMarks[body_end - 1] < len(state.src)
    body = state.getLines(start_line + 1, body_end, state.sCount[start_line], keep_last_newline)
    token = state.push("obsidian_comment", "", 0)
    token.map = [start_line, end_line if unterminated else close_line + 1]
    token.content = body
    token.meta = {"inline": False, "unterminated": unterminated, "body_line": start_line + 1}
    state.line = token.map[1]
    return True


def _fence(state: StateBlock, start_line: int, end_line: int, silent: bool) -> bool:
    """markdown-it's fence rule, flagging a fence that no closing fence ends."""
    if not fence(state, start_line, end_line, silent):
        return False
    if not silent:
        token = state.tokens[-1]
        last = state.line - 1
        closing = _line_text(state, last).rstrip()
        closed = (
            last > start_line
            and state.sCount[last] - state.blkIndent < 4
            and closing.startswith(token.markup)
            and closing == token.markup[0] * len(closing)
        )
        if not closed:
            token.meta["unterminated"] = True
    return True


def _too_deep(state: StateCore) -> None:
    """Flag containers whose content markdown-it skipped for reaching ``maxNesting``."""
    limit = state.md.options.maxNesting
    tokens = state.tokens
    for index, token in enumerate(tokens[:-1]):
        if token.nesting == 1 and token.level + 1 >= limit and tokens[index + 1].nesting == -1:
            token.meta["too_deep"] = True


def _callouts(state: StateCore) -> None:
    """Turn blockquotes whose first line is ``[!type]`` into callout tokens."""
    tokens = state.tokens
    index = 0
    while index < len(tokens):
        token = tokens[index]
        if token.type != "blockquote_open":
            index += 1
            continue
        if not (
            index + 2 < len(tokens)
            and tokens[index + 1].type == "paragraph_open"
            and tokens[index + 2].type == "inline"
        ):
            index += 1
            continue
        inline = tokens[index + 2]
        first_line, _, rest = inline.content.partition("\n")
        header = parse_callout_header(first_line)
        if header is None:
            index += 1
            continue
        token.type = "callout_open"
        token.tag = "div"
        token.meta = {"callout": header}
        close = _matching_close(tokens, index)
        tokens[close].type = "callout_close"
        tokens[close].tag = "div"
        if rest.strip():
            inline.content = rest
            if inline.map is not None:
                inline.map = [inline.map[0] + 1, inline.map[1]]
                tokens[index + 1].map = inline.map
        else:
            del tokens[index + 1 : index + 4]  # title-only paragraph: open, inline, close
        index += 1


def _matching_close(tokens: list[Token], open_index: int) -> int:
    level = tokens[open_index].level
    for index in range(open_index + 1, len(tokens)):
        candidate = tokens[index]
        if candidate.type == "blockquote_close" and candidate.level == level:
            return index
    raise AssertionError("markdown-it always closes a blockquote")


def obsidian_plugin(md: MarkdownIt) -> None:
    """Comment blocks and callouts, the syntax the checker depends on."""
    md.block.ruler.at("fence", _fence, {"alt": ["paragraph", "reference", "blockquote", "list"]})
    md.block.ruler.after(
        "fence",
        "obsidian_comment",
        _comment_block,
        {"alt": ["paragraph", "reference", "blockquote", "list"]},
    )
    md.core.ruler.after("block", "obsidian_too_deep", _too_deep)
    md.core.ruler.after("obsidian_too_deep", "obsidian_callouts", _callouts)


@cache
def block_parser() -> MarkdownIt:
    """The block-level parser the checker uses: CommonMark, front matter, Obsidian rules."""
    md = MarkdownIt("commonmark").use(front_matter_plugin).use(obsidian_plugin)
    md.disable("inline")  # the checker needs block structure only; callout titles stay raw
    return md
