"""Each Markdown extension of the site, one behaviour per test, on rendered HTML."""

from __future__ import annotations

import re
from html import escape as html_escape
from html.parser import HTMLParser
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from noteexec.model import CALLOUT_ALIASES
from noteexec.site.code import highlight_code
from noteexec.site.markdown import render_markdown
from noteexec.site.markdown.context import PageContext
from noteexec.site.markdown.ids import slugify
from noteexec.site.markdown.wikitarget import WikiTarget
from noteexec.site.vault import tag_slug


def render(source: str, **context: Any) -> str:
    return render_markdown(source, PageContext(**context))


def callout_attributes(html: str) -> list[dict[str, str]]:
    return [
        dict(re.findall(r'(data-callout[\w-]*)="([^"]*)"', match))
        for match in re.findall(r'<div class="callout(?: [^"]*)?"[^>]*>', html)
    ]


# -------------------------------------------------------------------------------- wikilinks


@pytest.mark.parametrize(
    ("raw", "note", "heading", "block", "alias", "label"),
    [
        ("note", "note", None, None, None, "note"),
        ("note|shown", "note", None, None, "shown", "shown"),
        ("folder/note#Heading", "folder/note", "Heading", None, None, "note > Heading"),
        ("#Local heading", "", "Local heading", None, None, "Local heading"),
        ("note#^abc-1", "note", None, "abc-1", None, "note"),
        ("note#H1#H2", "note", "H2", None, None, "note > H2"),
        ("note\\|alias", "note", None, None, "alias", "alias"),
        ("note.md", "note.md", None, None, None, "note"),
    ],
)
def test_wikilink_target_is_parsed_like_obsidian(
    raw: str, note: str, heading: str | None, block: str | None, alias: str | None, label: str
) -> None:
    target = WikiTarget(raw, embed=False)
    assert (target.note, target.heading, target.block, target.alias, target.label) == (
        note,
        heading,
        block,
        alias,
        label,
    )


def test_wikilinks_render_as_internal_links() -> None:
    html = render("See [[other note|the other]] and [[#Section]].")
    assert (
        '<a class="internal-link" data-href="other note|the other" href="other%20note.html">the other</a>'
        in html
    )
    assert 'href="#section">Section</a>' in html


def test_wikilink_with_escaped_pipe_works_inside_a_table() -> None:
    html = render("| a |\n|---|\n| [[note\\|alias]] |\n")
    assert '<td><a class="internal-link"' in html and ">alias</a></td>" in html


def test_embed_becomes_an_embed_token_not_a_link() -> None:
    html = render("![[diagram.png|300]]")
    assert 'class="internal-embed"' in html and "internal-link" not in html


def test_wikilink_inside_code_is_literal() -> None:
    html = render("`[[not a link]]`")
    assert "<code>[[not a link]]</code>" in html


# -------------------------------------------------------------------------------- highlight, comments, tags


def test_highlight_becomes_mark_with_inline_markdown_inside() -> None:
    assert "<mark>very <strong>important</strong></mark>" in render("a ==very **important**== b")


def test_highlight_needs_closing_marks_and_no_inner_space_at_the_edges() -> None:
    assert "<mark>" not in render("a == b == c")
    assert "<mark>" not in render("a ==open only")


def test_inline_comments_never_reach_the_html() -> None:
    html = render("visible %%secret one%% also visible %%secret\ntwo%% end")
    assert "secret" not in html
    assert "visible" in html and "also visible" in html and "end" in html


def test_unclosed_inline_comment_hides_the_rest_of_its_paragraph() -> None:
    html = render("shown %% hidden forever\n\nnext paragraph")
    assert "hidden" not in html and "shown" in html and "next paragraph" in html


def test_block_comments_and_their_fences_never_reach_the_html() -> None:
    html = render("before\n\n%%\nsecret text\n```python\nhidden_setup = 1\n```\n%%\n\nafter\n")
    assert "secret" not in html and "hidden_setup" not in html
    assert "before" in html and "after" in html


