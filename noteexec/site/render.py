"""Pages → HTML. Pure functions of plain data: the same input gives the same bytes.

Every page uses relative URLs only (``{root}`` is ``../`` per folder level), so a site works
from ``file://`` and under any base path. Scripts are files of the site (or, for a lone page,
inline with a CSP hash); notes never contribute a script.
"""

from __future__ import annotations

import base64
import hashlib
import html
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit

from noteexec.site import icons
from noteexec.site.code import BADGE_LABELS
from noteexec.site.linker import BrokenLink
from noteexec.site.page import Page, PageStatus
from noteexec.site.vault import ASSETS_DIR, href, root_prefix

escape = html.escape

STATUS_LABELS: dict[PageStatus, str] = {
    "passed": "passed",
    "failed": "failed",
    "error": "error",
    "not_runnable": "not runnable here",
    "not_run": "not run",
    "none": "no code",
}
STATUS_ORDER: dict[PageStatus, int] = {
    "error": 0,
    "failed": 1,
    "not_runnable": 2,
    "not_run": 2,
    "passed": 3,
    "none": 4,
}


@dataclass(frozen=True)
class NavEntry:
    """A published note in the note list every page carries (rendered here: no script needed)."""

    rel: str
    url: str
    title: str
    status: PageStatus


@dataclass(frozen=True)
class Theme:
    """What every page of one site shares."""

    site_title: str = "Notes"
    mermaid_src: str | None = None
    """The mermaid.js URL pages load (relative to the site root when it is a site file)."""
    mermaid_is_site_file: bool = False
    live_reload: int | None = None
    """``noteexec serve``: the build's generation; pages reload when the server's moves on."""
    inline_css: str | None = None
    """For a self-contained page: the stylesheet itself instead of a link to it."""
    inline_js: str | None = None
    inline_head_js: str | None = None
    custom_css: str | None = None
    """The site path of the custom CSS (``--css``, ``publish.css``), confined to note bodies;
    for a self-contained page, the CSS itself (see :mod:`noteexec.site.custom_css`)."""
    lang: str = "en"
    """The language of pages that do not say (a note's frontmatter ``lang`` wins)."""
    remote_images: bool = False
    """Pages may load ``https:`` images from anywhere (``img-src https:``)."""
    nav: tuple[NavEntry, ...] = ()
    """The note list, in path order."""


@dataclass(frozen=True)
class PageLinks:
    """A page's neighbours: pages that link to it (title, url), by the site."""

    backlinks: tuple[tuple[str, str], ...] = ()
    tag_urls: dict[str, str] = field(default_factory=dict)


