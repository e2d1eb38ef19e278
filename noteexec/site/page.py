"""Pass 2 of the site: a :class:`Page` (plain data) per note, for :mod:`noteexec.site.render`.

Two passes, so links can be checked against what they point at:
1. :func:`noteexec.site.parsed.parse_for_site` parses every note (headings, block ids, tags,
   aliases, title);
2. :func:`make_page` renders one note's body with a :class:`~noteexec.site.linker.SiteLinker`
   that resolves wikilinks against the whole vault, embeds other notes, and records links and
   broken links.
"""

from __future__ import annotations

import datetime as _dt
import html
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from noteexec.results import BlockResult, NoteResult, NoteStatus
from noteexec.site.code import ShownOutcome, display_outcome
from noteexec.site.linker import BrokenLink, SiteIndex, SiteLinker
from noteexec.site.markdown import site_markdown
from noteexec.site.markdown.context import PageContext
from noteexec.site.markdown.ids import Heading, plain_text
from noteexec.site.markdown.wikitarget import WikiTarget
from noteexec.site.parsed import ParsedNote

escape = html.escape

PageStatus = NoteStatus | Literal["not_run", "none"]
"""A page's badge: the note's status, ``not_run`` (``--no-run``) or ``none`` (no code)."""


@dataclass(frozen=True)
class BlockSummary:
    """One checked block as the page's header lists it."""

    line: int
    outcome: ShownOutcome
    message: str


@dataclass(frozen=True)
class Page:
    """Everything a note's HTML page shows, as plain data (rendering it is pure)."""

    rel: str
    url: str
    title: str
    date: str | None
    tags: tuple[str, ...]
    aliases: tuple[str, ...]
    status: PageStatus
    """``error``: the note itself is wrong (see :data:`PageStatus`)."""
    error: str | None
    body: str
    headings: tuple[Heading, ...]
    blocks: tuple[BlockSummary, ...]
    links: tuple[str, ...]
    """Vault-relative paths of the notes this page links to or embeds."""
    broken: tuple[BrokenLink, ...]
    attachments: tuple[str, ...]
    """Vault-relative paths of the attachments the page shows or links to (all publishable)."""
    text: str
    description: str
    properties: tuple[tuple[str, str], ...] = field(default=())
    """Other frontmatter properties, as (name, HTML) pairs (see :func:`property_html`)."""
    lang: str = "en"
    withheld: tuple[BrokenLink, ...] = ()
    """Attachments the page names but the site does not publish, each with the reason."""


def _date(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, _dt.datetime):
        return value.date().isoformat()
    if isinstance(value, _dt.date):
        return value.isoformat()
    return str(value)


_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]")


def detect_lang(text: str) -> str:
    """``zh``/``ja``/``ko`` when mostly written in it (browsers pick glyphs by it), else ``en``."""
    cjk = len(_CJK.findall(text))
    if cjk < len(re.findall(r"[A-Za-z]+", text)) / 2:
        return "en"
    if re.search(r"[\u3040-\u30ff]", text):
        return "ja"
    return "ko" if re.search(r"[\uac00-\ud7af]", text) else "zh"


def _status(result: NoteResult | None, ran: bool) -> PageStatus:
    if result is None:
        return "none"
    if result.status == "error":
        return "error"
    if not result.blocks:
        return "none"
    if not ran and any(display_outcome(block, ran) == "not_run" for block in result.blocks):
        return "not_run"
    return result.status


_WIKILINK = re.compile(r"\[\[([^\[\]\n]+)\]\]")
_URL = re.compile(r"https?://[^\s<>\"']+")


