"""A hostile vault's site, checked by parsing its HTML: no note can add script, a frame, a plugin,
a form, a refresh, a style sheet or a dangerous URL; every page carries a strict
Content-Security-Policy. The same vault runs in a real browser in ``tests/browser/test_security.py``.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
from pathlib import Path

import pytest

from noteexec.site.assets import site_css, site_js, theme_js
from noteexec.site.build import DEFAULT_MERMAID_URL, BuildOptions, SiteFiles
from noteexec.site.markdown import render_markdown
from noteexec.site.markdown.context import PageContext
from noteexec.site.sanitize import math_html
from noteexec.site.single import render_single
from noteexec.site.write import BuildError
from tests.site.helpers import results_for
from tests.site.hostile import (
    PAYLOAD_FILE_NAME,
    PAYLOADS,
    html_problems,
    note_name,
    page_csp,
    parse_csp,
    render_hostile_site,
    site_pages,
    write_hostile_vault,
)


@pytest.fixture(scope="module")
def vault(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_hostile_vault(tmp_path_factory.mktemp("hostile") / "vault")


@pytest.fixture(scope="module")
def site(vault: Path, tmp_path_factory: pytest.TempPathFactory) -> SiteFiles:
    """The hostile vault's site, with Mermaid diagrams on (a local mermaid.js) and checked facts."""
    mermaid = tmp_path_factory.mktemp("mermaid") / "mermaid.min.js"
    mermaid.write_text("window.mermaid = {};\n")
    return render_hostile_site(vault, BuildOptions(mermaid_url=str(mermaid)))


def text(site: SiteFiles, name: str) -> str:
    data = site.files[name]
    assert isinstance(data, bytes)
    return data.decode()


def test_the_hostile_site_has_every_kind_of_page(site: SiteFiles) -> None:
    pages = site_pages(site.files)
    assert "index.html" in pages and "checked.html" in pages
    assert all(note_name(kind)[:-3] + ".html" in pages for kind in PAYLOADS)
    assert PAYLOAD_FILE_NAME[:-3] + ".html" in pages
    assert sum(page.startswith("tags/") for page in pages) > len(PAYLOADS)  # a tag page per payload


@pytest.mark.parametrize("kind", PAYLOADS)
def test_a_payload_in_every_location_adds_nothing_that_runs(site: SiteFiles, kind: str) -> None:
    """The note page and the tag page of one payload kind: nothing outside the site's allowlist."""
    payload = PAYLOADS[kind]
    page = note_name(kind)[:-3] + ".html"
    tag_page = site.tags[payload.casefold()]
    for name in (page, tag_page):
        assert html_problems(text(site, name), name) == [], name


def test_no_page_of_the_hostile_site_adds_anything_that_runs(site: SiteFiles) -> None:
    problems = {name: html_problems(text(site, name), name) for name in site_pages(site.files)}
    assert {name: found for name, found in problems.items() if found} == {}


def test_the_payloads_reached_the_places_that_show_them_as_text(site: SiteFiles) -> None:
    """The checks above are not vacuous: each payload is on its page, escaped, where text goes."""
    for kind, payload in PAYLOADS.items():
        page = text(site, note_name(kind)[:-3] + ".html")
        shown = html.escape(payload)
        assert f'<h1 class="page-title">{shown}</h1>' in page  # frontmatter title
        assert f"<title>{shown} · " in page
        assert f'">#{shown}</a>' in page  # frontmatter tag
        assert f"also: {shown}" in page  # aliases
        assert f'<time class="note-date" datetime="{shown}">' in page  # date
        assert f"<th>author</th><td>{shown}</td>" in page  # other properties
        assert f'<html lang="{shown}">' in page
        assert f'href="../other.html">{shown}</a>' in page  # wikilink alias
        if not kind.startswith(("md-", "math-")):  # alt is the text of Markdown: links lose their URL
            assert f'alt="{shown}"' in page  # image alt text
        assert "Callout title" in page and "Heading" in page
    checked = text(site, "checked.html")
    for payload in PAYLOADS.values():
        shown = html.escape(payload)
        for where in (
            '<pre class="nx-stdout">',
            '<pre class="nx-stderr">',
            '"nx-exc-type">ValueError',
            "nx-diff",
        ):
            section = checked[checked.index(where) :]
            assert shown in section[: section.index("</pre>")], (where, payload)
    assert html.escape(PAYLOADS["script"]) in checked[checked.index("nx-warning") :]
    index = text(site, "index.html")
    assert html.escape(PAYLOAD_FILE_NAME[:-3]) in index  # a file name that is a payload