def script_source(url: str) -> str | None:
    """A remote script's URL as a CSP source: scheme, host, port and path, exactly (no query).

    None when the URL is not an ``http(s)`` URL a policy can name safely.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not re.fullmatch(r"[A-Za-z0-9.-]+(:[0-9]+)?", parts.netloc):
        return None
    path = quote(parts.path or "/", safe="/-._~!$&()+=:@%")  # no ; , ' or spaces: they end a source
    return f"{parts.scheme}://{parts.netloc.lower()}{path}"


def _csp(theme: Theme) -> str:
    """The page's Content-Security-Policy: the site's own files, plus the Mermaid script if remote.

    ``'self'`` covers the site's files from ``file://`` too (browsers match a file page's
    ``'self'`` to file URLs). A self-contained page allows its inline scripts by hash instead.
    Images: the site's, ``data:`` (a lone page inlines its images) and, unless turned off,
    ``https:`` ones (a note's remote images); nothing else is loaded from elsewhere, and notes
    never contribute a script, a style sheet, a frame or a plugin.
    """
    scripts = ["'self'"]
    if theme.inline_js is not None:
        scripts = [
            f"'sha256-{base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()}'"
            for script in (theme.inline_head_js, theme.inline_js)
            if script is not None
        ]
    if theme.mermaid_src and not theme.mermaid_is_site_file:
        source = script_source(theme.mermaid_src)
        if source is not None:
            scripts.append(source)
    return (
        "default-src 'self'; "
        f"script-src {' '.join(dict.fromkeys(scripts))}; "
        "style-src 'self' 'unsafe-inline'; "
        f"img-src 'self' data:{' https:' if theme.remote_images else ''}; media-src 'self'; font-src 'self'; "
        "connect-src 'self'; "
        "object-src 'none'; frame-src 'none'; base-uri 'none'; form-action 'none'"
    )


def _in_style_element(css: str) -> str:
    """CSS inside ``<style>``: ``</`` (only ever in a string or url) as the CSS escape ``<\\/``,
    so no text of it can end the element."""
    return css.replace("</", "<\\/")


def _head(title: str, root: str, theme: Theme, description: str = "", lang: str | None = None) -> str:
    css = (
        f"<style>{theme.inline_css}</style>"
        if theme.inline_css is not None
        else f'<link rel="stylesheet" href="{root}{ASSETS_DIR}/site.css">'
    )
    if theme.custom_css is not None and theme.inline_css is not None:
        css += f"\n<style>{_in_style_element(theme.custom_css)}</style>"
    elif theme.custom_css is not None:
        css += f'\n<link rel="stylesheet" href="{root}{escape(quote(theme.custom_css, safe="/-_.~"))}">'
    if theme.inline_head_js is not None:
        css += f"\n<script>{theme.inline_head_js}</script>"
    elif theme.inline_js is None:
        css += f'\n<script src="{root}{ASSETS_DIR}/theme.js"></script>'

    meta = f'<meta name="description" content="{escape(description)}">\n' if description else ""
    if theme.inline_css is None:  # a lone page has none: it writes no data: URL but raster images
        meta += f'<link rel="icon" href="{root}{ASSETS_DIR}/favicon.svg" type="image/svg+xml">\n'

    return (
        "<!doctype html>\n"
        f'<html lang="{escape(lang or theme.lang)}">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="color-scheme" content="light dark">\n'
        '<meta name="referrer" content="no-referrer">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{escape(_csp(theme))}">\n'
        f'<meta name="generator" content="noteexec">\n{meta}'
        f"<title>{escape(title)}</title>\n{css}\n</head>\n"
    )


def _scripts(root: str, theme: Theme, diagrams: bool = False) -> str:
    parts = []
    if theme.mermaid_src and diagrams:  # only where there are diagrams; before site.js, which draws them
        src = f"{root}{theme.mermaid_src}" if theme.mermaid_is_site_file else theme.mermaid_src
        parts.append(f'<script src="{escape(src)}"></script>')
    if theme.inline_js is not None:
        parts.append(f"<script>{theme.inline_js}</script>")
    else:  # site.js loads search-index.js when search is first used
        parts.append(f'<script src="{root}{ASSETS_DIR}/site.js"></script>')
    return "\n".join(parts)


def _body_open(kind: str, root: str, theme: Theme, status: PageStatus | None = None) -> str:
    live = f' data-live="{theme.live_reload}"' if theme.live_reload is not None else ""
    status_class = f" status-{status}" if status else ""
    return (
        f'<body class="page-{kind}{status_class}" data-root="{escape(root)}"{live}>\n'
        f'<a class="skip-link" href="#content">Skip to content</a>\n<div class="app">\n'
    )


def _topbar(root: str, theme: Theme, standalone: bool = False) -> str:
    search = (
        ""
        if standalone
        else (
            '<div class="search" role="search">'
            f'<label class="search-box">{icons.SEARCH}'
            '<input type="search" class="search-input" placeholder="Search notes" aria-label="Search notes" '
            'autocomplete="off" spellcheck="false"></label>'
            '<div class="search-results" role="listbox" hidden></div></div>'
        )
    )
    menu = (
        ""
        if standalone
        else '<button type="button" class="menu-toggle" aria-label="List of notes" aria-expanded="false" '
        f'aria-controls="{NAV_ID}">{icons.MENU}</button>'
    )
    home = (
        f'<span class="site-name">{escape(theme.site_title)}</span>'
        if standalone
        else f'<a class="site-name" href="{root}index.html">{escape(theme.site_title)}</a>'
    )
    return (
        f'<header class="topbar">{menu}{home}{search}'
        '<button type="button" class="theme-toggle" aria-label="Switch between light and dark">'
        f"{icons.SUN}{icons.MOON}</button></header>\n"
    )


CURRENT = ' class="is-active" aria-current="page"'
DOT = '<span class="dot"></span>'
NAV_ID = "nx_nav"
"""The note list's id: ``_`` never occurs in a heading's id, so no heading can take it."""


def _sidebar(root: str, url: str, theme: Theme) -> str:
    """The note list, grouped by folder; the current page is marked."""
    folders: dict[str, list[NavEntry]] = {}
    for entry in theme.nav:
        folders.setdefault(entry.rel.rpartition("/")[0], []).append(entry)
    groups = []
    for folder in sorted(folders):
        title = f'<div class="nav-folder-title">{escape(folder)}</div>' if folder else ""
        items = "".join(
            f'<li class="nav-file status-{entry.status}"><a href="{escape(href(url, entry.url))}" '
            f'title="{escape(entry.rel)}"{CURRENT if entry.url == url else ""}>'
            f"{DOT if entry.status != 'none' else ''}"
            f'<span class="nav-file-title">{escape(entry.title)}</span></a></li>'
            for entry in folders[folder]
        )
        groups.append(f'<div class="nav-folder">{title}<ul>{items}</ul></div>')
    return (
        f'<aside class="sidebar-left" id="{NAV_ID}" aria-label="Notes">'
        f'<nav class="nav-tree"><a class="nav-home" href="{root}index.html">All notes</a>'
        f'<div class="nav-files">{"".join(groups)}</div></nav></aside>\n'
    )


def _status_badge(status: PageStatus) -> str:
    """The note's check status; nothing for a note without code (no "no code" pill everywhere)."""
    if status == "none":
        return ""
    return f'<span class="note-status status-{status}">{escape(STATUS_LABELS[status])}</span>'


def _tags_html(tags: Sequence[str], page_url: str, tag_urls: dict[str, str]) -> str:
    links = []
    for tag in tags:
        url = tag_urls.get(tag.casefold())
        target = escape(href(page_url, url)) if url else "#"
        links.append(f'<a class="tag" href="{target}">#{escape(tag)}</a>')
    return f'<span class="note-tags">{"".join(links)}</span>' if links else ""


def _block_counts(page: Page) -> str:
    counts: dict[str, int] = {}
    for block in page.blocks:
        counts[block.outcome] = counts.get(block.outcome, 0) + 1
    parts = [
        f'<span class="count count-{outcome}">{counts[outcome]} {BADGE_LABELS[outcome]}</span>'
        for outcome in ("failed", "not_runnable", "passed", "skipped", "not_run")
        if counts.get(outcome)
    ]
    return f'<span class="block-counts">{"".join(parts)}</span>' if parts else ""


def _note_header(page: Page, links: PageLinks) -> str:
    meta = []
    if page.date:
        meta.append(f'<time class="note-date" datetime="{escape(page.date)}">{escape(page.date)}</time>')
    tags = _tags_html(page.tags, page.url, links.tag_urls)
    if tags:
        meta.append(tags)
    if page.aliases:
        names = ", ".join(escape(alias) for alias in page.aliases)
        meta.append(f'<span class="note-aliases">also: {names}</span>')
    properties = ""
    if page.properties:
        rows = "".join(f"<tr><th>{escape(name)}</th><td>{value}</td></tr>" for name, value in page.properties)
        properties = f'<table class="note-properties">{rows}</table>'
    error = f'<div class="note-error" role="alert">{escape(page.error)}</div>' if page.error else ""
    failed = [block for block in page.blocks if block.outcome == "failed"]
    jump = ""
    if failed:
        items = "".join(
            f'<li><a href="#L{block.line}">line {block.line}</a>: {escape(block.message)}</li>'
            for block in failed
        )
        jump = f'<div class="note-failures" role="alert"><strong>Failed blocks</strong><ul>{items}</ul></div>'
    return (
        '<header class="note-header">'
        f'<div class="note-check">{_status_badge(page.status)}{_block_counts(page)}</div>'
        f'<h1 class="page-title">{escape(page.title)}</h1>'
        f'<div class="note-meta">{"".join(meta)}</div>{properties}{error}{jump}</header>\n'
    )


def _right_sidebar(page: Page, links: PageLinks) -> str:
    parts = []
    headings = [heading for heading in page.headings if heading.level > 1 or heading.text != page.title]
    if headings:
        top = min(heading.level for heading in headings)
        items = "".join(
            f'<li class="toc-level-{heading.level - top + 1}"><a href="#{escape(heading.id)}">'
            f"{escape(heading.text)}</a></li>"
            for heading in headings
        )
        parts.append(
            f'<nav class="toc" aria-label="On this page"><h2>On this page</h2><ul>{items}</ul></nav>'
        )
    if page.blocks:
        items = "".join(
            f'<li class="outcome-{block.outcome}"><a href="#L{block.line}" title="{escape(block.message)}">'
            f'<span class="dot"></span>line {block.line}</a><span class="outcome">'
            f"{BADGE_LABELS[block.outcome]}</span></li>"
            for block in page.blocks
        )
        parts.append(f'<section class="block-list"><h2>Code blocks</h2><ul>{items}</ul></section>')
    if links.backlinks:
        items = "".join(
            f'<li><a href="{escape(href(page.url, url))}">{escape(title)}</a></li>'
            for title, url in links.backlinks
        )
        backlinks = f"<ul>{items}</ul>"
    else:
        backlinks = '<p class="empty">No notes link here.</p>'
    parts.append(f'<section class="backlinks"><h2>Links to this page</h2>{backlinks}</section>')
    return f'<aside class="sidebar-right">{"".join(parts)}</aside>\n'


def render_page(page: Page, links: PageLinks, theme: Theme, standalone: bool = False) -> str:
    root = root_prefix(page.url) if not standalone else ""
    title = page.title if standalone else f"{page.title} · {theme.site_title}"
    return (
        _head(title, root, theme, page.description, page.lang)
        + _body_open("note", root, theme, page.status)
        + _topbar(root, theme, standalone)
        + ("" if standalone else _sidebar(root, page.url, theme))
        + '<main class="content" id="content"><article class="note">'
        + _note_header(page, links)
        + f'<div class="markdown-rendered">\n{page.body}</div>\n'
        + "</article></main>\n"
        + _right_sidebar(page, links)
        + "</div>\n"
        + _scripts(root, theme, diagrams='<pre class="mermaid">' in page.body)
        + "\n</body>\n</html>\n"
    )


def _note_rows(pages: Sequence[Page], from_url: str, tag_urls: dict[str, str]) -> str:
    """The notes as a table; the check's columns only when some note has code (a reading list
    for a vault without code)."""
    checked = any(page.blocks or page.status == "error" for page in pages)
    rows = []
    for page in pages:
        date = escape(page.date or "")
        status = f"<td>{_status_badge(page.status)}</td>" if checked else ""
        blocks = f'<td class="row-blocks">{_block_counts(page)}</td>' if checked else ""
        rows.append(
            f'<tr class="status-{page.status}">{status}'
            f'<td><a class="internal-link" href="{escape(href(from_url, page.url))}">{escape(page.title)}</a>'
            f'<div class="row-path">{escape(page.rel)}</div></td>{blocks}'
            f'<td class="row-date"><time datetime="{date}">{date}</time></td>'
            f"<td>{_tags_html(page.tags, from_url, tag_urls)}</td></tr>"
        )
    head = "<th>status</th><th>note</th><th>blocks</th>" if checked else "<th>note</th>"
    return (
        f'<table class="note-index"><thead><tr>{head}<th>date</th>'
        f"<th>tags</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def index_order(pages: Sequence[Page]) -> list[Page]:
    """Failures first, then newest first, then by title."""

    def key(page: Page) -> tuple[int, str, str, str]:
        date = page.date or ""
        inverted = "".join(chr(0x10FFFF - ord(char)) for char in date)  # newest first, stable
        return (STATUS_ORDER[page.status], inverted, page.title.casefold(), page.rel)

    return sorted(pages, key=key)


_LEADING_H1 = re.compile(r"\s*<h1 id=\"[^\"]*\">(.*?)</h1>\n", re.DOTALL)


def render_index(
    pages: Sequence[Page],
    broken: Sequence[BrokenLink],
    tag_urls: dict[str, str],
    theme: Theme,
    home: Page | None = None,
) -> str:
    """The landing page: the vault's home note when it has one, then the check and every note."""
    ordered = index_order(pages)
    total: dict[str, int] = {}
    for page in pages:
        for block in page.blocks:
            total[block.outcome] = total.get(block.outcome, 0) + 1
    notes_failed = sum(page.status in ("failed", "error") for page in pages)
    summary = [f"<strong>{len(pages)}</strong> notes"]
    summary.extend(
        f'<span class="count count-{outcome}">{total[outcome]} {BADGE_LABELS[outcome]}</span>'
        for outcome in ("failed", "not_runnable", "passed", "skipped", "not_run")
        if total.get(outcome)
    )
    verdict = (
        f'<p class="site-verdict bad">{notes_failed} note(s) need attention.</p>'
        if notes_failed
        else '<p class="site-verdict good">Every checked block does what its note says.</p>'
        if total.get("passed") and not total.get("not_run")
        else ""
    )
    broken_html = ""
    if broken:
        items = "".join(f"<li><code>{escape(item.describe())}</code></li>" for item in broken)
        broken_html = f'<section class="broken-links"><h2>Broken links</h2><ul>{items}</ul></section>'
    tags = sorted({tag.casefold(): tag for page in pages for tag in page.tags}.items())
    tag_cloud = "".join(
        f'<a class="tag" href="{escape(tag_urls[key])}">#{escape(tag)}</a>'
        for key, tag in tags
        if key in tag_urls
    )
    summary_html = f'<div class="site-summary">{" · ".join(summary)}</div>{verdict}'
    title = f'<h1 class="page-title">{escape(theme.site_title)}</h1>'
    if home is not None:  # rendered with links relative to index.html
        body = home.body
        first_h1 = _LEADING_H1.match(body)
        if first_h1:  # the note's own H1 is the page's title, shown once
            title, body = f'<h1 class="page-title">{first_h1[1]}</h1>', body[first_h1.end() :]
        header = (
            f'<header class="note-header">{title}</header>'
            f'<div class="markdown-rendered home-note">\n{body}</div>\n'
            f'<section class="site-check"><h2>All notes</h2>{summary_html}</section>'
        )
    else:
        header = f'<header class="note-header">{title}{summary_html}</header>'
    body = (
        '<main class="content" id="content"><article class="note index">'
        f"{header}{_note_rows(ordered, 'index.html', tag_urls)}{broken_html}"
        f'<section class="tag-cloud"><h2>Tags</h2>{tag_cloud}</section>'
        "</article></main>\n"
    )
    diagrams = home is not None and '<pre class="mermaid">' in home.body
    return (
        _head(theme.site_title, "", theme, home.description if home else f"{len(pages)} checked notes")
        + _body_open("index", "", theme)
        + _topbar("", theme)
        + _sidebar("", "index.html", theme)
        + body
        + "</div>\n"
        + _scripts("", theme, diagrams=diagrams)
        + "\n</body>\n</html>\n"
    )


def render_tag(tag: str, url: str, pages: Sequence[Page], tag_urls: dict[str, str], theme: Theme) -> str:
    root = root_prefix(url)
    body = (
        '<main class="content" id="content"><article class="note tag-page">'
        f'<header class="note-header"><h1 class="page-title">#{escape(tag)}</h1>'
        f'<div class="site-summary">{len(pages)} note(s)</div></header>'
        f"{_note_rows(index_order(pages), url, tag_urls)}</article></main>\n"
    )
    return (
        _head(f"#{tag} · {theme.site_title}", root, theme)
        + _body_open("tag", root, theme)
        + _topbar(root, theme)
        + _sidebar(root, url, theme)
        + body
        + "</div>\n"
        + _scripts(root, theme)
        + "\n</body>\n</html>\n"
    )
