"""The HTML of code: Pygments highlighting, Mermaid diagrams, and each checked block's verdict
panel with its measured autograd graphs. Everything written is escaped.

Which fence gets which is :mod:`noteexec.site.markdown.fences`'s decision.
"""

from __future__ import annotations

import html
import unicodedata
from functools import lru_cache
from typing import Literal

from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexer import Lexer
from pygments.lexers import TextLexer, get_lexer_by_name
from pygments.util import ClassNotFound

from noteexec.facts import Graph
from noteexec.judge import Outcome
from noteexec.results import BlockResult
from noteexec.site import icons

escape = html.escape

MAX_OUTPUT = 20_000
"""Characters of captured output shown on a page; the rest is cut with a note."""


@lru_cache(maxsize=256)
def _lexer(language: str) -> Lexer:
    lexer: Lexer  # pygments' stubs type lexer construction as Any
    try:
        lexer = get_lexer_by_name(language, stripnl=False, ensurenl=True)
    except ClassNotFound:
        lexer = TextLexer(stripnl=False, ensurenl=True)
    return lexer


@lru_cache(maxsize=8192)
def highlight_code(code: str, language: str, hl_lines: tuple[int, ...] = ()) -> str:
    """``<div class="highlight"><pre><code>…`` with Pygments classes (styled for light and dark)."""
    formatter = HtmlFormatter(nowrap=True, hl_lines=list(hl_lines))
    body = highlight(code, _lexer(language), formatter) if language else escape(code)
    lang = f' class="language-{escape(language)}"' if language else ""
    return f'<div class="highlight"><pre><code{lang}>{body}</code></pre></div>'


def mermaid_block(source: str, mermaid: bool, graph_lines: tuple[int, ...]) -> str:
    """A hand-drawn diagram: ``<pre class="mermaid">`` when the page loads mermaid.js (else its
    source as code), captioned with a link to the first measured graph (``graph_lines``)."""
    figure_caption = ""
    if graph_lines:
        line = graph_lines[0]
        figure_caption = (
            f'<figcaption>Drawn by hand · <a class="nx-compare" href="#L{line}">'
            f"compare with the graph measured at line {line}</a></figcaption>"
        )
    if mermaid:
        body = f'<pre class="mermaid">{escape(source)}</pre>'
    else:
        body = (
            '<div class="code-block mermaid-source" data-lang="mermaid">'
            f"{highlight_code(source, 'text')}</div>"
        )
    return f'<figure class="diagram">{body}{figure_caption}</figure>\n'


# --------------------------------------------------------------------------------------------
# Verdicts

ShownOutcome = Outcome | Literal["not_run"]
"""A block's badge: the judge's outcome, or ``not_run`` when nothing executed it (``--no-run``)."""

BADGE_LABELS: dict[ShownOutcome, str] = {
    "passed": "passed",
    "failed": "failed",
    "not_runnable": "not runnable here",
    "skipped": "skipped",
    "not_run": "not run",
}


def display_outcome(result: BlockResult, ran: bool = True) -> ShownOutcome:
    """``passed``/``failed``/``skipped``, or ``not_run`` when nothing executed the block."""
    if result.verdict.outcome == "skipped":
        return "skipped"
    if result.facts is None or result.facts.state == "not_run":
        return "not_run" if not ran else "failed"
    return result.verdict.outcome


def _badge(outcome: ShownOutcome) -> str:
    icon = {
        "passed": icons.callout_icon("success"),
        "failed": icons.callout_icon("failure"),
        "not_runnable": icons.callout_icon("warning"),
        "skipped": icons.callout_icon("quote"),
        "not_run": icons.callout_icon("info"),
    }[outcome]
    return f'<span class="nx-badge nx-badge-{outcome}">{icon}{BADGE_LABELS[outcome]}</span>'