def test_the_search_index_is_data_not_code(site: SiteFiles) -> None:
    script = text(site, "search-index.js")
    prefix, suffix = "window.NOTEEXEC_INDEX = ", ";\n"
    assert script.startswith(prefix) and script.endswith(suffix)
    index = json.loads(script[len(prefix) : -len(suffix)])  # one JSON literal: nothing executes
    titles = {page["t"] for page in index["pages"]}
    assert set(PAYLOADS.values()) <= titles


@pytest.mark.parametrize("kind", ["script", "img-onerror", "iframe-srcdoc", "style-body", "math-text"])
def test_a_rendered_single_page_adds_nothing_that_runs(vault: Path, kind: str) -> None:
    """``noteexec render``: inline scripts and CSS are the site's own, allowed by CSP hash."""
    result = next(r for r in results_for(vault) if r.note.path.name == f"{kind}.md")
    page, _ = render_single(vault, result, BuildOptions(offline=True))
    problems = html_problems(
        page,
        "page.html",
        scripts=(),
        inline_scripts=(theme_js(), site_js()),
        inline_styles=(site_css(),),
    )
    assert problems == []


# -------------------------------------------------------------------------------- the CSP


def csp_of(site: SiteFiles, name: str = "index.html") -> dict[str, list[str]]:
    policy = page_csp(text(site, name))
    assert policy is not None, name
    return parse_csp(policy)


def assert_strict(csp: dict[str, list[str]]) -> None:
    """No eval, no wildcard, no scheme-wide source (but ``data:`` and ``https:`` images, ``data:``
    media), nothing framed or posted."""
    for directive, sources in csp.items():
        assert "'unsafe-eval'" not in sources, directive
        assert "'strict-dynamic'" not in sources, directive
        for source in sources:
            assert "*" not in source, (directive, source)
            if re.fullmatch(r"[a-z][a-z0-9+.-]*:", source):  # a whole scheme
                allowed = ("data:", "https:") if directive == "img-src" else ("data:",)
                assert source in allowed and directive in ("img-src", "media-src"), (directive, source)
    assert csp["default-src"] == ["'self'"]
    assert "'unsafe-inline'" not in csp["script-src"]
    for directive in ("object-src", "frame-src", "base-uri", "form-action"):
        assert csp[directive] == ["'none'"], directive


def test_every_page_has_one_strict_csp_naming_only_the_site_and_the_mermaid_url(
    vault: Path,
) -> None:
    site = render_hostile_site(vault, BuildOptions())
    for name in site_pages(site.files):
        csp = csp_of(site, name)
        assert_strict(csp)
        assert csp["script-src"] == ["'self'", DEFAULT_MERMAID_URL], name
        remote = [source for sources in csp.values() for source in sources if "://" in source]
        assert remote == [DEFAULT_MERMAID_URL], name  # no other origin, in any directive
        assert html_problems(text(site, name), name, external_scripts=[DEFAULT_MERMAID_URL]) == []


def test_offline_sites_name_no_origin_at_all(vault: Path) -> None:
    site = render_hostile_site(vault, BuildOptions(offline=True))
    for name in site_pages(site.files):
        policy = page_csp(text(site, name)) or ""
        assert "http" not in policy and "://" not in policy, name
        csp = parse_csp(policy)
        assert_strict(csp)
        assert csp["script-src"] == ["'self'"]


