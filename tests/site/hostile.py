"""A hostile vault and an HTML checker, shared by the unit and browser security tests.

Every note of :func:`write_hostile_vault` carries one payload in every place a note can put
text: raw HTML (block and inline), a callout title, frontmatter (title, tags, aliases, date,
lang, other properties), a heading, an inline ``#tag``, a wikilink and embed alias, a wikilink
target, a Markdown link's text and URL, an image's alt text, a table, a footnote, a list, a
highlight, math. ``diagrams.md`` puts each payload in a Mermaid label (one diagram each, and
under an init directive that tries to loosen Mermaid's sanitiser). ``checked.md`` has python blocks that print every payload, warn
with them and raise with them, so they reach captured output, warnings, diffs and exception
messages (facts come from a real run or from :func:`checked_facts`). One note's file name is a
payload too.

:func:`html_problems` parses a page the way a browser tokenises it and lists everything that
could run script, navigate, load a frame or plugin, submit a form or restyle the page, outside
an explicit allowlist of what the site itself writes.
"""

from __future__ import annotations

import dataclasses
import json
import re
import textwrap
from collections.abc import Iterable, Mapping
from html.parser import HTMLParser
from pathlib import Path

from noteexec.facts import BlockFacts, Raised
from noteexec.site.build import BuildOptions, SiteFiles, excluded_notes, render_site
from noteexec.site.vault import scan_attachments
from tests.site.helpers import results_for

PAYLOADS: dict[str, str] = {
    "script": "<script>window.__pwned=1</script>",
    "img-onerror": '<img src=x onerror="window.__pwned=1">',
    "iframe-srcdoc": '<iframe srcdoc="<script>parent.__pwned=1</script>"></iframe>',
    "svg-onload": '<svg onload="window.__pwned=1"><circle r="5"></circle></svg>',
    "js-link": '<a href="javascript:window.__pwned=1">click</a>',
    "vbscript-link": '<a href="vbscript:window.__pwned=1">click</a>',
    "data-link": '<a href="data:text/html,%3Cscript%3Eparent.__pwned=1%3C/script%3E">click</a>',
    "style-body": "<style>body{display:none}</style>",
    "style-content": "<style>.content{visibility:hidden}</style>",
    "meta-refresh": '<meta http-equiv="refresh" content="0;url=javascript:window.__pwned=1">',
    "object": '<object data="javascript:window.__pwned=1"></object>',
    "embed": '<embed src="javascript:window.__pwned=1">',
    "form": '<form action="javascript:window.__pwned=1"><button>send</button></form>',
    "formaction": '<button formaction="javascript:window.__pwned=1">send</button>',
    "attr-break": '"><script>window.__pwned=1</script>',
    "attr-break-single": "'><img src=x onerror=window.__pwned=1>",
    "md-js-link": "[x](javascript:window.__pwned=1)",
    "md-vbscript-link": "[x](vbscript:window.__pwned=1)",
    "md-data-link": "[x](data:text/html;base64,PHNjcmlwdD5wYXJlbnQuX19wd25lZD0xPC9zY3JpcHQ+)",
    "md-data-image-link": "[x](data:image/png;base64,iVBORw0KGgo=)",
    "math-text": r"$\text{<img/src=x/onerror=window.__pwned=1>}$",
    "math-href": r"$\href{javascript:window.__pwned=1}{click}$",
    "math-style": r"$\style{position:fixed;inset:0;background:white;z-index:99}{x}$",
    "dom-clobbering": '<img name="querySelector" id="mermaid"><form name="body"></form><a id="NOTEEXEC_INDEX">',
}
"""Payload kind → what a note writes. Each sets ``window.__pwned`` (or hides the page) if it works."""

PAYLOAD_FILE_NAME = "'><img src=x onerror=window.__pwned=1>.md"
"""A note whose file name (so its URL, index row and default title) is a payload."""


def note_name(kind: str) -> str:
    return f"hostile/{kind}.md"


def canary(kind: str) -> str:
    """A sentence each hostile note shows; a browser test asserts it stays visible."""
    return f"Canary sentence of the {kind} note stays visible."


