"""Source lines on the inline tokens that may be reported (a broken link names ``file:line``)."""

from __future__ import annotations

from markdown_it import MarkdownIt
from markdown_it.rules_core import StateCore

REPORTED = frozenset({"wikilink", "tag", "link_open", "image", "html_inline"})


def _lines(state: StateCore) -> None:
    for token in state.tokens:
        if token.type != "inline" or not token.children or token.map is None:
            continue
        line = token.map[0] + 1
        for child in token.children:
            if child.type in ("softbreak", "hardbreak"):
                line += 1
            elif child.type in REPORTED:
                child.meta["line"] = line


def lines_plugin(md: MarkdownIt) -> None:
    """``meta["line"]`` (1-based) on reported inline tokens, once inline parsing is done."""
    md.core.ruler.after("inline", "obsidian_lines", _lines)
