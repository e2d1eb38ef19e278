"""One checking session: what every front end (the CLI, the site, the pytest plugin, doctor) needs
to check notes, assembled in one place.

A :class:`CheckSession` holds the configuration and opens the result cache and the sandbox on
first use (the sandbox starts its worker, which imports torch, only when a note must run: a warm,
all-cached check starts nothing). Results stream out; what went wrong on the way without stopping
the run (the cache's troubles) collects in :meth:`CheckSession.take_warnings` for the front end to
show its own way. ``--no-run`` is handled here, once.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from noteexec.cache import ResultCache, open_cache
from noteexec.check import Parsed, assemble, iter_check, parse
from noteexec.config import Config
from noteexec.exitcodes import UsageError
from noteexec.memory import collector_paused
from noteexec.results import NoteFile, NoteResult
from noteexec.sandbox import Sandbox


@dataclass(frozen=True)
class RunOptions:
    """How a session runs notes: what a front end's options say."""

    run: bool = True
    """False (``--no-run``): notes are parsed and judged with nothing run, every block ``not_run``."""
    jobs: int = 1
    """Notes run at once."""
    cache: bool = True
    cache_dir: Path | None = None
    """Where the result cache lives (default: ``$NOTEEXEC_CACHE_DIR``, else beside the vault)."""
    cache_key_files: tuple[Path, ...] = ()
    """Files (e.g. lock files) whose content is part of every cache key."""

    @classmethod
    def from_arguments(cls, arguments: argparse.Namespace, jobs: int | None = None) -> RunOptions:
        """The options every checking command shares (``-j``, ``--no-run``, the cache's); ``jobs``
        overrides ``-j``. Running with fewer than one job is a usage error."""
        run = not getattr(arguments, "no_run", False)
        jobs = arguments.jobs if jobs is None else jobs
        if run and jobs < 1:
            raise UsageError("--jobs must be at least 1")
        return cls(
            run=run,
            jobs=jobs,
            cache=not arguments.no_cache,
            cache_dir=arguments.cache_dir,
            cache_key_files=tuple(arguments.cache_key_file),
        )


class CheckSession:
    """The configuration, result cache and sandbox of one run of checks, closed together.

    ``vault``: the checked folder (or note); its cache lies beside it. ``sandbox``: one shared
    with other sessions (the pytest plugin's, one per process): borrowed, so not closed here.
    """

    def __init__(
        self,
        config: Config,
        vault: Path,
        options: RunOptions | None = None,
        sandbox: Sandbox | None = None,
    ) -> None:
        self.config = config
        self.vault = vault
        self.options = options or RunOptions()
        self._sandbox = sandbox
        self._owns_sandbox = sandbox is None
        self._cache: ResultCache | None = None
        self._fingerprint = ""
        self._cache_opened = False
        self._taken = 0

    def __enter__(self) -> CheckSession:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close(at_once=kind is not None)  # interrupted: queued notes are not waited for

    def parse(self, file: NoteFile) -> Parsed:
        """The note loaded as checking it would (parsed, or from the cache); give it to
        :meth:`iter_check` to check it as loaded: a front end that needs its blocks first parses
        it once."""
        if not self.options.run:
            return parse(file, self.config)
        return parse(file, self.config, *self._open_cache())

    def iter_check(self, files: Sequence[NoteFile | Parsed]) -> Iterator[NoteResult]:
        """Each note's result in file order, as soon as it is known (none is kept here)."""
        if not self.options.run:
            yield from self._unrun(files)
            return
        cache, fingerprint = self._open_cache()
        yield from iter_check(files, self.config, self._open_sandbox(), cache, fingerprint)

    @collector_paused()  # every note's result is kept to the end
    def check(self, files: Sequence[NoteFile | Parsed]) -> list[NoteResult]:
        """Every note's result, in file order."""
        return list(self.iter_check(files))

    def take_warnings(self) -> list[str]:
        """Warnings not taken yet, each once: the front end shows them when it suits it."""
        warnings = self._cache.warnings[self._taken :] if self._cache is not None else []
        self._taken += len(warnings)
        return warnings

    def close(self, at_once: bool = False) -> None:
        """Stop the sandbox's worker (``at_once``: without waiting for queued notes) and close
        the cache; warnings stay to be taken."""
        try:
            if self._sandbox is not None and self._owns_sandbox:
                self._sandbox.close(at_once=at_once)
        finally:
            if self._cache is not None:
                self._cache.close()

    def _unrun(self, files: Sequence[NoteFile | Parsed]) -> Iterator[NoteResult]:
        """Results of notes not run: loaded exactly as a run would load them (folder
        configurations included), so ``--no-run`` shows what a run would check."""
        for item in files:
            parsed = item if isinstance(item, Parsed) else parse(item, self.config)
            yield assemble(parsed.note, parsed.expected, None)

    def _open_cache(self) -> tuple[ResultCache | None, str]:
        if not self._cache_opened:
            self._cache_opened = True
            self._cache, self._fingerprint = open_cache(
                self.vault, self.options.cache_dir, self.options.cache, self.options.cache_key_files
            )
        return self._cache, self._fingerprint

    def _open_sandbox(self) -> Sandbox:
        """The sandbox; its worker starts when a note first has something to run."""
        if self._sandbox is None:
            self._sandbox = Sandbox(parallel=self.options.jobs, env_passthrough=self.config.env)
        return self._sandbox


def show_warnings(warnings: Iterable[str]) -> None:
    """Warnings (a session's, a cache's) as the command line shows them: one line each, on stderr."""
    for warning in warnings:
        print(f"noteexec: warning: {warning}", file=sys.stderr)
