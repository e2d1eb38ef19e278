"""The site as a reader meets it (issue 16): raw HTML images, a phone, no JavaScript, offline.

One small vault, built without running anything (facts written by hand), opened in Chromium at
390×844 and 1280×900, light and dark, with JavaScript on and off.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from noteexec.facts import BlockFacts, Graph, Raised
from noteexec.model import CANONICAL_CALLOUT
from noteexec.site.build import BuildOptions, build_site
from tests.browser.conftest import file_url
from tests.site.helpers import results_for, write_vault

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}


def png(width: int, height: int) -> bytes:
    """A real PNG (grey pixels), so the browser decodes it and reports its size."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


CALLOUT_KINDS = sorted(set(CANONICAL_CALLOUT.values()))
NOTES = {
    "media/raw-html.md": """
        # Raw HTML

        <img id="raw-image" src="../img/pixel.png" alt="a pixel">

        <p><img id="inline-image" src="pixel.png"> inline</p>
        """,
    "Fails.md": """
        Some prose a reader came for.

        ```python
        x = 1
        # RuntimeError: boom
        x.backward()
        ```

        > [!faq]- A folded question
        > The hidden answer.
        """,
    "diagrams.md": """
        # Mermaid

        ```mermaid
        graph LR
          A[hand coloured] --> B[theme coloured]
          style A fill:#ffb8b8,stroke:#333
        ```

        <div id="NOTEEXEC_INDEX">not the index</div>
        """,
    "Passes.md": """
        ---
        tags: [ok]
        ---
        ```python
        x = 1
        ```

        %% noteexec: skip %%
        ```python
        y = 2
        ```

        > [!list] A callout type Obsidian does not know
        > Styled as a note.
        """,
    "syntax.md": """
        The loss is
        $$
        \\left( \\frac{\\partial L}{\\partial w} \\right) + (x)
        $$
        and so on.

        <p id="quotes">“Quoted” — and ‘single’ quotes</p>

        - [-] dropped
        - [/] half done
        """,
    "remote.md": "![a remote cat](https://images.example.org/cat.png)\n\n"
    "![A talk](https://www.youtube.com/watch?v=Ilg3gGewQ5U)\n",
    "callouts.md": "".join(f"> [!{kind}] The {kind} callout\n> Its text.\n\n" for kind in CALLOUT_KINDS),
    **{f"topic-{n // 10}/note-{n:02}.md": f"Note number {n}.\n" for n in range(60)},
}
FAILS_FACTS = {
    "Fails.md": [BlockFacts(state="ran", exception=Raised("AttributeError", ("AttributeError",), "no", 3))],
    "Passes.md": [
        BlockFacts(
            state="ran",
            graphs=(
                Graph(nodes=(("n0", "SumBackward0"), ("n1", "AccumulateGrad (x)")), edges=(("n0", "n1"),)),
            ),
        )
    ],
}


def build(base: Path, **options: Any) -> Path:
    vault = write_vault(base / "vault", NOTES)
    (vault / "img").mkdir(exist_ok=True)
    (vault / "img" / "pixel.png").write_bytes(png(7, 5))
    out = base / "site"
    build_site(vault, results_for(vault, FAILS_FACTS), out, BuildOptions(**options))
    return out


@pytest.fixture(scope="module")
def reader_site(tmp_path_factory: pytest.TempPathFactory, mermaid_js: Path) -> Path:
    """Mermaid copied into the site from the npm package (as ``--mermaid-url FILE`` does)."""
    return build(tmp_path_factory.mktemp("reading"), mermaid_url=str(mermaid_js))


