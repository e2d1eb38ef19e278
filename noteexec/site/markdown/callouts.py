"""Callouts as Obsidian draws them: the title an inline token (so it may hold Markdown), a
foldable callout a ``<details>`` (it folds without JavaScript), Obsidian's classes and icons.

Finding callouts is :func:`noteexec.markdown.obsidian_plugin`'s (the checker reads them too).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from html import escape

from markdown_it import MarkdownIt
from markdown_it.renderer import RendererProtocol
from markdown_it.rules_core import StateCore
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict

from noteexec.model import CalloutHeader
from noteexec.site import icons

_CALLOUT_NBSP = re.compile(r"^(\s*\[![^\]\n]*\][+-]?)\u00a0+")


def _callout_no_break_space(state: StateCore) -> None:
    """``> [!tip]\u00a0Title`` (a no-break space, as some editors and IMEs type) is a callout in
    Obsidian: the space becomes a plain one before callouts are found."""
    tokens = state.tokens
    for index, token in enumerate(tokens[:-2]):
        if token.type == "blockquote_open" and tokens[index + 2].type == "inline":
            inline = tokens[index + 2]
            inline.content = _CALLOUT_NBSP.sub(r"\1 ", inline.content, count=1)


def _callout_titles(state: StateCore) -> None:
    """Give each callout a title inline token so its title is Markdown like the rest."""
    tokens = state.tokens
    index = 0
    while index < len(tokens):
        token = tokens[index]
        if token.type == "callout_open":
            header: CalloutHeader = token.meta["callout"]
            line = token.map[0] if token.map else 0
            title_open = Token("callout_title_open", "div", 1, level=token.level + 1)
            title_open.meta = {"callout": header}
            inline = Token("inline", "", 0, level=token.level + 2, content=header.display_title)
            inline.map = [line, line + 1]
            inline.children = []
            title_close = Token("callout_title_close", "div", -1, level=token.level + 1)
            following = tokens[index + 1] if index + 1 < len(tokens) else None
            title_close.meta = {
                "empty": following is not None
                and following.type == "callout_close"
                and following.level == token.level
            }
            tokens[index + 1 : index + 1] = [title_open, inline, title_close]
            index += 3
        index += 1


def _render_callout_open(
    self: RendererProtocol, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    header: CalloutHeader = tokens[idx].meta["callout"]
    classes = ["callout"]
    if header.fold:
        classes.append("is-collapsible")
    if header.fold == "-":
        classes.append("is-collapsed")
    block_id = tokens[idx].attrGet("id")
    id_attr = f' id="{escape(str(block_id))}"' if block_id else ""
    element = "details" if header.fold else "div"
    open_attr = " open" if header.fold == "+" else ""
    return (
        f'<{element} class="{" ".join(classes)}"{id_attr} data-callout="{escape(header.raw_type.lower())}" '
        f'data-callout-fold="{escape(header.fold or "")}" '
        f'data-callout-metadata="{escape(header.metadata or "")}"{open_attr}>\n'
    )


def _render_callout_title_open(
    self: RendererProtocol, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    header: CalloutHeader = tokens[idx].meta["callout"]
    kind = header.kind if header.known else "note"
    element = "summary" if header.fold else "div"
    return (
        f'<{element} class="callout-title">'
        f'<div class="callout-icon">{icons.callout_icon(kind)}</div>'
        f'<div class="callout-title-inner">'
    )


def _render_callout_title_close(
    self: RendererProtocol, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    opening = tokens[idx - 2] if idx >= 2 else None
    foldable = opening is not None and opening.type == "callout_title_open" and opening.meta["callout"].fold
    fold = f'<div class="callout-fold">{icons.FOLD}</div></summary>' if foldable else "</div>"
    content = "" if tokens[idx].meta.get("empty") else '\n<div class="callout-content">\n'
    return f"</div>{fold}{content}"


def _callout_opening(tokens: Sequence[Token], idx: int) -> Token:
    """The ``callout_open`` that the ``callout_close`` at ``idx`` ends."""
    level = tokens[idx].level
    return next(
        token for token in reversed(tokens[:idx]) if token.type == "callout_open" and token.level == level
    )


def _render_callout_close(
    self: RendererProtocol, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    previous = tokens[idx - 1]
    empty = previous.type == "callout_title_close" and previous.meta.get("empty")
    element = "details" if _callout_opening(tokens, idx).meta["callout"].fold else "div"
    return f"</{element}>\n" if empty else f"</div>\n</{element}>\n"


def callouts_plugin(md: MarkdownIt) -> None:
    """Callout titles and DOM; after :func:`noteexec.markdown.obsidian_plugin`."""
    md.core.ruler.before("obsidian_callouts", "callout_no_break_space", _callout_no_break_space)
    md.core.ruler.after("obsidian_callouts", "callout_titles", _callout_titles)
    md.add_render_rule("callout_open", _render_callout_open)
    md.add_render_rule("callout_title_open", _render_callout_title_open)
    md.add_render_rule("callout_title_close", _render_callout_title_close)
    md.add_render_rule("callout_close", _render_callout_close)
