"""What of a note may reach a page as markup: the HTML and MathML sanitisers SECURITY.md relies on.

Raw HTML goes through an nh3 allowlist (:func:`sanitize_html`, :func:`sanitize_in_note`), math is
serialised here element by element (:func:`math_html`), and :func:`unsafe_url` names the URLs no
link may carry. Everything else the site writes from a note is escaped where it is written.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from functools import lru_cache
from typing import Literal

import nh3

escape = html.escape

UrlKind = Literal["link", "image"]
"""What a URL is for: a link's ``href`` or the ``src`` of an image (or audio, video)."""

# Raw HTML in notes: what Obsidian users write by hand, nothing that runs.
ALLOWED_TAGS = frozenset(
    {
        "a", "abbr", "b", "blockquote", "br", "center", "cite", "code", "dd", "del", "details",
        "div", "dl", "dt", "em", "figcaption", "figure", "font", "h1", "h2", "h3", "h4", "h5", "h6",
        "hr", "i", "img", "ins", "kbd", "li", "mark", "ol", "p", "pre", "q", "s", "samp", "small",
        "span", "strong", "sub", "summary", "sup", "table", "tbody", "td", "tfoot", "th", "thead",
        "tr", "u", "ul", "var", "video", "audio", "source",
    }
)  # fmt: skip
_GENERIC_ATTRIBUTES = {"class", "id", "title", "lang", "dir", "align", "style", "color"}
ALLOWED_ATTRIBUTES = {
    "*": _GENERIC_ATTRIBUTES,
    "a": {"href", "name"},
    "img": {"src", "alt", "width", "height"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan"},
    "ol": {"start"},
    "details": {"open"},
    "video": {"src", "poster", "controls", "width", "height", "loop", "muted", "playsinline", "preload"},
    "audio": {"src", "controls", "loop", "muted", "preload"},
    "source": {"src", "type"},
}
_SAFE_CSS = frozenset(
    {"color", "background-color", "font-weight", "font-style", "text-align", "text-decoration",
     "font-size", "width", "height", "max-width", "margin", "padding", "border"}
)  # fmt: skip


MAX_SANITIZED_TAGS = 5_000
"""nh3's cost grows with the square of nesting depth; past this many tags a fragment is shown as
text (escaped, so still safe) instead of being cleaned: a hostile note cannot stall a build."""


def _clean(fragment: str, rewrite: Callable[[str, str, str], str | None] | None = None) -> str:
    if fragment.count("<") > MAX_SANITIZED_TAGS:
        return escape(fragment)
    return nh3.clean(
        fragment,
        tags=set(ALLOWED_TAGS),
        attributes={key: set(value) for key, value in ALLOWED_ATTRIBUTES.items()},
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer",
        filter_style_properties=set(_SAFE_CSS),
        strip_comments=True,
        attribute_filter=rewrite,
    )


@lru_cache(maxsize=4096)
def sanitize_html(fragment: str) -> str:
    """Raw HTML with nothing that runs (URLs kept as written)."""
    return _clean(fragment)


_VAULT_URL_ATTRIBUTES = frozenset({"src", "href", "poster"})
_SCHEME_OR_HOST = re.compile(r"^([a-z][a-z0-9+.-]*:|//)", re.IGNORECASE)
_MAYBE_VAULT_URL = re.compile(r"\b(src|href|poster)\s*=", re.IGNORECASE)


def sanitize_in_note(fragment: str, resolve: Callable[[str, UrlKind], str | None]) -> str:
    """Raw HTML cleaned, its relative URLs replaced by what ``resolve`` (the page's linker) gives.

    nh3 checks URL schemes before ``attribute_filter`` runs, so the filter only ever replaces a
    relative URL that nh3 kept by the site URL the linker gives for it. What the linker
    withholds (an active attachment, a private note) or cannot find in the vault loses the
    attribute: an ``<a>`` becomes text, an ``<img>`` its alt text. The linker warns about both.
    """
    if not _MAYBE_VAULT_URL.search(fragment):
        return sanitize_html(fragment)

    def rewrite(element: str, attribute: str, value: str) -> str | None:
        if attribute not in _VAULT_URL_ATTRIBUTES or not value or value.startswith("#"):
            return value
        if _SCHEME_OR_HOST.match(value):
            return value  # http(s) or mailto: nh3 allowed it
        url = resolve(value, "link" if element == "a" else "image")
        if url is None:
            return None
        if unsafe_url(url) and not (element == "img" and url.lower().startswith("data:image/")):
            return None  # a lone page's data:image/... only as an image, never as a link
        return url

    return _clean(fragment, rewrite)


_SCRIPT_SCHEME = re.compile(r"^(javascript|vbscript|data|file):", re.IGNORECASE)


def unsafe_url(url: str) -> bool:
    """A URL that would run script or show a page made of the note's own text (``data:``)."""
    return bool(_SCRIPT_SCHEME.match(re.sub(r"[\x00-\x20\x7f]", "", url)))


# MathML that latex2mathml writes. Not annotation-xml (its content may be HTML) nor maction.
_MATHML_TAGS = frozenset(
    {
        "math", "menclose", "merror", "mfenced", "mfrac", "mi", "mlabeledtr", "mmultiscripts", "mn",
        "mo", "mover", "mpadded", "mphantom", "mprescripts", "mroot", "mrow", "ms", "mspace", "msqrt",
        "mstyle", "msub", "msubsup", "msup", "mtable", "mtd", "mtext", "mtr", "munder", "munderover",
        "none", "semantics", "annotation",
    }
)  # fmt: skip
# Presentation attributes only: no href (\href), style (\style), class (\class) or id.
_MATHML_ATTRIBUTES = frozenset(
    {
        "xmlns", "display", "accent", "accentunder", "align", "close", "columnalign", "columnlines",
        "columnspacing", "columnspan", "depth", "displaystyle", "encoding", "fence", "form", "frame",
        "framespacing", "height", "largeop", "linebreak", "linethickness", "lspace", "mathbackground",
        "mathcolor", "mathsize", "mathvariant", "maxsize", "minsize", "movablelimits", "notation",
        "open", "rowalign", "rowlines", "rowspacing", "rowspan", "rspace", "scriptlevel", "separator",
        "separators", "stretchy", "symmetric", "voffset", "width",
    }
)  # fmt: skip
_MATH_CHARREF = re.compile(r"&amp;(#[0-9]+;|#x[0-9a-fA-F]+;)")


@lru_cache(maxsize=4096)
def math_html(latex: str, display: bool) -> str:
    """MathML for a formula, or the escaped source marked as an error when it does not convert.

    latex2mathml's own ``convert`` unescapes its whole output, so ``\\text{<img onerror=...>}``
    would come out as markup (and ``<mtext>`` holds HTML): the tree is serialised here instead,
    escaped, keeping only the character references latex2mathml writes for symbols, and only
    MathML elements and presentation attributes.
    """
    from xml.etree.ElementTree import tostring

    from latex2mathml.converter import convert_to_element

    try:
        math = convert_to_element(latex, display="block" if display else "inline")
        for node in math.iter():
            if node.tag not in _MATHML_TAGS:
                raise ValueError(f"unexpected MathML element {node.tag!r}")
            for name in [name for name in node.attrib if name not in _MATHML_ATTRIBUTES]:
                del node.attrib[name]
        return _MATH_CHARREF.sub(r"&\1", tostring(math, encoding="unicode"))
    except Exception:
        tag = "pre" if display else "code"
        return f'<{tag} class="math-error" title="formula could not be rendered">{escape(latex)}</{tag}>'