@pytest.fixture(scope="module")
def cdn_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default: Mermaid from the CDN (blocked in these tests: no network)."""
    return build(tmp_path_factory.mktemp("reading-cdn"))


@pytest.fixture(scope="module")
def offline_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory.mktemp("reading-offline"), offline=True)


def new_tab(browser: Any, viewport: dict[str, int] = DESKTOP, **options: Any) -> Any:
    """A tab in a fresh context that records errors and every request that is not a file."""
    context = browser.new_context(viewport=viewport, **options)
    page = context.new_page()
    page.errors = []
    page.remote = []
    page.on("console", lambda message: page.errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: page.errors.append(str(error)))

    def no_network(route: Any) -> None:
        page.remote.append(route.request.url)
        route.abort()

    context.route(lambda url: not url.startswith("file:"), no_network)
    return page


@pytest.fixture
def tab(browser: Any) -> Iterator[Any]:
    page = new_tab(browser)
    yield page
    page.context.close()


def test_raw_html_images_of_vault_files_load(tab: Any, reader_site: Path) -> None:
    tab.goto(file_url(reader_site, "media/raw-html.html"))
    tab.wait_for_load_state("load")
    sizes = tab.evaluate(
        """() => ['raw-image', 'inline-image'].map(id => {
            const image = document.getElementById(id);
            return [image.complete, image.naturalWidth, image.naturalHeight];
        })"""
    )
    assert sizes == [[True, 7, 5], [True, 7, 5]]
    assert tab.errors == []


def _hit(page: Any, selector: str) -> bool:
    """Whether a tap at the middle of the element lands on it (nothing covers it)."""
    return page.evaluate(
        """selector => {
            const node = document.querySelector(selector);
            const box = node.getBoundingClientRect();
            const hit = document.elementFromPoint(box.x + box.width / 2, box.y + box.height / 2);
            return node.contains(hit);
        }""",
        selector,
    )


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_phone_menu_opens_scrolls_and_closes_every_way(
    browser: Any, reader_site: Path, scheme: str
) -> None:
    tab = new_tab(browser, PHONE, is_mobile=True, has_touch=True, color_scheme=scheme)
    tab.goto(file_url(reader_site, "Fails.html"))
    menu, drawer = tab.locator(".menu-toggle"), tab.locator(".sidebar-left")
    assert menu.get_attribute("aria-expanded") == "false" and not drawer.is_visible()

    def open_menu() -> None:
        menu.tap()
        tab.wait_for_timeout(250)  # the slide-in transition
        assert menu.get_attribute("aria-expanded") == "true" and drawer.is_visible()
        assert _hit(tab, ".menu-toggle")  # the open drawer never covers its own button

    open_menu()
    tab.keyboard.press("Escape")
    assert menu.get_attribute("aria-expanded") == "false"
    tab.wait_for_timeout(250)
    assert not drawer.is_visible()
    open_menu()
    tab.touchscreen.tap(370, 500)  # outside the drawer (300 px wide)
    assert menu.get_attribute("aria-expanded") == "false"
    open_menu()
    menu.tap()
    assert menu.get_attribute("aria-expanded") == "false"
    open_menu()
    # Every note is reachable: the drawer scrolls on its own, down to the last one.
    assert tab.evaluate(
        "() => { const d = document.querySelector('.sidebar-left'); return d.scrollHeight > d.clientHeight; }"
    )
    last = tab.locator(".nav-file a").last
    last.scroll_into_view_if_needed()
    assert _hit(tab, ".nav-folder:last-child li:last-child a")
    last.tap()
    tab.wait_for_url("**/topic-5/note-59.html")
    assert tab.errors == [] and tab.remote == []
    tab.context.close()


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_without_javascript_the_note_list_callouts_and_verdicts_work(
    browser: Any, reader_site: Path, viewport: dict[str, int], scheme: str
) -> None:
    tab = new_tab(browser, viewport, java_script_enabled=False, color_scheme=scheme)
    tab.goto(file_url(reader_site, "Fails.html"))
    background = tab.evaluate("() => getComputedStyle(document.body).backgroundColor")
    assert background == ("rgb(30, 30, 30)" if scheme == "dark" else "rgb(255, 255, 255)")
    links = tab.locator(".nav-file a")
    assert links.count() == len(NOTES)
    for control in (".menu-toggle", ".search-input", ".theme-toggle"):  # they need the script
        assert not tab.locator(control).is_visible(), control
    links.last.scroll_into_view_if_needed()
    assert links.last.is_visible() and _hit(tab, ".nav-folder:last-child li:last-child a")
    assert tab.locator('.nav-file a[aria-current="page"]').inner_text() == "Fails"
    answer = tab.get_by_text("The hidden answer.")
    assert not answer.is_visible()
    tab.locator('.callout[data-callout="faq"] > summary').click()
    assert answer.is_visible()
    details = tab.locator(".nx-failed .nx-details")
    assert tab.locator(".nx-failed .nx-badge").is_visible() and not details.is_visible()
    tab.locator(".nx-failed summary").click()
    assert details.is_visible()
    links.last.click()
    tab.wait_for_url("**/topic-5/note-59.html")
    tab.context.close()


def test_verdicts_start_closed_and_a_failure_link_opens_its_panel(tab: Any, reader_site: Path) -> None:
    tab.goto(file_url(reader_site, "Fails.html"))
    assert tab.get_by_text("Some prose a reader came for.").is_visible()
    assert tab.locator(".nx-failed .nx-badge").is_visible()
    details = tab.locator(".nx-failed .nx-details")
    assert not details.is_visible()
    tab.locator(".note-failures a").click()
    assert details.is_visible()
    assert tab.errors == []


def test_a_heading_named_mermaid_breaks_nothing(browser: Any, reader_site: Path, cdn_site: Path) -> None:
    """``# Mermaid`` gets ``id="mermaid"``, which is ``window.mermaid`` until a script defines it."""
    tab = new_tab(browser)
    tab.goto(file_url(reader_site, "diagrams.html"))
    assert tab.locator("h1#mermaid, #mermaid").count() == 1
    tab.locator("pre.mermaid svg").wait_for(timeout=15_000)
    assert tab.errors == [] and tab.remote == []
    blocked = new_tab(browser)
    blocked.goto(file_url(cdn_site, "diagrams.html"))  # the CDN cannot be reached
    blocked.wait_for_load_state("load")
    blocked.locator(".theme-toggle").click()  # redraws diagrams: must not throw either
    blocked.wait_for_timeout(200)
    assert [error for error in blocked.errors if "net::" not in error] == []
    assert any("cdn.jsdelivr.net" in url for url in blocked.remote)
    tab.context.close()
    blocked.context.close()


