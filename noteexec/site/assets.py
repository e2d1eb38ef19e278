"""The site's own static files: stylesheet (with Pygments colours for light and dark), scripts."""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

import tinycss2
from pygments.formatters import HtmlFormatter

LIGHT_STYLE = "default"
DARK_STYLE = "github-dark"


def _read(name: str) -> str:
    return resources.files("noteexec.site").joinpath("assets", name).read_text(encoding="utf-8")


def _pygments(style: str, prefixes: list[str]) -> str:
    """Token colours only: the code background and layout come from site.css."""
    rules = []
    defs: str = HtmlFormatter(style=style).get_style_defs(prefixes)  # type: ignore[no-untyped-call]  # untyped in its stubs
    for line in defs.splitlines():
        if not line.startswith(prefixes[0]) or ".highlight {" in line or ".highlight  {" in line:
            continue
        if " .hll" in line.split("{")[0]:
            continue  # the raising line is marked by site.css
        rules.append(line)
    return "\n".join(rules)


def _dark_fallback(css: str) -> str:
    """Every rule written for ``.theme-dark``, again for a page whose script does not run (no
    class on ``<html>``) when the reader's system is dark; a choice made with the toggle wins."""
    rules = []
    for rule in tinycss2.parse_stylesheet(css, skip_comments=True, skip_whitespace=True):
        if rule.type != "qualified-rule":
            continue
        selectors = [selector.strip() for selector in tinycss2.serialize(rule.prelude).split(",")]
        if not all(re.match(r"\.theme-dark(?![\w-])", selector) for selector in selectors):
            continue
        rewritten = ", ".join(
            "html:not(.theme-light)" + selector[len(".theme-dark") :] for selector in selectors
        )
        rules.append(f"  {rewritten} {{{tinycss2.serialize(rule.content)}}}")
    return (
        "\n/* No script: follow the system setting. */\n@media (prefers-color-scheme: dark) {\n"
        + "\n".join(rules)
        + "\n}\n"
    )


@cache
def site_css() -> str:
    css = _read("site.css")
    light = _pygments(LIGHT_STYLE, ["html:not(.theme-dark) .highlight"])
    dark_rules = _pygments(DARK_STYLE, [".theme-dark .highlight"])
    return (
        css
        + "\n/* Pygments: light */\n"
        + light
        + "\n/* Pygments: dark */\n"
        + dark_rules
        + "\n"
        + _dark_fallback(css + "\n" + dark_rules)
    )


@cache
def site_js() -> str:
    return _read("site.js")


@cache
def favicon_svg() -> str:
    return _read("favicon.svg").strip()


@cache
def theme_js() -> str:
    return _read("theme.js")
