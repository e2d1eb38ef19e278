"""Publishing the hostile vault (``tests/site/hostile.py``) in Chromium: no file of the vault runs
script in the site's origin, whether a reader clicks a link, sees an embed or opens a published
file directly (as "open image in new tab" would), from ``file://`` and from ``noteexec serve``;
private notes cannot be found; custom CSS cannot restyle a verdict.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urljoin

import pytest

from noteexec.facts import BlockFacts, Raised
from noteexec.site.build import BuildOptions, build_site
from tests.browser.conftest import file_url, serving
from tests.conftest import REPO
from tests.site.helpers import results_for, write_vault
from tests.site.hostile import PASSIVE_ATTACHMENTS, write_hostile_vault

HOSTILE_CSS = """
.note-header, .note-status, .note-check, .block-counts, .sidebar-right { display: none !important }
p { color: rgb(1, 2, 3) }
p::after { content: "all passed"; position: fixed; inset: 0; background: white; z-index: 2147483647 }
:scope { contain: none !important; margin-top: -3000px !important }
~ aside { display: none }
.nx-badge { color: rgb(0, 128, 0) !important; visibility: hidden }
.nx-failed, .callout:has(.nx-failed), [data-outcome="failed"] { display: none !important }
details, pre, .code-block { display: none }
} .note-status { display: none }
"""
"""Custom CSS that would hide the failed verdict and draw "all passed" over the page."""


@pytest.fixture(scope="module")
def hostile_site(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("publish-browser")
    vault = write_hostile_vault(base / "vault")
    out = base / "site"
    built = subprocess.run(
        [sys.executable, "-m", "noteexec", "build", str(vault), "-o", str(out), "--no-run", "--offline"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert (out / "attachments.html").is_file(), built.stdout + built.stderr
    return {"vault": vault, "out": out}


@pytest.fixture(scope="module")
def served_site(hostile_site: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    out = tmp_path_factory.mktemp("publish-served") / "site"
    with serving(str(hostile_site["vault"]), "-o", str(out), "--no-run", "--offline") as url:
        yield url


def _open_everything(browser: Any, base: str, published: list[str]) -> tuple[list[str], int]:
    """Open the attachments page, then every URL its links and embeds lead to and every published
    file, each in the page's tab; return what ran (or navigated away) and how many were opened."""
    context = browser.new_context()
    tab = context.new_page()
    problems: list[str] = []
    tab.on("dialog", lambda dialog: (problems.append(f"dialog {dialog.message}"), dialog.dismiss()))
    try:
        tab.goto(base + "attachments.html")
        tab.wait_for_timeout(100)
        targets = tab.evaluate(
            """() => [...document.querySelectorAll(
                'main a[href], main img[src], main audio[src], main video[src]')].map(
                node => node.href || node.src)"""
        )
        assert tab.evaluate("() => window.__pwned === undefined")
        assert tab.locator(".nav-files a").count() > 10  # the site's own script ran
        urls = dict.fromkeys([*targets, *(urljoin(base, quote(name)) for name in published)])
        for url in urls:
            try:
                tab.goto(url, timeout=5_000)
            except Exception as error:  # a download, which runs nothing
                if "Download is starting" not in str(error):
                    raise
                continue
            tab.wait_for_timeout(50)
            pwned = tab.evaluate("() => (window.__pwned === undefined ? null : String(window.__pwned))")
            if pwned is not None:
                problems.append(f"{url}: window.__pwned = {pwned}")
        return problems, len(urls)
    finally:
        context.close()


def _published(out: Path) -> list[str]:
    return sorted(
        path.relative_to(out).as_posix() for path in (out / "_attachments").rglob("*") if path.is_file()
    )


def test_no_vault_file_runs_script_from_file_urls(browser: Any, hostile_site: dict[str, Path]) -> None:
    out = hostile_site["out"]
    published = _published(out)
    assert {f"_attachments/{name}" for name in PASSIVE_ATTACHMENTS} <= set(published)
    problems, opened = _open_everything(browser, out.as_uri() + "/", published)
    assert problems == []
    assert opened > len(published)


