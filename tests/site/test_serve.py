"""``noteexec serve`` without a browser: rebuilds, generations, the generation endpoint."""

from __future__ import annotations

import argparse
import threading
import urllib.request
from functools import partial
from http.server import ThreadingHTTPServer
from pathlib import Path

from noteexec.site.serve import GENERATION_PATH, SiteServer, _Handler
from tests.site.helpers import write_vault


def arguments(**overrides: object) -> argparse.Namespace:
    values = {
        "no_run": True,
        "mermaid_url": None,
        "offline": True,
        "title": None,
        "jobs": 1,
        "no_cache": True,
        "cache_dir": None,
        "cache_key_file": [],
        "site_url": None,
    }
    values.update(overrides)
    return argparse.Namespace(**values)


def test_rebuild_rerenders_changed_notes_and_moves_the_generation(tmp_path: Path) -> None:
    root = write_vault(tmp_path / "vault", {"a.md": "# A\n\nfirst\n", "b.md": "# B\n\n[[a]]\n"})
    out = tmp_path / "site"
    server = SiteServer(root, arguments(), out)
    try:
        server.rebuild()
        assert server.state.generation == 1
        assert 'data-live="1"' in (out / "a.html").read_text()
        (root / "a.md").write_text("# A\n\nsecond\n")
        (root / "c.md").write_text("# C\n")
        server.rebuild({(root / "a.md").resolve(), (root / "c.md").resolve()})
        assert server.state.generation == 2
        page = (out / "a.html").read_text()
        assert "second" in page and 'data-live="2"' in page and (out / "c.html").is_file()
        (root / "c.md").unlink()
        server.rebuild({(root / "c.md").resolve()})
        assert not (out / "c.html").exists()
    finally:
        server.close()


def test_generation_endpoint(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text("<p>hi</p>")
    state = type("State", (), {"generation": 7})()
    handler = partial(type("H", (_Handler,), {"state": state}), directory=str(tmp_path))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{httpd.server_address[1]}"
        with urllib.request.urlopen(base + GENERATION_PATH, timeout=5) as response:
            assert response.read() == b"7" and response.headers["Cache-Control"] == "no-store"
        with urllib.request.urlopen(base + "/index.html", timeout=5) as response:
            assert b"hi" in response.read()
            assert response.headers["X-Content-Type-Options"] == "nosniff"
    finally:
        httpd.shutdown()
        httpd.server_close()