def test_search_loads_its_index_on_first_use_from_file_urls(tab: Any, reader_site: Path) -> None:
    loaded: list[str] = []
    tab.on("request", lambda request: loaded.append(request.url))
    tab.goto(file_url(reader_site, "diagrams.html"))
    tab.wait_for_load_state("load")
    assert not [url for url in loaded if url.endswith("search-index.js")]
    tab.locator(".search-input").fill("number 42")
    tab.locator(".search-result").first.wait_for()
    assert tab.locator(".search-result-title").first.inner_text() == "note-42"
    assert [url for url in loaded if url.endswith("search-index.js")] != []
    assert tab.errors == []


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_an_offline_site_asks_the_network_for_nothing(
    browser: Any, offline_site: Path, viewport: dict[str, int], scheme: str
) -> None:
    tab = new_tab(browser, viewport, color_scheme=scheme)
    for name in ("index.html", "Fails.html", "media/raw-html.html", "remote.html", "diagrams.html"):
        tab.goto(file_url(offline_site, name))
        tab.wait_for_load_state("load")
        if name == "remote.html":  # --offline: a remote image is a link, and is not fetched
            assert tab.locator("a.external-image").all_inner_texts() == ["a remote cat", "A talk"]
            assert tab.locator("main img").count() == 0
    assert "graph LR" in tab.locator(".mermaid-source").inner_text()  # no Mermaid: its source
    tab.goto(file_url(offline_site, "Passes.html"))
    graph = tab.locator("svg.nx-graph-svg")  # the measured graph needs neither Mermaid nor a network
    assert graph.is_visible() and "AccumulateGrad (x)" in (graph.text_content() or "")
    text_fill, box_fill = tab.evaluate(
        """() => [getComputedStyle(document.querySelector('.nx-graph-node text')).fill,
                  getComputedStyle(document.querySelector('.nx-graph-node rect')).fill]"""
    )
    assert text_fill != box_fill and (scheme == "dark") == (box_fill in ("rgb(30, 30, 30)",))
    tab.locator(".search-input").fill("number 7")
    tab.locator(".search-result").first.wait_for()
    assert tab.remote == [] and tab.errors == []
    tab.context.close()


