"""The site's Markdown: CommonMark + GFM bits + Obsidian syntax, rendered to HTML.

The core's :func:`noteexec.markdown.obsidian_plugin` gives ``%%`` comment blocks and callouts;
this module adds what only the site needs:

- ``[[wikilinks]]`` and ``![[embeds]]`` (``wikilink`` tokens; a :class:`Linker` in ``env``
  turns them into HTML, so the parser knows nothing about the vault);
- ``==highlight==`` (``<mark>``), inline ``%%comments%%`` (dropped), inline ``#tags``;
- block ids (``text ^block-id``) and CJK-safe heading ids (``##### 错误场景分析`` gets
  ``id="错误场景分析"``), collected in ``env["headings"]`` for the table of contents;
- callout titles as inline tokens (so a title may hold Markdown) and Obsidian's callout DOM;
- math rendered to MathML at build time, raw HTML through an allowlist sanitiser.

Every renderer escapes what it writes; nothing from a note reaches the page unescaped.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Callable, Sequence
from functools import cache, lru_cache
from typing import Any, Protocol
from urllib.parse import quote

import nh3
from markdown_it import MarkdownIt
from markdown_it.rules_core import StateCore
from markdown_it.rules_inline import StateInline
from markdown_it.token import Token
from mdit_py_plugins.dollarmath import dollarmath_plugin
from mdit_py_plugins.footnote import footnote_plugin
from mdit_py_plugins.front_matter import front_matter_plugin
from mdit_py_plugins.tasklists import tasklists_plugin

from noteexec.markdown import obsidian_plugin
from noteexec.model import CalloutHeader
from noteexec.site import icons

escape = html.escape


# --------------------------------------------------------------------------------------------
# Ids


def slugify(text: str) -> str:
    """A heading's id: its words, lowercased, joined by ``-``; CJK and other letters are kept."""
    text = unicodedata.normalize("NFC", text).strip().lower()
    text = re.sub(r"[^\w\s-]", "", text)
    text = re.sub(r"[\s_-]+", "-", text).strip("-")
    return text or "section"


def unique_slug(text: str, env: dict[str, Any]) -> str:
    seen: dict[str, int] = env.setdefault("slugs", {})
    base = slugify(text)
    slug = base
    while slug in seen:
        seen[base] += 1
        slug = f"{base}-{seen[base]}"
    seen[slug] = 0
    return slug


# --------------------------------------------------------------------------------------------
# Wikilinks


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


MAX_WIKILINK = 4096
"""The longest ``[[target#heading|alias]]`` read as a link."""


def _wikilink(state: StateInline, silent: bool) -> bool:
    start = state.pos
    embed = state.src.startswith("![[", start)
    opening = start + (3 if embed else 2)
    if not embed and not state.src.startswith("[[", start):
        return False
    close = state.src.find("]]", opening, opening + MAX_WIKILINK + 2)  # unbounded: quadratic on "[[[[…"
    if close < 0 or close > state.posMax:
        return False
    raw = state.src[opening:close]
    if not raw.strip() or "\n" in raw or "[[" in raw:
        return False
    if not silent:
        token = state.push("wikilink", "", 0)
        token.content = raw
        token.meta = {"target": WikiTarget(raw, embed)}
    state.pos = close + 2
    return True


# --------------------------------------------------------------------------------------------
# ==highlight==, %%comments%%, #tags


def _highlight(state: StateInline, silent: bool) -> bool:
    start = state.pos
    if not state.src.startswith("==", start) or state.src.startswith("===", start):
        return False
    end = state.src.find("==", start + 2)
    if end < 0 or end > state.posMax - 2 or end == start + 2:
        return False
    inner = state.src[start + 2 : end]
    if inner[0].isspace() or inner[-1].isspace():
        return False
    if not silent:
        state.push("mark_open", "mark", 1)
        old_max = state.posMax
        state.pos, state.posMax = start + 2, end
        state.md.inline.tokenize(state)
        state.posMax = old_max
        state.push("mark_close", "mark", -1)
    state.pos = end + 2
    return True


