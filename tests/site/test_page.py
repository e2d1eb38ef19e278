"""Link resolution and the page model: titles, metadata, links, embeds, verdict panels."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from noteexec.facts import BlockFacts, Gradient, Graph, Raised
from noteexec.site.build import BuildOptions, render_site
from noteexec.site.code import graph_paths, graph_svg
from noteexec.site.page import Page
from noteexec.site.vault import Vault, frontmatter_list, href
from noteexec.site.write import BuildError
from tests.conftest import noteexec
from tests.site.helpers import results_for, write_vault

# -------------------------------------------------------------------------------- resolution

VAULT = Vault(
    ["a/Note.md", "b/note.md", "note.md", "x/y/deep.md", "Unique Name.md"],
    ["img/pic.png", "a/pic.png"],
    {"x/y/deep.md": ["Zed", "另一个名字"]},
)


@pytest.mark.parametrize(
    ("target", "source", "expected"),
    [
        ("note", "a/q.md", "a/Note.md"),  # same folder wins
        ("note", "c/q.md", "note.md"),  # then the shortest path
        ("NOTE", "c/q.md", "note.md"),  # case-insensitive
        ("b/note", "c/q.md", "b/note.md"),  # a path picks by suffix
        ("y/deep", "q.md", "x/y/deep.md"),
        ("deep.md", "q.md", "x/y/deep.md"),
        ("unique name", "q.md", "Unique Name.md"),
        ("zed", "q.md", "x/y/deep.md"),  # aliases
        ("另一个名字", "q.md", "x/y/deep.md"),
        ("../note", "a/q.md", "note.md"),  # relative
        ("pic.png", "a/q.md", "a/pic.png"),
        ("pic.png", "q.md", "a/pic.png"),  # no same-folder file: the shortest path
        ("missing", "q.md", None),
    ],
)
def test_links_resolve_like_obsidian(target: str, source: str, expected: str | None) -> None:
    resolved = VAULT.resolve(target, source)
    assert (resolved.rel if resolved else None) == expected


def test_hrefs_are_relative_and_percent_encoded() -> None:
    assert href("a/b.html", "c/计算.html", "错误") == "../c/%E8%AE%A1%E7%AE%97.html#%E9%94%99%E8%AF%AF"
    assert href("index.html", "x y.html") == "x%20y.html"
    assert href("a/b.html", "a/b.html", "h") == "b.html#h"


def test_note_urls_avoid_the_sites_own_files() -> None:
    vault = Vault(["index.md", "search-index.js.md", "_assets/x.md"])
    assert vault.url("index.md") == "index-1.html"
    assert vault.url("_assets/x.md").startswith("_notes/")
    unreadable_folder = Vault(["locked", "locked.md"])
    assert [unreadable_folder.url(rel) for rel in ("locked", "locked.md")] == ["locked.html", "locked-1.html"]


def test_frontmatter_lists_accept_a_string_or_a_list() -> None:
    assert frontmatter_list("one") == ("one",)
    assert frontmatter_list("a, b") == ("a", "b")
    assert frontmatter_list(["a", None, " b "]) == ("a", "b")
    assert frontmatter_list(None) == ()


# -------------------------------------------------------------------------------- pages


def site_of(tmp_path: Path, notes: dict[str, str], facts=None, **options: object) -> dict[str, Page]:
    root = write_vault(tmp_path / "vault", notes)
    files = render_site(root, results_for(root, facts), BuildOptions(**options))
    return {page.rel: page for page in files.pages}


def test_title_is_frontmatter_title_else_the_file_name_like_obsidian(tmp_path: Path) -> None:
    files = render_site(
        write_vault(
            tmp_path / "vault",
            {
                "fm.md": "---\ntitle: From frontmatter\n---\n# Heading one\n",
                "h1.md": "# Heading one\n\nIntro\n",
                "plain name.md": "Just text\n",
            },
        ),
        results_for(tmp_path / "vault"),
    )
    pages = {page.rel: page for page in files.pages}
    assert pages["fm.md"].title == "From frontmatter"
    assert pages["h1.md"].title == "h1"  # the H1 stays in the body, under the file name
    assert '<h1 id="heading-one">Heading one</h1>' in pages["h1.md"].body
    assert pages["plain name.md"].title == "plain name"
    index = files.files["index.html"].decode()
    nav = re.search(r'<div class="nav-files">(.*?)</nav>', index, re.S)
    assert nav is not None
    titles = re.findall(r'<span class="nav-file-title">([^<]*)</span>', nav[1])
    assert titles == ["From frontmatter", "h1", "plain name"]
    assert re.findall(r'<a class="internal-link" href="[^"]*">([^<]*)</a>', index) == titles


def test_frontmatter_becomes_metadata_not_body(tmp_path: Path) -> None:
    page = site_of(
        tmp_path,
        {
            "n.md": """
            ---
            title: T
            date: 2025-07-26
            tags: [PyTorch, "#Autograd"]
            aliases: [Other name]
            author: Me
            ---
            # T

            Body with #inline-tag.
            """
        },
    )["n.md"]
    assert page.date == "2025-07-26"
    assert page.tags == ("PyTorch", "Autograd", "inline-tag")
    assert page.aliases == ("Other name",)
    assert page.properties == (("author", "Me"),)
    assert "2025-07-26" not in page.body and "aliases" not in page.body
    assert "<h1" not in page.body  # the H1 repeats the title shown in the header


def test_properties_show_as_obsidian_shows_them(tmp_path: Path) -> None:
    pages = site_of(
        tmp_path,
        {
            "n.md": """
            ---
            done: true
            draft-ready: false
            related: "[[other]] and [[missing]]"
            sources: ["[[other|the other note]]", "https://example.org/a?b=1", 3]
            reviewed: 2025-07-26
            count: 3
            ---
            Text.
            """,
            "other.md": "Other.\n",
        },
    )
    props = dict(pages["n.md"].properties)
    assert props["done"] == (
        '<input type="checkbox" class="metadata-property-checkbox" disabled checked aria-label="true">'
    )
    assert "checked" not in props["draft-ready"] and 'aria-label="false"' in props["draft-ready"]
    assert "True" not in "".join(props.values()) and "False" not in "".join(props.values())
    assert props["related"].startswith(
        '<a class="internal-link" data-href="other" href="other.html">other</a> and '
    )
    assert 'class="internal-link is-unresolved"' in props["related"]
    assert (
        '<a class="internal-link" data-href="other|the other note" href="other.html">the other note</a>'
        in (props["sources"])
    )
    assert 'target="_blank" href="https://example.org/a?b=1">' in props["sources"]
    assert props["sources"].count('<span class="metadata-property-item">') == 3
    assert props["reviewed"] == "2025-07-26" and props["count"] == "3"
    assert pages["n.md"].links == ("other.md",)  # a property's link is a link (backlinks)
    assert [item.target for item in pages["n.md"].broken] == ["[[missing]]"]


def test_a_vault_home_note_is_the_landing_page_and_notes_without_code_get_no_badge(tmp_path: Path) -> None:
    root = write_vault(
        tmp_path / "vault",
        {
            "Home.md": "# Welcome\n\nStart with [[a]].\n",
            "README.md": "# Read me\n\nNot the home: Home.md comes first.\n",
            "a.md": "Plain prose.\n",
            "sub/b.md": "More prose.\n",
        },
    )
    files = render_site(root, results_for(root), BuildOptions())
    index = files.files["index.html"].decode()
    assert '<h1 class="page-title">Welcome</h1>' in index and index.count("<h1") == 1
    assert '<div class="markdown-rendered home-note">' in index
    assert 'Start with <a class="internal-link" data-href="a" href="a.html">a</a>' in index
    assert "Not the home" not in index
    assert index.index("home-note") < index.index('<section class="site-check"><h2>All notes</h2>')
    assert "<title>Welcome</title>" in index
    for name, data in files.files.items():  # no "no code" pill or column anywhere
        if name.endswith(".html"):
            page = data.decode()
            assert "note-status status-none" not in page and "no code" not in page.lower(), name
            assert '<span class="dot"></span>' not in page, name  # no status dot in the note list
            assert "<th>status</th>" not in page and "<th>blocks</th>" not in page, name


def test_home_picks_the_landing_pages_note_and_a_wrong_one_is_a_clear_error(tmp_path: Path) -> None:
    root = write_vault(
        tmp_path / "vault",
        {"README.md": "# Read me\n", "start/Begin here.md": "# Begin\n\nSee [[README]] and ![[pic.png]].\n"},
    )
    (root / "pic.png").write_bytes(b"\x89PNG")
    for chosen in ("start/Begin here", "./start/Begin here.md"):
        site = render_site(root, results_for(root), BuildOptions(home=chosen), attachments=["pic.png"])
        index = site.files["index.html"].decode()
        assert '<h1 class="page-title">Begin</h1>' in index and "Read me" not in index.split("site-check")[0]
        # its links work from index.html, not only from its own page in start/
        assert 'href="README.html">README</a>' in index and 'src="_attachments/pic.png"' in index
        assert 'href="../README.html">README</a>' in site.files["start/Begin here.html"].decode()
    with pytest.raises(BuildError, match="--home nowhere: no published note"):
        render_site(root, results_for(root), BuildOptions(home="nowhere"))
    built = noteexec("build", root, "-o", tmp_path / "site", "--no-run", "--home", "start/Begin here.md")
    assert built.returncode == 0 and "Begin" in (tmp_path / "site" / "index.html").read_text()


def test_without_a_home_note_the_landing_page_is_the_check(tmp_path: Path) -> None:
    root = write_vault(tmp_path / "vault", {"a.md": "```python\nx = 1\n```\n", "b.md": "Prose.\n"})
    index = render_site(root, results_for(root, {"a.md": []}), BuildOptions(title="T")).files["index.html"]
    text = index.decode()
    assert '<header class="note-header"><h1 class="page-title">T</h1><div class="site-summary">' in text
    assert "<th>status</th><th>note</th><th>blocks</th>" in text
    assert text.count('<span class="note-status') == 1  # a.md's; b.md has no code, no badge


def test_broken_links_are_marked_and_reported_with_their_line(tmp_path: Path) -> None:
    pages = site_of(
        tmp_path,
        {
            "a.md": "# A\n\nline three [[b]]\nline four [[nowhere]]\n\n- [[b#No such heading]]\n- [[b#Real]]\n",
            "b.md": "# B\n\n## Real\n",
        },
    )
    page = pages["a.md"]
    assert [(item.line, item.target, item.reason) for item in page.broken] == [
        (4, "[[nowhere]]", "no such note"),
        (6, "[[b#No such heading]]", "no such heading"),
    ]
    assert 'class="internal-link is-unresolved"' in page.body
    assert 'href="b.html#real"' in page.body
    assert page.links == ("b.md",)


def test_backlinks_and_embeds(tmp_path: Path) -> None:
    root = write_vault(
        tmp_path / "vault",
        {
            "host.md": "# Host\n\n![[guest#Part two]]\n\n![[guest#^quote1]]\n\n![[pic.png|240]]\n\n![[guest]]\n",
            "guest.md": "# Guest\n\n## Part one\nfirst\n\n## Part two\nsecond [[host]]\n\nA quotable line ^quote1\n",
            "self.md": "# Self\n\n![[self]]\n",
        },
    )
    (root / "pic.png").write_bytes(b"\x89PNG\r\n\x1a\nfake")
    site = render_site(root, results_for(root), BuildOptions(), attachments=["pic.png"])
    pages = {page.rel: page for page in site.pages}
    host = pages["host.md"].body
    assert 'class="internal-embed markdown-embed"' in host
    assert "second" in host and "first" not in host.split("A quotable line")[0].split("Part two")[1]
    assert "A quotable line" in host
    assert '<img src="_attachments/pic.png" alt="pic.png" width="240" loading="lazy">' in host
    assert site.files["_attachments/pic.png"] == root / "pic.png"
    assert "(embed cycle)" in pages["self.md"].body
    guest_html = site.files["guest.html"].decode()
    assert re.search(r"Links to this page</h2><ul><li><a href=\"host.html\">host</a>", guest_html)


# -------------------------------------------------------------------------------- verdicts

FAIL_NOTE = """
---
title: Failing note
---
> [!FAIL] wrong
> ```python
> w = torch.tensor([2.0])
> # RuntimeError: element 0 of tensors does not require grad
> w.sum().backward()
> ```

