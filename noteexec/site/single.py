"""``noteexec render``: one note as one self-contained page (stylesheet, scripts and images inline)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from noteexec.discover import discover
from noteexec.parse import read_note
from noteexec.results import NoteResult
from noteexec.site.assets import site_css, site_js, theme_js
from noteexec.site.build import BuildOptions, custom_css, is_private, theme_for
from noteexec.site.linker import SiteIndex
from noteexec.site.page import Page, make_page
from noteexec.site.parsed import parse_for_site
from noteexec.site.render import PageLinks, Theme, render_page
from noteexec.site.vault import Vault, is_excluded, scan_attachments


def render_single(root: Path, result: NoteResult, options: BuildOptions | None = None) -> tuple[str, Page]:
    """The page of ``result``'s note; links to other notes of ``root`` point at ``name.html``."""
    options = options or BuildOptions()
    rel = result.note.path.resolve().relative_to(root.resolve()).as_posix()
    every = sorted(  # as `build` finds them: no note symlinked from outside the vault
        file.path.relative_to(root).as_posix() for file in (discover([root]) if root.is_dir() else [])
    )
    published = {  # frontmatter is read only for the notes a link leads to
        file.path.relative_to(root).as_posix()
        for file in (discover([root], options.exclude) if root.is_dir() else [])
    }
    notes = [name for name in every if name in published or name == rel]
    hidden = [name for name in every if name not in published and name != rel]
    if rel not in notes:
        notes.append(rel)
    parsed = parse_for_site(result.note, rel)
    attachments = scan_attachments(root) if root.is_dir() else []
    vault = Vault(notes, attachments, {rel: parsed.aliases}, hidden=hidden)
    site = SiteIndex(
        vault=vault,
        parsed={rel: parsed},
        tag_urls={},
        mermaid=False,
        ran=options.ran,
        verdicts_open=options.verdicts_open,
        remote_images=options.remote_images and not options.offline,
        embed_files=True,
        read_file=lambda name: (root / name).read_bytes(),
        load=lambda name: parse_for_site(read_note(root / name), name),
        private=_Private(root, rel, hidden),
        withheld=lambda name: "excluded by the configuration" if is_excluded(name, options.exclude) else None,
    )
    base, _ = theme_for(options, parsed.title)
    site.mermaid = base.mermaid_src is not None and not base.mermaid_is_site_file
    theme = Theme(
        site_title=parsed.title,
        mermaid_src=base.mermaid_src if site.mermaid else None,
        inline_css=site_css(),
        inline_js=site_js(),
        inline_head_js=theme_js(),
        custom_css=custom_css(root, options).css or None,
    )
    page = make_page(parsed, result, site)
    return render_page(page, PageLinks(), theme, standalone=True), page


class _Private:
    """Whether a note is not published (excluded, ``publish: false``, ``draft: true``), reading
    a note's frontmatter only when a link of the page leads to it."""

    def __init__(self, root: Path, page: str, excluded: Iterable[str]) -> None:
        self.root = root
        self.page = page
        self.known = dict.fromkeys(excluded, True)

    def __contains__(self, rel: object) -> bool:
        if not isinstance(rel, str) or rel == self.page:
            return False
        if rel not in self.known:
            self.known[rel] = is_private(read_note(self.root / rel))
        return self.known[rel]
