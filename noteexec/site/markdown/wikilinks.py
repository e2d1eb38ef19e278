"""``[[wikilinks]]`` and ``![[embeds]]``: ``wikilink`` tokens the page's linker turns into HTML,
so the parser knows nothing about the vault; a paragraph that is only an embed becomes it."""

from __future__ import annotations

import re
from collections.abc import Sequence

from markdown_it import MarkdownIt
from markdown_it.renderer import RendererProtocol
from markdown_it.rules_core import StateCore
from markdown_it.rules_inline import StateInline
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict

from noteexec.site.markdown.context import page_context
from noteexec.site.markdown.wikitarget import WikiTarget

MAX_WIKILINK = 4096
"""The longest ``[[target#heading|alias]]`` read as a link."""


def _wikilink(state: StateInline, silent: bool) -> bool:
    start = state.pos
    embed = state.src.startswith("![[", start)
    opening = start + (3 if embed else 2)
    if not embed and not state.src.startswith("[[", start):
        return False
    close = state.src.find("]]", opening, opening + MAX_WIKILINK + 2)  # unbounded: quadratic on "[[[[…"
    if close < 0 or close > state.posMax:
        return False
    raw = state.src[opening:close]
    if not raw.strip() or "\n" in raw or "[[" in raw:
        return False
    if not silent:
        token = state.push("wikilink", "", 0)
        token.content = raw
        token.meta = {"target": WikiTarget(raw, embed)}
    state.pos = close + 2
    return True


_INLINE_EMBED = re.compile(
    r"\.(png|jpe?g|gif|svg|webp|bmp|avif|ico|mp3|wav|m4a|ogg|flac|webm|mp4|mov|mkv|ogv)$", re.IGNORECASE
)


def _block_embeds(state: StateCore) -> None:
    """A paragraph that is just ``![[note]]`` becomes the embed itself (a ``<div>`` in no ``<p>``)."""
    tokens = state.tokens
    for index, token in enumerate(tokens):
        if token.type != "inline" or not token.children:
            continue
        children = [
            child for child in token.children if not (child.type == "text" and not child.content.strip())
        ]
        if len(children) != 1 or children[0].type != "wikilink":
            continue
        target: WikiTarget = children[0].meta["target"]
        if not target.embed or _INLINE_EMBED.search(target.note):
            continue
        opening, closing = tokens[index - 1], tokens[index + 1] if index + 1 < len(tokens) else None
        if opening.type == "paragraph_open" and closing is not None and closing.type == "paragraph_close":
            opening.hidden = closing.hidden = True


def _render_wikilink(
    self: RendererProtocol, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    token = tokens[idx]
    target: WikiTarget = token.meta["target"]
    line = token.meta.get("line")
    context = page_context(env)
    if target.embed:
        return context.linker.embed(target, line, context)
    return context.linker.wikilink(target, line, context)


def wikilinks_plugin(md: MarkdownIt) -> None:
    """Wikilinks and embeds; after :func:`~noteexec.site.markdown.lines.lines_plugin`."""
    md.inline.ruler.before("link", "wikilink", _wikilink)
    md.core.ruler.after("obsidian_lines", "block_embeds", _block_embeds)
    md.add_render_rule("wikilink", _render_wikilink)
