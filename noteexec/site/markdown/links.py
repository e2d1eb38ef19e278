"""Markdown ``[links](…)`` and ``![images](…)``: URLs the page's linker rewrites for the site,
never a script or ``data:`` link, remote images only from ``https:`` (or as links)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from html import escape

from markdown_it import MarkdownIt
from markdown_it.renderer import RendererHTML, RendererProtocol
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict

from noteexec.site.markdown.context import page_context
from noteexec.site.sanitize import unsafe_url


def _attributes(attrs: Mapping[str, str | int | float]) -> str:
    return "".join(f' {escape(name)}="{escape(str(value))}"' for name, value in attrs.items())


def _render_link_open(
    self: RendererProtocol, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    token = tokens[idx]  # tokens are shared by every page that embeds the note: never mutated here
    attrs = dict(token.attrs)
    context = page_context(env)
    link = context.linker.url(str(attrs.get("href") or ""), "link", token.meta.get("line"), context)
    if link is None or unsafe_url(link):  # markdown-it lets data:image/... through: no link
        attrs.pop("href", None)
        if link is None:
            attrs["class"] = "internal-link is-unpublished"
        return f"<a{_attributes(attrs)}>"
    attrs["href"] = link
    if re.match(r"^[a-z][a-z0-9+.-]*:", link, re.IGNORECASE) and not link.startswith("mailto:"):
        attrs.update({"class": "external-link", "rel": "noopener noreferrer", "target": "_blank"})
    return f"<a{_attributes(attrs)}>"


def _render_image(
    self: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    token = tokens[idx]
    attrs = dict(token.attrs)
    context = page_context(env)
    src_or_none = context.linker.url(str(attrs.get("src") or ""), "image", token.meta.get("line"), context)
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
    if video is not None and context.remote_images:
        return _youtube_card(video[1], alt)
    if remote and src.lower().startswith("https://") and context.remote_images:
        # The pages' policy allows https: images; no referrer tells the host which page it is.
        return f'<img alt="{escape(alt)}"{_attributes(attrs)} referrerpolicy="no-referrer">'
    if remote and not src.lower().startswith("data:image/"):
        # --no-remote-images, --offline, http: or another scheme: a link to it (nothing is
        # fetched from elsewhere when the page opens).
        label = escape(alt or src)
        if unsafe_url(src):
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


def links_plugin(md: MarkdownIt) -> None:
    md.add_render_rule("link_open", _render_link_open)
    md.add_render_rule("image", _render_image)