def test_a_local_mermaid_file_is_a_site_file_under_self(site: SiteFiles) -> None:
    csp = csp_of(site)
    assert_strict(csp)
    assert csp["script-src"] == ["'self'"]
    assert "_assets/mermaid.min.js" in site.files
    assert text(site, "diagrams.html").count('<pre class="mermaid">') == 2 * len(PAYLOADS)
    assert "mermaid.min.js" not in text(site, "index.html")  # pages without diagrams do not load it


def test_a_single_page_allows_exactly_its_own_inline_scripts(vault: Path) -> None:
    result = next(r for r in results_for(vault) if r.note.path.name == "checked.md")
    for options, extra in ((BuildOptions(offline=True), []), (BuildOptions(), [DEFAULT_MERMAID_URL])):
        page, _ = render_single(vault, result, options)
        csp = parse_csp(page_csp(page) or "")
        assert_strict(csp)
        hashes = [
            f"'sha256-{base64.b64encode(hashlib.sha256(code.encode()).digest()).decode()}'"
            for code in (theme_js(), site_js())
        ]
        assert csp["script-src"] == hashes + extra


@pytest.mark.parametrize(
    "url",
    [
        "https://cdn.example.org/mermaid.js;script-src *",
        "https://cdn.example.org/mermaid.js' 'unsafe-eval",
        "https://cdn.example.org/a b/mermaid.js, default-src *",
    ],
)
def test_a_mermaid_url_cannot_add_sources_or_directives(vault: Path, url: str) -> None:
    site = render_hostile_site(vault, BuildOptions(mermaid_url=url))
    csp = csp_of(site)
    assert_strict(csp)
    assert len(csp["script-src"]) == 2 and csp["script-src"][1].startswith("https://cdn.example.org/")
    assert set(csp) == set(csp_of(render_hostile_site(vault, BuildOptions(offline=True))))


@pytest.mark.parametrize(
    "url", ["ftp://example.org/mermaid.js", "https://user@example.org/m.js", "javascript:alert(1)"]
)
def test_a_mermaid_url_that_no_policy_can_name_is_refused(vault: Path, url: str) -> None:
    with pytest.raises(BuildError, match="--mermaid-url"):
        render_hostile_site(vault, BuildOptions(mermaid_url=url))


# -------------------------------------------------------------------------------- single renderers


@pytest.mark.parametrize(
    "latex",
    [
        r"\text{<img/src=x/onerror=alert(1)>}",
        r"\text{<script>alert(1)</script>}",
        r"\mbox{<iframe srcdoc=x>}",
        r"\href{javascript:alert(1)}{x}",
        r"\style{position:fixed;inset:0}{x}",
        r"\class{skip-link}{x}",
    ],
)
def test_math_cannot_carry_markup_links_or_styles(latex: str) -> None:
    for display in (False, True):
        mathml = math_html(latex, display)
        assert not re.search(r"<(script|img|iframe)", mathml), mathml
        assert not re.search(r"\s(href|style|class|on\w+)=", mathml), mathml


def test_math_output_is_unchanged_for_ordinary_formulas() -> None:
    mathml = math_html(r"\frac{\partial L}{\partial w} = 2x \cdot (wx - y) < \infty", False)
    assert "<mfrac>" in mathml and "&#x0003C;" in mathml and "&amp;" not in mathml