def _inline_comment(state: StateInline, silent: bool) -> bool:
    start = state.pos
    if not state.src.startswith("%%", start):
        return False
    end = state.src.find("%%", start + 2)
    # An unclosed comment hides the rest of its paragraph (Obsidian hides to the end of the note).
    state.pos = state.posMax if end < 0 or end + 2 > state.posMax else end + 2
    return True


_TAG = re.compile(r"#([\w/-]+)")
_TAG_BEFORE = frozenset(" \t\n([{'\"，。、；：（")


def _tag(state: StateInline, silent: bool) -> bool:
    start = state.pos
    if state.src[start] != "#" or (start > 0 and state.src[start - 1] not in _TAG_BEFORE):
        return False
    match = _TAG.match(state.src, start, state.posMax)
    if match is None:
        return False
    name = match[1].rstrip("/-_")
    if not name or name.replace("/", "").isdigit():
        return False
    if not silent:
        token = state.push("tag", "", 0)
        token.content = name
        state.env.setdefault("tags", []).append(name)
    state.pos = start + 1 + len(name)
    return True


# --------------------------------------------------------------------------------------------
# Core rules: callout titles, lines, block ids, heading ids


_CALLOUT_NBSP = re.compile(r"^(\s*\[![^\]\n]*\][+-]?)\u00a0+")


def _callout_no_break_space(state: StateCore) -> None:
    """``> [!tip]\u00a0Title`` (a no-break space, as some editors and IMEs type) is a callout in
    Obsidian: the space becomes a plain one before callouts are found."""
    tokens = state.tokens
    for index, token in enumerate(tokens[:-2]):
        if token.type == "blockquote_open" and tokens[index + 2].type == "inline":
            inline = tokens[index + 2]
            inline.content = _CALLOUT_NBSP.sub(r"\1 ", inline.content, count=1)


def _callout_titles(state: StateCore) -> None:
    """Give each callout a title inline token so its title is Markdown like the rest."""
    tokens = state.tokens
    index = 0
    while index < len(tokens):
        token = tokens[index]
        if token.type == "callout_open":
            header: CalloutHeader = token.meta["callout"]
            line = token.map[0] if token.map else 0
            title_open = Token("callout_title_open", "div", 1, level=token.level + 1)
            title_open.meta = {"callout": header}
            inline = Token("inline", "", 0, level=token.level + 2, content=header.display_title)
            inline.map = [line, line + 1]
            inline.children = []
            title_close = Token("callout_title_close", "div", -1, level=token.level + 1)
            following = tokens[index + 1] if index + 1 < len(tokens) else None
            title_close.meta = {
                "empty": following is not None
                and following.type == "callout_close"
                and following.level == token.level
            }
            tokens[index + 1 : index + 1] = [title_open, inline, title_close]
            index += 3
        index += 1


def _lines_and_block_ids(state: StateCore) -> None:
    """Give wikilinks their file line; move a trailing ``^block-id`` to its block's id."""
    tokens = state.tokens
    for index, token in enumerate(tokens):
        if token.type != "inline" or not token.children:
            continue
        if token.map is not None:
            line = token.map[0] + 1
            for child in token.children:
                if child.type in ("softbreak", "hardbreak"):
                    line += 1
                elif child.type in ("wikilink", "tag", "link_open", "image", "html_inline"):
                    child.meta["line"] = line
        _unwrap_block_embed(tokens, index)
        last = token.children[-1]
        if last.type == "text":
            match = _BLOCK_ID.search(last.content)
            if match and index > 0:
                owner = tokens[index - 1]
                if owner.hidden and index > 1:
                    owner = tokens[index - 2]  # tight list: the hidden paragraph's list item
                if owner.nesting == 1:
                    last.content = last.content[: match.start()]
                    owner.attrSet("id", f"^{match[1]}")
                    state.env.setdefault("block_ids", []).append(match[1])


_INLINE_EMBED = re.compile(
    r"\.(png|jpe?g|gif|svg|webp|bmp|avif|ico|mp3|wav|m4a|ogg|flac|webm|mp4|mov|mkv|ogv)$", re.IGNORECASE
)


