"""Publishing a vault someone else wrote: its files cannot replace the site's, nothing from it runs
in the site's origin, its CSS cannot restyle a verdict, and its private notes stay private.

The hostile vault of ``tests/site/hostile.py`` holds a file named like every file a build writes,
active attachments (HTML, XHTML, XML, SVG with script, JavaScript, a file a browser would sniff
as a page), passive ones, ``publish: false``, ``draft: true`` and excluded notes; it is built for
real here (``noteexec build --no-run``) and opened in Chromium in ``tests/browser``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from html import unescape
from pathlib import Path

import pytest

from noteexec.model import Note
from noteexec.site.attachments import inert_svg, withheld
from noteexec.site.build import BuildOptions, _SiteFiles, build_site, is_private, render_site
from noteexec.site.custom_css import SCOPE, confine
from noteexec.site.single import render_single
from noteexec.site.write import BuildError
from tests.conftest import noteexec
from tests.site.helpers import results_for, write_vault
from tests.site.hostile import (
    ACTIVE_ATTACHMENTS,
    PASSIVE_ATTACHMENTS,
    PRIVATE_NOTES,
    SITE_FILE_NAMES,
    write_hostile_vault,
)

SVG = '<svg xmlns="http://www.w3.org/2000/svg" xmlns:x="http://www.w3.org/1999/xlink">{}</svg>'


@dataclass(frozen=True)
class Built:
    vault: Path
    files: dict[str, bytes]
    """Every file of the site by its path in the site."""
    stdout: str
    stderr: str


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """``noteexec build --no-run`` of the hostile vault: every file it wrote, and its output."""
    base = tmp_path_factory.mktemp("publish")
    vault = write_hostile_vault(base / "vault")
    out = base / "site"
    result = noteexec("build", vault, "-o", out, "--no-run", "--offline", "--cache-dir", base / "cache")
    files = {path.relative_to(out).as_posix(): path.read_bytes() for path in out.rglob("*") if path.is_file()}
    return Built(vault, files, result.stdout, result.stderr)


def _broken_links(built: Built) -> list[str]:
    """The distinct broken links of ``attachments.md`` (the payload notes have their own)."""
    found = re.findall(
        r"^BROKEN LINK .*/attachments\.md:\d+: no such \w+: (\S+)$", built.stdout, re.MULTILINE
    )
    return sorted({target.removeprefix("!") for target in found if target.startswith(("[[", "!["))})


# ------------------------------------------------------------------ the site's own files


def test_no_vault_file_replaces_or_shadows_a_file_the_site_writes(built: Built) -> None:
    files = built.files
    assert _broken_links(built) == ["[[.noteexec-site]]"]  # a dot-file is no attachment
    for name in SITE_FILE_NAMES:  # the vault holds a file at each of these paths
        if name in files:
            assert f"VAULT-FILE {name}".encode() not in files[name], name
    leaked = [name for name, data in files.items() if b"VAULT-FILE" in data]
    assert leaked and all(name.startswith("_attachments/") for name in leaked), leaked
    assert files["search-index.js"].startswith(b"window.NOTEEXEC_INDEX = ")
    assert (
        files["_assets/site.js"] == (Path(__file__).parents[2] / "noteexec/site/assets/site.js").read_bytes()
    )
    assert (
        b"<urlset" in files["sitemap.xml"] and b'name="generator" content="noteexec"' in files["index.html"]
    )
    # a note under a site folder and a tag page named like a note keep out of each other's way
    assert "tags/hostile.html" in files and b"VAULT-FILE" not in files["tags/hostile.html"]
    assert "404.html" not in files  # reserved, written by no one
    for name in ("_assets/favicon.svg", "_attachments/files/drawing.svg"):  # published, elsewhere
        assert f"VAULT-FILE {name}".encode() in files[f"_attachments/{name}"]


def test_a_vault_file_at_every_path_a_build_writes_changes_none_of_them(tmp_path: Path) -> None:
    """Build a vault, put a file of the vault at every path that build wrote, link them all from a
    note, and build again: every one of those paths still holds what the site wrote."""
    root = write_vault(
        tmp_path / "v",
        {"a.md": "# A\n\n#alpha ![[img/p.png]] [[sub/b]]\n", "sub/b.md": "---\ntags: [beta]\n---\n# B\n"},
    )
    (root / "img").mkdir()
    (root / "img" / "p.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    mermaid, css = tmp_path / "mermaid.js", tmp_path / "c.css"
    mermaid.write_text("window.mermaid = {};\n")
    css.write_text("p { color: red }\n")
    options = BuildOptions(mermaid_url=str(mermaid), css=(css,), ran=False)
    first = tmp_path / "first"
    build_site(root, results_for(root), first, options)
    written = sorted(path.relative_to(first).as_posix() for path in first.rglob("*") if path.is_file())
    assert {"index.html", "a.html", "sub/b.html", "tags/alpha.html", "search-index.js", "sitemap.xml"} <= set(
        written
    ) and {"_assets/mermaid.min.js", "_assets/custom.css", "_attachments/img/p.png"} <= set(written)
    links = []
    for name in written:
        marker = f"VAULT-FILE {name}".encode()
        data = {
            ".svg": PASSIVE_ATTACHMENTS["files/drawing.svg"].replace(b"VAULT-FILE files/drawing.svg", marker)
        }
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data.get(Path(name).suffix, b"\x89PNG\r\n\x1a\n" + marker))
        links.append(f"[[{name}]] ![[{name}]] [x]({name})")
    (root / "links.md").write_text("\n\n".join(links) + "\n")
    second = tmp_path / "second"
    build_site(root, results_for(root), second, options)
    for name in written:
        assert b"VAULT-FILE" not in (second / name).read_bytes(), name
    carried = sorted(
        path.relative_to(second).as_posix()
        for path in second.rglob("*")
        if path.is_file() and b"VAULT-FILE" in path.read_bytes()
    )
    assert carried and all(name.startswith("_attachments/") for name in carried)
    assert "_attachments/_attachments/img/p.png" in carried and "_attachments/_assets/favicon.svg" in carried


def test_a_clash_between_site_files_is_an_error_naming_both() -> None:
    files = _SiteFiles()
    files.add("index.html", b"x", "the site's index")
    with pytest.raises(
        BuildError, match=r"Index\.HTML: both the site's index and the vault file Index\.HTML"
    ):
        files.add("Index.HTML", Path("Index.HTML"), "the vault file Index.HTML", attachment=True)
    files.add("_attachments/a.png", Path("a.png"), "the vault file a.png", attachment=True)
    files.add("_attachments/A.png", Path("A.png"), "the vault file A.png", attachment=True)  # Linux: fine
    with pytest.raises(BuildError, match=r"a\.png: both another vault file and"):
        files.add("_attachments/a.png", Path("a.png"), "the vault file a.png", attachment=True)


def test_notes_named_like_site_files_get_urls_of_their_own(tmp_path: Path) -> None:
    names = ["index.md", "404.md", "_assets/site.md", "_attachments/x.md", "tags/t.md", "search-index.js.md"]
    root = write_vault(tmp_path / "v", {name: "#t\n" for name in names})
    site = render_site(root, results_for(root), BuildOptions(offline=True))
    urls = {page.rel: page.url for page in site.pages}
    assert urls["index.md"] == "index-1.html" and urls["404.md"] == "404-1.html"
    assert urls["_assets/site.md"] == "_notes/_assets/site.html"
    assert urls["_attachments/x.md"] == "_notes/_attachments/x.html"
    assert urls["tags/t.md"] == "tags/t.html" and site.tags == {"t": "tags/t-1.html"}


# ------------------------------------------------------------------ active attachments


def test_active_attachments_are_never_published_and_each_is_a_warning(built: Built) -> None:
    files = built.files
    published = {name.removeprefix("_attachments/") for name in files if name.startswith("_attachments/")}
    assert published.isdisjoint(ACTIVE_ATTACHMENTS)
    assert set(PASSIVE_ATTACHMENTS) <= published
    assert not [name for name in published if name.endswith((".html", ".js", ".css", ".xml", ".xhtml"))]
    page = files["attachments.html"].decode()
    assert page.count('class="internal-link is-unpublished"') >= len(ACTIVE_ATTACHMENTS)
    assert '<img src="_attachments/files/drawing.svg"' in page  # a drawing is shown through <img>
    stderr, vault = built.stderr, built.vault
    for name in ACTIVE_ATTACHMENTS:
        assert f"warning: {vault}/attachments.md:" in stderr and f"[[{name}]]" in stderr, name
    assert (
        "not published: an SVG with an onload attribute could run script in the site's origin: [[files/evil.svg]]"
        in stderr
    )
    assert "a .html file could run script or restyle pages in the site's origin" in stderr


@pytest.mark.parametrize(
    ("inner", "why"),
    [
        ("<script>alert(1)</script>", "a <script> element"),
        ('<g onclick="alert(1)"/>', "an onclick attribute"),
        ('<a x:href="javascript:alert(1)">x</a>', "a <a> element"),
        ('<use x:href="other.svg#a"/>', "a link to another file"),
        ('<use href="data:image/svg+xml,..."/>', "a link to another file"),
        ('<foreignObject><p xmlns="http://www.w3.org/1999/xhtml">x</p></foreignObject>', "a <foreignObject>"),
        ('<set attributeName="href" to="javascript:alert(1)"/>', "a <set> element"),
        ('<h:iframe xmlns:h="http://www.w3.org/1999/xhtml"/>', "a <iframe> element"),
        ('<rect style="fill:url(javascript:alert(1))"/>', "a script URL"),
    ],
)
def test_an_svg_with_anything_but_drawing_is_active(inner: str, why: str) -> None:
    assert (inert_svg(SVG.format(inner).encode()) or "").startswith(why)


def test_drawings_and_editor_metadata_are_inert_but_doctypes_and_stylesheets_are_not() -> None:
    drawing = SVG.format(
        '<i:meta xmlns:i="http://www.inkscape.org/namespaces/inkscape" i:label="x"/>'
        '<defs><linearGradient id="g"><stop offset="0"/></linearGradient></defs>'
        '<use x:href="#g"/><rect fill="url(#g)" width="4" height="4"/><text>hi</text>'
    )
    assert inert_svg(drawing.encode()) is None
    assert inert_svg(b'<!DOCTYPE svg [<!ENTITY a "b">]>' + SVG.format("").encode()) == "a doctype"
    assert (
        inert_svg(b'<?xml-stylesheet href="x.xsl"?>' + SVG.format("").encode()) == "a processing instruction"
    )
    assert inert_svg(b"<svg>") is not None and inert_svg(b"<html/>") is not None
    assert withheld("a.svg", lambda name: drawing.encode()) is None
    assert withheld("a.xyz", lambda name: b"") is not None and withheld("a.pdf", lambda name: b"") is None


def test_render_writes_no_data_url_but_raster_images(tmp_path: Path) -> None:
    root = write_vault(
        tmp_path / "v",
        {"n.md": "![[p.png]] ![[d.svg]] [[e.html]] ![[e.html]] ![[a.mp3]] [x](e.html) ![y](d.svg)\n"},
    )
    (root / "p.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (root / "d.svg").write_text(SVG.format("<circle r='1'/>"))
    (root / "e.html").write_bytes(ACTIVE_ATTACHMENTS["files/evil.html"])
    (root / "a.mp3").write_bytes(b"ID3")
    html, page = render_single(root, results_for(root)[0], BuildOptions(offline=True))
    assert re.findall(r"(?:src|href|data)=\"data:([^;,\"]*)", html) == ["image/png"]
    assert html.count("data:") == 2  # that image, and img-src in the policy
    assert "img-src 'self' data:; media-src 'self';" in unescape(html)
    assert sorted(item.target for item in page.withheld) == sorted(
        ["![[d.svg]]", "[[e.html]]", "![[e.html]]", "![[a.mp3]]", "e.html", "d.svg"]
    )


def test_the_render_command_warns_about_what_it_did_not_inline(tmp_path: Path) -> None:
    root = write_vault(tmp_path / "v", {"n.md": "# N\n\n[[e.html]]\n"})
    (root / "e.html").write_bytes(b"<script>x</script>")
    result = noteexec("render", root / "n.md", "-o", tmp_path / "n.html", "--no-run")
    assert result.returncode == 0, result.stderr
    assert (
        f"noteexec: warning: {root}/n.md:3: only raster images are inlined in a single page: [[e.html]]"
        in (result.stderr)
    )
    assert "data:text" not in (tmp_path / "n.html").read_text()


# ------------------------------------------------------------------ custom CSS


def test_no_css_from_the_vault_unless_asked(tmp_path: Path) -> None:
    root = write_vault(tmp_path / "v", {"a.md": "> [!tip] x\n> y\n", "publish.css": "body{display:none}"})
    snippets = root / ".obsidian" / "snippets"
    snippets.mkdir(parents=True)
    (snippets / "s.css").write_text("body { display: none }\n")
    (root / ".obsidian" / "appearance.json").write_text('{"enabledCssSnippets": ["s"]}')
    result = noteexec("build", root, "-o", tmp_path / "site", "--no-run")
    assert result.returncode == 0, result.stderr
    page = (tmp_path / "site" / "a.html").read_text()
    assert re.findall(r'<link rel="stylesheet" href="([^"]+)"', page) == ["_assets/site.css"]
    assert not (tmp_path / "site" / "_assets" / "custom.css").exists()
    assert not [path for path in (tmp_path / "site").rglob("*.css") if path.name != "site.css"]


def test_publish_css_only_from_a_trusted_configuration_or_the_command_line(tmp_path: Path) -> None:
    root = write_vault(tmp_path / "v", {"a.md": "# A\n", "publish.css": ".callout { color: red }\n"})
    (root / "noteexec.toml").write_text("publish_css = true\n")
    refused = noteexec("build", root, "-o", tmp_path / "site", "--no-run")
    assert refused.returncode == 2
    assert f"{root}/noteexec.toml:1: 'publish_css' may not be loosened" in refused.stderr
    (root / "noteexec.toml").unlink()
    (tmp_path / "noteexec.toml").write_text("publish_css = true\n")  # above the vault: trusted
    trusted = noteexec("build", root, "-o", tmp_path / "site", "--no-run")
    assert trusted.returncode == 0, trusted.stderr
    css = (tmp_path / "site" / "_assets" / "custom.css").read_text()
    assert css == f"{SCOPE} {{\n:scope .callout {{ color: red }}\n}}\n"
    assert '<link rel="stylesheet" href="_assets/custom.css">' in (tmp_path / "site" / "a.html").read_text()
    (tmp_path / "noteexec.toml").unlink()
    flag = noteexec("build", root, "-o", tmp_path / "site2", "--no-run", "--publish-css")
    assert flag.returncode == 0 and (tmp_path / "site2" / "_assets" / "custom.css").is_file()


def test_css_option_is_confined_and_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    root = write_vault(tmp_path / "v", {"a.md": "# A\n"})
    css = tmp_path / "mine.css"
    css.write_text("@import url(x.css);\n.callout { color: red }\n} .note-header { display: none }\n")
    result = noteexec("build", root, "-o", tmp_path / "site", "--no-run", "--css", css)
    assert result.returncode == 0, result.stderr
    assert f"warning: {css}:1: dropped @import" in result.stderr
    assert f"warning: {css}:3: dropped a rule whose selector does not parse" in result.stderr
    missing = noteexec("build", root, "-o", tmp_path / "site", "--no-run", "--css", tmp_path / "nope.css")
    assert missing.returncode == 2 and "--css" in missing.stderr and "Traceback" not in missing.stderr
    (tmp_path / "bad.css").write_bytes(b"p { color: red }\n.x { content: '\xff' }\n")
    bad = noteexec("build", root, "-o", tmp_path / "site", "--no-run", "--css", tmp_path / "bad.css")
    assert (
        bad.returncode == 2
        and bad.stderr == f"noteexec: error: {tmp_path}/bad.css:2: not UTF-8 text (invalid start byte)\n"
    )
    html = tmp_path / "a.html"
    single = noteexec("render", root / "a.md", "-o", html, "--no-run", "--css", css)
    assert single.returncode == 0 and f"<style>{SCOPE}" in html.read_text()


@pytest.mark.parametrize(
    "css",
    [
        "} body { display: none }",
        "a { color: red } } .note-header { display: none } a {",
        '.x { content: "}" } .note-status { color: green }',
        "@media all { } } body { display: none }",
        "@scope (html) { .note-status { color: green } }",
        "a { color: red; } /* } */ body { display:none }",
        ".x { content: '</style><script>window.__pwned=1</script>' }",
    ],
)
def test_custom_css_cannot_leave_its_scope(css: str) -> None:
    confined = confine(css, "x.css").css
    if confined:
        assert confined.startswith(SCOPE + " {\n") and confined.endswith("\n}\n")
        inner = confined[len(SCOPE) + 3 : -3]
        depth = 0
        for char in re.sub(r'"[^"]*"|\'[^\']*\'', "", inner):
            depth += {"{": 1, "}": -1}.get(char, 0)
            assert depth >= 0, confined
        assert depth == 0
        rules = re.findall(r"^([^@\s{][^{]*)\{", inner, re.MULTILINE)
        assert all(part.strip().startswith(":scope ") for rule in rules for part in rule.split(",")), confined


@pytest.mark.parametrize(
    "selector",
    [
        ".nx-failed",
        ".callout:has(.nx-failed)",
        '[data-outcome="failed"] ~ p',
        ".n\\x-passed",
        "p:is(.NX-badge)",
    ],
)
def test_custom_css_cannot_tell_a_failed_block_from_a_passed_one(selector: str) -> None:
    confined = confine(f"{selector} {{ display: none }}\n.callout {{ color: red }}\n", "x.css")
    assert confined.css == f"{SCOPE} {{\n:scope .callout {{ color: red }}\n}}\n"
    assert confined.warnings == ("x.css:1: dropped a rule that could tell verdicts apart",)


def test_a_single_page_keeps_custom_css_inside_its_style_element(tmp_path: Path) -> None:
    root = write_vault(tmp_path / "v", {"a.md": "# A\n"})
    css = tmp_path / "c.css"
    css.write_text(".x::after { content: '</style><script>window.__pwned=1</script>' }\n")
    html, _ = render_single(root, results_for(root)[0], BuildOptions(offline=True, css=(css,)))
    assert "</style><script>window.__pwned" not in html and "<\\/style>" in html


# ------------------------------------------------------------------ private notes


def test_private_notes_appear_nowhere_in_the_site(built: Built) -> None:
    files = built.files
    text = b"\n".join(files.values())
    assert b"PRIVATE-TEXT" not in text
    for name in [*PRIVATE_NOTES, "excluded/gone.md"]:
        assert name[:-3] + ".html" not in files
        assert name.encode() not in text, name
    assert b"Secret note" not in text and b"Draft note" not in text and b"secret-tag" not in text
    assert not [name for name in files if "secret" in name or "draft" in name or "excluded" in name]
    assert b"VAULT-FILE private" not in text and b"VAULT-FILE excluded" not in text  # their attachments
    assert "excluded by the configuration: ![[excluded/photo.png]]" in built.stderr
    index = json.loads(files["search-index.js"].decode()[len("window.NOTEEXEC_INDEX = ") : -2])
    assert {"secret.md", "drafts/draft.md"}.isdisjoint(page["p"] for page in index["pages"])
    page = files["attachments.html"].decode()
    for label in ("secret", "by alias", "md", "draft", "gone"):
        assert 'class="internal-link is-unpublished"' in page and f">{label}<" in page, label
    assert page.count('class="internal-embed is-unpublished"') >= 3
    assert (
        b"Links to this page" in files["attachments.html"]
        and b"secret"
        not in files["attachments.html"][files["attachments.html"].index(b"Links to this page") :]
    )
    assert _broken_links(built) == ["[[.noteexec-site]]"]  # and not one to a private note


@pytest.mark.parametrize(
    ("frontmatter", "private"),
    [
        ({"publish": False}, True),
        ({"publish": "no"}, True),
        ({"draft": True}, True),
        ({"draft": "yes"}, True),
        ({"publish": True, "draft": False}, False),
        ({"publish": "maybe", "draft": None}, False),
        ({}, False),
    ],
)
def test_which_notes_are_private(frontmatter: dict[str, object], private: bool) -> None:
    assert is_private(Note(path=Path("n.md"), utf8=b"", frontmatter=frontmatter)) is private


def test_check_still_checks_private_notes(tmp_path: Path) -> None:
    root = write_vault(tmp_path / "v", {"a.md": "# A\n", **PRIVATE_NOTES})
    result = noteexec("check", root, "--format", "json", "--cache-dir", tmp_path / "cache")
    assert result.returncode == 0, result.stderr
    checked = {Path(note["path"]).relative_to(root).as_posix() for note in json.loads(result.stdout)["notes"]}
    assert checked == {"a.md", *PRIVATE_NOTES}