@pytest.mark.parametrize(
    "source",
    [
        "[x](data:image/png;base64,iVBORw0KGgo=)",
        "[x](javascript:alert(1))",
        "[x](vbscript:alert(1))",
        "[x](data:text/html,<script>alert(1)</script>)",
        "[x](<java\tscript:alert(1)>)",
        "[x](&#106;avascript:alert(1))",
    ],
)
def test_markdown_links_never_get_a_script_or_data_url(source: str) -> None:
    rendered = render_markdown(source + "\n")
    hrefs = re.findall(r'href="([^"]*)"', rendered)
    assert not [h for h in hrefs if re.match(r"(javascript|vbscript|data):", re.sub(r"\s", "", h), re.I)]


def test_remote_images_are_shown_unless_turned_off(vault: Path) -> None:
    shown = render_markdown("![a diagram](https://example.org/d.png)\n", PageContext(remote_images=True))
    assert (
        '<img alt="a diagram" src="https://example.org/d.png" loading="lazy" referrerpolicy="no-referrer">'
        in (shown)
    )
    insecure = render_markdown("![x](http://example.org/d.png)\n", PageContext(remote_images=True))
    assert "<img" not in insecure  # http: would be mixed content: a link
    for options, allowed in (
        (BuildOptions(), True),
        (BuildOptions(remote_images=False), False),
        (BuildOptions(offline=True), False),
    ):
        site = render_hostile_site(vault, options)
        for name in site_pages(site.files):
            assert ("https:" in csp_of(site, name)["img-src"]) is allowed, (options, name)
            assert '<meta name="referrer" content="no-referrer">' in text(site, name)


def test_remote_images_turned_off_become_links_so_pages_load_nothing_from_elsewhere() -> None:
    rendered = render_markdown("![a diagram](https://example.org/d.png) ![](//example.org/e.png)\n")
    assert "<img" not in rendered
    assert '<a href="https://example.org/d.png" class="external-link external-image"' in rendered
    assert ">a diagram</a>" in rendered and ">//example.org/e.png</a>" in rendered
    inline = render_markdown("![dot](data:image/png;base64,iVBORw0KGgo=)\n")
    assert '<img alt="dot" src="data:image/png;base64,iVBORw0KGgo="' in inline


def test_raw_html_too_deep_to_clean_is_shown_as_text() -> None:
    from noteexec.site.sanitize import MAX_SANITIZED_TAGS, sanitize_html

    depth = MAX_SANITIZED_TAGS + 1
    fragment = "<div>" * depth + "<script>window.__pwned=1</script>" + "</div>" * depth
    cleaned = sanitize_html(fragment)
    assert "<div>" not in cleaned
    assert "<script" not in cleaned
    assert "&lt;script&gt;" in cleaned
    assert sanitize_html("<div><b>ok</b></div>") == "<div><b>ok</b></div>"


def test_the_sanitize_module_strips_scripts_event_handlers_and_script_urls() -> None:
    from noteexec.site.sanitize import sanitize_html, sanitize_in_note, unsafe_url

    hostile = (
        '<p onclick="x()">a<script>alert(1)</script><img src=x onerror=alert(1)>'
        '<a href="javascript:alert(1)">b</a><iframe srcdoc="x"></iframe><style>*{}</style></p>'
    )
    assert sanitize_html(hostile) == '<p>a<img src="x"><a rel="noopener noreferrer">b</a></p>'
    sites = {"note.md": "note.html", "pic.png": "javascript:alert(1)", "ok.png": "data:image/png;base64,AA=="}
    resolved = sanitize_in_note(
        '<a href="note.md">n</a><a href="gone.md">g</a><img src="pic.png" alt="p"><img src="ok.png">',
        lambda href, kind: sites.get(href),
    )
    assert resolved == (
        '<a href="note.html" rel="noopener noreferrer">n</a><a rel="noopener noreferrer">g</a>'
        '<img alt="p"><img src="data:image/png;base64,AA==">'
    )  # withheld or unknown: no URL; a script URL from the linker: none either; data: images only
    assert unsafe_url(" JaVa\tscript:alert(1)") and unsafe_url("data:text/html,x")
    assert not unsafe_url("https://example.org/") and not unsafe_url("note.html")
