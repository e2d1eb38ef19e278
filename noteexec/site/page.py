"""The page model: a note parsed for the site, then a :class:`Page` (plain data) per note.

Two passes, so links can be checked against what they point at:
1. :func:`parse_for_site` parses every note (headings, block ids, tags, aliases, title);
2. :func:`make_page` renders one note's body with a :class:`SiteLinker` that resolves
   wikilinks against the whole vault, embeds other notes, and records links and broken links.
"""

from __future__ import annotations

import datetime as _dt
import html
import posixpath
import re
from collections.abc import Callable, Container, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from markdown_it.token import Token

from noteexec.display import shown_path
from noteexec.model import Note
from noteexec.results import BlockResult, NoteResult
from noteexec.site.attachments import RASTER_TYPES
from noteexec.site.code import display_outcome
from noteexec.site.markdown import WikiTarget, plain_text, site_markdown, slugify
from noteexec.site.vault import (
    AUDIO_EXTENSIONS,
    IMAGE_EXTENSIONS,
    VIDEO_EXTENSIONS,
    Vault,
    frontmatter_list,
    href,
)

escape = html.escape

MAX_EMBED_DEPTH = 4
MAX_SEARCH_TEXT = 40_000


@dataclass(frozen=True)
class Heading:
    level: int
    text: str
    id: str


@dataclass(frozen=True)
class BrokenLink:
    source: str
    """The note's vault-relative path."""
    line: int | None
    target: str
    reason: str

    def describe(self, root: str = "") -> str:
        where = shown_path(posixpath.join(root, self.source) if root else self.source)
        location = f"{where}:{self.line}" if self.line is not None else where
        return f"{location}: {self.reason}: {self.target}"


@dataclass(frozen=True)
class BlockSummary:
    line: int
    outcome: str
    """``passed``, ``failed``, ``skipped`` or ``not_run``."""
    message: str


@dataclass
class ParsedNote:
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


@dataclass(frozen=True)
class Page:
    """Everything a note's HTML page shows, as plain data (rendering it is pure)."""

    rel: str
    url: str
    title: str
    date: str | None
    tags: tuple[str, ...]
    aliases: tuple[str, ...]
    status: str
    """``passed``, ``failed``, ``error`` (the note itself is wrong), ``not_run`` or ``none`` (no code)."""
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


# --------------------------------------------------------------------------------------------
# Pass 1


def _date(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, _dt.datetime):
        return value.date().isoformat()
    if isinstance(value, _dt.date):
        return value.isoformat()
    return str(value)


def _tags(frontmatter: Mapping[str, Any], inline: Sequence[str]) -> tuple[str, ...]:
    seen: dict[str, str] = {}
    for tag in (*frontmatter_list(frontmatter.get("tags", frontmatter.get("tag"))), *inline):
        name = tag.lstrip("#").strip()
        if name:
            seen.setdefault(name.casefold(), name)
    return tuple(seen.values())


def parse_for_site(note: Note, rel: str) -> ParsedNote:
    md = site_markdown()
    env: dict[str, Any] = {}
    tokens = md.parse(note.source, env)
    headings = tuple(Heading(level, text, slug) for level, text, slug in env.get("headings", ()))
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
        tags=_tags(frontmatter, env.get("tags", ())),
        aliases=aliases,
        block_ids=frozenset(env.get("block_ids", ())),
        text=re.sub(r"\s+", " ", " ".join(text_parts)).strip()[:MAX_SEARCH_TEXT],
        hide_first_h1=hide_first_h1,
    )


# --------------------------------------------------------------------------------------------
# Pass 2


@dataclass
class SiteIndex:
    """What rendering one page needs to know about the others."""

    vault: Vault
    parsed: dict[str, ParsedNote]
    tag_urls: dict[str, str]
    mermaid: bool = False
    ran: bool = True
    verdicts_open: bool = False
    """Failed blocks' verdict panels start open (``--verdicts open``)."""
    remote_images: bool = False
    """``https:`` images from elsewhere are shown, not turned into links."""
    embed_files: bool = False
    """Inline attachments as ``data:`` URLs (one self-contained page) instead of copying them."""
    read_file: Any = None
    """``rel → bytes`` for inlining attachments."""
    load: Any = None
    """``rel → ParsedNote`` for notes not parsed up front (a lone page embedding another note)."""
    private: Container[str] = frozenset()
    """Notes that are not published: a link to one is plain text, an embed of one shows nothing."""
    withheld: Callable[[str], str | None] | None = None
    """``rel → reason or None``: why an attachment is not published (see ``attachments.withheld``)."""

    def note(self, rel: str) -> ParsedNote | None:
        parsed = self.parsed.get(rel)
        if parsed is None and self.load is not None:
            parsed = self.parsed[rel] = self.load(rel)
        return parsed


