"""Inline ``#tags``: links to their tag page (the linker says where), collected in the context."""

from __future__ import annotations

import re
from collections.abc import Sequence
from html import escape

from markdown_it import MarkdownIt
from markdown_it.renderer import RendererProtocol
from markdown_it.rules_inline import StateInline
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict

from noteexec.site.markdown.context import page_context

_TAG = re.compile(r"#([\w/-]+)")
_TAG_BEFORE = frozenset(" \t\n([{'\"，。、；：（")


def _tag(state: StateInline, silent: bool) -> bool:
    start = state.pos
    if state.src[start] != "#" or (start > 0 and state.src[start - 1] not in _TAG_BEFORE):
        return False
    match = _TAG.match(state.src, start, state.posMax)
    if match is None:
        return False
    name = match[1].rstrip("/-_")
    if not name or name.replace("/", "").isdigit():
        return False
    if not silent:
        token = state.push("tag", "", 0)
        token.content = name
        page_context(state.env).tags.append(name)
    state.pos = start + 1 + len(name)
    return True


def _render_tag(
    self: RendererProtocol, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    name = tokens[idx].content
    context = page_context(env)
    href = context.linker.tag_href(name, context)
    return f'<a class="tag" href="{escape(href)}">#{escape(name)}</a>'


def tags_plugin(md: MarkdownIt) -> None:
    """Tags; after :func:`~noteexec.site.markdown.wikilinks.wikilinks_plugin` (``[[#heading]]``)."""
    md.inline.ruler.after("wikilink", "tag", _tag)
    md.add_render_rule("tag", _render_tag)