def _unwrap_block_embed(tokens: list[Token], index: int) -> None:
    """A paragraph that is just ``![[note]]`` becomes the embed itself (a ``<div>`` in no ``<p>``)."""
    children = [
        child
        for child in tokens[index].children or ()
        if not (child.type == "text" and not child.content.strip())
    ]
    if len(children) != 1 or children[0].type != "wikilink":
        return
    target: WikiTarget = children[0].meta["target"]
    if not target.embed or _INLINE_EMBED.search(target.note):
        return
    opening, closing = tokens[index - 1], tokens[index + 1] if index + 1 < len(tokens) else None
    if opening.type == "paragraph_open" and closing is not None and closing.type == "paragraph_close":
        opening.hidden = closing.hidden = True


_BLOCK_ID = re.compile(r"(?:^|\s)\^([A-Za-z0-9][A-Za-z0-9-]*)\s*$")


def plain_text(children: Sequence[Token] | None) -> str:
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


def _heading_ids(state: StateCore) -> None:
    tokens = state.tokens
    headings = state.env.setdefault("headings", [])
    for index, token in enumerate(tokens):
        if token.type == "heading_open" and index + 1 < len(tokens):
            text = plain_text(tokens[index + 1].children).strip()
            slug = unique_slug(text, state.env)
            token.attrSet("id", slug)
            headings.append((int(token.tag[1]), text, slug))


# --------------------------------------------------------------------------------------------
# Rendering


class Linker(Protocol):
    """What the renderer asks the site about links; a page supplies one in ``env["linker"]``."""

    def wikilink(self, target: WikiTarget, line: int | None, env: dict[str, Any]) -> str: ...

    def embed(self, target: WikiTarget, line: int | None, env: dict[str, Any]) -> str: ...

    def tag_href(self, tag: str, env: dict[str, Any]) -> str: ...

    def url(self, href: str, kind: str, line: int | None, env: dict[str, Any]) -> str | None:
        """A Markdown link's (kind ``link``) or image's (``image``) URL, rewritten for the site;
        None: what it points at is not published (a private note, a withheld attachment)."""
        ...

    def html_url(self, href: str, kind: str, line: int | None, env: dict[str, Any]) -> str | None:
        """A relative ``src``/``href`` of raw HTML, rewritten like :meth:`url`; None also when it
        is not in the vault (raw HTML keeps no URL the site cannot vouch for)."""
        ...


class PlainLinker:
    """Links as if every note were ``name.html`` next to the page: for tests and lone pages."""

    def wikilink(self, target: WikiTarget, line: int | None, env: dict[str, Any]) -> str:
        href = quote(f"{target.note}.html", safe="/-_.~") if target.note else ""
        if target.heading:
            href += f"#{quote(slugify(target.heading), safe='-_.~')}"
        elif target.block:
            href += f"#^{quote(target.block, safe='-_.~')}"
        return (
            f'<a class="internal-link" data-href="{escape(target.raw)}" '
            f'href="{escape(href)}">{escape(target.label)}</a>'
        )

    def embed(self, target: WikiTarget, line: int | None, env: dict[str, Any]) -> str:
        return f'<span class="internal-embed" data-src="{escape(target.raw)}">{escape(target.label)}</span>'

    def tag_href(self, tag: str, env: dict[str, Any]) -> str:
        return f"tags/{tag_slug(tag)}.html"

    def url(self, href: str, kind: str, line: int | None, env: dict[str, Any]) -> str:
        return href

    def html_url(self, href: str, kind: str, line: int | None, env: dict[str, Any]) -> str:
        return href


def tag_slug(tag: str) -> str:
    """A tag page's file name: Obsidian tags are case-insensitive, nested with ``/``."""
    text = unicodedata.normalize("NFC", tag).lower()
    return re.sub(r"[^\w-]+", "_", text.replace("/", "__"))


def _linker(env: dict[str, Any]) -> Linker:
    return env.get("linker") or PlainLinker()


def _render_wikilink(self: Any, tokens: list[Token], idx: int, options: Any, env: dict[str, Any]) -> str:
    token = tokens[idx]
    target: WikiTarget = token.meta["target"]
    line = token.meta.get("line")
    if target.embed:
        return _linker(env).embed(target, line, env)
    return _linker(env).wikilink(target, line, env)


