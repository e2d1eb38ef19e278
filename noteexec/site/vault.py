"""A vault as the site sees it: notes and attachments by path, link resolution like Obsidian,
site URLs, and relative hrefs between pages.

Resolution of ``[[target]]`` from a note in folder ``F``:
1. ``./x`` and ``../x`` are relative to ``F``;
2. a full vault path (``folder/note``, with or without ``.md``) is that file;
   a bare name (no ``/``) is looked up by name instead, so 3. decides between files
3. otherwise every file whose path ends with ``/target`` (case-insensitive; ``.md`` optional
   for notes) is a candidate: the one in ``F`` wins, then the shortest path, then the first
   in path order;
4. failing that, a note whose frontmatter ``aliases`` holds the target (case-insensitive).
"""

from __future__ import annotations

import fnmatch
import os
import posixpath
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".gif", ".svg", ".webp", ".bmp", ".avif", ".ico"})
AUDIO_EXTENSIONS = frozenset({".mp3", ".wav", ".m4a", ".ogg", ".flac", ".webm"})
VIDEO_EXTENSIONS = frozenset({".mp4", ".mov", ".mkv", ".ogv"})

RESERVED_URLS = frozenset({"index.html", "search-index.js", "sitemap.xml", "404.html"})
ASSETS_DIR = "_assets"
ATTACHMENTS_DIR = "_attachments"
"""Every attachment is published under this folder, so none can take a name the site writes."""
NOTES_DIR = "_notes"
"""Where a note whose path starts with one of the site's own folders is moved."""
TAGS_DIR = "tags"


def _key(text: str) -> str:
    return unicodedata.normalize("NFC", text).casefold()


def tag_slug(tag: str) -> str:
    """A tag page's file name: Obsidian tags are case-insensitive, nested with ``/``."""
    text = unicodedata.normalize("NFC", tag).lower()
    return re.sub(r"[^\w-]+", "_", text.replace("/", "__"))


def is_note_path(rel: str) -> bool:
    return rel.lower().endswith(".md")


def note_url(rel: str) -> str:
    """``a/b.md`` → ``a/b.html``; an unreadable folder (shown as a note in error) keeps its name."""
    return (rel[:-3] if is_note_path(rel) else rel) + ".html"


def frontmatter_list(value: Any) -> tuple[str, ...]:
    """A list property (``tags``, ``aliases``) as Obsidian reads it: a list, or one string."""
    if value is None:
        return ()
    if isinstance(value, str):
        items: Iterable[Any] = value.replace(",", " ").split() if "," in value else [value]
    elif isinstance(value, list | tuple):
        items = value
    else:
        items = [value]
    return tuple(str(item).strip() for item in items if item is not None and str(item).strip())


@dataclass(frozen=True)
class Resolved:
    rel: str
    """The vault-relative path of the note or attachment."""
    is_note: bool


