"""``noteexec render``: one note as one self-contained page (stylesheet, scripts and images inline)."""

from __future__ import annotations

from pathlib import Path

from noteexec.check import NoteResult, discover
from noteexec.parse import read_note
from noteexec.site.assets import site_css, site_js, theme_js
from noteexec.site.build import BuildOptions, theme_for
from noteexec.site.page import Page, SiteIndex, make_page, parse_for_site
from noteexec.site.render import PageLinks, Theme, render_page
from noteexec.site.vault import Vault, scan_attachments


def render_single(root: Path, result: NoteResult, options: BuildOptions | None = None) -> tuple[str, Page]:
    """The page of ``result``'s note; links to other notes of ``root`` point at ``name.html``."""
    options = options or BuildOptions()
    rel = result.note.path.resolve().relative_to(root.resolve()).as_posix()
    notes = sorted(  # as `build` finds them: no note symlinked from outside the vault
        file.path.relative_to(root).as_posix() for file in (discover([root]) if root.is_dir() else [])
    )
    if rel not in notes:
        notes.append(rel)
    parsed = parse_for_site(result.note, rel)
    vault = Vault(notes, scan_attachments(root) if root.is_dir() else [], {rel: parsed.aliases})
    site = SiteIndex(
        vault=vault,
        parsed={rel: parsed},
        tag_urls={},
        mermaid=False,
        ran=options.ran,
        embed_files=True,
        read_file=lambda name: (root / name).read_bytes(),
        load=lambda name: parse_for_site(read_note(root / name), name),
    )
    base, _ = theme_for(options, parsed.title)
    site.mermaid = base.mermaid_src is not None and not base.mermaid_is_site_file
    theme = Theme(
        site_title=parsed.title,
        mermaid_src=base.mermaid_src if site.mermaid else None,
        inline_css=site_css(),
        inline_js=site_js(),
        inline_head_js=theme_js(),
    )
    page = make_page(parsed, result, site)
    return render_page(page, PageLinks(), theme, standalone=True), page