def test_no_vault_file_runs_script_when_served(
    browser: Any, hostile_site: dict[str, Path], served_site: str
) -> None:
    problems, opened = _open_everything(browser, served_site, _published(hostile_site["out"]))
    assert problems == []
    assert opened > len(PASSIVE_ATTACHMENTS)


def test_search_and_navigation_never_find_a_private_note(page: Any, hostile_site: dict[str, Path]) -> None:
    page.goto(file_url(hostile_site["out"], "index.html"))
    titles = page.locator(".nav-files a").all_inner_texts()
    assert "attachments" in titles  # the file name, as Obsidian lists it
    assert not [title for title in titles if "Secret" in title or "Draft" in title or "Gone" in title]
    search = page.locator(".search-input")
    search.fill("attachments")
    page.locator(".search-result").first.wait_for()
    for text in ("PRIVATE-TEXT", "unpublished", "secret-tag", "draft-tag"):
        search.fill(text)
        page.wait_for_timeout(150)
        assert page.locator(".search-result").count() == 0, text


@pytest.fixture(scope="module")
def styled_site(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A note whose block failed, built once without and once with the hostile custom CSS."""
    base = tmp_path_factory.mktemp("styled")
    root = write_vault(
        base / "vault",
        {
            "a.md": "# A\n\nSome prose.\n\n> [!note] Note\n> More prose.\n> ```python\n> x = 1\n> ```\n\nThe end.\n"
        },
    )
    css = base / "hostile.css"
    css.write_text(HOSTILE_CSS)
    failed = BlockFacts(state="ran", exception=Raised("ValueError", ("ValueError", "Exception"), "no", 1))
    results = results_for(root, {"a.md": [failed]})
    sites = {}
    for name, options in {
        "plain": BuildOptions(offline=True),
        "styled": BuildOptions(offline=True, css=(css,)),
    }.items():
        sites[name] = base / name
        build_site(root, results, sites[name], options)
    return sites


VERDICT_JS = """() => {
    const badge = document.querySelector('.note-header .note-status');
    const box = badge.getBoundingClientRect();
    const top = document.elementFromPoint(box.x + box.width / 2, box.y + box.height / 2);
    const block = document.querySelector('.nx-badge');
    const style = node => { const s = getComputedStyle(node);
        return [s.display, s.visibility, s.color, s.opacity, s.backgroundColor].join(' '); };
    return {
        text: badge.innerText, visible: box.width > 0 && box.height > 0, onTop: badge.contains(top),
        badge: style(badge), header: style(document.querySelector('.note-header')),
        block: style(block), blockText: block.innerText, blockShown: block.getClientRects().length > 0,
        code: getComputedStyle(document.querySelector('.nx-block pre')).display,
        prose: getComputedStyle(document.querySelector('.markdown-rendered p')).color,
        aside: getComputedStyle(document.querySelector('.sidebar-right')).display,
        contain: getComputedStyle(document.querySelector('.markdown-rendered')).contain,
    };
}"""


def test_custom_css_styles_note_bodies_but_cannot_restyle_a_verdict(
    page: Any, styled_site: dict[str, Path]
) -> None:
    page.goto(file_url(styled_site["plain"], "a.html"))
    plain = page.evaluate(VERDICT_JS)
    page.goto(file_url(styled_site["styled"], "a.html"))
    styled = page.evaluate(VERDICT_JS)
    assert styled["prose"] == "rgb(1, 2, 3)" != plain["prose"]  # the custom CSS is in force
    assert styled["text"] == plain["text"] == "FAILED"
    assert styled["visible"] and styled["onTop"], styled  # nothing hides or covers the header badge
    assert styled["blockShown"] and styled["blockText"] == "FAILED", styled
    for key in ("badge", "header", "block", "blockText", "code", "aside", "contain"):
        assert styled[key] == plain[key], key
    assert styled["contain"] == "paint"
    assert page.errors == []