def test_comment_markers_inside_code_are_kept() -> None:
    assert "<code>%%not a comment%%</code>" in render("`%%not a comment%%`")


def test_inline_tags_link_to_their_tag_page() -> None:
    context = PageContext()
    html = render_markdown("text #PyTorch and #nested/tag and #中文标签.", context)
    assert '<a class="tag" href="tags/pytorch.html">#PyTorch</a>' in html
    assert '<a class="tag" href="tags/nested__tag.html">#nested/tag</a>' in html
    assert "#中文标签</a>" in html
    assert context.tags == ["PyTorch", "nested/tag", "中文标签"]


@pytest.mark.parametrize("text", ["issue #123", "a#b", "`#code`", "[x](#anchor)"])
def test_things_that_are_not_tags(text: str) -> None:
    assert 'class="tag"' not in render(text)


def test_tag_slug_is_case_insensitive_and_path_safe() -> None:
    assert tag_slug("PyTorch") == tag_slug("pytorch") == "pytorch"
    assert "/" not in tag_slug("a/b") and ".." not in tag_slug("../x")


# -------------------------------------------------------------------------------- ids


def test_cjk_heading_keeps_its_characters_in_the_id() -> None:
    context = PageContext()
    html = render_markdown("##### 错误场景分析\n\n## ➡️ 前向传播 (Forward Pass) → 构建计算图\n", context)
    assert '<h5 id="错误场景分析">错误场景分析</h5>' in html
    assert 'id="前向传播-forward-pass-构建计算图"' in html
    assert [heading.id for heading in context.headings] == [
        "错误场景分析",
        "前向传播-forward-pass-构建计算图",
    ]


def test_duplicate_headings_get_distinct_ids() -> None:
    html = render("## Same\n\n## Same\n\n## Same\n")
    assert re.findall(r'id="([^"]+)"', html) == ["same", "same-1", "same-2"]


def test_slugify_drops_punctuation_and_emoji() -> None:
    assert slugify("💡 总结与关键要点 (Key Takeaways)") == "总结与关键要点-key-takeaways"
    assert slugify("!!!") == "section"


def test_block_id_moves_to_its_block() -> None:
    context = PageContext()
    html = render_markdown("A paragraph ^para-1\n\n- item ^item2\n", context)
    assert '<p id="^para-1">A paragraph</p>' in html
    assert '<li id="^item2">item</li>' in html
    assert context.block_ids == ["para-1", "item2"]


# -------------------------------------------------------------------------------- callouts


def test_callout_has_obsidians_dom_and_folds_as_details_without_script() -> None:
    html = render("> [!tip|wide]+ Custom **title**\n> Body text\n")
    assert (
        '<details class="callout is-collapsible" data-callout="tip" data-callout-fold="+" '
        'data-callout-metadata="wide" open>'
    ) in html
    assert '<summary class="callout-title">' in html and html.endswith("</div>\n</details>\n")
    assert '<div class="callout-icon"><svg' in html
    assert '<div class="callout-title-inner">Custom <strong>title</strong></div>' in html
    assert '<div class="callout-fold"><svg' in html
    assert '<div class="callout-content">\n<p>Body text</p>\n</div>' in html


@pytest.mark.parametrize("kind", sorted(CALLOUT_ALIASES))
def test_every_type_and_alias_gets_its_own_data_callout_and_icon(kind: str) -> None:
    for name in (kind, *CALLOUT_ALIASES[kind]):
        html = render(f"> [!{name.upper()}]\n> body\n")
        assert callout_attributes(html)[0]["data-callout"] == name
        assert f"callout-icon-{kind}" in html
        assert f'<div class="callout-title-inner">{name.title()}</div>' in html


def test_unknown_type_keeps_its_name_and_looks_like_a_note() -> None:
    html = render("> [!LIST] My list\n> - a\n")
    assert callout_attributes(html)[0]["data-callout"] == "list"
    assert "callout-icon-note" in html


def test_default_title_is_the_type_in_title_case() -> None:
    assert '<div class="callout-title-inner">My-Type</div>' not in render("> [!my-type]\n> x\n")
    assert '<div class="callout-title-inner">My Type</div>' in render("> [!my-type]\n> x\n")