_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)


class SiteLinker:
    """Resolves links for one page; records what it linked to and what it could not find."""

    def __init__(self, site: SiteIndex, page_rel: str, page_url: str | None = None) -> None:
        self.site = site
        self.page_rel = page_rel
        self.page_url = page_url or site.vault.url(page_rel)
        self.links: set[str] = set()
        self.attachments: set[str] = set()
        self.broken: list[BrokenLink] = []
        self.withheld: list[BrokenLink] = []

    # -- helpers
    def _source(self, env: dict[str, Any]) -> str:
        return env.get("source_rel", self.page_rel)

    def _broken(self, env: dict[str, Any], line: int | None, target: str, reason: str) -> None:
        if not env.get("embedded"):
            self.broken.append(BrokenLink(self.page_rel, line, target, reason))

    def _fragment(self, target: WikiTarget, rel: str, env: dict[str, Any], line: int | None) -> str | None:
        parsed = self.site.note(rel)
        if target.heading:
            slug = slugify(target.heading)
            if parsed is not None and not any(heading.id == slug for heading in parsed.headings):
                self._broken(env, line, f"[[{target.raw}]]", "no such heading")
            return slug
        if target.block:
            if parsed is not None and target.block not in parsed.block_ids:
                self._broken(env, line, f"[[{target.raw}]]", "no such block")
            return f"^{target.block}"
        return None

    def _private(self, rel: str) -> bool:
        return rel in self.site.private and rel != self.page_rel

    def _attachment_src(self, rel: str, env: dict[str, Any], line: int | None, shown: str) -> str | None:
        """The attachment's URL on this page, or None (recorded with why) when it is not published.

        A lone page inlines raster images as ``data:image/...`` and nothing else: any other
        ``data:`` URL would be a document of the vault's making in the reader's browser.
        """
        why = self.site.withheld(rel) if self.site.withheld is not None else None
        if why is not None:
            self._withhold(env, line, shown, f"not published: {why}")
            return None
        if self.site.embed_files and self.site.read_file is not None:
            kind = RASTER_TYPES.get(posixpath.splitext(rel)[1].lower())
            if kind is None:
                self._withhold(env, line, shown, "only raster images are inlined in a single page")
                return None
            import base64

            self.attachments.add(rel)
            data = base64.b64encode(self.site.read_file(rel)).decode("ascii")
            return f"data:{kind};base64,{data}"
        self.attachments.add(rel)
        return href(self.page_url, self.site.vault.url(rel))

    def _withhold(self, env: dict[str, Any], line: int | None, shown: str, reason: str) -> None:
        if not env.get("embedded"):
            self.withheld.append(BrokenLink(self.page_rel, line, shown, reason))

    # -- Linker protocol
    def wikilink(self, target: WikiTarget, line: int | None, env: dict[str, Any]) -> str:
        label = escape(target.label)
        data = escape(target.raw)
        if not target.note:  # [[#heading]] or [[#^block]] in the same note
            fragment = self._fragment(target, self._source(env), env, line)
            return f'<a class="internal-link" data-href="{data}" href="#{escape(fragment or "")}">{label}</a>'
        resolved = self.site.vault.resolve(target.note, self._source(env))
        if resolved is None:
            self._broken(env, line, f"[[{target.raw}]]", "no such note")
            return (
                f'<a class="internal-link is-unresolved" data-href="{data}" title="no such note">{label}</a>'
            )
        if not resolved.is_note:
            url = self._attachment_src(resolved.rel, env, line, f"[[{target.raw}]]")
            if url is None:
                return f'<span class="internal-link is-unpublished" data-href="{data}">{label}</span>'
            return f'<a class="internal-link" data-href="{data}" href="{escape(url)}">{label}</a>'
        if self._private(resolved.rel):
            return f'<span class="internal-link is-unpublished" data-href="{data}">{label}</span>'
        if not env.get("embedded"):
            self.links.add(resolved.rel)
        fragment = self._fragment(target, resolved.rel, env, line)
        url = href(self.page_url, self.site.vault.url(resolved.rel), fragment)
        return f'<a class="internal-link" data-href="{data}" href="{escape(url)}">{label}</a>'

    def embed(self, target: WikiTarget, line: int | None, env: dict[str, Any]) -> str:
        data = escape(target.raw)
        resolved = self.site.vault.resolve(target.note, self._source(env)) if target.note else None
        if target.note and resolved is None:
            self._broken(env, line, f"![[{target.raw}]]", "no such file")
            return (
                f'<span class="internal-embed is-unresolved" data-src="{data}">'
                f"{escape(target.note)} could not be found</span>"
            )
        if resolved is not None and not resolved.is_note:
            return self._embed_file(resolved.rel, target, env, line)
        if resolved is not None and self._private(resolved.rel):
            label = escape(target.label)
            return f'<span class="internal-embed is-unpublished" data-src="{data}">{label}</span>'
        rel = resolved.rel if resolved is not None else self._source(env)
        if not env.get("embedded"):
            self.links.add(rel)
        stack = env.get("embed_stack", (self.page_rel,))
        if (rel in stack and not (target.heading or target.block)) or len(stack) > MAX_EMBED_DEPTH:
            return (
                f'<div class="internal-embed markdown-embed is-cycle" data-src="{data}">(embed cycle)</div>'
            )
        parsed = self.site.note(rel)
        if parsed is None:
            return f'<span class="internal-embed is-unresolved" data-src="{data}">{escape(target.raw)}</span>'
        tokens = self._section(parsed, target, env, line)
        if tokens is None:
            return f'<span class="internal-embed is-unresolved" data-src="{data}">{escape(target.raw)}</span>'
        inner_env = {
            "linker": self,
            "source_rel": rel,
            "embedded": True,
            "embed_stack": (*stack, rel),
            "mermaid": env.get("mermaid"),
            "slugs": {},
        }
        md = site_markdown()
        body = md.renderer.render(tokens, md.options, inner_env)
        link = href(
            self.page_url, self.site.vault.url(rel), self._fragment(target, rel, {"embedded": True}, None)
        )
        title = escape(target.label if target.heading else parsed.title)
        return (
            f'<div class="internal-embed markdown-embed" data-src="{data}">'
            '<div class="markdown-embed-title">'
            f'<a class="markdown-embed-link" href="{escape(link)}">{title}</a>'
            f'</div><div class="markdown-embed-content">{body}</div></div>'
        )

    def _section(
        self, parsed: ParsedNote, target: WikiTarget, env: dict[str, Any], line: int | None
    ) -> list[Token] | None:
        tokens = [token for token in parsed.tokens if token.type != "front_matter"]
        if target.heading:
            slug = slugify(target.heading)
            for index, token in enumerate(tokens):
                if token.type == "heading_open" and token.attrGet("id") == slug:
                    level = int(token.tag[1])
                    end = next(
                        (
                            later
                            for later in range(index + 3, len(tokens))
                            if tokens[later].type == "heading_open"
                            and int(tokens[later].tag[1]) <= level
                            and tokens[later].level == token.level
                        ),
                        len(tokens),
                    )
                    return tokens[index:end]
            self._broken(env, line, f"![[{target.raw}]]", "no such heading")
            return None
        if target.block:
            for index, token in enumerate(tokens):
                if token.nesting == 1 and token.attrGet("id") == f"^{target.block}":
                    depth = 0
                    for end in range(index, len(tokens)):
                        depth += tokens[end].nesting
                        if depth == 0:
                            return tokens[index : end + 1]
            self._broken(env, line, f"![[{target.raw}]]", "no such block")
            return None
        if parsed.hide_first_h1:
            tokens = tokens[3:]
        return tokens

    def _embed_file(self, rel: str, target: WikiTarget, env: dict[str, Any], line: int | None) -> str:
        extension = posixpath.splitext(rel)[1].lower()
        name = escape(posixpath.basename(rel))
        url = self._attachment_src(rel, env, line, f"![[{target.raw}]]")
        if url is None:
            data = escape(target.raw)
            return f'<span class="internal-embed is-unpublished" data-src="{data}">{name}</span>'
        src = escape(url)
        if extension in IMAGE_EXTENSIONS:
            size = ""
            if target.alias:
                match = re.fullmatch(r"(\d+)(?:x(\d+))?", target.alias.strip())
                if match:
                    size = f' width="{match[1]}"' + (f' height="{match[2]}"' if match[2] else "")
            alt = escape(target.alias) if target.alias and not size else name
            image = f'<img src="{src}" alt="{alt}"{size} loading="lazy">'
            return f'<span class="internal-embed image-embed">{image}</span>'
        if extension in AUDIO_EXTENSIONS:
            return f'<span class="internal-embed media-embed"><audio controls src="{src}"></audio></span>'
        if extension in VIDEO_EXTENSIONS:
            return f'<span class="internal-embed media-embed"><video controls src="{src}"></video></span>'
        return f'<a class="internal-embed file-embed" href="{src}">{name}</a>'

    def tag_href(self, tag: str, env: dict[str, Any]) -> str:
        url = self.site.tag_urls.get(tag.casefold())
        return href(self.page_url, url) if url else "#"

    def url(self, link: str, kind: str, line: int | None, env: dict[str, Any]) -> str | None:
        """Markdown ``[x](note.md)`` and ``![x](image.png)``: vault paths become site paths."""
        if not link or link.startswith("#") or _SCHEME.match(link) or link.startswith("//"):
            return link
        from urllib.parse import unquote

        path, _, fragment = link.partition("#")
        target = unquote(path)
        resolved = self.site.vault.resolve(target, self._source(env))
        if resolved is None:
            self._broken(env, line, link, f"no such {'file' if kind == 'image' else 'note'}")
            return link
        if not resolved.is_note:
            return self._attachment_src(resolved.rel, env, line, link)
        if self._private(resolved.rel):
            return None
        if not env.get("embedded"):
            self.links.add(resolved.rel)
        fragment = unquote(fragment)
        if fragment and not fragment.startswith("^"):
            fragment = slugify(fragment)  # [x](note.md#Some Heading) → the heading's id
        return href(self.page_url, self.site.vault.url(resolved.rel), fragment or None)

    def html_url(self, link: str, kind: str, line: int | None, env: dict[str, Any]) -> str | None:
        """Raw HTML's relative URL: like :meth:`url`, but None (a broken link) outside the vault."""
        from urllib.parse import unquote

        path = unquote(link.partition("#")[0])
        if not path or self.site.vault.resolve(path, self._source(env)) is None:
            self._broken(env, line, link, f"no such {'file' if kind == 'image' else 'note'}")
            return None
        return self.url(link, kind, line, env)


