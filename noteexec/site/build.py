"""Check results → a static site, written atomically and deterministically.

:func:`render_site` is pure: notes and their results in, ``{site path: bytes or source file}``
out. :func:`build_site` hands it to :func:`noteexec.site.write.write_site`, which swaps it in
whole, so a failed or interrupted build leaves the previous site as it was.
"""

from __future__ import annotations

import dataclasses
import json
import os
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlsplit
from xml.sax.saxutils import escape as xml_escape

from noteexec.discover import discover
from noteexec.display import shown_path, unicode_path
from noteexec.memory import collector_paused
from noteexec.model import Note
from noteexec.results import NoteResult
from noteexec.site.assets import favicon_svg, site_css, site_js, theme_js
from noteexec.site.attachments import withheld
from noteexec.site.custom_css import CssFileError, CustomCss, load_custom_css
from noteexec.site.linker import BrokenLink, SiteIndex
from noteexec.site.mermaid import DEFAULT_MERMAID_URL
from noteexec.site.page import Page, PageStatus, make_page
from noteexec.site.parsed import ParsedNote, parse_for_site
from noteexec.site.render import (
    NavEntry,
    PageLinks,
    Theme,
    render_index,
    render_page,
    render_tag,
    script_source,
)
from noteexec.site.vault import ASSETS_DIR, Vault, frontmatter_list, is_excluded, scan_attachments
from noteexec.site.write import BuildError, write_site

HOME_NOTES = ("home.md", "index.md", "readme.md")
"""A vault's home note, in this order (at its root): the site's landing page shows it above the
check summary, and its title is the site's unless ``--title`` says otherwise."""
CUSTOM_CSS = f"{ASSETS_DIR}/custom.css"


@dataclass(frozen=True)
class BuildOptions:
    title: str | None = None
    mermaid_url: str | None = DEFAULT_MERMAID_URL
    """Where pages load mermaid.js from; a local file is copied into the site. None: no Mermaid."""
    offline: bool = False
    """Load nothing from the network: diagrams without a local mermaid.js show their source."""
    ran: bool = True
    """False for ``--no-run``: blocks show as "not run" and do not count as failures."""
    live_reload: int | None = None
    """The generation of a ``noteexec serve`` build (pages poll for a newer one); None: static."""
    site_url: str | None = None
    """The public address of the site, for absolute URLs in ``sitemap.xml``."""
    exclude: tuple[str, ...] = ()
    """The configuration's ``exclude`` globs: neither pages nor published attachments."""
    css: tuple[Path, ...] = ()
    """``--css FILE``: custom CSS, confined to note bodies (:mod:`noteexec.site.custom_css`)."""
    publish_css: bool = False
    """Also use the vault's ``publish.css`` (Obsidian Publish), as the trusted config allows."""
    not_runnable_fails: bool = True
    """Blocks that cannot run here fail the build (the configuration's ``not_runnable``)."""
    home: str | None = None
    """``--home NOTE``: the vault path of the landing page's note (default: :data:`HOME_NOTES`)."""
    remote_images: bool = True
    """Show ``https:`` images from elsewhere (the pages' policy allows ``https:`` images); off
    (``--no-remote-images``, or ``--offline``): they are links, and nothing is fetched."""
    verdicts_open: bool = False
    """``--verdicts open``: every failed block's panel starts open (a reader's site keeps them
    closed, so the note comes first and the badge says what happened)."""


@dataclass(frozen=True)
class SiteFiles:
    files: dict[str, bytes | Path]
    pages: tuple[Page, ...]
    broken: tuple[BrokenLink, ...]
    tags: dict[str, str] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    """Attachments not published and custom CSS dropped, each as ``file:line: why``."""


@dataclass(frozen=True)
class BuildReport:
    out: Path
    pages: tuple[Page, ...]
    broken: tuple[BrokenLink, ...]
    files: int
    ran: bool = True
    warnings: tuple[str, ...] = ()
    not_runnable_fails: bool = True

    @property
    def failed(self) -> tuple[Page, ...]:
        failing: tuple[PageStatus, ...] = ("failed", "error")
        if self.not_runnable_fails:
            failing = (*failing, "not_runnable")
        return tuple(page for page in self.pages if page.status in failing)

    @property
    def ok(self) -> bool:
        return not self.failed and not self.broken


