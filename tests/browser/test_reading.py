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


NOTES = {
    "media/raw-html.md": """
        # Raw HTML

        <img id="raw-image" src="../img/pixel.png" alt="a pixel">

        <p><img id="inline-image" src="pixel.png"> inline</p>
        """,
}


@pytest.fixture(scope="module")
def reader_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    base = tmp_path_factory.mktemp("reading")
    vault = write_vault(base / "vault", NOTES)
    (vault / "img").mkdir()
    (vault / "img" / "pixel.png").write_bytes(png(7, 5))
    out = base / "site"
    build_site(vault, results_for(vault), out, BuildOptions(offline=True, ran=False))
    yield out


@pytest.fixture
def tab(browser: Any) -> Iterator[Any]:
    """A desktop tab that records console errors and uncaught exceptions."""
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    page.errors = []
    page.on("console", lambda message: page.errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    yield page
    context.close()


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