_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]")


def detect_lang(text: str) -> str:
    """``zh``/``ja``/``ko`` when mostly written in it (browsers pick glyphs by it), else ``en``."""
    cjk = len(_CJK.findall(text))
    if cjk < len(re.findall(r"[A-Za-z]+", text)) / 2:
        return "en"
    if re.search(r"[\u3040-\u30ff]", text):
        return "ja"
    return "ko" if re.search(r"[\uac00-\ud7af]", text) else "zh"


def _status(result: NoteResult | None, ran: bool) -> str:
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
        parts.append(linker.wikilink(WikiTarget(match[1], embed=False), None, {}))
        last = match.end()
    parts.append(escape(text[last:]))
    return "".join(parts)


_SHOWN_ELSEWHERE = frozenset({"title", "date", "tags", "tag", "aliases", "alias", "noteexec", "cssclasses"})


def make_page(parsed: ParsedNote, result: NoteResult | None, site: SiteIndex, at: str | None = None) -> Page:
    """The note's page; ``at``: the site path its links are written relative to, when it is shown
    elsewhere than its own page (the landing page shows the home note at ``index.html``)."""
    linker = SiteLinker(site, parsed.rel, at)
    blocks: dict[int, BlockResult] = {block.block.line: block for block in result.blocks} if result else {}
    env: dict[str, Any] = {
        "linker": linker,
        "results": blocks,
        "mermaid": site.mermaid,
        "ran": site.ran,
        "verdicts_open": site.verdicts_open,
        "remote_images": site.remote_images,
        "graph_lines": tuple(
            line for line, block in sorted(blocks.items()) if block.facts is not None and block.facts.graphs
        ),
    }
    tokens = parsed.tokens
    if parsed.hide_first_h1:  # the page header shows the title: drop the H1 that repeats it
        start = 1 if tokens[0].type == "front_matter" else 0
        tokens = [*tokens[:start], *tokens[start + 3 :]]
    md = site_markdown()
    body = md.renderer.render(tokens, md.options, env)
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
