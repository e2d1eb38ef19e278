"""``noteexec serve`` without a browser: rebuilds, generations, the generation endpoint."""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from functools import partial
from http.server import ThreadingHTTPServer
from pathlib import Path

from noteexec.site.serve import GENERATION_PATH, SiteServer, _Handler, _State
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
    server = SiteServer(root, arguments(), out, _State())
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


def test_a_busy_or_invalid_port_fails_at_once_with_exit_2_and_builds_nothing(tmp_path: Path) -> None:
    root = write_vault(tmp_path / "vault", {"a.md": "# A\n"})
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for wrong in (str(port), "70000"):
            result = subprocess.run(
                [sys.executable, "-m", "noteexec", "serve", str(root), "--port", wrong, "--no-run",
                 "-o", str(tmp_path / "site")],
                capture_output=True, text=True, timeout=120,
            )  # fmt: skip
            assert result.returncode == 2, result.stderr
            assert f"noteexec: error: cannot serve on 127.0.0.1:{wrong}" in result.stderr
            assert "Traceback" not in result.stderr and "wrote" not in result.stdout
            assert not (tmp_path / "site").exists()


def test_sigterm_stops_serve_and_removes_its_temporary_site(tmp_path: Path) -> None:
    root = write_vault(tmp_path / "vault", {"a.md": "# A\n"})
    own_tmp = tmp_path / "tmp"
    own_tmp.mkdir()
    process = subprocess.Popen(
        [sys.executable, "-m", "noteexec", "serve", str(root), "--port", "0", "--no-run"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "TMPDIR": str(own_tmp)},
    )  # fmt: skip
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 120
        while "serving" not in process.stdout.readline():
            assert time.monotonic() < deadline and process.poll() is None
        assert [path.name for path in own_tmp.iterdir() if path.name.startswith("noteexec-serve-")]
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        process.kill()
    assert [path for path in own_tmp.iterdir() if path.name.startswith("noteexec-serve-")] == []
