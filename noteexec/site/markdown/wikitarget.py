"""What a ``[[wikilink]]`` or ``![[embed]]`` says, read apart from any vault."""

from __future__ import annotations


class WikiTarget:
    """``note#heading|alias`` or ``note#^block|alias`` as written inside ``[[...]]``."""

    __slots__ = ("alias", "block", "embed", "heading", "note", "raw")

    def __init__(self, raw: str, embed: bool) -> None:
        self.raw = raw
        self.embed = embed
        target, _, alias = raw.partition("|")
        target = target.rstrip("\\")  # `[[a\|b]]` inside a table cell
        note, _, fragment = target.partition("#")
        self.note = note.strip()
        self.alias = alias.strip() or None
        fragment = fragment.strip()
        self.block: str | None = None
        self.heading: str | None = None
        if fragment.startswith("^"):
            self.block = fragment[1:]
        elif fragment:
            self.heading = fragment.split("#")[-1].strip()  # [[note#H1#H2]] links to H2

    @property
    def label(self) -> str:
        """What the link shows when it has no alias, like Obsidian."""
        if self.alias and not self.embed:
            return self.alias
        if not self.note:
            return self.heading or (f"^{self.block}" if self.block else "")
        name = self.note.rsplit("/", 1)[-1]
        if name.lower().endswith(".md"):
            name = name[:-3]
        if self.heading:
            return f"{name} > {self.heading}"
        return name
