"""The built site in a real browser: from file:// and from ``noteexec serve``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import ARTIFACTS, SEED_PAGE, file_url, serving
from tests.conftest import REPO

PAGES = ["index.html", SEED_PAGE, "README.html", "browser/failing-note.html", "tags/pytorch.html"]


COLLAPSED = (
    "([callout, wanted]) => document.querySelector(callout).classList.contains('is-collapsed') === wanted"
)
"""Whether a callout carries Obsidian's is-collapsed class: the site's script sets it on
<details>' toggle event, which the browser fires a task after the click, so tests wait for it."""


@pytest.mark.parametrize("name", PAGES)
def test_pages_load_without_console_errors(page: Any, site: Path, name: str) -> None:
    page.goto(file_url(site, name))
    page.wait_for_load_state("load")
    page.wait_for_timeout(200)
    assert page.errors == []
    assert page.locator(".nav-files a").count() >= 12  # the note list is drawn from the index


def test_callout_colours_differ_by_type(page: Any, site: Path) -> None:
    page.goto(file_url(site, SEED_PAGE))
    colours = page.evaluate(
        """() => Object.fromEntries([...document.querySelectorAll('.callout')].map(
            c => [c.dataset.callout, getComputedStyle(c.querySelector('.callout-title')).color]))"""
    )
    for kind in ("note", "error", "fail", "success", "info", "example", "question", "tip"):
        assert kind in colours, colours
    assert len({colours[kind] for kind in ("note", "fail", "success", "example", "question", "tip")}) == 6
    backgrounds = page.evaluate(
        """() => [...document.querySelectorAll('.callout')].map(c => getComputedStyle(c).backgroundColor)"""
    )
    assert all(background != "rgba(0, 0, 0, 0)" for background in backgrounds)


def test_folded_callout_starts_collapsed_and_opens_on_click(page: Any, site: Path) -> None:
    page.goto(file_url(site, "browser/failing-note.html"))
    callout = page.locator('.callout[data-callout="faq"]')
    content = callout.locator(".callout-content")
    assert callout.get_attribute("data-callout-fold") == "-"
    assert not content.is_visible()
    selector = '.callout[data-callout="faq"]'
    callout.locator(".callout-title").click()
    assert content.is_visible() and "The hidden answer." in content.inner_text()
    page.wait_for_function(COLLAPSED, arg=[selector, False], timeout=5_000)
    callout.locator(".callout-title").click()
    assert not content.is_visible()
    page.wait_for_function(COLLAPSED, arg=[selector, True], timeout=5_000)


def test_wikilink_navigates_to_the_note(page: Any, site: Path) -> None:
    page.goto(file_url(site, "browser/failing-note.html"))
    page.get_by_role("link", name="the seed note").click()
    page.wait_for_load_state("load")
    assert page.url.endswith("%E6%A2%AF%E5%BA%A6.html") or page.url.endswith(SEED_PAGE)
    assert page.locator("h1.page-title").inner_text() == "PyTorch 自动求导核心笔记：计算图与梯度"


def test_heading_anchor_works_for_cjk_headings(page: Any, site: Path) -> None:
    page.goto(file_url(site, SEED_PAGE) + "#错误场景分析")
    assert page.evaluate("() => document.querySelector(':target')?.textContent") == "错误场景分析"
    page.locator('.toc a[href="#错误场景分析"]').click()
    assert page.evaluate("() => decodeURIComponent(location.hash)") == "#错误场景分析"


def test_search_finds_a_note_by_a_chinese_word(page: Any, site: Path) -> None:
    page.goto(file_url(site, "index.html"))
    page.locator(".search-input").fill("叶子张量")
    results = page.locator(".search-result")
    results.first.wait_for()
    titles = results.locator(".search-result-title").all_inner_texts()
    assert any("叶子张量" in title for title in titles), titles
    page.locator(".search-input").fill("计算图")
    page.locator(".search-input").press("Enter")
    page.wait_for_load_state("load")
    assert "计算图" in page.locator("h1.page-title").inner_text()


def test_dark_mode_follows_the_system_and_the_toggle(browser: Any, site: Path) -> None:
    context = browser.new_context(color_scheme="dark")
    tab = context.new_page()
    tab.goto(file_url(site, SEED_PAGE))
    assert tab.evaluate("() => document.documentElement.classList.contains('theme-dark')")
    dark_background = tab.evaluate("() => getComputedStyle(document.body).backgroundColor")
    tab.locator(".theme-toggle").click()
    assert tab.evaluate("() => document.documentElement.classList.contains('theme-light')")
    light_background = tab.evaluate("() => getComputedStyle(document.body).backgroundColor")
    assert dark_background != light_background
    tab.reload()  # the choice is remembered
    assert tab.evaluate("() => document.documentElement.classList.contains('theme-light')")
    context.close()


def test_failed_block_details_are_one_click_away(page: Any, site: Path) -> None:
    page.goto(file_url(site, "browser/failing-note.html"))
    assert page.locator(".note-header .note-status").inner_text().lower() == "failed"
    block = page.locator(".nx-block.nx-failed").first
    details = block.locator(".nx-details")
    assert block.locator(".nx-badge").is_visible() and not details.is_visible()
    block.locator("summary").click()
    assert details.is_visible()
    text = details.inner_text()
    assert "ZeroDivisionError" in text and "w.sum().item() / 0" in text
    assert "expects RuntimeError" in block.locator("summary").inner_text()
    assert block.locator(".hll").is_visible()  # the raising line is marked
    box = block.bounding_box()
    assert box is not None and box["y"] < 900  # visible at a glance, near the top of the page


