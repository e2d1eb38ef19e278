"""A note's raw HTML: cleaned by :mod:`noteexec.site.sanitize`, its vault URLs resolved by the
page's linker, and each paragraph's inline tags kept inside that paragraph."""

from __future__ import annotations

import re
from collections.abc import Sequence

from markdown_it import MarkdownIt
from markdown_it.renderer import RendererProtocol
from markdown_it.rules_core import StateCore
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict

from noteexec.site.markdown.context import PageContext, page_context
from noteexec.site.markdown.tasks import TASK_CHECKBOXES
from noteexec.site.sanitize import ALLOWED_TAGS, UrlKind, sanitize_in_note

_TAG_NAME = re.compile(r"^<\s*(/?)\s*([A-Za-z][A-Za-z0-9-]*)")
_VOID_TAGS = frozenset({"br", "hr", "img", "source"})


def _balance_inline_html(state: StateCore) -> None:
    """Keep a paragraph's raw tags inside it: close what it leaves open, drop closing tags that
    match nothing it opened.

    Inline HTML is cleaned one tag at a time, so ``<a id=x>`` alone would stay open, and the
    HTML parser would carry it over the rest of the page (the sidebars included); a stray
    ``</div>`` would close one of the page's own elements.
    """
    for token in state.tokens:
        if token.type != "inline" or not token.children:
            continue
        open_tags: list[str] = []
        kept: list[Token] = []
        for child in token.children:
            match = _TAG_NAME.match(child.content) if child.type == "html_inline" else None
            name = match[2].lower() if match else ""
            if match is None or name not in ALLOWED_TAGS or name in _VOID_TAGS:
                kept.append(child)
            elif match[1]:
                if name in open_tags:
                    while open_tags:
                        top = open_tags.pop()
                        kept.append(_closing(top))
                        if top == name:
                            break
            else:
                kept.append(child)
                if not child.content.rstrip().endswith("/>"):
                    open_tags.append(name)
        kept.extend(_closing(name) for name in reversed(open_tags))
        token.children = kept


def _closing(name: str) -> Token:
    token = Token("html_inline", "", 0)
    token.content = f"</{name}>"
    return token


def _sanitize(fragment: str, context: PageContext, line: int | None) -> str:
    def resolve(href: str, kind: UrlKind) -> str | None:
        return context.linker.html_url(href, kind, line, context)

    return sanitize_in_note(fragment, resolve)


def _render_html_block(
    self: RendererProtocol, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    token = tokens[idx]
    return _sanitize(token.content, page_context(env), token.map[0] + 1 if token.map else None)


def _render_html_inline(
    self: RendererProtocol, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    """One tag at a time: closing tags of allowed elements pass, opening tags are cleaned alone."""
    content = tokens[idx].content
    if content in TASK_CHECKBOXES:
        return content
    match = _TAG_NAME.match(content)
    if match is None:
        return ""  # comments, declarations, processing instructions
    name = match[2].lower()
    if name not in ALLOWED_TAGS:
        return ""
    if match[1]:
        return f"</{name}>"
    cleaned = _sanitize(content, page_context(env), tokens[idx].meta.get("line"))
    return cleaned.removesuffix(f"</{name}>")


def raw_html_plugin(md: MarkdownIt) -> None:
    """Raw HTML; balancing runs after :func:`~noteexec.site.markdown.anchors.anchors_plugin`."""
    md.core.ruler.after("heading_ids", "balance_inline_html", _balance_inline_html)
    md.add_render_rule("html_block", _render_html_block)
    md.add_render_rule("html_inline", _render_html_inline)