def _yaml(value: str) -> str:
    return json.dumps(value)  # JSON strings are YAML strings


def hostile_note(kind: str, payload: str) -> str:
    q = _yaml(payload)
    return textwrap.dedent(
        """\
        ---
        title: {q}
        tags: [{q}, hostile]
        aliases: [{q}]
        date: {q}
        lang: {q}
        author: {q}
        ---
        {canary}

        {p}

        Inline raw HTML: before {p} after.

        > [!note] Callout title {p}
        > Callout body {p}

        ## Heading {p}

        Inline tag #hostile{p} and #hostile

        Wikilink alias [[other|{p}]] and target [[{p}]] and heading [[other#{p}]].

        ![[other|{p}]]

        Link text [{p}](https://example.com/) and URL [url]({p}) and <{p}>.

        Image alt ![{p}](pic.png)

        | column {p} |
        |---|
        | cell {p} |

        A footnote[^1].

        [^1]: Footnote {p}

        - item {p}
        - [ ] task {p}

        ==highlight {p}==

        Math $\\text{{{p}}}$ and $$\\text{{{p}}}$$

        ```html
        {p}
        ```
        """
    ).format(q=q, p=payload, kind=kind, canary=canary(kind))


CHECKED_NOTE = """\
---
title: Checked note
---
Canary sentence of the checked note stays visible.

```python
import sys
import warnings

P = {payloads}
for payload in P:
    print(payload)
    print(payload, file=sys.stderr)
warnings.warn(P[0])
```

```output
the documented output differs, so the page shows a diff of the payloads
```

> [!FAIL] The block raises another error than the one it documents
> ```python
> # RuntimeError: something else
> raise ValueError("\\n".join(P))
> ```
"""


DIAGRAM = """\
```mermaid
graph TD
  A["{p}"] --> B["label"]
  click A href "javascript:window.__pwned=1"
```

```mermaid
%%{{init: {{"securityLevel": "loose", "dompurifyConfig": {{"ADD_TAGS": ["iframe", "form"], "ADD_ATTR": ["onerror", "srcdoc"], "FORBID_TAGS": []}}}}}}%%
flowchart TD
  A["<img src=x onerror=window.__pwned=1>"] --> B["{p}"]
  click A call eval("window.__pwned=1")
```
"""


def diagrams_note() -> str:
    """Every payload as a Mermaid label (a diagram each: a stray quote breaks only its own)."""
    diagrams = "\n".join(DIAGRAM.format(p=payload) for payload in PAYLOADS.values())
    return f"# Diagrams\n\n{canary('diagrams')}\n\n{diagrams}"


