"""The site's Markdown: CommonMark + GFM bits + Obsidian syntax, rendered to HTML.

Laid out like mdit-py-plugins, one plugin a module, each registering its rules and renderers;
:func:`site_markdown` puts them together on top of the core's
:func:`noteexec.markdown.obsidian_plugin` (``%%`` comment blocks and callouts):

- :mod:`.lines`: source lines on inline tokens, for ``file:line`` in reports;
- :mod:`.wikilinks`: ``[[wikilinks]]`` and ``![[embeds]]``, which the page's linker writes;
- :mod:`.anchors`: heading ids (CJK-safe) and ``^block-id``s;
- :mod:`.tags`, :mod:`.highlight`, :mod:`.comments`: ``#tags``, ``==highlight==``, ``%%comments%%``;
- :mod:`.callouts`, :mod:`.tasks`: Obsidian's callout DOM and other task statuses;
- :mod:`.math`, :mod:`.raw_html`, :mod:`.links`, :mod:`.fences`: MathML, raw HTML through the
  sanitiser (:mod:`noteexec.site.sanitize`), Markdown links and images, code and verdicts.

Rules and renderers share one typed :class:`~.context.PageContext` (:mod:`.context`). Every
renderer escapes what it writes; nothing from a note reaches the page unescaped.
"""

from __future__ import annotations

from functools import cache

from markdown_it import MarkdownIt
from mdit_py_plugins.dollarmath import dollarmath_plugin
from mdit_py_plugins.footnote import footnote_plugin
from mdit_py_plugins.front_matter import front_matter_plugin
from mdit_py_plugins.tasklists import tasklists_plugin

from noteexec.markdown import obsidian_plugin
from noteexec.site.markdown.anchors import anchors_plugin
from noteexec.site.markdown.callouts import callouts_plugin
from noteexec.site.markdown.comments import comments_plugin, render_nothing
from noteexec.site.markdown.context import PageContext
from noteexec.site.markdown.fences import fences_plugin
from noteexec.site.markdown.highlight import highlight_plugin
from noteexec.site.markdown.lines import lines_plugin
from noteexec.site.markdown.links import links_plugin
from noteexec.site.markdown.math import math_plugin
from noteexec.site.markdown.raw_html import raw_html_plugin
from noteexec.site.markdown.tags import tags_plugin
from noteexec.site.markdown.tasks import tasks_plugin
from noteexec.site.markdown.wikilinks import wikilinks_plugin


@cache
def site_markdown() -> MarkdownIt:
    """The renderer the site uses (built once; markdown-it instances are reusable).

    The order matters where rules name each other: callouts after :func:`obsidian_plugin`,
    wikilinks before tags, lines, then embeds, anchors and raw HTML (each after the one before).
    """
    md = (
        MarkdownIt("commonmark", {"html": True, "breaks": True, "linkify": False, "typographer": False})
        .enable(["table", "strikethrough"])
        .use(front_matter_plugin)
        .use(footnote_plugin)
        .use(tasklists_plugin, enabled=False)
        .use(dollarmath_plugin, allow_labels=True, allow_space=True, allow_digits=False, double_inline=True)
        .use(obsidian_plugin)
        .use(callouts_plugin)
        .use(lines_plugin)
        .use(wikilinks_plugin)
        .use(highlight_plugin)
        .use(comments_plugin)
        .use(tags_plugin)
        .use(anchors_plugin)
        .use(raw_html_plugin)
        .use(tasks_plugin)
        .use(math_plugin)
        .use(links_plugin)
        .use(fences_plugin)
    )
    md.add_render_rule("front_matter", render_nothing)  # frontmatter shows as the page's properties
    return md


def render_markdown(source: str, context: PageContext | None = None) -> str:
    """A note's HTML; ``context`` also receives what the parse collects (headings, tags, ids)."""
    md = site_markdown()
    env = (context or PageContext()).env()
    html: str = md.renderer.render(md.parse(source, env), md.options, env)
    return html