def _render_tag(self: Any, tokens: list[Token], idx: int, options: Any, env: dict[str, Any]) -> str:
    name = tokens[idx].content
    href = _linker(env).tag_href(name, env)
    return f'<a class="tag" href="{escape(href)}">#{escape(name)}</a>'


def _render_callout_open(self: Any, tokens: list[Token], idx: int, options: Any, env: dict[str, Any]) -> str:
    """A foldable callout is a ``<details>`` (it folds without JavaScript), others a ``<div>``."""
    header: CalloutHeader = tokens[idx].meta["callout"]
    classes = ["callout"]
    if header.fold:
        classes.append("is-collapsible")
    if header.fold == "-":
        classes.append("is-collapsed")
    block_id = tokens[idx].attrGet("id")
    id_attr = f' id="{escape(str(block_id))}"' if block_id else ""
    element = "details" if header.fold else "div"
    open_attr = " open" if header.fold == "+" else ""
    return (
        f'<{element} class="{" ".join(classes)}"{id_attr} data-callout="{escape(header.raw_type.lower())}" '
        f'data-callout-fold="{escape(header.fold or "")}" '
        f'data-callout-metadata="{escape(header.metadata or "")}"{open_attr}>\n'
    )


def _render_callout_title_open(
    self: Any, tokens: list[Token], idx: int, options: Any, env: dict[str, Any]
) -> str:
    header: CalloutHeader = tokens[idx].meta["callout"]
    kind = header.kind if header.known else "note"
    element = "summary" if header.fold else "div"
    return (
        f'<{element} class="callout-title">'
        f'<div class="callout-icon">{icons.callout_icon(kind)}</div>'
        f'<div class="callout-title-inner">'
    )


def _render_callout_title_close(
    self: Any, tokens: list[Token], idx: int, options: Any, env: dict[str, Any]
) -> str:
    opening = tokens[idx - 2] if idx >= 2 else None
    foldable = opening is not None and opening.type == "callout_title_open" and opening.meta["callout"].fold
    fold = f'<div class="callout-fold">{icons.FOLD}</div></summary>' if foldable else "</div>"
    content = "" if tokens[idx].meta.get("empty") else '\n<div class="callout-content">\n'
    return f"</div>{fold}{content}"


def _callout_opening(tokens: list[Token], idx: int) -> Token:
    """The ``callout_open`` that the ``callout_close`` at ``idx`` ends."""
    level = tokens[idx].level
    return next(
        token for token in reversed(tokens[:idx]) if token.type == "callout_open" and token.level == level
    )


def _render_callout_close(self: Any, tokens: list[Token], idx: int, options: Any, env: dict[str, Any]) -> str:
    previous = tokens[idx - 1]
    empty = previous.type == "callout_title_close" and previous.meta.get("empty")
    element = "details" if _callout_opening(tokens, idx).meta["callout"].fold else "div"
    return f"</{element}>\n" if empty else f"</div>\n</{element}>\n"


def _render_nothing(self: Any, tokens: list[Token], idx: int, options: Any, env: dict[str, Any]) -> str:
    return ""


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


def _render_math_inline(self: Any, tokens: list[Token], idx: int, options: Any, env: dict[str, Any]) -> str:
    return f'<span class="math math-inline">{math_html(tokens[idx].content.strip(), False)}</span>'


def _render_math_block(self: Any, tokens: list[Token], idx: int, options: Any, env: dict[str, Any]) -> str:
    return f'<div class="math math-block">{math_html(tokens[idx].content.strip(), True)}</div>\n'


def _render_math_inline_double(
    self: Any, tokens: list[Token], idx: int, options: Any, env: dict[str, Any]
) -> str:
    """``$$…$$`` is display math in Obsidian even inside a paragraph (``$$`` on the line after
    text is such a case): a block-level span, since a paragraph cannot hold a ``<div>``."""
    return f'<span class="math math-block">{math_html(tokens[idx].content.strip(), True)}</span>'


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


