"""Pass 1 of the site: every note parsed once (headings, block ids, tags, aliases, title, text),
so that pass 2 (:mod:`noteexec.site.page`) can check links against what they point at."""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from markdown_it.token import Token

from noteexec.model import Note
from noteexec.site.markdown import site_markdown
from noteexec.site.markdown.context import PageContext
from noteexec.site.markdown.ids import Heading, plain_text
from noteexec.site.vault import frontmatter_list

MAX_SEARCH_TEXT = 40_000


@dataclass
class ParsedNote:
    """A note's tokens and what links, the index and search need to know of it."""

    rel: str
    note: Note
    tokens: list[Token]
    title: str
    """Frontmatter ``title``, else the file name: what Obsidian shows in its file list."""
    headings: tuple[Heading, ...]
    tags: tuple[str, ...]
    aliases: tuple[str, ...]
    block_ids: frozenset[str]
    text: str
    hide_first_h1: bool

    @property
    def heading_title(self) -> str:
        """Frontmatter ``title``, else the first H1, else the file name (a home note's is the
        site's title)."""
        if self.note.frontmatter.get("title"):
            return self.title
        return next((heading.text for heading in self.headings if heading.level == 1), self.title)


def _tags(frontmatter: Mapping[str, Any], inline: Sequence[str]) -> tuple[str, ...]:
    seen: dict[str, str] = {}
    for tag in (*frontmatter_list(frontmatter.get("tags", frontmatter.get("tag"))), *inline):
        name = tag.lstrip("#").strip()
        if name:
            seen.setdefault(name.casefold(), name)
    return tuple(seen.values())


def parse_for_site(note: Note, rel: str) -> ParsedNote:
    context = PageContext()
    tokens = site_markdown().parse(note.source, context.env())
    headings = tuple(context.headings)
    frontmatter = note.frontmatter
    first_h1 = next((heading for heading in headings if heading.level == 1), None)
    title = str(frontmatter.get("title") or "").strip() or posixpath.basename(rel)[:-3]
    first_block = next((token for token in tokens if token.type not in ("front_matter",)), None)
    hide_first_h1 = bool(
        first_h1 is not None
        and first_block is not None
        and first_block.type == "heading_open"
        and first_block.tag == "h1"
        and first_h1.text.strip() == title
    )
    text_parts = [heading.text for heading in headings]
    text_parts.extend(plain_text(token.children) for token in tokens if token.type == "inline")
    aliases = frontmatter_list(frontmatter.get("aliases", frontmatter.get("alias")))
    return ParsedNote(
        rel=rel,
        note=note,
        tokens=tokens,
        title=title,
        headings=headings,
        tags=_tags(frontmatter, context.tags),
        aliases=aliases,
        block_ids=frozenset(context.block_ids),
        text=re.sub(r"\s+", " ", " ".join(text_parts)).strip()[:MAX_SEARCH_TEXT],
        hide_first_h1=hide_first_h1,
    )
