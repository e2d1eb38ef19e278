"""Obsidian comments never reach a page: inline ``%%…%%`` is dropped while parsing, and the
``obsidian_comment`` blocks of :func:`noteexec.markdown.obsidian_plugin` render as nothing."""

from __future__ import annotations

from collections.abc import Sequence

from markdown_it import MarkdownIt
from markdown_it.renderer import RendererProtocol
from markdown_it.rules_inline import StateInline
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict


def _inline_comment(state: StateInline, silent: bool) -> bool:
    start = state.pos
    if not state.src.startswith("%%", start):
        return False
    end = state.src.find("%%", start + 2)
    # An unclosed comment hides the rest of its paragraph (Obsidian hides to the end of the note).
    state.pos = state.posMax if end < 0 or end + 2 > state.posMax else end + 2
    return True


def render_nothing(
    self: RendererProtocol, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    return ""


def comments_plugin(md: MarkdownIt) -> None:
    md.inline.ruler.after("text", "inline_comment", _inline_comment)
    md.add_render_rule("obsidian_comment", render_nothing)