def sanitize_in_note(fragment: str, env: dict[str, Any], line: int | None) -> str:
    """Raw HTML cleaned, its relative URLs resolved in the vault like Markdown links.

    nh3 checks URL schemes before ``attribute_filter`` runs, so the filter only ever replaces a
    relative URL that nh3 kept by the site URL the linker gives for it. What the linker
    withholds (an active attachment, a private note) or cannot find in the vault loses the
    attribute: an ``<a>`` becomes text, an ``<img>`` its alt text. The linker warns about both.
    """
    if not _MAYBE_VAULT_URL.search(fragment):
        return sanitize_html(fragment)
    linker = _linker(env)

    def rewrite(element: str, attribute: str, value: str) -> str | None:
        if attribute not in _VAULT_URL_ATTRIBUTES or not value or value.startswith("#"):
            return value
        if _SCHEME_OR_HOST.match(value):
            return value  # http(s) or mailto: nh3 allowed it
        kind = "link" if element == "a" else "image"
        url = linker.html_url(value, kind, line, env)
        if url is None:
            return None
        if _inert_url(url) and not (element == "img" and url.lower().startswith("data:image/")):
            return None  # a lone page's data:image/... only as an image, never as a link
        return url

    return _clean(fragment, rewrite)


_TASK_CHECKBOXES = frozenset(
    {  # what the tasklists plugin writes; a note's own <input> is dropped like any other
        '<input class="task-list-item-checkbox" disabled="disabled" type="checkbox">',
        '<input class="task-list-item-checkbox" checked="checked" disabled="disabled" type="checkbox">',
    }
)
_TAG_NAME = re.compile(r"^<\s*(/?)\s*([A-Za-z][A-Za-z0-9-]*)")


_VOID_TAGS = frozenset({"br", "hr", "img", "source"})


def _balance_inline_html(state: StateCore) -> None:
    """Keep a paragraph's raw tags inside it: close what it leaves open, drop closing tags that
    match nothing it opened.

    Inline HTML is cleaned one tag at a time, so ``<a id=x>`` alone would stay open, and the
    HTML parser would carry it over the rest of the page (the sidebars included); a stray
    ``</div>`` would close one of the page's own elements.
    """
    for token in state.tokens:
        if token.type != "inline" or not token.children:
            continue
        open_tags: list[str] = []
        kept: list[Token] = []
        for child in token.children:
            match = _TAG_NAME.match(child.content) if child.type == "html_inline" else None
            name = match[2].lower() if match else ""
            if match is None or name not in ALLOWED_TAGS or name in _VOID_TAGS:
                kept.append(child)
            elif match[1]:
                if name in open_tags:
                    while open_tags:
                        top = open_tags.pop()
                        kept.append(_closing(top))
                        if top == name:
                            break
            else:
                kept.append(child)
                if not child.content.rstrip().endswith("/>"):
                    open_tags.append(name)
        kept.extend(_closing(name) for name in reversed(open_tags))
        token.children = kept


_TASK_STATUS = re.compile(r"\[([^\s\]xX])\] ")


def _task_statuses(state: StateCore) -> None:
    """Obsidian's other task statuses (``[/]``, ``[-]``, ``[?]``, …; the tasklists plugin knows
    only ``[ ]`` and ``[x]``): a ticked checkbox with ``data-task``, as themes expect."""
    tokens = state.tokens
    for index, token in enumerate(tokens):
        if token.type != "inline" or index < 2 or tokens[index - 2].type != "list_item_open":
            continue
        first = token.children[0] if token.children else None
        match = _TASK_STATUS.match(first.content) if first is not None and first.type == "text" else None
        if first is None or match is None:
            continue
        first.content = first.content[match.end() :]
        checkbox = Token("task_checkbox", "input", 0)
        checkbox.meta = {"task": match[1]}
        token.children.insert(0, checkbox)
        item = tokens[index - 2]
        item.attrSet("class", "task-list-item is-checked")
        item.attrSet("data-task", match[1])
        opening = next(
            (t for t in reversed(tokens[: index - 2]) if t.nesting == 1 and t.level == item.level - 1), None
        )
        if opening is not None:
            opening.attrSet("class", "contains-task-list")


def _render_task_checkbox(self: Any, tokens: list[Token], idx: int, options: Any, env: dict[str, Any]) -> str:
    task = escape(tokens[idx].meta["task"])
    return f'<input class="task-list-item-checkbox" type="checkbox" disabled checked data-task="{task}"> '


def _closing(name: str) -> Token:
    token = Token("html_inline", "", 0)
    token.content = f"</{name}>"
    return token


