"""Heading ids (CJK kept) and the plain text of inline tokens they and the table of contents
are made from. No markdown-it rules here (see :mod:`.anchors`)."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from markdown_it.token import Token


@dataclass(frozen=True)
class Heading:
    """A heading as the table of contents lists it; ``id`` is its element's."""

    level: int
    text: str
    id: str


def slugify(text: str) -> str:
    """A heading's id: its words, lowercased, joined by ``-``; CJK and other letters are kept."""
    text = unicodedata.normalize("NFC", text).strip().lower()
    text = re.sub(r"[^\w\s-]", "", text)
    text = re.sub(r"[\s_-]+", "-", text).strip("-")
    return text or "section"


def unique_slug(text: str, seen: dict[str, int]) -> str:
    """:func:`slugify`, numbered (``-1``, ``-2``) past the slugs in ``seen``, which it joins."""
    base = slugify(text)
    slug = base
    while slug in seen:
        seen[base] += 1
        slug = f"{base}-{seen[base]}"
    seen[slug] = 0
    return slug


def plain_text(children: Sequence[Token] | None) -> str:
    """What inline tokens read as: a wikilink by its label, a tag with its ``#``, markup dropped."""
    parts: list[str] = []
    for child in children or ():
        if child.type in ("text", "code_inline", "math_inline", "html_inline"):
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            parts.append(" ")
        elif child.type == "wikilink":
            parts.append(child.meta["target"].label)
        elif child.type == "tag":
            parts.append(f"#{child.content}")
        elif child.children:
            parts.append(plain_text(child.children))
    return "".join(parts)