def test_title_only_callout_has_no_content() -> None:
    html = render("> [!warning] Only a title\n")
    assert "callout-content" not in html
    assert html.count("<div") == html.count("</div>")


@pytest.mark.parametrize(
    "header", ["> [!tip]\u00a0A title", "> [!tip]-\u00a0\u00a0A title", "> [!TIP] A title"]
)
def test_a_callout_with_a_no_break_space_after_its_type_is_a_callout(header: str) -> None:
    html = render(f"{header}\n> body\n")
    assert 'data-callout="tip"' in html and '<div class="callout-title-inner">A title</div>' in html


def test_admonition_plugin_fences_are_callouts() -> None:
    html = render("```ad-warning\ntitle: Be **careful**\ncollapse: closed\nSome *text* and [[other]].\n```\n")
    assert '<details class="callout is-collapsible is-collapsed" data-callout="warning"' in html
    assert '<div class="callout-title-inner">Be <strong>careful</strong></div>' in html
    assert '<p>Some <em>text</em> and <a class="internal-link"' in html and "code-block" not in html
    plain = render("```ad-note\njust text\n```\n")
    assert '<div class="callout" data-callout="note"' in plain and "<p>just text</p>" in plain
    assert '<div class="callout-title-inner">Note</div>' in plain
    assert "callout" not in render("```ad-no<te\nx\n```\n")  # not a callout name: code


def test_admonitions_nested_too_deep_show_as_code() -> None:
    depth = 12
    source = "".join(f"{'`' * (3 + depth - level)}ad-note\n" for level in range(depth)) + "core\n"
    source += "".join(f"{'`' * (3 + level)}\n" for level in range(depth))
    html = render(source)
    assert html.count('data-callout="note"') == 8 and "core" in html


def test_minus_starts_collapsed_and_plain_is_not_foldable() -> None:
    collapsed = render("> [!faq]- Question\n> Answer\n")
    assert '<details class="callout is-collapsible is-collapsed"' in collapsed
    assert 'data-callout-metadata="">' in collapsed  # no open attribute
    plain = render("> [!faq] Question\n> Answer\n")
    assert "is-collapsible" not in plain and 'class="callout-fold"' not in plain


def test_callouts_nest_to_any_depth() -> None:
    source = "> [!note] one\n> > [!tip] two\n> > > [!bug] three\n> > > > [!quote] four\n> > > > deep\n"
    html = render(source)
    kinds = [attributes["data-callout"] for attributes in callout_attributes(html)]
    assert kinds == ["note", "tip", "bug", "quote"]
    assert html.count("<div") == html.count("</div>")
    assert "<p>deep</p>" in html


def test_plain_blockquote_stays_a_blockquote() -> None:
    assert "<blockquote>" in render("> just a quote\n")


# -------------------------------------------------------------------------------- the rest of GFM


def test_footnotes() -> None:
    html = render("Claim[^1].\n\n[^1]: Source.\n")
    assert 'class="footnote-ref"' in html and 'class="footnotes"' in html and "Source." in html


def test_task_lists_render_disabled_checkboxes() -> None:
    html = render("- [ ] todo\n- [x] done\n")
    assert html.count('type="checkbox"') == 2 and 'checked="checked"' in html and "disabled" in html


@pytest.mark.parametrize("status", ["/", "-", "?", ">", "!"])
def test_obsidians_other_task_statuses_are_ticked_tasks_with_data_task(status: str) -> None:
    html = render(f"- [{status}] the task\n- plain item\n")
    assert f'<li class="task-list-item is-checked" data-task="{html_escape(status)}">' in html
    assert f'type="checkbox" disabled checked data-task="{html_escape(status)}"> the task</li>' in html
    assert f"[{status}]" not in html and "<li>plain item</li>" in html
    assert '<ul class="contains-task-list">' in html


def test_a_bracketed_word_or_link_is_not_a_task() -> None:
    html = render("- [ab] two letters\n- [x](url) a link\n- [y]\n")
    assert "checkbox" not in html and "[ab] two letters" in html


