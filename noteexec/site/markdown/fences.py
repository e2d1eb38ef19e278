"""Code fences: a checked block with its verdict, Mermaid, Admonition plugin fences as callouts,
anything else highlighted (the HTML is :mod:`noteexec.site.code`'s).

A python fence is matched to its check result by line: ``token.map[0] + 1 == block.line``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from html import escape

from markdown_it import MarkdownIt
from markdown_it.renderer import RendererProtocol
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict

from noteexec.site.code import highlight_code, mermaid_block, verdict_block
from noteexec.site.markdown.context import PageContext, page_context

MAX_ADMONITION_DEPTH = 8
"""Admonitions inside admonitions deeper than this show as code (each level is a parse)."""
_ADMONITION_TYPE = re.compile(r"[A-Za-z0-9_-]+")
_ADMONITION_OPTION = re.compile(r"^(title|collapse|icon|color):(.*)$")


def admonition_callout(kind: str, code: str) -> str | None:
    """An Admonition plugin fence (```` ```ad-note ````, ``title:``/``collapse:`` lines first) as
    the callout Obsidian's own syntax writes; None when the type is not a callout name."""
    if not _ADMONITION_TYPE.fullmatch(kind):
        return None
    lines = code.splitlines()
    options: dict[str, str] = {}
    while lines and (match := _ADMONITION_OPTION.match(lines[0].strip())):
        options[match[1]] = match[2].strip()
        lines.pop(0)
    fold = {"open": "+", "closed": "-"}.get(options.get("collapse", "").lower(), "")
    title = options.get("title")
    header = f"> [!{kind}]{fold}" + (f" {title}" if title else "")
    return "\n".join([header, *(f"> {line}" for line in lines)]) + "\n"


def _admonition_context(context: PageContext) -> PageContext:
    """An admonition is a parse of its own: its links resolve where the fence is and it numbers
    headings with its note's count when one was started (:attr:`PageContext.slugs`); verdicts,
    open panels and remote images are the page's own (an embedded note has none either)."""
    return PageContext(
        linker=context.linker,
        source_rel=context.source_rel,
        embedded=context.embedded,
        embed_stack=context.embed_stack,
        mermaid=context.mermaid,
        ran=context.ran,
        slugs=context.slugs,
        admonition_depth=context.admonition_depth + 1,
    )


def fences_plugin(md: MarkdownIt) -> None:
    """Fences and indented code; an admonition is rendered by ``md`` itself."""

    def render_fence(
        self: RendererProtocol, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
    ) -> str:
        token = tokens[idx]
        context = page_context(env)
        info = token.info.strip()
        language = info.split(maxsplit=1)[0].lower() if info else ""
        code = token.content
        if language == "mermaid":
            return mermaid_block(code, context.mermaid, context.graph_lines)
        if language.startswith("ad-") and context.admonition_depth < MAX_ADMONITION_DEPTH:
            admonition = admonition_callout(language[3:], code)
            if admonition is not None:
                inner = _admonition_context(context)
                rendered: str = md.render(admonition, inner.env())
                return rendered
        result = context.results.get(token.map[0] + 1) if token.map else None
        if result is None:
            return (
                f'<div class="code-block" data-lang="{escape(language)}">'
                f"{highlight_code(code, language)}</div>\n"
            )
        return verdict_block(result, context.ran, context.verdicts_open)

    def render_code_block(
        self: RendererProtocol, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
    ) -> str:
        return f"<pre><code>{escape(tokens[idx].content)}</code></pre>\n"

    md.add_render_rule("fence", render_fence)
    md.add_render_rule("code_block", render_code_block)
