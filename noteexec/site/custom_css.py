"""Custom CSS (``--css FILE``, Obsidian Publish's ``publish.css``), confined to note bodies.

A style sheet can make a page lie without any script: hide a failed badge, draw "all passed".
So custom CSS is parsed (tinycss2) and written again, rule by rule, inside
``@scope (.markdown-rendered) to (.nx-block)``: its selectors match only elements of a note's
body, never the page's header (status, counts, failed blocks), the sidebars, the index or a
checked block. A selector that names what the site marks verdicts with (``nx-`` classes,
``data-outcome``, ``status``) or looks into elements with ``:has()`` is dropped, so the CSS
cannot tell a failed block from a passed one. The body itself (the scope's root) is out of
reach too, and the site's own style sheet gives it ``contain: paint``, so nothing in it can be
drawn over the header.
Re-serialising from tokens means no text of the file can close the ``@scope`` block early.
A browser without ``@scope`` ignores the whole file. Rules that could reach beyond the body
(``@import``, ``@font-face``: a font could redraw "failed" as "passed" in the header, ``@scope``,
``@page``, ``@property``, nested rules) are dropped with a warning naming file:line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCOPE = "@scope (.markdown-rendered) to (.nx-block)"
"""Note bodies, down to (not into) each checked block."""
_VERDICT_MARKERS = ("nx-", "outcome", "status")
"""What the site's classes and attributes for verdicts contain (``nx-failed``, ``data-outcome``)."""
_GROUPS = frozenset({"media", "supports", "container", "layer"})
_CLOSERS = frozenset({"}", ")", "]", ";", "{"})


@dataclass(frozen=True)
class CustomCss:
    css: str
    """The confined style sheet; empty when nothing was usable."""
    warnings: tuple[str, ...]


def _unsafe(tokens: list[Any]) -> bool:
    """Tokens that would end or open a block when written back (or that did not parse)."""
    return any(
        token.type == "error" or (token.type == "literal" and token.value in _CLOSERS) for token in tokens
    )


def _sees_verdicts(tokens: list[Any]) -> bool:
    """Whether a selector names a verdict's class or attribute, or uses ``:has()``."""
    for token in tokens:
        if token.type == "function" and (token.lower_name == "has" or _sees_verdicts(token.arguments)):
            return True
        if token.type in ("[] block", "() block") and _sees_verdicts(token.content):
            return True
        value = getattr(token, "value", None)
        if token.type in ("ident", "hash", "string") and any(
            marker in str(value).lower() for marker in _VERDICT_MARKERS
        ):
            return True
    return False


def _declarations(content: list[Any], where: str, warnings: list[str]) -> str:
    import tinycss2

    kept = []
    for item in tinycss2.parse_blocks_contents(content, skip_comments=True, skip_whitespace=True):
        if item.type == "declaration":
            value = tinycss2.serialize(item.value).strip()
            if _unsafe(item.value) or any(token.type == "{} block" for token in item.value):
                warnings.append(f"{where}:{item.source_line}: dropped the declaration {item.lower_name}")
                continue
            important = " !important" if item.important else ""
            kept.append(f"{tinycss2.serialize([_ident(item.name)])}: {value}{important}")
        else:
            warnings.append(f"{where}:{item.source_line}: dropped a nested rule (custom CSS cannot nest)")
    return "; ".join(kept)


def _ident(name: str) -> Any:
    import tinycss2.ast

    return tinycss2.ast.IdentToken(0, 0, name)


def _rules(nodes: list[Any], where: str, warnings: list[str]) -> list[str]:
    """Each rule written again: selectors prefixed with ``:scope``, groups recursed into."""
    import tinycss2

    out: list[str] = []
    for node in nodes:
        if node.type == "qualified-rule":
            if _unsafe(node.prelude):
                warnings.append(f"{where}:{node.source_line}: dropped a rule whose selector does not parse")
                continue
            if _sees_verdicts(node.prelude):
                warnings.append(f"{where}:{node.source_line}: dropped a rule that could tell verdicts apart")
                continue
            selectors = _split(node.prelude)
            if not selectors:
                continue
            body = _declarations(node.content, where, warnings)
            out.append(f"{', '.join(f':scope {selector}' for selector in selectors)} {{ {body} }}")
        elif node.type == "at-rule" and node.lower_at_keyword in _GROUPS and node.content is not None:
            if _unsafe(node.prelude):
                warnings.append(f"{where}:{node.source_line}: dropped @{node.lower_at_keyword}")
                continue
            inner = tinycss2.parse_rule_list(node.content, skip_comments=True, skip_whitespace=True)
            prelude = tinycss2.serialize(node.prelude).strip()
            nested = "\n".join(_rules(inner, where, warnings))
            out.append(f"@{node.lower_at_keyword} {prelude} {{\n{nested}\n}}")
        elif node.type == "at-rule":
            warnings.append(
                f"{where}:{node.source_line}: dropped @{node.lower_at_keyword} "
                "(custom CSS only styles note bodies)"
            )
        elif node.type == "error":
            warnings.append(f"{where}:{node.source_line}: dropped what does not parse ({node.message})")
    return out


def _split(prelude: list[Any]) -> list[str]:
    import tinycss2

    parts: list[list[Any]] = [[]]
    for token in prelude:
        if token.type == "literal" and token.value == ",":
            parts.append([])
        else:
            parts[-1].append(token)
    return [text for text in (tinycss2.serialize(part).strip() for part in parts) if text]


def confine(text: str, where: str) -> CustomCss:
    """``text`` (the file ``where``) as CSS that can style note bodies and nothing else."""
    import tinycss2

    warnings: list[str] = []
    nodes = tinycss2.parse_stylesheet(text, skip_comments=True, skip_whitespace=True)
    rules = _rules(nodes, where, warnings)
    css = f"{SCOPE} {{\n" + "\n".join(rules) + "\n}\n" if rules else ""
    return CustomCss(css, tuple(warnings))


class CssFileError(Exception):
    """A custom CSS file that cannot be read as UTF-8 text; the message names it (and the line)."""


def load_custom_css(files: list[tuple[Path, str]]) -> CustomCss:
    """The confined CSS of ``files`` ((path, name shown in messages)), in order."""
    parts: list[str] = []
    warnings: list[str] = []
    for path, shown in files:
        try:
            data = path.read_bytes()
            text = data.decode("utf-8")
        except OSError as error:
            raise CssFileError(f"{shown}: cannot read it ({error.strerror or error})") from None
        except UnicodeDecodeError as error:
            line = data[: error.start].count(b"\n") + 1
            raise CssFileError(f"{shown}:{line}: not UTF-8 text ({error.reason})") from None
        confined = confine(text, shown)
        parts.append(confined.css)
        warnings.extend(confined.warnings)
    return CustomCss("".join(parts), tuple(warnings))
