"""Which vault attachments a site may publish: only files a browser shows and never runs.

A published file is served from the site's own origin (``file://`` or ``noteexec serve``), so an
HTML, XHTML, XML or SVG file from the vault that a reader opens would run its script with the
site's rights. The rule is an allowlist by extension (a browser picks how to open a file by its
extension, and sniffs a page out of one it does not know); an SVG is published only when it
holds nothing but drawing (:func:`inert_svg`). Everything else is withheld with a reason.
"""

from __future__ import annotations

import posixpath
import re
import xml.parsers.expat
from collections.abc import Callable

from noteexec.site.vault import AUDIO_EXTENSIONS, VIDEO_EXTENSIONS

RASTER_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".bmp": "image/bmp",
    ".avif": "image/avif",
    ".ico": "image/x-icon",
}
"""Images a single page may inline as ``data:image/...``: pixels only, nothing that runs."""
PASSIVE_EXTENSIONS = frozenset(
    {*RASTER_TYPES, *AUDIO_EXTENSIONS, *VIDEO_EXTENSIONS, ".pdf", ".txt", ".csv", ".json"}
)
"""Published as they are: every browser shows these as media, a document or plain text."""
ACTIVE_EXTENSIONS = frozenset(
    {".html", ".htm", ".xhtml", ".xht", ".shtml", ".xml", ".xsl", ".xslt", ".mht", ".mhtml", ".svgz"}
    | {".js", ".mjs", ".css", ".swf", ".wasm"}
)

SVG_NS = "http://www.w3.org/2000/svg"
_ACTIVE_NAMESPACES = frozenset(
    {
        "http://www.w3.org/1999/xhtml",  # <html:script>, <html:iframe> inside a drawing
        "http://www.w3.org/1998/Math/MathML",  # event handlers and links
        "http://www.w3.org/1999/XSL/Transform",
        "http://www.w3.org/2001/XInclude",
        "http://www.w3.org/2001/xml-events",
    }
)
_SVG_ELEMENTS = frozenset(
    {
        "svg", "g", "defs", "title", "desc", "symbol", "use", "switch", "view", "style",
        "path", "rect", "circle", "ellipse", "line", "polyline", "polygon",
        "text", "tspan", "textPath",
        "linearGradient", "radialGradient", "stop", "pattern", "clipPath", "mask", "marker",
        "filter", "feBlend", "feColorMatrix", "feComponentTransfer", "feComposite",
        "feConvolveMatrix", "feDiffuseLighting", "feDisplacementMap", "feDistantLight",
        "feDropShadow", "feFlood", "feFuncA", "feFuncB", "feFuncG", "feFuncR", "feGaussianBlur",
        "feImage", "feMerge", "feMergeNode", "feMorphology", "feOffset", "fePointLight",
        "feSpecularLighting", "feSpotLight", "feTile", "feTurbulence",
    }
)  # fmt: skip
"""Drawing only: no script, foreignObject, a (links), image, animate/set (they can rewrite hrefs)."""
_SCRIPT_URL = re.compile(r"(javascript|vbscript|data)\s*:", re.IGNORECASE)


class _Active(Exception):
    """Raised from the expat handlers at the first thing that could run or load something."""


def inert_svg(data: bytes) -> str | None:
    """None when the SVG is drawing only; else why not (its first active part).

    Parsed as the browser parses an ``.svg`` file: XML. No doctype (entities), no processing
    instruction (``xml-stylesheet`` can load XSLT), SVG drawing elements (others only in
    namespaces browsers give no behaviour), no ``on*`` attribute, links only to ``#fragments``.
    """

    roots: list[str] = []

    def start(name: str, attributes: dict[str, str]) -> None:
        roots.append(name)
        namespace, _, local = name.rpartition(" ")
        if namespace in _ACTIVE_NAMESPACES or (namespace == SVG_NS and local not in _SVG_ELEMENTS):
            raise _Active(f"a <{local}> element")
        if not namespace:
            raise _Active(f"a <{local}> element outside the SVG namespace")
        for attribute, value in attributes.items():
            local_attribute = attribute.rpartition(" ")[2].lower()
            if local_attribute.startswith("on"):
                raise _Active(f"an {local_attribute} attribute")
            if local_attribute == "href" and not value.strip().startswith("#"):
                raise _Active("a link to another file")
            if _SCRIPT_URL.search(value):
                raise _Active("a script URL")

    def refuse(what: str) -> Callable[..., None]:
        def handler(*_: object) -> None:
            raise _Active(what)

        return handler

    parser = xml.parsers.expat.ParserCreate(namespace_separator=" ")
    parser.StartElementHandler = start
    parser.StartDoctypeDeclHandler = refuse("a doctype")
    parser.EntityDeclHandler = refuse("an entity")
    parser.ProcessingInstructionHandler = refuse("a processing instruction")
    try:
        parser.Parse(data, True)
    except _Active as error:
        return str(error)
    except (xml.parsers.expat.ExpatError, ValueError) as error:
        return f"not well-formed XML ({error})"
    if not roots or roots[0] != f"{SVG_NS} svg":
        return "its root is not an SVG <svg> element"
    return None


def withheld(rel: str, read: Callable[[str], bytes]) -> str | None:
    """Why the attachment ``rel`` is not published, or None when it is safe to publish."""
    extension = posixpath.splitext(rel)[1].lower()
    if extension in PASSIVE_EXTENSIONS:
        return None
    if extension == ".svg":
        try:
            why = inert_svg(read(rel))
        except OSError as error:
            return f"cannot be read ({error.strerror or error})"
        return None if why is None else f"an SVG with {why} could run script in the site's origin"
    if extension in ACTIVE_EXTENSIONS:
        return f"a {extension} file could run script or restyle pages in the site's origin"
    return (
        f"a browser could open a {extension or 'extensionless'} file as a page; not a type the site publishes"
    )