def _mermaid(options: BuildOptions) -> tuple[str | None, bool, Path | None]:
    """(src for pages, whether it is a site file, local file to copy)."""
    url = options.mermaid_url
    if not url:
        return None, False, None
    parts = urlsplit(url)
    local: Path | None = None
    if parts.scheme == "file":
        from urllib.request import url2pathname

        local = Path(url2pathname(parts.path))
    elif not parts.scheme or len(parts.scheme) == 1:  # a path (or a Windows drive letter)
        local = Path(url)
    if local is not None:
        if not local.is_file():
            raise BuildError(f"--mermaid-url: {local}: no such file")
        return f"{ASSETS_DIR}/mermaid.min.js", True, local
    if options.offline:
        return None, False, None
    if script_source(url) is None:
        raise BuildError(f"--mermaid-url: {url}: not an http(s) URL or a local file")
    return url, False, None


def theme_for(options: BuildOptions, title: str) -> tuple[Theme, Path | None]:
    src, is_site_file, local = _mermaid(options)
    return (
        Theme(
            site_title=title,
            mermaid_src=src,
            mermaid_is_site_file=is_site_file,
            live_reload=options.live_reload,
            remote_images=options.remote_images and not options.offline,
        ),
        local,
    )


def is_private(note: Note) -> bool:
    """``publish: false`` (Obsidian Publish) or ``draft: true`` (static-site generators)."""
    frontmatter = note.frontmatter
    return _flag(frontmatter.get("publish")) is False or _flag(frontmatter.get("draft")) is True


def _flag(value: object) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return {"true": True, "yes": True, "on": True, "false": False, "no": False, "off": False}.get(
            value.strip().lower()
        )
    return None


def custom_css(root: Path, options: BuildOptions) -> CustomCss:
    """The custom CSS the user asked for: ``--css`` files, then ``publish.css`` if enabled.

    Never anything from ``.obsidian/``: a vault's own styles could restyle a verdict into a lie.
    """
    files = [(path, shown_path(path)) for path in options.css]
    for path in options.css:
        if not path.is_file():
            raise BuildError(f"--css {shown_path(path)}: no such file")
    publish = root / "publish.css"
    if options.publish_css and publish.is_file() and not publish.is_symlink():
        files.append((publish, shown_path(publish)))
    try:
        return load_custom_css(files)
    except CssFileError as error:
        raise BuildError(str(error)) from None


def _relative(path: Path, root: Path) -> str:
    """The note's vault path under its own name (a symlinked note is not resolved: it may loop).

    A name that is not UTF-8 is spelled with ``\\xff`` escapes: a site is UTF-8 throughout.
    """
    try:
        folder = Path(os.path.realpath(path.parent))
        relative = (folder / path.name).relative_to(os.path.realpath(root)).as_posix()
    except ValueError:
        relative = path.name
    return unicode_path(relative)


def _search_index(pages: Sequence[Page]) -> bytes:
    entries = [
        {
            "t": page.title,
            "u": page.url,
            "p": page.rel,
            "s": page.status,
            "d": page.date or "",
            "g": list(page.tags),
            "h": [heading.text for heading in page.headings],
            "x": page.text,
        }
        for page in sorted(pages, key=lambda page: page.rel)
    ]
    data = json.dumps({"pages": entries}, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return f"window.NOTEEXEC_INDEX = {data};\n".encode()


def _sitemap(pages: Sequence[Page], tag_urls: Mapping[str, str], site_url: str | None) -> bytes:
    base = site_url.rstrip("/") + "/" if site_url else ""
    entries: list[tuple[str, str | None]] = [("index.html", None)]
    entries.extend((page.url, page.date) for page in sorted(pages, key=lambda page: page.url))
    entries.extend((url, None) for url in sorted(tag_urls.values()))
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">',
    ]
    for url, date in entries:
        lastmod = f"<lastmod>{xml_escape(date)}</lastmod>" if date and len(date) == 10 else ""
        lines.append(f"  <url><loc>{xml_escape(base + quote(url, safe='/-_.~'))}</loc>{lastmod}</url>")
    lines.append("</urlset>")
    return ("\n".join(lines) + "\n").encode()


