"""One typed :class:`PageContext` per parse or render, instead of string keys in markdown-it's env.

markdown-it hands every rule and renderer one ``env`` mapping, and plugins keep their own keys in
it (footnotes do), so the context lives under a single key (:data:`ENV_KEY`):
``page_context(state.env)`` in a rule, ``page_context(env)`` in a renderer.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from html import escape
from typing import Any, Protocol
from urllib.parse import quote

from noteexec.results import BlockResult
from noteexec.site.markdown.ids import Heading, slugify
from noteexec.site.markdown.wikitarget import WikiTarget
from noteexec.site.sanitize import UrlKind
from noteexec.site.vault import tag_slug

ENV_KEY = "noteexec"


class Linker(Protocol):
    """What the renderer asks the site about links; a page supplies one in its context."""

    def wikilink(self, target: WikiTarget, line: int | None, context: PageContext) -> str: ...

    def embed(self, target: WikiTarget, line: int | None, context: PageContext) -> str: ...

    def tag_href(self, tag: str, context: PageContext) -> str: ...

    def url(self, href: str, kind: UrlKind, line: int | None, context: PageContext) -> str | None:
        """A Markdown link's (kind ``link``) or image's (``image``) URL, rewritten for the site;
        None: what it points at is not published (a private note, a withheld attachment)."""
        ...

    def html_url(self, href: str, kind: UrlKind, line: int | None, context: PageContext) -> str | None:
        """A relative ``src``/``href`` of raw HTML, rewritten like :meth:`url`; None also when it
        is not in the vault (raw HTML keeps no URL the site cannot vouch for)."""
        ...


class PlainLinker:
    """Links as if every note were ``name.html`` next to the page: for tests and lone pages."""

    def wikilink(self, target: WikiTarget, line: int | None, context: PageContext) -> str:
        href = quote(f"{target.note}.html", safe="/-_.~") if target.note else ""
        if target.heading:
            href += f"#{quote(slugify(target.heading), safe='-_.~')}"
        elif target.block:
            href += f"#^{quote(target.block, safe='-_.~')}"
        return (
            f'<a class="internal-link" data-href="{escape(target.raw)}" '
            f'href="{escape(href)}">{escape(target.label)}</a>'
        )

    def embed(self, target: WikiTarget, line: int | None, context: PageContext) -> str:
        return f'<span class="internal-embed" data-src="{escape(target.raw)}">{escape(target.label)}</span>'

    def tag_href(self, tag: str, context: PageContext) -> str:
        return f"tags/{tag_slug(tag)}.html"

    def url(self, href: str, kind: UrlKind, line: int | None, context: PageContext) -> str:
        return href

    def html_url(self, href: str, kind: UrlKind, line: int | None, context: PageContext) -> str:
        return href


@dataclass
class PageContext:
    """What the page tells its rules and renderers, and what a parse collects for the page."""

    linker: Linker = field(default_factory=PlainLinker)
    source_rel: str | None = None
    """The note these tokens come from when it is not the page's own (an embedded note)."""
    embedded: bool = False
    """Rendering another note inside the page: its links and broken links are not the page's."""
    embed_stack: tuple[str, ...] = ()
    """The notes embedded around these tokens, outermost first (the page's own when empty)."""
    results: Mapping[int, BlockResult] = field(default_factory=dict)
    """Checked blocks by the line of their opening fence."""
    mermaid: bool = False
    """The page loads mermaid.js: diagrams are drawn, not shown as code."""
    ran: bool = True
    """False for ``--no-run``: blocks nothing executed show as not run."""
    verdicts_open: bool = False
    """Failed blocks' verdict panels start open."""
    remote_images: bool = False
    """``https:`` images from elsewhere are shown, not turned into links."""
    graph_lines: tuple[int, ...] = ()
    """Lines of the blocks whose autograd graph was measured (a drawn diagram links the first)."""
    admonition_depth: int = 0
    """How many Admonition fences these tokens sit in (each level is a parse of its own)."""

    headings: list[Heading] = field(default_factory=list)
    """Collected by the parse: the table of contents."""
    tags: list[str] = field(default_factory=list)
    """Collected by the parse: inline ``#tags`` in order."""
    block_ids: list[str] = field(default_factory=list)
    """Collected by the parse: ``^block-id`` names."""
    slugs: dict[str, int] | None = None
    """Heading ids taken so far; None until a parse takes one. A page renders without, so each of
    its Admonition fences numbers headings afresh; an embed's fences share one count."""

    def env(self) -> dict[str, Any]:
        """A markdown-it env holding this context."""
        return {ENV_KEY: self}

    def taken_slugs(self) -> dict[str, int]:
        """:attr:`slugs`, started when a parse first numbers a heading."""
        if self.slugs is None:
            self.slugs = {}
        return self.slugs


def page_context(env: MutableMapping[str, Any]) -> PageContext:
    """The context in markdown-it's ``env``: one with defaults when the caller gave none."""
    context = env.get(ENV_KEY)
    if not isinstance(context, PageContext):
        context = PageContext()
        env[ENV_KEY] = context
    return context
