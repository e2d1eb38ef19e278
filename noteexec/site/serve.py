"""``noteexec serve``: build, serve on 127.0.0.1, re-check changed notes on save, reload the page.

Results are kept per note: a save re-checks only the notes whose files changed (others keep
their results), then the whole site is rendered again (rendering is cheap) and swapped in
atomically. Pages of a served site poll ``/_noteexec/generation`` and reload when it changes.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import signal
import sys
import tempfile
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from noteexec.config.files import load_config
from noteexec.discover import discover
from noteexec.exitcodes import EXIT_OK, UsageError
from noteexec.results import NoteResult
from noteexec.session import CheckSession, RunOptions, show_warnings
from noteexec.site.build import build_site
from noteexec.site.console import options_from, print_summary

GENERATION_PATH = "/_noteexec/generation"


class _Handler(SimpleHTTPRequestHandler):
    server_version = "noteexec"
    state: Any = None

    def do_GET(self) -> None:
        # Rebuilds can land within the second of the previous one: never answer "304 Not
        # Modified" from a one-second Last-Modified, or a reload would show the old page.
        del self.headers["If-Modified-Since"]
        del self.headers["If-None-Match"]
        if self.path.split("?", 1)[0] == GENERATION_PATH:
            body = str(self.state.generation).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Cache-Control", "no-store")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        super().do_GET()

    def end_headers(self) -> None:
        if self.path.split("?", 1)[0] != GENERATION_PATH:
            self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")  # a file is what its name says, never a page
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return  # quiet: the terminal shows builds, not requests


class _State:
    def __init__(self) -> None:
        self.generation = 0


class SiteServer:
    """Keeps results per note and rebuilds the site when notes change."""

    def __init__(self, root: Path, arguments: argparse.Namespace, out: Path, state: _State) -> None:
        self.root = root
        self.arguments = arguments
        self.out = out
        self.config = load_config(root, arguments)
        self.options = options_from(arguments, self.config)
        self.results: dict[Path, NoteResult] = {}
        self.state = state
        # one session while serving: the sandbox starts on first use, the cache answers for
        # notes it has seen
        self.session = CheckSession(
            self.config, root, RunOptions.from_arguments(arguments, jobs=max(1, arguments.jobs))
        )

    def close(self) -> None:
        self.session.close()

    def rebuild(self, changed: set[Path] | None = None) -> None:
        files = discover([self.root], self.config.exclude)
        stale = [
            file
            for file in files
            if changed is None or file.path.resolve() in changed or file.path not in self.results
        ]
        if stale:
            fresh = self.session.check(stale)
            show_warnings(self.session.take_warnings())
            for file, result in zip(stale, fresh, strict=True):
                self.results[file.path] = result
        present = {file.path for file in files}
        for path in list(self.results):
            if path not in present:
                del self.results[path]
        generation = self.state.generation + 1
        options = dataclasses.replace(self.options, live_reload=generation)
        report = build_site(self.root, [self.results[file.path] for file in files], self.out, options)
        self.state.generation = generation
        print_summary(report, self.root, sys.stdout)
        sys.stdout.flush()


def _stop_on_sigterm(signum: int, frame: object) -> None:
    """A service manager's stop is a Ctrl-C: the same clean-up (the temporary site) follows."""
    raise KeyboardInterrupt


def serve(root: Path, arguments: argparse.Namespace) -> int:
    import watchfiles

    temporary = None
    out = arguments.out
    if out is None:
        temporary = tempfile.TemporaryDirectory(prefix="noteexec-serve-")
        out = Path(temporary.name) / "site"
    state = _State()
    handler = functools.partial(type("Handler", (_Handler,), {"state": state}), directory=str(out))
    try:  # the address first: a busy or invalid port fails at once, before any note runs
        server = ThreadingHTTPServer((arguments.host, arguments.port), handler)
    except (OSError, OverflowError) as error:
        if temporary is not None:
            temporary.cleanup()
        reason = getattr(error, "strerror", None) or error
        raise UsageError(f"cannot serve on {arguments.host}:{arguments.port}: {reason}") from None
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    site = SiteServer(root, arguments, out, state)
    try:
        site.rebuild()
        host, port = str(server.server_address[0]), server.server_address[1]
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        print(f"serving {root} at http://{host}:{port}/ (Ctrl-C to stop)", flush=True)
        out_resolved = out.resolve()

        def interesting(change: Any, path: str) -> bool:
            resolved = Path(path).resolve()
            return out_resolved not in resolved.parents and not any(
                part.startswith(".") for part in resolved.relative_to(root.resolve()).parts
            )

        stop = threading.Event()
        for changes in watchfiles.watch(root, watch_filter=interesting, debounce=300, stop_event=stop):
            changed = {Path(path).resolve() for _, path in changes}
            names = ", ".join(sorted(path.name for path in changed))
            print(f"changed: {names}", flush=True)
            try:
                site.rebuild(changed)
            except Exception as error:  # keep serving the last good site
                print(f"noteexec: rebuild failed: {error}", file=sys.stderr, flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        with contextlib.suppress(Exception):
            server.shutdown()
        server.server_close()
        site.close()
        if temporary is not None:
            temporary.cleanup()
    return EXIT_OK