def _cut(text: str) -> str:
    if len(text) <= MAX_OUTPUT:
        return escape(text)
    rest = len(text) - MAX_OUTPUT
    return escape(text[:MAX_OUTPUT]) + f'\n<span class="nx-cut">… {rest} more characters</span>'


def _section(label: str, body: str, kind: str) -> str:
    return f'<div class="nx-section nx-{kind}"><div class="nx-label">{escape(label)}</div>{body}</div>'


def _where(result: BlockResult, line: int | None) -> str:
    if line is None:
        return ""
    code = result.block.code_line(line).strip()
    shown = f' <code class="nx-line-code">{escape(code)}</code>' if code else ""
    return f' <span class="nx-at">at <a href="#L{result.block.line}">line {line}</a>{shown}</span>'


GRAPH_CHAR_WIDTH = 7.3
"""Width of one character of the graph's 12 px monospace labels (a fixed-width font lays out
the same everywhere, so boxes are sized at build time)."""
GRAPH_LABEL = 40
"""Longest label drawn; longer ones are cut with an ellipsis (the paths below say it whole)."""
_ROW, _HEIGHT, _GAP = 40, 26, 36


def _text_width(text: str) -> float:
    """Pixels a label takes in the monospace font: wide (CJK) characters take two cells."""
    cells = sum(2 if unicodedata.east_asian_width(char) in ("W", "F") else 1 for char in text)
    return cells * GRAPH_CHAR_WIDTH


def _columns(labels: dict[str, str], inputs: dict[str, list[str]]) -> dict[int, list[str]]:
    """Nodes by column: a node's longest path from a root (relaxed at most once per node, so a
    cycle, which autograd never records, cannot loop)."""
    column = dict.fromkeys(labels, 0)
    for _ in range(len(labels)):
        changed = False
        for a, targets in inputs.items():
            for b in targets:
                if column[b] < column[a] + 1 <= len(labels):
                    column[b], changed = column[a] + 1, True
        if not changed:
            break
    columns: dict[int, list[str]] = {}
    for node in labels:
        columns.setdefault(column[node], []).append(node)
    return columns


def _edge(x1: float, y1: float, x2: float, y2: float) -> str:
    curve = (
        f"M{x1:.1f},{y1:.1f} C{x1 + _GAP / 2:.1f},{y1:.1f} {x2 - _GAP / 2:.1f},{y2:.1f} {x2 - 5:.1f},{y2:.1f}"
    )
    arrow = f"M{x2 - 6:.1f},{y2 - 4:.1f} L{x2:.1f},{y2:.1f} L{x2 - 6:.1f},{y2 + 4:.1f}z"
    return f'<path class="nx-graph-edge" d="{curve}"/><path class="nx-graph-arrow" d="{arrow}"/>'


def graph_svg(graph: Graph) -> str:
    """A measured backward graph drawn at build time: no script, no network, themed by CSS.

    Left to right, each function pointing at its inputs; leaves (``AccumulateGrad``) dashed.
    """
    labels = dict(graph.nodes)
    inputs: dict[str, list[str]] = {}
    for a, b in graph.edges:
        if a in labels and b in labels:
            inputs.setdefault(a, []).append(b)
    columns = _columns(labels, inputs)
    shown = {
        node: label if len(label) <= GRAPH_LABEL else label[: GRAPH_LABEL - 1] + "…"
        for node, label in labels.items()
    }
    box = {node: _text_width(text) + 20 for node, text in shown.items()}
    place: dict[str, tuple[float, float]] = {}
    x = 1.0
    for index in sorted(columns):
        for rank, node in enumerate(columns[index]):
            place[node] = (x, 1 + rank * _ROW)
        x += max(box[node] for node in columns[index]) + _GAP
    parts = [
        _edge(place[a][0] + box[a], place[a][1] + _HEIGHT / 2, place[b][0], place[b][1] + _HEIGHT / 2)
        for a, targets in inputs.items()
        for b in targets
        if place[b][0] > place[a][0]
    ]
    for node, (left, top) in place.items():
        leaf = " nx-graph-leaf" if labels[node].startswith("AccumulateGrad") else ""
        parts.append(
            f'<g class="nx-graph-node{leaf}"><rect x="{left:.1f}" y="{top:.1f}" width="{box[node]:.1f}" '
            f'height="{_HEIGHT}" rx="6"/><text x="{left + 10:.1f}" y="{top + 17:.1f}">{escape(shown[node])}'
            f"</text><title>{escape(labels[node])}</title></g>"
        )
    width = x - _GAP + 2
    height = max((len(nodes) for nodes in columns.values()), default=0) * _ROW - _ROW + _HEIGHT + 2
    return (
        f'<svg class="nx-graph-svg" xmlns="http://www.w3.org/2000/svg" role="img" '
        f'aria-label="autograd graph of {len(labels)} nodes" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}">{"".join(parts)}</svg>'
    )