class Vault:
    """Notes (``.md``) and attachments (anything else) of a vault, by vault-relative POSIX path."""

    def __init__(
        self,
        notes: Sequence[str],
        attachments: Sequence[str] = (),
        aliases: Mapping[str, Sequence[str]] | None = None,
        hidden: Sequence[str] = (),
    ) -> None:
        """``hidden``: notes that are not published; links resolve to them but they get no URL."""
        self.notes = tuple(notes)
        self.attachments = tuple(attachments)
        self._note_set = {*self.notes, *hidden}
        self._by_key: dict[str, str] = {}
        self._by_name: dict[str, list[str]] = {}
        for rel in (*self.notes, *hidden, *self.attachments):
            self._by_key.setdefault(_key(rel), rel)
            name = posixpath.basename(rel)
            self._by_name.setdefault(_key(name), []).append(rel)
            if is_note_path(rel):
                self._by_name.setdefault(_key(name[:-3]), []).append(rel)
        self._aliases: dict[str, str] = {}
        for rel in (*self.notes, *hidden):
            for alias in (aliases or {}).get(rel, ()):
                self._aliases.setdefault(_key(alias), rel)
        self.urls = self._assign_urls()

    def _assign_urls(self) -> dict[str, str]:
        """Site URL of each file: ``a/b.md`` → ``a/b.html``; attachments under ``_attachments/``.

        A note's URL steers clear of the site's own files and folders; an attachment's is in a
        folder of its own, so no vault file can replace a page, a script or a style sheet.
        """
        self.taken = set(RESERVED_URLS)
        urls: dict[str, str] = {}
        for rel in self.notes:
            url = note_url(rel)
            if _key(url).startswith((f"{ASSETS_DIR}/", f"{ATTACHMENTS_DIR}/")):
                url = f"{NOTES_DIR}/{url}"
            stem, counter = url[:-5], 1
            while _key(url) in self.taken:
                url, counter = f"{stem}-{counter}.html", counter + 1
            self.taken.add(_key(url))
            urls[rel] = url
        for rel in self.attachments:
            urls[rel] = f"{ATTACHMENTS_DIR}/{rel}"
        return urls

    def tag_urls(self, tags: Iterable[str]) -> dict[str, str]:
        """``tags/<slug>.html`` for each tag (by its case-folded name), clear of note URLs."""
        urls: dict[str, str] = {}
        taken = set(self.taken)
        for tag in sorted({_key(tag) for tag in tags}):
            stem = f"{TAGS_DIR}/{tag_slug(tag)}"
            url, counter = f"{stem}.html", 1
            while _key(url) in taken:
                url, counter = f"{stem}-{counter}.html", counter + 1
            taken.add(_key(url))
            urls[tag] = url
        return urls

    def is_note(self, rel: str) -> bool:
        return rel in self._note_set

    def url(self, rel: str) -> str:
        return self.urls[rel]

    def resolve(self, target: str, source: str) -> Resolved | None:
        """The file ``[[target]]`` written in note ``source`` links to, or None when broken."""
        target = target.strip().replace("\\", "/")
        if not target:
            return None
        folder = posixpath.dirname(source)
        if target.startswith(("./", "../")):
            joined = posixpath.normpath(posixpath.join(folder, target))
            found = self._exact(joined)
            return found
        target = target.lstrip("/")
        if "/" in target:
            found = self._exact(target)
            if found is not None:
                return found
        name = target.rsplit("/", 1)[-1]
        candidates = self._by_name.get(_key(name), [])
        if "/" in target:
            suffix = _key("/" + target)
            candidates = [
                rel
                for rel in candidates
                if _key("/" + rel).endswith(suffix) or _key("/" + rel[:-3]).endswith(suffix)
            ]
        if candidates:
            best = min(
                dict.fromkeys(candidates),
                key=lambda rel: (posixpath.dirname(rel) != folder, rel.count("/"), len(rel), rel),
            )
            return Resolved(best, self.is_note(best))
        alias = self._aliases.get(_key(target))
        if alias is not None:
            return Resolved(alias, True)
        return None

    def _exact(self, path: str) -> Resolved | None:
        for candidate in (path, f"{path}.md"):
            rel = self._by_key.get(_key(candidate))
            if rel is not None:
                return Resolved(rel, self.is_note(rel))
        return None


@lru_cache(maxsize=65536)
def _relative(from_url: str, to_url: str) -> str:
    if from_url == to_url:
        return to_url.rsplit("/", 1)[-1]
    source = from_url.split("/")[:-1]
    target = to_url.split("/")
    common = 0
    while common < len(source) and common < len(target) - 1 and source[common] == target[common]:
        common += 1
    parts = [".."] * (len(source) - common) + target[common:]
    return quote("/".join(parts), safe="/-_.~")


def href(from_url: str, to_url: str, fragment: str | None = None) -> str:
    """A relative, percent-encoded link from one site page to another (works from file://)."""
    encoded = _relative(from_url, to_url) if to_url else ""
    if fragment:
        encoded += "#" + quote(fragment, safe="-_.~^")
    return encoded


def root_prefix(url: str) -> str:
    """``../`` for each folder between a page and the site root."""
    return "../" * url.count("/")


def is_excluded(rel: str, exclude: Sequence[str]) -> bool:
    """Whether the configuration's ``exclude`` globs leave the vault file ``rel`` out (as ``check``)."""
    return any(fnmatch.fnmatch(rel, pattern) for pattern in exclude)


def scan_attachments(root: Path, skip: Iterable[Path] = ()) -> list[str]:
    """Non-Markdown files of a vault (no dot-folders, nothing inside ``skip``), in path order.

    Symlinks are not followed, so nothing outside the vault is ever copied into a site.
    """
    skipped = {os.path.realpath(path) for path in skip}
    found: list[str] = []
    for directory, folders, files in os.walk(root):
        folders[:] = sorted(
            name
            for name in folders
            if not name.startswith(".") and os.path.realpath(os.path.join(directory, name)) not in skipped
        )
        for name in files:
            path = Path(directory) / name
            if name.startswith(".") or name.lower().endswith(".md") or path.is_symlink():
                continue
            found.append(path.relative_to(root).as_posix())
    return sorted(found)
