"""Which Mermaid the site's pages load to draw diagrams: a pinned release from a CDN by default
(``--mermaid-url`` picks another, or a local file with ``--offline``)."""

MERMAID_VERSION = "12.3.0"
DEFAULT_MERMAID_URL = f"https://cdn.jsdelivr.net/npm/mermaid@{MERMAID_VERSION}/dist/mermaid.min.js"