def write_hostile_vault(root: Path) -> Path:
    """One note per payload kind, ``diagrams.md``, ``checked.md``, ``other.md``, ``pic.png``, and
    :func:`write_attachments`."""
    root.mkdir(parents=True, exist_ok=True)
    for kind, payload in PAYLOADS.items():
        path = root / note_name(kind)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(hostile_note(kind, payload), encoding="utf-8")
    (root / "checked.md").write_text(
        CHECKED_NOTE.format(payloads=json.dumps(list(PAYLOADS.values()))), encoding="utf-8"
    )
    (root / "diagrams.md").write_text(diagrams_note(), encoding="utf-8")
    (root / "other.md").write_text(
        "# Other\n\nThe embedded note. " + " ".join(PAYLOADS.values()) + "\n", encoding="utf-8"
    )
    (root / PAYLOAD_FILE_NAME).write_text("Canary sentence of the file name note stays visible.\n")
    (root / "pic.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    write_attachments(root)
    return root


SCRIPT = b"<script>window.__pwned = 1; parent.__pwned = 1; alert(1)</script>"
ACTIVE_ATTACHMENTS: dict[str, bytes] = {
    "files/evil.html": b"<!doctype html><html><body>" + SCRIPT + b"</body></html>",
    "files/evil.htm": b"<html>" + SCRIPT + b"</html>",
    "files/evil.xhtml": b'<html xmlns="http://www.w3.org/1999/xhtml"><body>' + SCRIPT + b"</body></html>",
    "files/evil.xml": b'<x xmlns:h="http://www.w3.org/1999/xhtml"><h:script>window.__pwned=1</h:script></x>',
    "files/evil.svg": b'<svg xmlns="http://www.w3.org/2000/svg" onload="window.__pwned=1">'
    b"<script>window.__pwned=1</script></svg>",
    "files/foreign.svg": b'<svg xmlns="http://www.w3.org/2000/svg"><foreignObject><body '
    b'xmlns="http://www.w3.org/1999/xhtml"><img src="x" onerror="window.__pwned=1"/></body>'
    b"</foreignObject></svg>",
    "files/evil.js": b"window.__pwned = 1;\n",
    "files/sniffed.xyz": b"<html>" + SCRIPT + b"</html>",
    "files/noextension": b"<html>" + SCRIPT + b"</html>",
}
"""Vault files that run script when a browser opens them: none may be published."""
PASSIVE_ATTACHMENTS: dict[str, bytes] = {
    "files/drawing.svg": b'<svg xmlns="http://www.w3.org/2000/svg" width="20" height="20">'
    b'<desc>VAULT-FILE files/drawing.svg</desc><circle cx="10" cy="10" r="8" fill="teal"/></svg>',
    "files/notes.txt": b"VAULT-FILE files/notes.txt <script>window.__pwned=1</script>\n",
    "files/pixel.png": b"\x89PNG\r\n\x1a\nVAULT-FILE files/pixel.png",
}
"""Vault files a browser only shows: published, under ``_attachments/``."""
SITE_FILE_NAMES = (
    "index.html",
    "404.html",
    "search-index.js",
    "sitemap.xml",
    "checked.html",
    "hostile/script.html",
    "tags/hostile.html",
    "_assets/site.js",
    "_assets/theme.js",
    "_assets/site.css",
    "_assets/mermaid.min.js",
    "_assets/custom.css",
    "_assets/favicon.svg",
    "_attachments/files/drawing.svg",
    "_notes/_assets/x.html",
    ".noteexec-site",
)
"""Vault files named like files a build writes; each holds script or a marker (``VAULT-FILE``)."""
PRIVATE_NOTES = {
    "secret.md": "---\npublish: false\ntags: [secret-tag]\naliases: [hidden-alias]\n---\n"
    "# Secret note\n\nPRIVATE-TEXT of the unpublished note, linking [[attachments]].\n\n![[files/secret.png]]\n",
    "drafts/draft.md": "---\ndraft: true\n---\n# Draft note\n\nPRIVATE-TEXT of the draft. #draft-tag\n",
}
"""Notes that must stay out of the site; the configuration also excludes ``excluded/*``."""


def attachments_note() -> str:
    """Links and embeds of every attachment and lookalike file, and of every private note."""
    names = [*ACTIVE_ATTACHMENTS, *PASSIVE_ATTACHMENTS, *SITE_FILE_NAMES]
    lines = ["# Attachments", "", canary("attachments"), ""]
    for name in names:
        lines += [f"- [[{name}]] and [{name}]({name}) and ![[{name}]] and ![img]({name})"]
    lines += ["", "Private: [[secret]], [[hidden-alias|by alias]], [md](secret.md), ![[secret]],"]
    lines += [
        "[[draft]], ![[drafts/draft]], [[excluded/gone]], ![[excluded/gone]], ![[excluded/photo.png]]",
        "",
    ]
    return "\n".join(lines)


def write_attachments(root: Path) -> None:
    """The attachments, lookalike files, private notes and ``attachments.md`` of the hostile vault."""
    files = dict(ACTIVE_ATTACHMENTS) | dict(PASSIVE_ATTACHMENTS)
    for name in SITE_FILE_NAMES:  # a drawing passes as an attachment: it must land elsewhere
        drawing = PASSIVE_ATTACHMENTS["files/drawing.svg"].replace(b"files/drawing.svg", name.encode())
        files.setdefault(name, drawing if name.endswith(".svg") else b"VAULT-FILE " + name.encode() + SCRIPT)
    files["files/secret.png"] = b"\x89PNG\r\n\x1a\nVAULT-FILE private"
    files["excluded/gone.md"] = b"# Gone\n\nPRIVATE-TEXT of an excluded note.\n"
    files["excluded/photo.png"] = b"\x89PNG\r\n\x1a\nVAULT-FILE excluded"
    files["noteexec.toml"] = b'exclude = ["excluded/*"]\n'
    for name, text in PRIVATE_NOTES.items():
        files[name] = text.encode()
    files["attachments.md"] = attachments_note().encode()
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


HOSTILE_EXCLUDE = ("excluded/*",)


def render_hostile_site(root: Path, options: BuildOptions) -> SiteFiles:
    """The hostile vault's site as ``build`` renders it (attachments found, excludes applied)."""
    options = dataclasses.replace(options, exclude=HOSTILE_EXCLUDE)
    results = [
        result
        for result in results_for(root, checked_facts())
        if not result.note.path.relative_to(root).as_posix().startswith("excluded/")
    ]
    excluded = excluded_notes(root, HOSTILE_EXCLUDE)
    return render_site(root, results, options, scan_attachments(root), excluded)


def checked_facts() -> dict[str, list[BlockFacts]]:
    """What a real run of ``checked.md`` reports (for tests that do not run the sandbox)."""
    joined = "\n".join(PAYLOADS.values())
    return {
        "checked.md": [
            BlockFacts(
                state="ran",
                stdout=joined + "\n",
                stderr=joined + "\n",
                warnings=(Raised("UserWarning", ("UserWarning", "Warning"), PAYLOADS["script"], 12),),
            ),
            BlockFacts(
                state="ran",
                exception=Raised("ValueError", ("ValueError", "Exception"), joined, 22),
            ),
        ]
    }


# -------------------------------------------------------------------------------- the checker

SITE_SCRIPTS = frozenset({"_assets/theme.js", "_assets/site.js", "search-index.js", "_assets/mermaid.min.js"})
"""Script files a built site loads (paths from the site root); nothing else may be a script."""

URL_ATTRIBUTES = frozenset(
    {"href", "src", "action", "formaction", "data", "poster", "background", "ping", "xlink:href", "cite"}
)
FORBIDDEN_TAGS = frozenset(
    {
        "iframe",
        "frame",
        "frameset",
        "object",
        "embed",
        "applet",
        "form",
        "base",
        "portal",
        "textarea",
        "select",
    }
)
SAFE_CSS_PROPERTIES = frozenset(
    {"color", "background-color", "font-weight", "font-style", "text-align", "text-decoration",
     "font-size", "width", "height", "max-width", "margin", "padding", "border"}
)  # fmt: skip
SITE_META = frozenset({"viewport", "color-scheme", "generator", "description", "referrer"})
_SCHEME_OF = re.compile(r"^([a-z][a-z0-9+.-]*):")


def _normalise_url(value: str) -> str:
    """What a browser reads as the URL's scheme: control characters and whitespace dropped."""
    return re.sub(r"[\x00-\x20\x7f]", "", value).lower()


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.scripts: list[tuple[dict[str, str | None], str]] = []
        self.styles: list[str] = []
        self._open: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, attrs))
        if tag in ("script", "style"):
            self._open, self._text = tag, []
            if tag == "script":
                self.scripts.append((dict(attrs), ""))

    def handle_data(self, data: str) -> None:
        if self._open:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if self._open == tag:
            text = "".join(self._text)
            if tag == "script":
                attrs, _ = self.scripts[-1]
                self.scripts[-1] = (attrs, text)
            else:
                self.styles.append(text)
            self._open = None


