"""The site's icons: the project's own simple line drawings on a 24×24 grid.

Every path here was drawn for noteexec from circles, lines and arcs; none is copied from an
icon set. They take the text colour (``stroke="currentColor"``), so a callout's icon follows
its ``--callout-color`` and themes can recolour them.
"""

from __future__ import annotations

_OPEN = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" width="18" height="18" fill="none" '
    'stroke="currentColor" stroke-width="2" stroke-linecap="round" stroke-linejoin="round" '
    'class="svg-icon {name}" aria-hidden="true">'
)


def _svg(name: str, body: str) -> str:
    return _OPEN.format(name=name) + body + "</svg>"


_CALLOUT_DRAWINGS = {
    # a pencil: a slanted body, its tip, the line where the ferrule meets the wood
    "note": '<path d="M4 20l1.2-4.8L15.8 4.6a1.7 1.7 0 0 1 2.4 0l1.2 1.2a1.7 1.7 0 0 1 0 2.4'
    'L8.8 18.8z"/><path d="M13.8 6.6l3.6 3.6"/>',
    # a clipboard with three lines of text
    "abstract": '<rect x="5" y="4.5" width="14" height="16.5" rx="2"/><path d="M9 4.5V3h6v1.5"/>'
    '<path d="M8.5 10h7M8.5 13.5h7M8.5 17h4"/>',
    # a circled "i"
    "info": '<circle cx="12" cy="12" r="9"/><path d="M12 11v5.5"/><path d="M12 7.6v.1"/>',
    # a circled tick
    "todo": '<circle cx="12" cy="12" r="9"/><path d="M8 12.4l2.8 2.8L16.2 9.4"/>',
    # a flame: one outer tongue and a small inner one
    "tip": '<path d="M12 2.8c.6 3.6 5.6 5.6 5.6 10.8a5.6 5.6 0 0 1-11.2 0c0-2.6 1.4-4 2.2-5.6'
    '.9 1.1 1.3 2.4 1.3 3.7 1.3-1.9 2.4-4.9 2.1-8.9z"/><path d="M12 20v-3"/>',
    # a plain tick
    "success": '<path d="M4.5 12.8l4.6 4.6L19.5 7"/>',
    # a circled question mark
    "question": '<circle cx="12" cy="12" r="9"/><path d="M9.4 9.6a2.7 2.7 0 1 1 3.8 2.5'
    'c-.8.4-1.2 1-1.2 1.8v.4"/><path d="M12 17.2v.1"/>',
    # a warning triangle with an exclamation mark
    "warning": '<path d="M10.3 4.2L2.8 17.6A2 2 0 0 0 4.5 20.5h15a2 2 0 0 0 1.7-2.9L13.7 4.2'
    'a2 2 0 0 0-3.4 0z"/><path d="M12 9.5v4.2"/><path d="M12 17.1v.1"/>',
    # a cross
    "failure": '<path d="M6.5 6.5l11 11M17.5 6.5l-11 11"/>',
    # a lightning bolt
    "danger": '<path d="M13.2 2.5L5 13.6h6.2l-1.4 7.9L19 10.2h-6.3z"/>',
    # a beetle: round body, a seam, two feelers and three legs a side
    "bug": '<ellipse cx="12" cy="13.8" rx="4.8" ry="6.2"/><path d="M12 8v11.8"/>'
    '<path d="M9.8 6.4L8 3.8M14.2 6.4L16 3.8"/><path d="M7.2 11H4M7.2 14.6H3.6M7.8 18l-2.6 2'
    'M16.8 11H20M16.8 14.6h3.6M16.2 18l2.6 2"/>',
    # a bulleted list
    "example": '<path d="M9.5 6.5H20M9.5 12H20M9.5 17.5H20"/><circle cx="4.8" cy="6.5" r=".9"/>'
    '<circle cx="4.8" cy="12" r=".9"/><circle cx="4.8" cy="17.5" r=".9"/>',
    # two closing quotation marks
    "quote": '<path d="M4 18c2.9-.3 5-2.4 5-5.6V7H4.2v5.2H9"/><path d="M14 18c2.9-.3 5-2.4 5-5.6'
    'V7h-4.8v5.2H19"/>',
}

CALLOUT_ICONS = {name: _svg(f"callout-icon-{name}", body) for name, body in _CALLOUT_DRAWINGS.items()}


def callout_icon(kind: str) -> str:
    return CALLOUT_ICONS.get(kind, CALLOUT_ICONS["note"])


FOLD = _svg("callout-fold-icon", '<path d="M6 9.5l6 6 6-6"/>')
SEARCH = _svg("search-icon", '<circle cx="10.5" cy="10.5" r="6.5"/><path d="M15.5 15.5L20.5 20.5"/>')
SUN = _svg(
    "sun-icon",
    '<circle cx="12" cy="12" r="4"/><path d="M12 2.5v2M12 19.5v2M2.5 12h2M19.5 12h2M5.3 5.3l1.4 1.4'
    'M17.3 17.3l1.4 1.4M5.3 18.7l1.4-1.4M17.3 6.7l1.4-1.4"/>',
)
MOON = _svg("moon-icon", '<path d="M19.5 14.6A8 8 0 0 1 9.4 4.5a8 8 0 1 0 10.1 10.1z"/>')
MENU = _svg("menu-icon", '<path d="M4 6.5h16M4 12h16M4 17.5h16"/>')
GRAPH = _svg(
    "graph-icon",
    '<circle cx="6" cy="6" r="2.5"/><circle cx="18" cy="6" r="2.5"/><circle cx="12" cy="18" r="2.5"/>'
    '<path d="M7.6 8l3.2 7.8M16.4 8l-3.2 7.8"/>',
)
