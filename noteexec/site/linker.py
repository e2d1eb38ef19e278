"""Pass 2's links: a :class:`SiteLinker` resolves one page's wikilinks, embeds, tags and
Markdown links against the whole vault, and records what it linked to and what it could not find."""

from __future__ import annotations

import base64
import posixpath
import re
from collections.abc import Callable, Container
from dataclasses import dataclass
from html import escape
from urllib.parse import unquote

from markdown_it.token import Token

from noteexec.display import shown_path
from noteexec.site.attachments import RASTER_TYPES
from noteexec.site.markdown import site_markdown
from noteexec.site.markdown.context import PageContext
from noteexec.site.markdown.ids import slugify
from noteexec.site.markdown.wikitarget import WikiTarget
from noteexec.site.parsed import ParsedNote
from noteexec.site.sanitize import UrlKind
from noteexec.site.vault import AUDIO_EXTENSIONS, IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, Vault, href

MAX_EMBED_DEPTH = 4


@dataclass(frozen=True)
class BrokenLink:
    """A link or embed that points at nothing, or at what the site does not publish."""

    source: str
    """The note's vault-relative path."""
    line: int | None
    target: str
    reason: str

    def describe(self, root: str = "") -> str:
        where = shown_path(posixpath.join(root, self.source) if root else self.source)
        location = f"{where}:{self.line}" if self.line is not None else where
        return f"{location}: {self.reason}: {self.target}"


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
    read_file: Callable[[str], bytes] | None = None
    """``rel → bytes`` for inlining attachments."""
    load: Callable[[str], ParsedNote] | None = None
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
    def _source(self, context: PageContext) -> str:
        return context.source_rel or self.page_rel

    def _broken(self, context: PageContext, line: int | None, target: str, reason: str) -> None:
        if not context.embedded:
            self.broken.append(BrokenLink(self.page_rel, line, target, reason))

    def _fragment(self, target: WikiTarget, rel: str, context: PageContext, line: int | None) -> str | None:
        parsed = self.site.note(rel)
        if target.heading:
            slug = slugify(target.heading)
            if parsed is not None and not any(heading.id == slug for heading in parsed.headings):
                self._broken(context, line, f"[[{target.raw}]]", "no such heading")
            return slug
        if target.block:
            if parsed is not None and target.block not in parsed.block_ids:
                self._broken(context, line, f"[[{target.raw}]]", "no such block")
            return f"^{target.block}"
        return None

    def _private(self, rel: str) -> bool:
        return rel in self.site.private and rel != self.page_rel

    def _attachment_src(self, rel: str, context: PageContext, line: int | None, shown: str) -> str | None:
        """The attachment's URL on this page, or None (recorded with why) when it is not published.

        A lone page inlines raster images as ``data:image/...`` and nothing else: any other
        ``data:`` URL would be a document of the vault's making in the reader's browser.
        """
        why = self.site.withheld(rel) if self.site.withheld is not None else None
        if why is not None:
            self._withhold(context, line, shown, f"not published: {why}")
            return None
        if self.site.embed_files and self.site.read_file is not None:
            kind = RASTER_TYPES.get(posixpath.splitext(rel)[1].lower())
            if kind is None:
                self._withhold(context, line, shown, "only raster images are inlined in a single page")
                return None
            self.attachments.add(rel)
            data = base64.b64encode(self.site.read_file(rel)).decode("ascii")
            return f"data:{kind};base64,{data}"
        self.attachments.add(rel)
        return href(self.page_url, self.site.vault.url(rel))

    def _withhold(self, context: PageContext, line: int | None, shown: str, reason: str) -> None:
        if not context.embedded:
            self.withheld.append(BrokenLink(self.page_rel, line, shown, reason))

    # -- Linker protocol
    def wikilink(self, target: WikiTarget, line: int | None, context: PageContext) -> str:
        label = escape(target.label)
        data = escape(target.raw)
        if not target.note:  # [[#heading]] or [[#^block]] in the same note
            fragment = self._fragment(target, self._source(context), context, line)
            return f'<a class="internal-link" data-href="{data}" href="#{escape(fragment or "")}">{label}</a>'
        resolved = self.site.vault.resolve(target.note, self._source(context))
        if resolved is None:
            self._broken(context, line, f"[[{target.raw}]]", "no such note")
            return (
                f'<a class="internal-link is-unresolved" data-href="{data}" title="no such note">{label}</a>'
            )
        if not resolved.is_note:
            url = self._attachment_src(resolved.rel, context, line, f"[[{target.raw}]]")
            if url is None:
                return f'<span class="internal-link is-unpublished" data-href="{data}">{label}</span>'
            return f'<a class="internal-link" data-href="{data}" href="{escape(url)}">{label}</a>'
        if self._private(resolved.rel):
            return f'<span class="internal-link is-unpublished" data-href="{data}">{label}</span>'
        if not context.embedded:
            self.links.add(resolved.rel)
        fragment = self._fragment(target, resolved.rel, context, line)
        url = href(self.page_url, self.site.vault.url(resolved.rel), fragment)
        return f'<a class="internal-link" data-href="{data}" href="{escape(url)}">{label}</a>'

    def embed(self, target: WikiTarget, line: int | None, context: PageContext) -> str:
        data = escape(target.raw)
        resolved = self.site.vault.resolve(target.note, self._source(context)) if target.note else None
        if target.note and resolved is None:
            self._broken(context, line, f"![[{target.raw}]]", "no such file")
            return (
                f'<span class="internal-embed is-unresolved" data-src="{data}">'
                f"{escape(target.note)} could not be found</span>"
            )
        if resolved is not None and not resolved.is_note:
            return self._embed_file(resolved.rel, target, context, line)
        if resolved is not None and self._private(resolved.rel):
            label = escape(target.label)
            return f'<span class="internal-embed is-unpublished" data-src="{data}">{label}</span>'
        rel = resolved.rel if resolved is not None else self._source(context)
        if not context.embedded:
            self.links.add(rel)
        stack = context.embed_stack or (self.page_rel,)
        if (rel in stack and not (target.heading or target.block)) or len(stack) > MAX_EMBED_DEPTH:
            return (
                f'<div class="internal-embed markdown-embed is-cycle" data-src="{data}">(embed cycle)</div>'
            )
        parsed = self.site.note(rel)
        if parsed is None:
            return f'<span class="internal-embed is-unresolved" data-src="{data}">{escape(target.raw)}</span>'
        tokens = self._section(parsed, target, context, line)
        if tokens is None:
            return f'<span class="internal-embed is-unresolved" data-src="{data}">{escape(target.raw)}</span>'
        inner = PageContext(
            linker=self,
            source_rel=rel,
            embedded=True,
            embed_stack=(*stack, rel),
            mermaid=context.mermaid,
            slugs={},
        )
        md = site_markdown()
        body: str = md.renderer.render(tokens, md.options, inner.env())
        link = href(
            self.page_url,
            self.site.vault.url(rel),
            self._fragment(target, rel, PageContext(embedded=True), None),
        )
        title = escape(target.label if target.heading else parsed.title)
        return (
            f'<div class="internal-embed markdown-embed" data-src="{data}">'
            '<div class="markdown-embed-title">'
            f'<a class="markdown-embed-link" href="{escape(link)}">{title}</a>'
            f'</div><div class="markdown-embed-content">{body}</div></div>'
        )

    def _section(
        self, parsed: ParsedNote, target: WikiTarget, context: PageContext, line: int | None
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
            self._broken(context, line, f"![[{target.raw}]]", "no such heading")
            return None
        if target.block:
            for index, token in enumerate(tokens):
                if token.nesting == 1 and token.attrGet("id") == f"^{target.block}":
                    depth = 0
                    for end in range(index, len(tokens)):
                        depth += tokens[end].nesting
                        if depth == 0:
                            return tokens[index : end + 1]
            self._broken(context, line, f"![[{target.raw}]]", "no such block")
            return None
        if parsed.hide_first_h1:
            tokens = tokens[3:]
        return tokens

    def _embed_file(self, rel: str, target: WikiTarget, context: PageContext, line: int | None) -> str:
        extension = posixpath.splitext(rel)[1].lower()
        name = escape(posixpath.basename(rel))
        url = self._attachment_src(rel, context, line, f"![[{target.raw}]]")
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

    def tag_href(self, tag: str, context: PageContext) -> str:
        url = self.site.tag_urls.get(tag.casefold())
        return href(self.page_url, url) if url else "#"

    def url(self, link: str, kind: UrlKind, line: int | None, context: PageContext) -> str | None:
        """Markdown ``[x](note.md)`` and ``![x](image.png)``: vault paths become site paths."""
        if not link or link.startswith("#") or _SCHEME.match(link) or link.startswith("//"):
            return link
        path, _, fragment = link.partition("#")
        target = unquote(path)
        resolved = self.site.vault.resolve(target, self._source(context))
        if resolved is None:
            self._broken(context, line, link, f"no such {'file' if kind == 'image' else 'note'}")
            return link
        if not resolved.is_note:
            return self._attachment_src(resolved.rel, context, line, link)
        if self._private(resolved.rel):
            return None
        if not context.embedded:
            self.links.add(resolved.rel)
        fragment = unquote(fragment)
        if fragment and not fragment.startswith("^"):
            fragment = slugify(fragment)  # [x](note.md#Some Heading) → the heading's id
        return href(self.page_url, self.site.vault.url(resolved.rel), fragment or None)

    def html_url(self, link: str, kind: UrlKind, line: int | None, context: PageContext) -> str | None:
        """Raw HTML's relative URL: like :meth:`url`, but None (a broken link) outside the vault."""
        path = unquote(link.partition("#")[0])
        if not path or self.site.vault.resolve(path, self._source(context)) is None:
            self._broken(context, line, link, f"no such {'file' if kind == 'image' else 'note'}")
            return None
        return self.url(link, kind, line, context)