def render_site(
    root: Path,
    results: Sequence[NoteResult],
    options: BuildOptions = BuildOptions(),
    attachments: Sequence[str] = (),
    excluded: Sequence[str] = (),
) -> SiteFiles:
    """Every file of the site, from the notes' results (pure but for reading attachments and CSS).

    ``excluded``: vault paths of notes the configuration excludes; like private notes
    (:func:`is_private`), links to them resolve, to plain text.
    """
    with collector_paused():  # both passes keep every note's tokens alive: millions of objects
        return _render_site(root, results, options, attachments, excluded)


def _render_site(
    root: Path,
    results: Sequence[NoteResult],
    options: BuildOptions,
    attachments: Sequence[str],
    excluded: Sequence[str],
) -> SiteFiles:
    every = [(_relative(result.note.path, root), result) for result in results]
    published = [(rel, result) for rel, result in every if not is_private(result.note)]
    private = {rel: result.note for rel, result in every if is_private(result.note)}
    rels = [rel for rel, _ in published]
    parsed: dict[str, ParsedNote] = {rel: parse_for_site(result.note, rel) for rel, result in published}
    home = _home(parsed, options.home)
    title = options.title or (home.heading_title if home else "") or root.resolve().name or "Notes"
    theme, mermaid_file = theme_for(options, title)
    custom = custom_css(root, options)
    if custom.css:
        theme = dataclasses.replace(theme, custom_css=CUSTOM_CSS)
    aliases = {rel: note.aliases for rel, note in parsed.items()}
    for rel, note in private.items():
        aliases[rel] = frontmatter_list(note.frontmatter.get("aliases", note.frontmatter.get("alias")))
    hidden = sorted({*private, *excluded})
    vault = Vault(rels, attachments, aliases, hidden=hidden)
    tag_urls = vault.tag_urls(tag for note in parsed.values() for tag in note.tags)
    reasons: dict[str, str | None] = {}

    def withheld_reason(rel: str) -> str | None:
        if rel not in reasons:
            reasons[rel] = (
                "excluded by the configuration"
                if is_excluded(rel, options.exclude)
                else withheld(rel, lambda name: (root / name).read_bytes())
            )
        return reasons[rel]

    site = SiteIndex(
        vault=vault,
        parsed=parsed,
        tag_urls=tag_urls,
        mermaid=theme.mermaid_src is not None,
        ran=options.ran,
        verdicts_open=options.verdicts_open,
        remote_images=theme.remote_images,
        private=frozenset(hidden),
        withheld=withheld_reason,
    )
    pages = [make_page(parsed[rel], result, site) for rel, result in published]
    languages: dict[str, int] = {}
    for page in pages:
        languages[page.lang] = languages.get(page.lang, 0) + 1
    if languages:  # index and tag pages speak the vault's main language
        theme = dataclasses.replace(theme, lang=min(languages, key=lambda lang: (-languages[lang], lang)))
    nav = tuple(NavEntry(page.rel, page.url, page.title, page.status) for page in sorted(pages, key=_by_rel))
    theme = dataclasses.replace(theme, nav=nav)

    backlinks: dict[str, list[tuple[str, str]]] = {}
    for page in pages:
        for target in page.links:
            backlinks.setdefault(target, []).append((page.title, page.url))
    files = _SiteFiles()
    for page in pages:
        links = PageLinks(
            backlinks=tuple(
                sorted(backlinks.get(page.rel, ()), key=lambda item: (item[0].casefold(), item[1]))
            ),
            tag_urls=tag_urls,
        )
        files.add(page.url, render_page(page, links, theme).encode(), f"the page of {page.rel}")
    broken = tuple(item for page in pages for item in page.broken)
    results_by_rel = dict(published)
    home_page = make_page(home, results_by_rel[home.rel], site, at="index.html") if home else None
    index = render_index(pages, broken, tag_urls, theme, home_page)
    files.add("index.html", index.encode(), "the site's index")
    by_tag: dict[str, list[Page]] = {}
    names: dict[str, str] = {}
    for page in pages:
        for tag in page.tags:
            by_tag.setdefault(tag.casefold(), []).append(page)
            names.setdefault(tag.casefold(), tag)
    for key, url in tag_urls.items():
        tag_page = render_tag(names[key], url, by_tag.get(key, []), tag_urls, theme)
        files.add(url, tag_page.encode(), f"the tag page of #{key}")
    own = "the site's own file"
    files.add("search-index.js", _search_index(pages), own)
    files.add("sitemap.xml", _sitemap(pages, tag_urls, options.site_url), own)
    files.add(f"{ASSETS_DIR}/site.css", site_css().encode(), own)
    files.add(f"{ASSETS_DIR}/site.js", site_js().encode(), own)
    files.add(f"{ASSETS_DIR}/theme.js", theme_js().encode(), own)
    files.add(f"{ASSETS_DIR}/favicon.svg", (favicon_svg() + "\n").encode(), own)
    if custom.css:
        files.add(CUSTOM_CSS, custom.css.encode(), "the custom CSS")
    if mermaid_file is not None:
        files.add(f"{ASSETS_DIR}/mermaid.min.js", mermaid_file, "--mermaid-url")
    for rel in sorted({rel for page in pages for rel in page.attachments}):
        files.add(vault.url(rel), root / rel, f"the vault file {rel}", attachment=True)
    warnings = [item.describe(str(root)) for page in pages for item in page.withheld]
    warnings.extend(custom.warnings)
    return SiteFiles(
        files=files.files, pages=tuple(pages), broken=broken, tags=tag_urls, warnings=tuple(warnings)
    )