def graph_paths(graph: Graph, limit: int = 12) -> list[str]:
    """The graph as root-to-leaf paths in words: ``MseLossBackward0 → MulBackward0 → …``."""
    labels = dict(graph.nodes)
    children: dict[str, list[str]] = {}
    targets = set()
    for a, b in graph.edges:
        children.setdefault(a, []).append(b)
        targets.add(b)
    roots = [node for node, _ in graph.nodes if node not in targets] or [graph.nodes[0][0]]
    paths: list[str] = []

    def walk(node: str, trail: list[str]) -> None:
        if len(paths) >= limit:
            return
        trail = [*trail, labels.get(node, node)]
        following = [child for child in children.get(node, ()) if labels.get(child, child) not in trail]
        if not following or len(trail) > 40:
            paths.append(" → ".join(trail))
            return
        for child in following:
            walk(child, trail)

    for root in roots:
        walk(root, [])
    return paths


def _graphs(result: BlockResult) -> str:
    facts = result.facts
    if facts is None or not facts.graphs:
        return ""
    parts = []
    for number, graph in enumerate(facts.graphs, start=1):
        title = "Measured autograd graph" + (f" {number}" if len(facts.graphs) > 1 else "")
        paths = "".join(f"<li><code>{escape(path)}</code></li>" for path in graph_paths(graph))
        truncated = '<p class="nx-cut">The graph was cut short.</p>' if graph.truncated else ""
        caption = (
            f'{icons.GRAPH}<span>{title}</span> <span class="nx-muted">recorded when '
            "<code>backward()</code> ran, by walking <code>grad_fn</code></span>"
        )
        diagram = f'<figure class="diagram nx-graph-drawing">{graph_svg(graph)}</figure>'
        parts.append(
            f'<div class="nx-graph"><div class="nx-label">{caption}</div>{diagram}'
            f'<ul class="nx-paths">{paths}</ul>{truncated}</div>'
        )
    return "".join(parts)


def _shape(shape: tuple[int, ...]) -> str:
    return f"({', '.join(map(str, shape))}{',' if len(shape) == 1 else ''})"


def _gradients(result: BlockResult) -> str:
    facts = result.facts
    if facts is None or not facts.gradients:
        return ""
    rows = "".join(
        "<tr>"
        f"<td><code>{escape(gradient.name)}</code></td>"
        f"<td><code>{escape(_shape(gradient.shape))}</code></td>"
        f"<td>{escape(gradient.dtype)}</td>"
        f"<td><code>{escape(gradient.preview)}</code></td>"
        f'<td class="{"nx-ok" if gradient.finite else "nx-bad"}">{"yes" if gradient.finite else "no"}</td>'
        "</tr>"
        for gradient in facts.gradients
    )
    table = (
        '<table class="nx-gradients"><thead><tr><th>gradient</th><th>shape</th><th>dtype</th>'
        f"<th>values</th><th>finite</th></tr></thead><tbody>{rows}</tbody></table>"
    )
    return _section("Gradients produced", table, "gradients")