> [!SUCCESS] right
> ```python
> w = torch.tensor([2.0], requires_grad=True)
> (w * 3).sum().backward()
> print(w.grad)
> ```
"""


def failing_facts() -> list[BlockFacts]:
    return [
        BlockFacts(
            state="ran",
            exception=Raised("NameError", ("NameError", "Exception"), "name 'torch' <is> not defined", 8),
            stdout="partial <output>\n",
            warnings=(Raised("UserWarning", ("UserWarning",), "careful", 8),),
        ),
        BlockFacts(
            state="ran",
            stdout="tensor([3.])\n",
            gradients=(Gradient("w.grad", (1,), "float32", True, "[3]"),),
            graphs=(
                Graph(
                    nodes=(("n0", "SumBackward0"), ("n1", "MulBackward0"), ("n2", "AccumulateGrad (w)")),
                    edges=(("n0", "n1"), ("n1", "n2")),
                ),
            ),
        ),
    ]


def test_failed_block_shows_expectation_what_happened_and_where(tmp_path: Path) -> None:
    page = site_of(tmp_path, {"f.md": FAIL_NOTE}, {"f.md": failing_facts()})["f.md"]
    assert page.status == "failed"
    assert [(block.line, block.outcome) for block in page.blocks] == [(5, "failed"), (12, "passed")]
    body = page.body
    failed = body[body.index('id="L5"') : body.index('id="L12"')]
    assert 'data-outcome="failed"' in failed and '<details class="nx-verdict">' in failed  # badge only
    assert '<span class="nx-badge nx-badge-failed">' in failed
    assert "expects RuntimeError: element 0 of tensors does not require grad at line 8" in failed
    assert "name &#x27;torch&#x27; &lt;is&gt; not defined" in failed  # escaped
    assert 'at <a href="#L5">line 8</a> <code class="nx-line-code">w.sum().backward()</code>' in failed
    assert "partial &lt;output&gt;" in failed and "UserWarning" in failed
    assert '<span class="hll">' in failed  # the raising line is marked in the code


def test_verdicts_open_shows_failed_panels_open_for_ci_review(tmp_path: Path) -> None:
    page = site_of(tmp_path, {"f.md": FAIL_NOTE}, {"f.md": failing_facts()}, verdicts_open=True)["f.md"]
    assert page.body.count('<details class="nx-verdict" open>') == 1  # the failed block, not the passed
    assert "--verdicts {closed,open}" in noteexec("build", "--help").stdout


def test_gradients_table_and_measured_graph(tmp_path: Path) -> None:
    body = site_of(tmp_path, {"f.md": FAIL_NOTE}, {"f.md": failing_facts()})["f.md"].body
    passed = body[body.index('id="L12"') :]
    assert '<details class="nx-verdict">' in passed  # passed blocks start folded
    assert (
        "<td><code>w.grad</code></td><td><code>(1,)</code></td><td>float32</td><td><code>[3]</code></td>"
        in passed
    )
    assert "Measured autograd graph" in passed
    assert "<code>SumBackward0 → MulBackward0 → AccumulateGrad (w)</code>" in passed
    assert '<figure class="diagram nx-graph-drawing"><svg class="nx-graph-svg"' in passed
    assert "mermaid" not in passed  # drawn at build time: no script, no network


def test_graph_drawn_at_build_time_and_as_paths() -> None:
    graph = Graph(
        nodes=(
            ("n0", "AddBackward0"),
            ("n1", "MulBackward0"),
            ("n2", 'AccumulateGrad (x")'),
            ("n3", "AccumulateGrad (w)"),
        ),
        edges=(("n0", "n1"), ("n0", "n3"), ("n1", "n2")),
    )
    svg = graph_svg(graph)
    assert svg.count('<g class="nx-graph-node') == 4 and svg.count('class="nx-graph-edge"') == 3
    assert svg.count('<g class="nx-graph-node nx-graph-leaf">') == 2
    assert ">AccumulateGrad (x&quot;)</text>" in svg and 'x")' not in svg  # escaped
    boxes = re.findall(r'<rect x="([\d.]+)" y="([\d.]+)"', svg)
    assert [float(x) for x, _ in boxes] == sorted(float(x) for x, _ in boxes)  # inputs to the right
    assert "<script" not in svg and "foreignObject" not in svg and "href" not in svg
    wide = graph_svg(Graph(nodes=(("a", "AccumulateGrad (权重)"), ("b", "AccumulateGrad (ab)")), edges=()))
    widths = [float(width) for width in re.findall(r'width="([\d.]+)" height="26"', wide)]
    assert widths[0] > widths[1]  # CJK characters take two cells
    assert graph_paths(graph) == [
        'AddBackward0 → MulBackward0 → AccumulateGrad (x")',
        "AddBackward0 → AccumulateGrad (w)",
    ]


def test_no_run_marks_blocks_not_run_and_not_failed(tmp_path: Path) -> None:
    root = write_vault(tmp_path / "vault", {"f.md": FAIL_NOTE})
    site = render_site(root, results_for(root), BuildOptions(ran=False))
    page = site.pages[0]
    assert page.status == "not_run"
    assert {block.outcome for block in page.blocks} == {"not_run"}
    assert "nx-badge-not_run" in page.body


def test_hand_drawn_diagram_points_at_the_measured_graph(tmp_path: Path) -> None:
    note = FAIL_NOTE + "\n```mermaid\ngraph TD\n  a --> b\n```\n"
    body = site_of(tmp_path, {"f.md": note}, {"f.md": failing_facts()})["f.md"].body
    assert 'Drawn by hand · <a class="nx-compare" href="#L12">' in body


def test_markdown_links_and_images_to_vault_files_are_rewritten(tmp_path: Path) -> None:
    root = write_vault(
        tmp_path / "vault",
        {
            "sub/a.md": "# A\n\n[to b](../b.md#Part%20Two) and ![diagram|120](../img/d.png) and [web](https://x.org)\n"
            "and [gone](nowhere.md)\n",
            "b.md": "# B\n\n## Part Two\n",
        },
    )
    (root / "img").mkdir()
    (root / "img" / "d.png").write_bytes(b"png")
    site = render_site(root, results_for(root), BuildOptions(), attachments=["img/d.png"])
    page = next(page for page in site.pages if page.rel == "sub/a.md")
    assert '<a href="../b.html#part-two">to b</a>' in page.body
    assert '<img alt="diagram" src="../_attachments/img/d.png" width="120" loading="lazy">' in page.body
    assert 'href="https://x.org" class="external-link" rel="noopener noreferrer" target="_blank"' in page.body
    assert [(item.line, item.target) for item in page.broken] == [(4, "nowhere.md")]
    assert site.files["_attachments/img/d.png"] == root / "img" / "d.png"


def test_raw_html_urls_to_vault_files_are_rewritten_like_markdown_ones(tmp_path: Path) -> None:
    root = write_vault(
        tmp_path / "vault",
        {
            "sub/a.md": '<img src="../img/d.png" alt="d" width="90">\n\n'
            '<p><a href="b.md#Part%20Two">b</a> <img src="d.png"> <a href="../evil.html">evil</a></p>\n\n'
            '<video src="clip.mp4" poster="img/d.png" controls></video>\n\n'
            '<audio controls><source src="../sub/sound.ogg" type="audio/ogg"></audio>\n\n'
            '<img src="../../outside.png" alt="out"> <a href="/etc/passwd">pw</a> <img src="n%C3%B6.png">\n\n'
            '<a href="private.md">hidden</a> <img src="javascript:alert(1)"> <a href="#top">top</a>\n',
            "sub/b.md": "# B\n\n## Part Two\n",
            "private.md": "---\npublish: false\n---\nsecret\n",
        },
    )
    for name in ("img/d.png", "clip.mp4", "sub/sound.ogg", "evil.html"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"x")
    (tmp_path / "outside.png").write_bytes(b"x")
    attachments = ["clip.mp4", "evil.html", "img/d.png", "sub/sound.ogg"]
    site = render_site(root, results_for(root), BuildOptions(), attachments=attachments)
    page = next(page for page in site.pages if page.rel == "sub/a.md")
    body = page.body
    assert '<img src="../_attachments/img/d.png" alt="d" width="90">' in body
    assert '<a href="b.html#part-two" rel="noopener noreferrer">b</a>' in body
    assert '<img src="../_attachments/img/d.png">' in body  # a bare name is looked up in the vault
    assert '<video src="../_attachments/clip.mp4" poster="../_attachments/img/d.png" controls="">' in body
    assert '<source src="../_attachments/sub/sound.ogg" type="audio/ogg">' in body
    # Withheld (active), outside the vault, missing, private or a script URL: no URL at all.
    assert '<a rel="noopener noreferrer">evil</a>' in body and "evil.html" not in body
    assert '<img alt="out">' in body and '<a rel="noopener noreferrer">pw</a>' in body
    assert '<a rel="noopener noreferrer">hidden</a>' in body and "javascript" not in body
    assert '<a href="#top" rel="noopener noreferrer">top</a>' in body
    assert [item.target for item in page.withheld] == ["../evil.html"]
    assert sorted(item.target for item in page.broken) == ["../../outside.png", "/etc/passwd", "n%C3%B6.png"]
    assert set(site.files) >= {f"_attachments/{name}" for name in ("clip.mp4", "img/d.png", "sub/sound.ogg")}
    assert "_attachments/evil.html" not in site.files
    assert any("not published" in warning and "evil.html" in warning for warning in site.warnings)


def test_a_single_page_inlines_raw_html_images_but_links_no_data_url(tmp_path: Path) -> None:
    from noteexec.site.single import render_single

    root = write_vault(
        tmp_path / "vault", {"n.md": '<img src="p.png" alt="p"> <a href="p.png">the file</a>\n'}
    )
    (root / "p.png").write_bytes(b"\x89PNG")
    html, _ = render_single(root, results_for(root)[0], BuildOptions(offline=True))
    assert '<img src="data:image/png;base64,iVBORw==" alt="p">' in html
    assert '<a rel="noopener noreferrer">the file</a>' in html


def test_attachments_skip_dot_folders_symlinks_and_the_output(tmp_path: Path) -> None:
    from noteexec.site.vault import scan_attachments

    root = write_vault(tmp_path / "vault", {"n.md": "x"})
    for name in ("a.png", ".obsidian/app.json", "site/index.html", "deep/b.pdf"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"x")
    (root / "link.png").symlink_to(tmp_path / "outside.png")
    assert scan_attachments(root, skip=[root / "site"]) == ["a.png", "deep/b.pdf"]


def test_a_single_page_inlines_its_images(tmp_path: Path) -> None:
    from noteexec.site.single import render_single

    root = write_vault(tmp_path / "vault", {"n.md": "# N\n\n![[p.png]] and [[other]]\n", "other.md": "# O\n"})
    (root / "p.png").write_bytes(b"\x89PNG")
    html, page = render_single(root, results_for(root)[0], BuildOptions(offline=True))
    assert 'src="data:image/png;base64,iVBORw=="' in html
    assert 'href="other.html"' in html and page.broken == ()
    assert "<style>" in html and '<link rel="stylesheet"' not in html


def test_page_language_follows_the_text(tmp_path: Path) -> None:
    pages = site_of(
        tmp_path,
        {
            "en.md": "# Backward on a non-scalar\n\nSome English text with one 中文 word.\n",
            "zh.md": "# 计算图\n\n计算图是自动求导的核心，`requires_grad` 必须先设置。\n",
            "fr.md": "---\nlang: fr\n---\nBonjour\n",
        },
    )
    assert (pages["en.md"].lang, pages["zh.md"].lang, pages["fr.md"].lang) == ("en", "zh", "fr")