def _home(parsed: Mapping[str, ParsedNote], chosen: str | None) -> ParsedNote | None:
    """The landing page's note: ``--home``, else the first of :data:`HOME_NOTES` at the root."""
    if chosen is not None:
        rel = chosen.strip().replace("\\", "/").removeprefix("./").lstrip("/")
        rel = rel if rel.lower().endswith(".md") else f"{rel}.md"
        if rel not in parsed:
            raise BuildError(f"--home {chosen}: no published note at that path in the vault")
        return parsed[rel]
    candidates = [note for rel, note in parsed.items() if rel.lower() in HOME_NOTES]
    return min(candidates, key=lambda note: HOME_NOTES.index(note.rel.lower()), default=None)


def _by_rel(page: Page) -> str:
    return page.rel


class _SiteFiles:
    """The site's files by path; two things at one path (or at two a case-insensitive file system
    confuses) is an error naming both, so nothing can replace what the site writes."""

    def __init__(self) -> None:
        self.files: dict[str, bytes | Path] = {}
        self._site: dict[str, str] = {}

    def add(self, path: str, data: bytes | Path, origin: str, attachment: bool = False) -> None:
        key = unicodedata.normalize("NFC", path).casefold()
        clash = self._site.get(key) or (path in self.files and "another vault file")
        if clash:
            raise BuildError(f"{path}: both {clash} and {origin} would be written there")
        if not attachment:
            self._site[key] = origin
        self.files[path] = data


def build_site(
    root: Path,
    results: Sequence[NoteResult],
    out: Path,
    options: BuildOptions = BuildOptions(),
) -> BuildReport:
    """Render and write the site of the vault at ``root`` from its notes' results."""
    attachments = scan_attachments(root, skip=[out]) if root.is_dir() else []
    excluded = excluded_notes(root, options.exclude) if root.is_dir() else []
    site = render_site(root, results, options, attachments, excluded)
    write_site(site.files, out)
    return BuildReport(
        out=out,
        pages=site.pages,
        broken=site.broken,
        files=len(site.files),
        ran=options.ran,
        warnings=site.warnings,
        not_runnable_fails=options.not_runnable_fails,
    )


def excluded_notes(root: Path, exclude: Sequence[str]) -> list[str]:
    """Vault paths of the notes ``exclude`` leaves out (links to them resolve, to plain text)."""
    if not exclude:
        return []
    kept = {file.path for file in discover([root], exclude)}
    return [_relative(file.path, root) for file in discover([root]) if file.path not in kept]