def property_html(value: Any, linker: SiteLinker) -> str:
    """A frontmatter value as Obsidian shows it: ``true`` as a ticked checkbox (not Python's
    ``True``), lists item by item, dates as ISO dates, ``[[links]]`` and web addresses as links."""
    if isinstance(value, bool):
        checked = " checked" if value else ""
        word = "true" if value else "false"
        box = f'type="checkbox" class="metadata-property-checkbox" disabled{checked}'
        return f'<input {box} aria-label="{word}">'
    if isinstance(value, list | tuple):
        items = "".join(
            f'<span class="metadata-property-item">{property_html(item, linker)}</span>'
            for item in value
            if item is not None
        )
        return f'<span class="metadata-property-list">{items}</span>'
    if isinstance(value, dict):
        return escape(", ".join(f"{key}: {item}" for key, item in value.items()))
    if isinstance(value, _dt.date):
        return escape(_date(value) or "")
    text = str(value)
    if _URL.fullmatch(text):
        shown = escape(text)
        external = 'class="external-link" rel="noopener noreferrer" target="_blank"'
        return f'<a {external} href="{shown}">{shown}</a>'
    parts, last = [], 0
    for match in _WIKILINK.finditer(text):
        parts.append(escape(text[last : match.start()]))
        parts.append(linker.wikilink(WikiTarget(match[1], embed=False), None, PageContext()))
        last = match.end()
    parts.append(escape(text[last:]))
    return "".join(parts)


_SHOWN_ELSEWHERE = frozenset({"title", "date", "tags", "tag", "aliases", "alias", "noteexec", "cssclasses"})


def make_page(parsed: ParsedNote, result: NoteResult | None, site: SiteIndex, at: str | None = None) -> Page:
    """The note's page; ``at``: the site path its links are written relative to, when it is shown
    elsewhere than its own page (the landing page shows the home note at ``index.html``)."""
    linker = SiteLinker(site, parsed.rel, at)
    blocks: dict[int, BlockResult] = {block.block.line: block for block in result.blocks} if result else {}
    context = PageContext(
        linker=linker,
        results=blocks,
        mermaid=site.mermaid,
        ran=site.ran,
        verdicts_open=site.verdicts_open,
        remote_images=site.remote_images,
        graph_lines=tuple(
            line for line, block in sorted(blocks.items()) if block.facts is not None and block.facts.graphs
        ),
    )
    tokens = parsed.tokens
    if parsed.hide_first_h1:  # the page header shows the title: drop the H1 that repeats it
        start = 1 if tokens[0].type == "front_matter" else 0
        tokens = [*tokens[:start], *tokens[start + 3 :]]
    md = site_markdown()
    body: str = md.renderer.render(tokens, md.options, context.env())
    frontmatter = parsed.note.frontmatter
    properties = tuple(
        (str(key), property_html(value, linker))
        for key, value in frontmatter.items()
        if str(key) not in _SHOWN_ELSEWHERE and value not in (None, "", [], {})
    )
    description = next(
        (
            plain_text(token.children)
            for index, token in enumerate(parsed.tokens)
            if token.type == "inline" and index > 0 and parsed.tokens[index - 1].type == "paragraph_open"
        ),
        "",
    )
    return Page(
        rel=parsed.rel,
        url=site.vault.url(parsed.rel),
        title=parsed.title,
        date=_date(frontmatter.get("date")),
        tags=parsed.tags,
        aliases=parsed.aliases,
        status=_status(result, site.ran),
        error=result.error if result else None,
        body=body,
        headings=parsed.headings,
        blocks=tuple(
            BlockSummary(block.block.line, display_outcome(block, site.ran), block.verdict.message)
            for block in (result.blocks if result else ())
        ),
        links=tuple(sorted(linker.links - {parsed.rel})),
        broken=tuple(sorted(linker.broken, key=lambda item: (item.line or 0, item.target))),
        attachments=tuple(sorted(linker.attachments)),
        withheld=tuple(sorted(linker.withheld, key=lambda item: (item.line or 0, item.target))),
        text=parsed.text,
        description=description[:200],
        lang=str(frontmatter.get("lang") or detect_lang(parsed.title + " " + parsed.text[:2000])),
        properties=properties,
    )