def test_tables_and_strikethrough() -> None:
    html = render("| a | b |\n|---|---|\n| 1 | ~~2~~ |\n")
    assert "<table>" in html and "<s>2</s>" in html


def test_soft_line_breaks_are_kept_like_obsidian() -> None:
    assert "one<br />\ntwo" in render("one\ntwo\n")


def test_frontmatter_is_not_body_text() -> None:
    html = render("---\ntitle: Secret title\ntags: [a]\n---\n\nBody\n")
    assert "Secret title" not in html and "tags" not in html and "<p>Body</p>" in html


# -------------------------------------------------------------------------------- math


def test_inline_and_display_math_become_mathml() -> None:
    html = render("Energy $E=mc^2$ and\n\n$$\n\\frac{\\partial L}{\\partial w}\n$$\n")
    assert '<span class="math math-inline"><math' in html and "<msup>" in html
    assert '<div class="math math-block"><math' in html and 'display="block"' in html and "<mfrac>" in html
    assert "<script" not in html


def test_display_math_on_the_line_after_text_is_display_math() -> None:
    html = render("The loss is\n$$\nL = \\sum_i (y_i - \\hat y_i)^2\n$$\nand so on.\n")
    assert (
        '<span class="math math-block"><math xmlns="http://www.w3.org/1998/Math/MathML" display="block">'
        in html
    )
    assert "math-inline" not in html


@pytest.mark.parametrize(
    "latex",
    [
        r"\lvert x \rvert",
        r"\lVert x \rVert",
        r"\left( \frac{a}{b} \right)",
        r"\left[ x \right]",
        r"\left\{ x \right\}",
    ],
)
def test_bars_and_stretchy_fences_render(latex: str) -> None:
    html = render(f"$${latex}$$\n")
    assert "math-error" not in html and "\\" not in html
    if "left" in latex:
        assert html.count('stretchy="true"') == 2


def test_math_that_does_not_convert_shows_its_source() -> None:
    html = render("$$\n\\begin{unknownenv} <x> \n$$\n")
    assert "<math" not in html or "math-error" in html
    assert "<x>" not in html  # escaped either way


# -------------------------------------------------------------------------------- code


def test_code_is_highlighted_by_pygments() -> None:
    html = render("```python\nimport torch\n```\n")
    assert '<code class="language-python"><span class="kn">import</span>' in html


def test_unknown_language_is_escaped_plain_text() -> None:
    html = render("```nosuchlang\n<b>x</b>\n```\n")
    assert "&lt;b&gt;x&lt;/b&gt;" in html


def test_highlighted_line_is_marked() -> None:
    assert '<span class="hll">' in highlight_code("a = 1\nb = 2\n", "python", (2,))


def test_mermaid_fence_is_a_mermaid_pre_when_the_page_loads_mermaid() -> None:
    html = render("```mermaid\ngraph TD\n  a --> b\n```\n", mermaid=True)
    assert '<pre class="mermaid">graph TD\n  a --&gt; b\n</pre>' in html


def test_mermaid_fence_is_code_when_offline() -> None:
    html = render("```mermaid\ngraph TD\n  a --> b\n```\n", mermaid=False)
    assert 'class="mermaid"' not in html and "mermaid-source" in html and "a --&gt; b" in html


# -------------------------------------------------------------------------------- safety


@pytest.mark.parametrize(
    "source",
    [
        "<script>alert(1)</script>",
        "text <script>alert(1)</script> text",
        '<img src="x" onerror="alert(1)">',
        '<div onclick="alert(1)">hi</div>',
        '<a href="javascript:alert(1)">x</a>',
        "[x](javascript:alert(1))",
        "[x](JAVASCRIPT:alert(1))",
        '<iframe src="https://example.com"></iframe>',
        '<svg onload="alert(1)"></svg>',
        "<style>body{display:none}</style>",
        '<span style="background:url(javascript:alert(1))">x</span>',
        "[[javascript:alert(1)]]",
        '<object data="x.swf"></object>',
    ],
)
def test_raw_html_cannot_run_script(source: str) -> None:
    html = render(source).lower()
    assert "<script" not in html
    assert "onerror" not in html and "onclick" not in html and "onload" not in html
    assert not re.search(r'\s(href|src)="javascript:', html) and "url(javascript" not in html
    assert "<iframe" not in html and "<object" not in html and "<style" not in html


