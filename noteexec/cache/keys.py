"""Cache keys: everything that decides what a note runs, and nothing that does not.

The key of a run holds what the note executes (prelude, hidden setup, visible blocks, limits,
local modules it imports), the Python, torch and noteexec versions, the machine type, and
optional lock-file hashes; it holds no absolute path, so a cache restored on another machine
(a CI cache) still hits. Comments are left out: what a comment documents changes no fact.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import sys
from collections.abc import Callable, Iterable
from functools import cache
from pathlib import Path

from noteexec import __version__
from noteexec.expect.syntax import comment_tokens
from noteexec.sandbox import BlockRun, NoteRun

SCHEMA_VERSION = 4
"""The layout of stored facts, part of every key; also the database's ``user_version``: tables
of another version are dropped and made anew."""


@cache
def _torch_build() -> str:
    """torch's ``version.py`` (its version and the commit it was built from), found without
    importing torch: the CLI process never imports it, and a warm run cannot wait for
    ``importlib.metadata`` either."""
    spec = importlib.util.find_spec("torch")
    if spec is None or spec.origin is None:
        return "absent"
    try:
        return Path(spec.origin).with_name("version.py").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return "unknown"


def environment_fingerprint(key_files: Iterable[Path] = ()) -> str:
    digest = hashlib.sha256()
    for part in (
        f"schema {SCHEMA_VERSION}",
        f"python {sys.version}",
        f"torch {_torch_build()}",
        f"noteexec {__version__} {_source_digest()}",
        f"machine {os.uname().machine}",
    ):
        digest.update(part.encode() + b"\0")
    for path in sorted(key_files):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def run_key(run: NoteRun, fingerprint: str) -> str:
    """What the note executes and under which limits.

    No path, so the key travels; no fence line either, so prose edits that move blocks still
    hit (the cached facts' line numbers are moved along, see :func:`relocate`).
    """

    def block(item: BlockRun) -> list[object]:
        return [without_comments(item.code), [line - item.line for line in item.echo_lines]]

    executed = [
        [block(item) for item in run.blocks],
        [block(item) for item in run.setup],
        run.prelude,
        run.timeout,
        run.memory_limit,
        run.file_size_limit,
        run.namespaces,
        local_modules("\n".join([run.prelude, *(item.code for item in (*run.setup, *run.blocks))])),
    ]
    payload = json.dumps(executed, ensure_ascii=False)
    return hashlib.sha256((fingerprint + "\0" + payload).encode()).hexdigest()


def without_comments(code: str) -> str:
    """``code`` with its comments cut off, line for line: what a comment says (a documented
    message or output) changes no fact, so editing it must not run the note again."""
    comments = comment_tokens(code)
    if not comments:  # none, or code that does not tokenize: keyed as it is
        return code
    cuts = {line: column for line, column, _ in comments}
    lines = code.split("\n")
    return "\n".join(line[: cuts[number]] if number in cuts else line for number, line in enumerate(lines, 1))


def parsed_keys(config: object, fingerprint: str) -> Callable[[bytes], str]:
    """Keys of note files' bytes under one configuration: what parsing and expectations depend on."""
    prefix = hashlib.sha256(f"{fingerprint}\0{config!r}\0".encode())

    def key(content: bytes) -> str:
        digest = prefix.copy()
        digest.update(content)
        digest.update(local_modules(content.decode("utf-8", "replace")).encode())
        return digest.hexdigest()

    return key


_IMPORT = re.compile(r"^[\s>]*(?:from\s+([A-Za-z_]\w*)[\w.]*\s+import\b|import\s+([^#;\n]+))", re.MULTILINE)
LOCAL_MODULE_FILES = 1000
"""At most this many files of local modules are read for one key."""


def local_modules(text: str) -> str:
    """A digest of the local modules ``text`` imports, by content, and the ones they import.

    A note that does ``from helpers import compute_loss`` with its vault on ``PYTHONPATH``
    depends on ``helpers.py``: editing it must run the note again (a module's file, or every
    ``.py`` file of a package, found on ``PYTHONPATH`` as the note's Python finds it).
    """
    roots = _local_roots(os.environ.get("PYTHONPATH", ""))
    if not roots:  # nothing can be found: the text is not even read
        return ""
    digest = hashlib.sha256()
    pending, seen = _imported_names(text), set()
    read = 0
    while pending and read < LOCAL_MODULE_FILES:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        for root in roots:
            for file in _module_files(root, name):
                try:
                    data = file.read_bytes()
                except OSError:
                    continue
                read += 1
                digest.update(f"{file.relative_to(root).as_posix()}\0{len(data)}\0".encode() + data)
                pending |= _imported_names(data.decode("utf-8", "replace"))
    return digest.hexdigest() if read else ""


@cache
def _local_roots(python_path: str) -> tuple[Path, ...]:
    """The folders of ``PYTHONPATH`` that hold local modules (torch's build is keyed apart)."""
    return tuple(
        Path(entry)
        for entry in python_path.split(os.pathsep)
        if entry and not {"site-packages", "dist-packages"} & set(Path(entry).parts)
    )


def _imported_names(text: str) -> set[str]:
    """Top-level module names of the ``import`` and ``from ... import`` lines in ``text``."""
    names = set()
    for module, modules in _IMPORT.findall(text):
        if module:
            names.add(module)
        for part in modules.split(","):
            words = part.split()
            if words and words[0].split(".")[0].isidentifier():
                names.add(words[0].split(".")[0])
    return names


def _module_files(root: Path, name: str) -> list[Path]:
    """``name.py`` in ``root``, or the ``.py`` files of the package ``name``, in a stable order."""
    module = root / f"{name}.py"
    if module.is_file():
        return [module]
    package = root / name
    if (package / "__init__.py").is_file():
        return sorted(path for path in package.rglob("*.py") if path.is_file())
    return []


_CACHED_STAGES = (
    "source.py",
    "markdown.py",
    "model.py",
    "parse.py",
    "expect",
    "serialize.py",
    "facts.py",
    "cache",
    "sandbox",
    "environment.py",
)
"""The modules, and packages (every ``.py`` file in them), whose output is cached."""


def _source_digest() -> str:
    """The code of the stages whose output is cached: a cache written by other code is never used.

    (Front ends such as reporters and the site are left out: changing them changes no fact.)
    """
    digest = hashlib.sha256()
    package = Path(__file__).parent.parent
    stages = [package / name for name in _CACHED_STAGES]
    files = [path for stage in stages for path in (stage.glob("*.py") if stage.is_dir() else [stage])]
    for path in sorted(files):
        digest.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()