def _render_html_block(self: Any, tokens: list[Token], idx: int, options: Any, env: dict[str, Any]) -> str:
    token = tokens[idx]
    return sanitize_in_note(token.content, env, token.map[0] + 1 if token.map else None)


def _render_html_inline(self: Any, tokens: list[Token], idx: int, options: Any, env: dict[str, Any]) -> str:
    """One tag at a time: closing tags of allowed elements pass, opening tags are cleaned alone."""
    content = tokens[idx].content
    if content in _TASK_CHECKBOXES:
        return content
    match = _TAG_NAME.match(content)
    if match is None:
        return ""  # comments, declarations, processing instructions
    name = match[2].lower()
    if name not in ALLOWED_TAGS:
        return ""
    if match[1]:
        return f"</{name}>"
    cleaned = sanitize_in_note(content, env, tokens[idx].meta.get("line"))
    return cleaned.removesuffix(f"</{name}>")


def _attributes(attrs: dict[str, Any]) -> str:
    return "".join(f' {escape(name)}="{escape(str(value))}"' for name, value in attrs.items())


_SCRIPT_SCHEME = re.compile(r"^(javascript|vbscript|data|file):", re.IGNORECASE)


def _inert_url(url: str) -> bool:
    """A URL that would run script or show a page made of the note's own text (``data:``)."""
    return bool(_SCRIPT_SCHEME.match(re.sub(r"[\x00-\x20\x7f]", "", url)))


def _render_link_open(self: Any, tokens: list[Token], idx: int, options: Any, env: dict[str, Any]) -> str:
    token = tokens[idx]  # tokens are shared by every page that embeds the note: never mutated here
    attrs = dict(token.attrs)
    link = _linker(env).url(str(attrs.get("href") or ""), "link", token.meta.get("line"), env)
    if link is None or _inert_url(link):  # markdown-it lets data:image/... through: no link
        attrs.pop("href", None)
        if link is None:
            attrs["class"] = "internal-link is-unpublished"
        return f"<a{_attributes(attrs)}>"
    attrs["href"] = link
    if re.match(r"^[a-z][a-z0-9+.-]*:", link, re.IGNORECASE) and not link.startswith("mailto:"):
        attrs.update({"class": "external-link", "rel": "noopener noreferrer", "target": "_blank"})
    return f"<a{_attributes(attrs)}>"


def _render_image(self: Any, tokens: list[Token], idx: int, options: Any, env: dict[str, Any]) -> str:
    token = tokens[idx]
    attrs = dict(token.attrs)
    src_or_none = _linker(env).url(str(attrs.get("src") or ""), "image", token.meta.get("line"), env)
    attrs.pop("alt", None)
    alt = self.renderInlineAsText(token.children or [], options, env)
    if src_or_none is None:
        return f'<span class="internal-embed is-unpublished">{escape(alt)}</span>'
    attrs["src"] = src_or_none
    # Obsidian: ![alt|300](x.png) sets the width.
    size = re.search(r"\|\s*(\d+)(?:x(\d+))?\s*$", alt)
    if size:
        alt = alt[: size.start()]
        attrs["width"] = size[1]
        if size[2]:
            attrs["height"] = size[2]
    attrs["loading"] = "lazy"
    src = str(attrs["src"])
    remote = re.match(r"^([a-z][a-z0-9+.-]*:|//)", src, re.IGNORECASE)
    video = _YOUTUBE.match(src) if remote else None
    if video is not None and env.get("remote_images"):
        return _youtube_card(video[1], alt)
    if remote and src.lower().startswith("https://") and env.get("remote_images"):
        # The pages' policy allows https: images; no referrer tells the host which page it is.
        return f'<img alt="{escape(alt)}"{_attributes(attrs)} referrerpolicy="no-referrer">'
    if remote and not src.lower().startswith("data:image/"):
        # --no-remote-images, --offline, http: or another scheme: a link to it (nothing is
        # fetched from elsewhere when the page opens).
        label = escape(alt or src)
        if _inert_url(src):
            return f"<span>{label}</span>"
        return (
            f'<a href="{escape(src)}" class="external-link external-image" rel="noopener noreferrer" '
            f'target="_blank">{label}</a>'
        )
    return f'<img alt="{escape(alt)}"{_attributes(attrs)}>'