def test_harmless_raw_html_is_kept() -> None:
    html = render('Line<br>break and <span style="color: red">red</span> and <kbd>Ctrl</kbd>\n')
    assert "<br>" in html and '<span style="color:red">red</span>' in html and "<kbd>Ctrl</kbd>" in html


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ('a <a id="x">b\n\nnext', '<p>a <a id="x" rel="noopener noreferrer">b</a></p>\n<p>next</p>'),
        ("c </div></main> d", "<p>c  d</p>"),
        ("<b><i>x</b> y</i>", "<p><b><i>x</i></b> y</p>"),
        ("<span>a<br>b</span>", "<p><span>a<br>b</span></p>"),
    ],
)
def test_raw_inline_html_stays_inside_its_paragraph(source: str, expected: str) -> None:
    assert render(source).strip() == expected


@pytest.mark.parametrize(
    "url",
    [
        "https://www.youtube.com/watch?v=Ilg3gGewQ5U",
        "https://www.youtube.com/watch?t=3&v=Ilg3gGewQ5U",
        "https://youtu.be/Ilg3gGewQ5U",
        "https://m.youtube.com/shorts/Ilg3gGewQ5U",
        "https://www.youtube.com/embed/Ilg3gGewQ5U",
    ],
)
def test_a_youtube_embed_is_its_thumbnail_linking_to_the_video(url: str) -> None:
    html = render_markdown(f"![Backprop]({url})\n", PageContext(remote_images=True))
    assert '<a class="external-link youtube-embed" href="https://www.youtube.com/watch?v=Ilg3gGewQ5U"' in html
    assert '<img src="https://i.ytimg.com/vi/Ilg3gGewQ5U/hqdefault.jpg" alt="Backprop"' in html
    assert "<iframe" not in html
    assert "youtube-embed" not in render_markdown(f"![Backprop]({url})\n")  # --no-remote-images: a link
    assert "youtube-embed" not in render_markdown(
        "![x](https://www.youtube.com/watch?v=short)\n", PageContext(remote_images=True)
    )


def test_text_is_escaped() -> None:
    html = render("a < b & c > d\n\n```python\nprint('<b>')\n```\n")
    assert "a &lt; b &amp; c &gt; d" in html and "<b>" not in html


_RISKY = [
    "<script>",
    "</script>",
    "<img src=x onerror=alert(1)>",
    '<a href="javascript:x">',
    "</a>",
    "[[",
    "]]",
    "![[",
    "|",
    "#",
    "==",
    "%%",
    "$",
    "`",
    "> [!note]",
    "\n",
    "<svg onload=x>",
    "<div style='background:url(javascript:x)'>",
    "[t](javascript:x)",
    "<iframe>",
    "&",
    '"',
    "x",
    " ",
    "^id",
    "<!--",
    "-->",
]


class _Tags(HTMLParser):
    """Every start tag of a document with its attributes, as a browser would see them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(_RISKY), max_size=30))
@example(["`", "`", "`", "[t](javascript:x)"])  # a fence whose language is a link: a class, inert
def test_no_combination_of_note_text_yields_script(parts: list[str]) -> None:
    parser = _Tags()
    parser.feed(render("".join(parts)))
    for tag, attributes in parser.tags:
        assert tag not in ("script", "iframe", "object", "embed", "style"), tag
        for name, value in attributes:
            assert not name.startswith("on"), (tag, name)
            text = re.sub(r"\s", "", (value or "").lower())
            assert not (name in ("href", "src") and text.startswith("javascript:")), (tag, name, value)
            # text, never a URL to load (a fence's info string becomes a class: "language-…")
            inert = name.startswith("data-") or name in ("title", "alt", "class")
            assert "javascript:" not in text or inert, (tag, name, value)