def _diff(diff: str) -> str:
    lines = []
    for line in diff.splitlines():
        kind = (
            "add" if line.startswith("+") and not line.startswith("+++")
            else "del" if line.startswith("-") and not line.startswith("---")
            else "ctx"
        )  # fmt: skip
        lines.append(f'<span class="nx-diff-{kind}">{escape(line)}</span>')
    body = "\n".join(lines)
    return _section("Documented → actual output", f'<pre class="nx-diff">{body}</pre>', "diff")


def verdict_details(result: BlockResult, outcome: ShownOutcome) -> str:
    facts = result.facts
    verdict = result.verdict
    parts = [f'<p class="nx-message">{escape(verdict.message)}</p>']
    if outcome == "not_run":
        parts = ['<p class="nx-message">This block was not run for this page.</p>']
    for warning in verdict.warnings:
        parts.append(f'<p class="nx-note">{escape(warning)}</p>')
    if facts is not None:
        if facts.state == "crashed" and facts.reason:
            parts.append(_section("The process ended", f"<p>{escape(facts.reason)}</p>", "crash"))
        if facts.exception is not None:
            raised = facts.exception
            message = f": {escape(raised.message)}" if raised.message else ""
            body = (
                f'<pre class="nx-exception-text"><span class="nx-exc-type">{escape(raised.type)}</span>'
                f"{message}</pre>{_where(result, raised.line)}"
            )
            parts.append(_section("Raised", body, "exception"))
        for caught in facts.warnings:
            message = f": {escape(caught.message)}" if caught.message else ""
            body = (
                f'<pre class="nx-exception-text"><span class="nx-exc-type">{escape(caught.type)}</span>'
                f"{message}</pre>{_where(result, caught.line)}"
            )
            parts.append(_section("Warning", body, "warning"))
        if facts.stdout:
            cut = " (cut short)" if facts.truncated else ""
            parts.append(
                _section(f"Output{cut}", f'<pre class="nx-stdout">{_cut(facts.stdout)}</pre>', "stdout")
            )
        if facts.stderr:
            parts.append(
                _section("Standard error", f'<pre class="nx-stderr">{_cut(facts.stderr)}</pre>', "stderr")
            )
        parts.append(_gradients(result))
        if facts.duration and facts.state == "ran":
            parts.append(f'<p class="nx-muted nx-duration">ran in {facts.duration * 1000:.1f} ms</p>')
    if verdict.diff:
        parts.append(_diff(verdict.diff))
    return "".join(parts)


def verdict_block(result: BlockResult, ran: bool, verdicts_open: bool) -> str:
    """The block's code and its verdict panel (open when it failed and ``verdicts_open``)."""
    block = result.block
    outcome = display_outcome(result, ran)
    facts = result.facts
    marked: tuple[int, ...] = ()
    if facts is not None and facts.exception is not None and facts.exception.line is not None:
        offset = facts.exception.line - block.line
        if 1 <= offset <= len(block.code.splitlines()):
            marked = (offset,)
    code = highlight_code(block.code, block.lang, marked)
    open_attr = " open" if outcome == "failed" and verdicts_open else ""
    expectation = escape(result.expectation.describe())
    details = verdict_details(result, outcome)
    return (
        f'<div class="nx-block nx-{outcome}" id="L{block.line}" data-line="{block.line}" '
        f'data-outcome="{outcome}">'
        f'<div class="code-block" data-lang="{escape(block.lang)}">{code}</div>'
        f'<details class="nx-verdict"{open_attr}><summary>{_badge(outcome)}'
        f'<span class="nx-expect">{expectation}</span>'
        f'<a class="nx-lineno" href="#L{block.line}" title="line of the opening fence">L{block.line}</a>'
        f'</summary><div class="nx-details">{details}</div></details>'
        f"{_graphs(result)}</div>\n"
    )