CONTRAST_JS = """selector => {
    // WCAG contrast of each element's text against what is behind it (backgrounds composed up
    // the tree; the page's own background last).
    const rgba = text => {
        const numbers = text.match(/[\\d.]+/g).map(Number);
        const scale = text.startsWith("color(srgb") ? 255 : 1;  // what color-mix() computes to
        return numbers.slice(0, 3).map(c => c * scale).concat([numbers.length > 3 ? numbers[3] : 1]);
    };
    const over = (top, bottom) => top.slice(0, 3).map((c, i) => c * top[3] + bottom[i] * (1 - top[3])).concat([1]);
    const luminance = colour => {
        const [r, g, b] = colour.slice(0, 3).map(c => {
            c /= 255;
            return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
        });
        return 0.2126 * r + 0.7152 * g + 0.0722 * b;
    };
    const behind = node => {
        const layers = [];
        for (; node; node = node.parentElement) layers.push(rgba(getComputedStyle(node).backgroundColor));
        return layers.reverse().reduce((below, layer) => over(layer, below), [255, 255, 255, 1]);
    };
    return [...document.querySelectorAll(selector)].filter(node => node.offsetParent && node.textContent.trim())
        .map(node => {
            const background = behind(node);
            const text = over(rgba(getComputedStyle(node).color), background);
            const [a, b] = [luminance(text), luminance(background)].sort((x, y) => y - x);
            return [node.className || node.tagName, node.textContent.trim().slice(0, 30), (a + 0.05) / (b + 0.05)];
        });
}"""
READABLE = (
    ".nx-badge, .note-status, .block-counts .count, .site-summary .count, .nx-expect, .nx-lineno, "
    ".nav-file-title, .nav-folder-title, .note-meta time, .callout-title-inner, .markdown-rendered p, "
    ".sidebar-right h2, .sidebar-right a, .row-path, .note-properties th, .note-properties td"
)


@pytest.mark.parametrize("script", [True, False], ids=["js", "no-js"])
@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_text_and_badges_meet_wcag_aa_contrast(
    browser: Any, reader_site: Path, scheme: str, script: bool
) -> None:
    tab = new_tab(browser, color_scheme=scheme, java_script_enabled=script)
    measured = []
    for name in ("Fails.html", "Passes.html", "callouts.html", "index.html"):
        tab.goto(file_url(reader_site, name))
        measured.extend(tab.evaluate(CONTRAST_JS, READABLE))
    titles = {text for kind, text, _ in measured if kind == "callout-title-inner"}
    assert {f"The {kind} callout" for kind in CALLOUT_KINDS} <= titles
    kinds = {kind for kind, _, _ in measured}
    for badge in ("nx-badge nx-badge-failed", "nx-badge nx-badge-passed", "nx-badge nx-badge-skipped"):
        assert badge in kinds
    assert "callout-title-inner" in kinds  # the type Obsidian does not know
    worst: dict[str, tuple[float, str]] = {}
    for kind, text, ratio in measured:
        worst[kind] = min(worst.get(kind, (ratio, text)), (round(ratio, 2), text))
    assert {kind: found for kind, found in worst.items() if found[0] < 4.5} == {}
    tab.context.close()


@pytest.mark.parametrize("script", [True, False], ids=["js", "no-js"])
def test_a_callout_type_obsidian_does_not_know_takes_the_notes_colours_in_dark(
    browser: Any, reader_site: Path, script: bool
) -> None:
    colours = {}
    for scheme in ("light", "dark"):
        tab = new_tab(browser, color_scheme=scheme, java_script_enabled=script)
        tab.goto(file_url(reader_site, "Passes.html"))
        colours[scheme] = tab.evaluate(
            """() => getComputedStyle(document.querySelector('.callout[data-callout="list"] .callout-title')).color"""
        )
        tab.context.close()
    assert colours["light"] != colours["dark"]