def _site_path(src: str, page: str) -> str:
    """A relative ``src`` on page ``page`` as a path from the site root."""
    parts = page.split("/")[:-1]
    for part in src.split("/"):
        if part == "..":
            if not parts:
                return "<outside the site>"
            parts.pop()
        elif part and part != ".":
            parts.append(part)
    return "/".join(parts)


def parse_csp(policy: str) -> dict[str, list[str]]:
    directives: dict[str, list[str]] = {}
    for part in policy.split(";"):
        words = part.split()
        if words:
            directives.setdefault(words[0].lower(), words[1:])
    return directives


def page_csp(html: str) -> str | None:
    parser = _Page()
    parser.feed(html)
    for tag, attrs in parser.elements:
        values = dict(attrs)
        if tag == "meta" and (values.get("http-equiv") or "").lower() == "content-security-policy":
            return values.get("content") or ""
    return None


def html_problems(
    html: str,
    page: str,
    scripts: Iterable[str] = SITE_SCRIPTS,
    external_scripts: Iterable[str] = (),
    inline_scripts: Iterable[str] = (),
    inline_styles: Iterable[str] = (),
) -> list[str]:
    """Everything in ``html`` (the page at site path ``page``) that the site did not mean to write.

    ``scripts``: site files that may be scripts; ``external_scripts``: full URLs that may be
    (the configured Mermaid URL); ``inline_scripts``/``inline_styles``: the exact inline code the
    site writes (a self-contained page). Anything else is reported.
    """
    allowed_files = set(scripts)
    allowed_urls = set(external_scripts)
    allowed_inline = set(inline_scripts)
    allowed_styles = set(inline_styles)
    parser = _Page()
    parser.feed(html)
    parser.close()
    problems: list[str] = []
    csp_at = None
    for index, (tag, attrs) in enumerate(parser.elements):
        values = dict(attrs)
        if tag in FORBIDDEN_TAGS:
            problems.append(f"<{tag}> element")
        if tag == "meta":
            equiv = (values.get("http-equiv") or "").lower()
            if equiv == "content-security-policy":
                if csp_at is not None:
                    problems.append("a second Content-Security-Policy")
                csp_at = index
            elif equiv or ("charset" not in values and values.get("name") not in SITE_META):
                problems.append(f"<meta {attrs}>")
        if tag == "link" and not (
            values.get("rel") == "icon"
            or (
                values.get("rel") == "stylesheet"
                and _site_path(values.get("href") or "", page).startswith("_assets/")
            )
        ):
            problems.append(f"<link {attrs}>")
        if tag in ("script", "link", "style", "img", "body") and csp_at is None:
            problems.append(f"<{tag}> before the Content-Security-Policy")
        for name, value in attrs:
            text = _normalise_url(value or "")
            if name.startswith("on"):
                problems.append(f"<{tag} {name}=...> event handler")
            if name in ("srcdoc", "formaction", "action"):
                problems.append(f"<{tag} {name}=...>")
            if name in URL_ATTRIBUTES or name == "srcset":
                scheme = _SCHEME_OF.match(text)
                if scheme and scheme[1] in ("javascript", "vbscript", "data", "file"):
                    inline_image = tag == "img" and name == "src" and text.startswith("data:image/")
                    icon = tag == "link" and values.get("rel") == "icon" and text.startswith("data:image/")
                    if not (inline_image or icon):
                        problems.append(f"<{tag} {name}={value!r}>")
            if name == "style":
                for declaration in (value or "").split(";"):
                    prop = declaration.partition(":")[0].strip().lower()
                    if prop and prop not in SAFE_CSS_PROPERTIES:
                        problems.append(f"<{tag} style={value!r}>")
                if re.search(r"url\(|expression\(|javascript:|@import", text):
                    problems.append(f"<{tag} style={value!r}>")
            if name in ("http-equiv",) and text == "refresh":
                problems.append("<meta http-equiv=refresh>")
    if csp_at is None:
        problems.append("no Content-Security-Policy")
    for attrs, code in parser.scripts:
        src = attrs.get("src")
        if src is None:
            if code not in allowed_inline:
                problems.append(f"inline <script>{code[:80]!r}")
        elif src in allowed_urls:
            continue
        elif _SCHEME_OF.match(src.lower()) or src.startswith("//"):
            problems.append(f"<script src={src!r}> from elsewhere")
        elif _site_path(src, page) not in allowed_files:
            problems.append(f"<script src={src!r}> is not one of the site's scripts")
        if set(attrs) - {"src"}:
            problems.append(f"<script {attrs}>")
    for css in parser.styles:
        if css not in allowed_styles:
            problems.append(f"<style>{css[:80]!r}")
    return problems


def site_pages(files: Mapping[str, object]) -> list[str]:
    return sorted(name for name in files if name.endswith(".html"))
