"""Math (the dollarmath plugin's tokens) as MathML written at build time: no script on the page.

The formula's markup is made safe by :func:`noteexec.site.sanitize.math_html`.
"""

from __future__ import annotations

from collections.abc import Sequence

from markdown_it import MarkdownIt
from markdown_it.renderer import RendererProtocol
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict

from noteexec.site.sanitize import math_html


def _render_math_inline(
    self: RendererProtocol, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    return f'<span class="math math-inline">{math_html(tokens[idx].content.strip(), False)}</span>'


def _render_math_block(
    self: RendererProtocol, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    return f'<div class="math math-block">{math_html(tokens[idx].content.strip(), True)}</div>\n'


def _render_math_inline_double(
    self: RendererProtocol, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    """``$$…$$`` is display math in Obsidian even inside a paragraph (``$$`` on the line after
    text is such a case): a block-level span, since a paragraph cannot hold a ``<div>``."""
    return f'<span class="math math-block">{math_html(tokens[idx].content.strip(), True)}</span>'


def math_plugin(md: MarkdownIt) -> None:
    """Renderers for what the dollarmath plugin (used before this) parses."""
    md.add_render_rule("math_inline", _render_math_inline)
    md.add_render_rule("math_inline_double", _render_math_inline_double)
    for name in ("math_block", "math_block_label"):
        md.add_render_rule(name, _render_math_block)
