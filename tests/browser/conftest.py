"""A real browser for the site: Debian's chromium driven by playwright (never its own download).

One build of ``notes/`` (plus a few fixture notes that fail, fold, and try to run script) per
session, with real check results and a local mermaid.js from the npm package. In CI
(``CI=true``) a missing chromium, playwright or npm fails the suite; elsewhere it skips.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from noteexec.check import check
from noteexec.config.files import load_config
from noteexec.discover import discover
from noteexec.sandbox import Sandbox
from noteexec.site.build import BuildOptions, build_site
from noteexec.site.mermaid import MERMAID_VERSION
from tests.conftest import REPO

CHROMIUM = Path(os.environ.get("NOTEEXEC_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = REPO / "tests" / "artifacts"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
SEED_PAGE = "autograd-计算图与梯度.html"


def unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"browser tests cannot run in CI: {reason}", pytrace=False)
    pytest.skip(f"browser tests skipped: {reason}")


FIXTURES = {
    "browser/failing-note.md": """
        ---
        title: A note whose demo is broken
        date: 2025-01-02
        tags: [fixture]
        ---
        # A note whose demo is broken

        > [!FAIL] The error it documents is not the one it raises
        > ```python
        > w = torch.tensor([2.0])
        > # RuntimeError: element 0 of tensors does not require grad
        > w.sum().item() / 0
        > ```

        > [!faq]- A folded question
        > The hidden answer.

        Back to [[autograd-计算图与梯度|the seed note]].
        """,
    "browser/hostile-note.md": """
        ---
        title: Hostile note
        ---
        # Hostile note

        <script>window.__pwned = "script";</script>

        <img src="missing.png" onerror="window.__pwned = 'onerror'">

        [a javascript link](javascript:window.__pwned='markdown-link')

        <a id="raw-js" href="javascript:window.__pwned='raw-link'">raw javascript link</a>

        <div onmouseover="window.__pwned='mouse'" id="hover-me">hover me</div>

        <svg><script>window.__pwned = "svg"</script></svg>

        [[javascript:window.__pwned='wikilink']]
        """,
}


@pytest.fixture(scope="session")
def playwright_api() -> Iterator[Any]:
    if not CHROMIUM.exists():
        unavailable(f"no chromium at {CHROMIUM} (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("the playwright package is not installed (pip install -e '.[test]')")
    with sync_playwright() as api:
        yield api


@pytest.fixture(scope="session")
def browser(playwright_api: Any) -> Iterator[Any]:
    browser = playwright_api.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@pytest.fixture(scope="session")
def mermaid_js() -> Path:
    """mermaid.min.js from the npm package, installed into a temporary folder (cached per version)."""
    folder = Path(tempfile.gettempdir()) / f"noteexec-mermaid-{MERMAID_VERSION}"
    script = folder / "node_modules" / "mermaid" / "dist" / "mermaid.min.js"
    if script.is_file():
        return script
    npm = shutil.which("npm")
    if npm is None:
        unavailable("npm is not installed (apt-get install npm), so mermaid.js cannot be installed")
    completed = subprocess.run(
        [npm, "install", "--prefix", str(folder), f"mermaid@{MERMAID_VERSION}", "--no-audit", "--no-fund"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if completed.returncode != 0 or not script.is_file():
        unavailable(f"npm install mermaid@{MERMAID_VERSION} failed: {completed.stderr[-500:]}")
    return script


@pytest.fixture(scope="session")
def vault(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("vault") / "notes"
    shutil.copytree(REPO / "notes", root)
    for name, text in FIXTURES.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return root


@pytest.fixture(scope="session")
def site(vault: Path, mermaid_js: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The vault checked for real and built once, with mermaid.js copied into the site."""
    config = load_config(vault)
    files = discover([vault], config.exclude)
    with Sandbox(parallel=2, env_passthrough=config.env) as sandbox:
        results = check(files, config, sandbox)
    out = tmp_path_factory.mktemp("site") / "site"
    build_site(vault, results, out, BuildOptions(title="Autograd notes", mermaid_url=str(mermaid_js)))
    return out


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh page that records console errors and uncaught exceptions."""
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    tab = context.new_page()
    tab.errors = []
    tab.on("console", lambda message: tab.errors.append(message.text) if message.type == "error" else None)
    tab.on("pageerror", lambda error: tab.errors.append(str(error)))
    yield tab
    context.close()


def file_url(site: Path, name: str) -> str:
    return (site / name).as_uri()


@contextlib.contextmanager
def serving(*arguments: str) -> Iterator[str]:
    """``noteexec serve`` on a free port with ``arguments``: its URL once it serves; stopped with
    Ctrl-C after. What it printed is shown when a test fails."""
    process = subprocess.Popen(
        [sys.executable, "-m", "noteexec", "serve", *arguments, "--port", "0"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdout is not None
    url, seen, deadline = None, [], time.monotonic() + 120
    while url is None and time.monotonic() < deadline and process.poll() is None:
        line = process.stdout.readline()
        seen.append(line)
        match = re.search(r"at (http://127\.0\.0\.1:\d+/)", line)
        url = match[1] if match else None
    if url is None:
        process.kill()
        pytest.fail("noteexec serve did not start:\n" + "".join(seen))
    try:
        yield url
    finally:
        process.send_signal(signal.SIGINT)
        try:
            output, _ = process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
        print("".join(seen) + output)
