"""The site's own static files: stylesheet (with Pygments colours for light and dark), scripts."""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

from pygments.formatters import HtmlFormatter

LIGHT_STYLE = "default"
DARK_STYLE = "github-dark"

_DARK_BLOCK = re.compile(r"/\* @dark \*/\s*\.theme-dark\s*\{(?P<body>.*?)\}\s*/\* @end-dark \*/", re.S)


def _read(name: str) -> str:
    return resources.files("noteexec.site").joinpath("assets", name).read_text(encoding="utf-8")


def _pygments(style: str, prefixes: list[str]) -> str:
    """Token colours only: the code background and layout come from site.css."""
    rules = []
    for line in HtmlFormatter(style=style).get_style_defs(prefixes).splitlines():
        if not line.startswith(prefixes[0]) or ".highlight {" in line or ".highlight  {" in line:
            continue
        if " .hll" in line.split("{")[0]:
            continue  # the raising line is marked by site.css
        rules.append(line)
    return "\n".join(rules)


@cache
def site_css() -> str:
    css = _read("site.css")
    dark = _DARK_BLOCK.search(css)
    assert dark is not None, "site.css must keep its @dark block"
    fallback = (
        "\n/* No script: follow the system setting. */\n"
        "@media (prefers-color-scheme: dark) {\n  html:not(.theme-light) {" + dark["body"] + "}\n}\n"
    )
    light = _pygments(LIGHT_STYLE, ["html:not(.theme-dark) .highlight"])
    dark_rules = _pygments(DARK_STYLE, [".theme-dark .highlight"])
    return (
        css + fallback + "\n/* Pygments: light */\n" + light + "\n/* Pygments: dark */\n" + dark_rules + "\n"
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