def test_index_lists_failures_first(page: Any, site: Path) -> None:
    page.goto(file_url(site, "index.html"))
    first_row = page.locator(".note-index tbody tr").first
    assert "failed" in (first_row.get_attribute("class") or "")
    assert "A note whose demo is broken" in first_row.inner_text()


def test_mermaid_diagrams_become_svg_and_measured_graphs_are_drawn_already(page: Any, site: Path) -> None:
    page.goto(file_url(site, SEED_PAGE))
    page.locator("pre.mermaid svg").first.wait_for(timeout=15_000)
    drawn = page.locator("pre.mermaid svg").count()
    assert drawn == page.locator("pre.mermaid").count() >= 1  # the hand-drawn one
    measured = page.locator(".nx-graph svg.nx-graph-svg").first
    assert measured.is_visible()
    text = measured.text_content() or ""
    assert "MseLossBackward0" in text and "AccumulateGrad (w)" in text
    assert page.errors == []


def test_a_hostile_note_runs_nothing(page: Any, site: Path) -> None:
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(file_url(site, "browser/hostile-note.html"))
    page.wait_for_timeout(300)
    page.locator("#hover-me").hover()
    for name in ("a javascript link", "raw javascript link"):
        links = page.get_by_text(name)
        if links.count():
            links.first.click()
    page.wait_for_timeout(200)
    assert page.evaluate("() => window.__pwned") is None
    assert dialogs == []
    assert page.locator("script:not([src])").count() == 0  # no inline script survived
    assert page.locator("[onerror], [onmouseover], [onclick], [onload]").count() == 0
    assert page.locator('[href^="javascript:" i], [src^="javascript:" i]').count() == 0


def test_phone_width_has_no_sideways_scrolling(browser: Any, site: Path) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    tab = context.new_page()
    tab.goto(file_url(site, SEED_PAGE))
    assert tab.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth + 1")
    assert (
        not tab.locator(".sidebar-left").is_visible() or tab.locator(".sidebar-left").bounding_box()["x"] < 0
    )
    tab.locator(".menu-toggle").click()
    tab.wait_for_timeout(300)
    assert tab.locator(".sidebar-left").bounding_box()["x"] >= -1
    tab.screenshot(path=str(ARTIFACTS / "seed-phone.png"))
    context.close()


def test_print_style_shows_only_the_note(page: Any, site: Path) -> None:
    page.goto(file_url(site, "browser/failing-note.html"))
    page.emulate_media(media="print")
    assert not page.locator(".sidebar-left").is_visible()
    assert not page.locator(".topbar").is_visible()
    assert page.locator("article.note").is_visible()
    folded = page.locator('.callout[data-callout="faq"] .callout-content')
    assert folded.is_visible()  # folded callouts print open


def test_screenshots_of_the_seed_note(browser: Any, site: Path) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for scheme in ("light", "dark"):
        context = browser.new_context(viewport={"width": 1360, "height": 900}, color_scheme=scheme)
        tab = context.new_page()
        tab.goto(file_url(site, SEED_PAGE))
        tab.locator("pre.mermaid svg").first.wait_for(timeout=15_000)
        tab.screenshot(path=str(ARTIFACTS / f"seed-{scheme}.png"), full_page=True)
        context.close()
    assert (ARTIFACTS / "seed-light.png").stat().st_size > 10_000
    assert (ARTIFACTS / "seed-dark.png").stat().st_size > 10_000


# -------------------------------------------------------------------------------- noteexec serve


@pytest.fixture
def served(vault: Path, tmp_path: Path) -> Any:
    """``noteexec serve`` on a free port, over a copy of the vault we may edit."""
    import shutil

    root = tmp_path / "vault"
    shutil.copytree(vault, root)
    with serving(str(root), "--no-run", "--offline", "-o", str(tmp_path / "site")) as url:
        yield url, root


def test_serve_shows_the_site_and_reloads_on_save(page: Any, served: Any) -> None:
    url, root = served
    page.goto(url + "browser/failing-note.html")
    assert page.locator("h1.page-title").inner_text() == "A note whose demo is broken"
    page.get_by_role("link", name="the seed note").click()
    page.wait_for_load_state("load")
    assert "计算图" in page.locator("h1.page-title").inner_text()
    page.go_back()
    note = root / "browser" / "failing-note.md"
    note.write_text(note.read_text().replace("The hidden answer.", "An answer edited while serving."))
    page.locator('.callout[data-callout="faq"] .callout-content').get_by_text(
        "An answer edited while serving."
    ).wait_for(state="attached", timeout=20_000)
    assert page.errors == []


def test_rendered_single_page_works_on_its_own(page: Any, vault: Path, tmp_path: Path) -> None:
    out = tmp_path / "single.html"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "noteexec",
            "render",
            str(vault / "browser" / "failing-note.md"),
            "-o",
            str(out),
            "--no-run",
            "--offline",
            "--vault",
            str(vault),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    page.goto(out.as_uri())
    callout = page.locator('.callout[data-callout="faq"]')
    callout.locator(".callout-title").click()
    assert callout.locator(".callout-content").is_visible()
    # The inline script ran: it keeps the class in step on the toggle event, a task after the click.
    page.wait_for_function(COLLAPSED, arg=['.callout[data-callout="faq"]', False], timeout=5_000)
    page.locator(".theme-toggle").click()  # so did this one, under the page's CSP hashes
    assert page.evaluate("() => [...document.documentElement.classList].sort().join(' ')") in (
        "js theme-dark",
        "js theme-light",
    )
    assert page.errors == []
