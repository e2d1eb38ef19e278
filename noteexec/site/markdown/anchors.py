"""What ``[[note#heading]]`` and ``[[note#^block]]`` point at: heading ids (CJK-safe,
``##### 错误场景分析`` gets ``id="错误场景分析"``) and trailing ``^block-id``s moved to their block's
id; both collected in the page context (the table of contents, link checking)."""

from __future__ import annotations

import re

from markdown_it import MarkdownIt
from markdown_it.rules_core import StateCore

from noteexec.site.markdown.context import page_context
from noteexec.site.markdown.ids import Heading, plain_text, unique_slug

_BLOCK_ID = re.compile(r"(?:^|\s)\^([A-Za-z0-9][A-Za-z0-9-]*)\s*$")


def _block_ids(state: StateCore) -> None:
    tokens = state.tokens
    for index, token in enumerate(tokens):
        if token.type != "inline" or not token.children:
            continue
        last = token.children[-1]
        if last.type == "text":
            match = _BLOCK_ID.search(last.content)
            if match and index > 0:
                owner = tokens[index - 1]
                if owner.hidden and index > 1:
                    owner = tokens[index - 2]  # tight list: the hidden paragraph's list item
                if owner.nesting == 1:
                    last.content = last.content[: match.start()]
                    owner.attrSet("id", f"^{match[1]}")
                    page_context(state.env).block_ids.append(match[1])


def _heading_ids(state: StateCore) -> None:
    tokens = state.tokens
    context = page_context(state.env)
    for index, token in enumerate(tokens):
        if token.type == "heading_open" and index + 1 < len(tokens):
            text = plain_text(tokens[index + 1].children).strip()
            slug = unique_slug(text, context.taken_slugs())
            token.attrSet("id", slug)
            context.headings.append(Heading(int(token.tag[1]), text, slug))


def anchors_plugin(md: MarkdownIt) -> None:
    """Block ids, then heading ids; after :func:`~noteexec.site.markdown.wikilinks.wikilinks_plugin`."""
    md.core.ruler.after("block_embeds", "block_ids", _block_ids)
    md.core.ruler.after("block_ids", "heading_ids", _heading_ids)