_YOUTUBE = re.compile(
    r"^https?://(?:www\.|m\.)?(?:youtube\.com/(?:watch\?(?:[^#]*&)?v=|shorts/|embed/)|youtu\.be/)"
    r"([A-Za-z0-9_-]{11})(?![A-Za-z0-9_-])"
)


def _youtube_card(video: str, alt: str) -> str:
    """``![](https://www.youtube.com/watch?v=…)``: Obsidian embeds a player; the site's policy
    frames nothing, so the video's thumbnail links to it (one https: image, no script)."""
    url = f"https://www.youtube.com/watch?v={video}"
    label = escape(alt or "YouTube video")
    return (
        f'<a class="external-link youtube-embed" href="{url}" rel="noopener noreferrer" target="_blank">'
        f'<img src="https://i.ytimg.com/vi/{video}/hqdefault.jpg" alt="{label}" loading="lazy" '
        f'referrerpolicy="no-referrer"><span class="youtube-embed-label">▶ {label}</span></a>'
    )


FenceRenderer = Callable[[Token, dict[str, Any]], str]


def _render_fence(self: Any, tokens: list[Token], idx: int, options: Any, env: dict[str, Any]) -> str:
    from noteexec.site.code import render_fence

    return render_fence(tokens[idx], env)


def _render_code_block(self: Any, tokens: list[Token], idx: int, options: Any, env: dict[str, Any]) -> str:
    return f"<pre><code>{escape(tokens[idx].content)}</code></pre>\n"


def site_plugin(md: MarkdownIt) -> None:
    """Everything above, on top of :func:`obsidian_plugin` (which it installs)."""
    obsidian_plugin(md)
    md.inline.ruler.before("link", "wikilink", _wikilink)
    md.inline.ruler.before("emphasis", "highlight", _highlight)
    md.inline.ruler.after("text", "inline_comment", _inline_comment)
    md.inline.ruler.after("wikilink", "tag", _tag)
    md.core.ruler.before("obsidian_callouts", "callout_no_break_space", _callout_no_break_space)
    md.core.ruler.after("obsidian_callouts", "callout_titles", _callout_titles)
    md.core.ruler.after("inline", "obsidian_lines", _lines_and_block_ids)
    md.core.ruler.after("obsidian_lines", "heading_ids", _heading_ids)
    md.core.ruler.after("heading_ids", "balance_inline_html", _balance_inline_html)
    md.core.ruler.push("task_statuses", _task_statuses)
    rules = md.add_render_rule
    rules("wikilink", _render_wikilink)
    rules("tag", _render_tag)
    rules("task_checkbox", _render_task_checkbox)
    rules("callout_open", _render_callout_open)
    rules("callout_title_open", _render_callout_title_open)
    rules("callout_title_close", _render_callout_title_close)
    rules("callout_close", _render_callout_close)
    rules("obsidian_comment", _render_nothing)
    rules("front_matter", _render_nothing)
    rules("math_inline", _render_math_inline)
    rules("math_inline_double", _render_math_inline_double)
    for name in ("math_block", "math_block_label"):
        rules(name, _render_math_block)
    rules("html_block", _render_html_block)
    rules("html_inline", _render_html_inline)
    rules("link_open", _render_link_open)
    rules("image", _render_image)
    rules("fence", _render_fence)
    rules("code_block", _render_code_block)


@cache
def site_markdown() -> MarkdownIt:
    """The renderer the site uses (built once; markdown-it instances are reusable)."""
    md = (
        MarkdownIt("commonmark", {"html": True, "breaks": True, "linkify": False, "typographer": False})
        .enable(["table", "strikethrough"])
        .use(front_matter_plugin)
        .use(footnote_plugin)
        .use(tasklists_plugin, enabled=False)
        .use(dollarmath_plugin, allow_labels=True, allow_space=True, allow_digits=False, double_inline=True)
        .use(site_plugin)
    )
    return md


def render_markdown(source: str, env: dict[str, Any] | None = None) -> str:
    md = site_markdown()
    env = {} if env is None else env
    return md.renderer.render(md.parse(source, env), md.options, env)