def test_obsidian_syntax_renders_as_in_obsidian(browser: Any, reader_site: Path) -> None:
    tab = new_tab(browser)
    tab.goto(file_url(reader_site, "syntax.html"))
    display = tab.evaluate(
        """() => { const m = document.querySelector('.math-block');
                   return [getComputedStyle(m).display, m.getBoundingClientRect().width,
                           m.closest('p').getBoundingClientRect().width]; }"""
    )
    assert display[0] == "block" and display[1] == display[2]  # a line of its own, in the paragraph
    heights = tab.evaluate(
        """() => [...document.querySelectorAll('.math-block mo')].filter(mo => mo.textContent === '(')
                   .map(mo => mo.getBoundingClientRect().height)"""
    )
    assert len(heights) == 2 and heights[0] > 1.5 * heights[1]  # \\left( stretches over the fraction
    assert tab.locator('.task-list-item[data-task="-"] input:checked').count() == 1
    assert "[/]" not in tab.locator(".markdown-rendered").inner_text()
    # Curly quotes and dashes come from a Latin font, not full-width from a CJK one listed later.
    cdp = tab.context.new_cdp_session(tab)
    cdp.send("DOM.enable")
    cdp.send("CSS.enable")
    root = cdp.send("DOM.getDocument")["root"]["nodeId"]
    node = cdp.send("DOM.querySelector", {"nodeId": root, "selector": "#quotes"})["nodeId"]
    fonts = [
        font["familyName"] for font in cdp.send("CSS.getPlatformFontsForNode", {"nodeId": node})["fonts"]
    ]
    assert fonts and not [name for name in fonts if "CJK" in name], fonts
    tab.context.close()


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_hand_coloured_diagram_nodes_stay_readable(browser: Any, reader_site: Path, scheme: str) -> None:
    tab = new_tab(browser, color_scheme=scheme)
    tab.goto(file_url(reader_site, "diagrams.html"))
    tab.locator("pre.mermaid svg g.node").first.wait_for(timeout=15_000)
    tab.wait_for_function("() => document.querySelector('pre.mermaid .nodeLabel')?.style.color")
    ratios = tab.evaluate(
        """() => [...document.querySelectorAll('pre.mermaid g.node')].map(node => {
            const channels = text => text.match(/[\\d.]+/g).slice(0, 3).map(Number);
            const luminance = rgb => rgb.map(c => (c /= 255) <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4)
                .reduce((sum, c, i) => sum + c * [0.2126, 0.7152, 0.0722][i], 0);
            const fill = luminance(channels(getComputedStyle(node.querySelector('rect, polygon, path')).fill));
            const ink = luminance(channels(getComputedStyle(node.querySelector('.nodeLabel')).color));
            return [node.textContent.trim(), (Math.max(fill, ink) + 0.05) / (Math.min(fill, ink) + 0.05)];
        })"""
    )
    assert {label for label, _ in ratios} == {"hand coloured", "theme coloured"}
    assert [label for label, ratio in ratios if ratio < 4.5] == []
    assert tab.errors == []
    tab.context.close()


def test_remote_images_load_under_the_policy_without_a_referrer(browser: Any, reader_site: Path) -> None:
    tab = new_tab(browser)
    headers: list[dict[str, str]] = []

    def serve_image(route: Any) -> None:
        headers.append(route.request.headers)
        route.fulfill(status=200, content_type="image/png", body=png(9, 4))

    tab.context.route("https://images.example.org/**", serve_image)  # the network stays blocked
    tab.context.route("https://i.ytimg.com/**", serve_image)
    tab.goto(file_url(reader_site, "remote.html"))
    # The load event does not wait for lazy images: wait until both are decoded (or time out).
    images = "[...document.querySelectorAll('main img')]"
    tab.wait_for_function(f"() => {images}.length == 2 && {images}.every(i => i.complete && i.naturalWidth)")
    sizes = tab.evaluate(f"() => {images}.map(i => [i.naturalWidth, i.alt])")
    assert sizes == [[9, "a remote cat"], [9, "A talk"]]
    assert len(headers) == 2 and not [h for h in headers if "referer" in {name.lower() for name in h}]
    video = tab.locator("a.youtube-embed")  # a thumbnail that links to the video: no frame
    assert video.get_attribute("href") == "https://www.youtube.com/watch?v=Ilg3gGewQ5U"
    assert tab.locator("iframe").count() == 0
    assert tab.errors == [] and tab.remote == []
    tab.context.close()
