"""Rendering speed of the site on a 1000-note vault whose results are cached.

    python bench/site_render.py [--notes 1000] [--mkdocs]

Compares, over the same Markdown files:
- plain ``MarkdownIt().render()`` (the floor: CommonMark, nothing else);
- ``noteexec.site.build.render_site`` with results already known (what a cached build does),
  and the same plus writing the site;
- ``mkdocs build`` with mkdocs-material and mkdocs-callouts, when ``--mkdocs`` is given and
  they are installed (pip install mkdocs mkdocs-material mkdocs-callouts).

Targets (issue 4): render_site at most 2x plain markdown-it, and at least 3x faster than mkdocs.
"""

from __future__ import annotations

import argparse
import gc
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from markdown_it import MarkdownIt

from noteexec.check import assemble, expectations
from noteexec.config import Config
from noteexec.facts import BlockFacts, Gradient, Graph, NoteFacts, Raised
from noteexec.parse import read_note
from noteexec.site.build import BuildOptions, render_site
from noteexec.site.write import write_site

REPO = Path(__file__).resolve().parent.parent


def make_vault(root: Path, count: int) -> list[Path]:
    sources = sorted((REPO / "notes").glob("*.md"))
    names = [source.stem for source in sources]
    paths = []
    for index in range(count):
        source = sources[index % len(sources)]
        folder = root / f"part{index % 10}"
        folder.mkdir(parents=True, exist_ok=True)
        text = source.read_text(encoding="utf-8")
        # unique names, and links between the copies so resolution has work to do
        text = text.replace("[[", f"[[{index}-") if index % 2 else text
        following = f"{index + 1}-{names[(index + 1) % len(names)]}"
        text += f"\n\nSee also [[{following}]] and [[{names[index % len(names)]}]].\n"
        path = folder / f"{index}-{source.stem}.md"
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    return paths


def cached_results(paths: list[Path]) -> list:
    """Results as a cache would hand them back: every block ran, with output and a graph."""
    config = Config()
    results = []
    for path in paths:
        note = read_note(path)
        expected = expectations(note, config)
        facts = []
        for expectation in expected:
            if expectation.kind == "skip":
                continue
            if expectation.kind == "raises" and expectation.error is not None:
                error = expectation.error
                raised = Raised(error.name, (error.name, "Exception"), error.message, error.line)
                facts.append(BlockFacts(state="ran", exception=raised, duration=0.002))
            else:
                facts.append(
                    BlockFacts(
                        state="ran",
                        stdout="tensor([30.])\n",
                        gradients=(Gradient("w.grad", (1,), "float32", True, "[30]"),),
                        graphs=(
                            Graph(
                                (("n0", "MseLossBackward0"), ("n1", "AccumulateGrad (w)")), (("n0", "n1"),)
                            ),
                        ),
                        duration=0.003,
                    )
                )
        results.append(assemble(note, expected, NoteFacts(blocks=tuple(facts))))
    return results


def best_of(runs: int, function) -> float:
    times = []
    for _ in range(runs):
        gc.collect()
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--notes", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--mkdocs", action="store_true", help="also time mkdocs build (material + callouts)")
    arguments = parser.parse_args()

    with tempfile.TemporaryDirectory() as temporary:
        root = Path(temporary) / "vault"
        paths = make_vault(root, arguments.notes)
        texts = [path.read_text(encoding="utf-8") for path in paths]
        results = cached_results(paths)
        options = BuildOptions(title="bench")

        plain_md = MarkdownIt()
        plain = best_of(arguments.runs, lambda: [plain_md.render(text) for text in texts])
        render = best_of(arguments.runs, lambda: render_site(root, results, options))
        out = Path(temporary) / "site"
        written = best_of(arguments.runs, lambda: write_site(render_site(root, results, options).files, out))

        print(f"{arguments.notes} notes")
        print(f"  MarkdownIt().render()         {plain:7.3f}s")
        print(
            f"  noteexec render_site (cached) {render:7.3f}s  = {render / plain:.2f}x markdown-it "
            "(target <= 2x)"
        )
        print(f"  noteexec render + write       {written:7.3f}s  = {written / plain:.2f}x markdown-it")
        ok = render <= 2 * plain

        if arguments.mkdocs:
            mkdocs = shutil.which("mkdocs")
            if mkdocs is None:
                print("  mkdocs: not installed (pip install mkdocs mkdocs-material mkdocs-callouts)")
            else:
                project = Path(temporary) / "mkdocs"
                shutil.copytree(root, project / "docs")
                (project / "mkdocs.yml").write_text(
                    "site_name: bench\ntheme:\n  name: material\nplugins:\n  - callouts\n"
                    "markdown_extensions:\n  - nl2br\n  - admonition\n  - pymdownx.details\n"
                    "  - pymdownx.superfences\n  - pymdownx.highlight\n"
                )
                command = [mkdocs, "build", "-q", "-d", str(project / "site")]
                mk = best_of(1, lambda: subprocess.run(command, cwd=project, check=True, capture_output=True))
                print(
                    f"  mkdocs build (material)       {mk:7.3f}s  = {mk / written:.2f}x slower than noteexec "
                    "render + write (target >= 3x)"
                )
                ok = ok and mk >= 3 * written
        print("OK" if ok else "TARGET MISSED")
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
