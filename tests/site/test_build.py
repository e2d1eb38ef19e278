"""Writing the site: deterministic bytes, atomic swaps, and the commands' exit codes."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from noteexec.site import write as write_module
from noteexec.site.build import BuildOptions, build_site, render_site
from noteexec.site.write import MARKER, BuildError, write_site
from tests.conftest import REPO, SEED_NOTE, fence, noteexec
from tests.site.helpers import results_for, write_vault

NOTES = REPO / "notes"


def digest(folder: Path) -> dict[str, str]:
    return {
        path.relative_to(folder).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def test_same_vault_and_results_give_byte_identical_sites(tmp_path: Path) -> None:
    results = results_for(NOTES)
    build_site(NOTES, results, tmp_path / "one", BuildOptions(ran=False))
    build_site(NOTES, results_for(NOTES), tmp_path / "two", BuildOptions(ran=False))
    assert digest(tmp_path / "one") == digest(tmp_path / "two")


def test_the_bundled_vault_builds_without_broken_links(tmp_path: Path) -> None:
    report = build_site(NOTES, results_for(NOTES), tmp_path / "site", BuildOptions(ran=False))
    assert report.broken == ()
    site = tmp_path / "site"
    assert (site / "index.html").is_file() and (site / "sitemap.xml").is_file()
    assert (site / "autograd-计算图与梯度.html").is_file()
    assert (site / "tags" / "pytorch.html").is_file()
    assert (site / "_assets" / "site.css").is_file() and (site / MARKER).is_file()


def test_every_link_in_the_site_is_relative(tmp_path: Path) -> None:
    build_site(NOTES, results_for(NOTES), tmp_path / "site", BuildOptions(ran=False, mermaid_url=None))
    for page in (tmp_path / "site").rglob("*.html"):
        text = page.read_text()
        assert 'href="/' not in text and 'src="/' not in text, page


def test_search_index_and_sitemap(tmp_path: Path) -> None:
    build_site(
        NOTES, results_for(NOTES), tmp_path / "site", BuildOptions(ran=False, site_url="https://x.org/n/")
    )
    script = (tmp_path / "site" / "search-index.js").read_text()
    assert script.startswith("window.NOTEEXEC_INDEX = ")
    index = json.loads(script[len("window.NOTEEXEC_INDEX = ") : -2])
    seed = next(entry for entry in index["pages"] if entry["p"] == "autograd-计算图与梯度.md")
    assert "计算图" in seed["x"] and "错误场景分析" in seed["h"] and "PyTorch" in seed["g"]
    sitemap = (tmp_path / "site" / "sitemap.xml").read_text()
    assert "<loc>https://x.org/n/index.html</loc>" in sitemap
    assert "%E8%AE%A1%E7%AE%97%E5%9B%BE" in sitemap and "<lastmod>2025-07-26</lastmod>" in sitemap


def test_a_failed_build_leaves_the_previous_site_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "site"
    build_site(NOTES, results_for(NOTES), out, BuildOptions(ran=False))
    before = digest(out)

    def broken_copy(source: Path, target: Path) -> None:
        raise OSError(28, "No space left on device")

    files = render_site(NOTES, results_for(NOTES), BuildOptions(ran=False)).files
    files["zz/attachment.png"] = NOTES / "README.md"
    monkeypatch.setattr(write_module.shutil, "copyfile", broken_copy)
    with pytest.raises(BuildError, match="No space left"):
        write_site(files, out)
    assert digest(out) == before
    assert not list(tmp_path.glob(".site.*"))  # no staging folder left behind


def test_an_interrupted_build_leaves_the_previous_site_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "site"
    write_site({"index.html": b"old"}, out)

    def interrupted(self: Path, data: bytes) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(Path, "write_bytes", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_site({"index.html": b"new"}, out)
    monkeypatch.undo()
    assert (out / "index.html").read_bytes() == b"old"


def test_rebuild_replaces_the_previous_site_completely(tmp_path: Path) -> None:
    out = tmp_path / "site"
    write_site({"index.html": b"old", "gone.html": b"x"}, out)
    write_site({"index.html": b"new"}, out)
    assert (out / "index.html").read_bytes() == b"new" and not (out / "gone.html").exists()


def test_a_folder_that_is_not_a_site_is_never_replaced(tmp_path: Path) -> None:
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("years of work")
    with pytest.raises(BuildError, match="not written by noteexec"):
        write_site({"index.html": b"x"}, precious)
    assert (precious / "thesis.tex").read_text() == "years of work"


def test_the_swap_works_without_renameat2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(write_module, "_exchange", lambda a, b: False)
    out = tmp_path / "site"
    write_site({"index.html": b"one"}, out)
    write_site({"index.html": b"two"}, out)
    assert (out / "index.html").read_bytes() == b"two"


# -------------------------------------------------------------------------------- commands


def test_build_no_run_exits_0_and_says_so(tmp_path: Path) -> None:
    result = noteexec("build", NOTES, "-o", tmp_path / "site", "--no-run")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "not run" in result.stdout and "site OK" in result.stdout
    assert (tmp_path / "site" / "index.html").is_file()


def test_build_exits_1_and_lists_broken_links_with_file_and_line(tmp_path: Path) -> None:
    vault = write_vault(tmp_path / "vault", {"a.md": "# A\n\nok\n[[missing note]]\n"})
    result = noteexec("build", vault, "-o", tmp_path / "site", "--no-run")
    assert result.returncode == 1
    assert f"BROKEN LINK {vault}/a.md:4: no such note: [[missing note]]" in result.stdout
    assert (tmp_path / "site" / "a.html").is_file()


def test_build_exits_1_when_a_check_fails(tmp_path: Path) -> None:
    vault = tmp_path / "vault"
    vault.mkdir()
    shutil.copy(SEED_NOTE, vault / "seed.md")
    result = noteexec("build", vault, "-o", tmp_path / "site", "-j", "1")
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"N/A   {vault}/seed.md:28: not runnable here: 'compute_loss' is defined nowhere" in result.stdout
    page = (tmp_path / "site" / "seed.html").read_text()
    assert 'data-outcome="not_runnable"' in page and "NameError" in page
    (vault / "seed.md").write_text(fence("print(2 + 2)  # 5"))
    result = noteexec("build", vault, "-o", tmp_path / "site", "-j", "1")
    assert result.returncode == 1
    assert f"FAIL  {vault}/seed.md:1:" in result.stdout
    assert 'data-outcome="failed"' in (tmp_path / "site" / "seed.html").read_text()


def test_build_exits_2_when_no_site_can_be_written(tmp_path: Path) -> None:
    target = tmp_path / "not-a-site"
    target.mkdir()
    (target / "keep.txt").write_text("x")
    result = noteexec("build", NOTES, "-o", target, "--no-run")
    assert result.returncode == 2 and "not written by noteexec" in result.stderr
    assert noteexec("build", tmp_path / "nope", "--no-run").returncode == 2


def test_render_writes_one_self_contained_page(tmp_path: Path) -> None:
    out = tmp_path / "page.html"
    result = noteexec("render", NOTES / "autograd-计算图与梯度.md", "-o", out, "--no-run", "--offline")
    assert result.returncode == 0, result.stdout + result.stderr
    html = out.read_text()
    assert "<style>" in html and 'rel="stylesheet"' not in html
    assert "<script src=" not in html  # scripts inline, covered by the CSP hashes
    assert "sha256-" in html
    assert 'data-callout="fail"' in html and 'id="错误场景分析"' in html


def test_site_commands_never_import_torch() -> None:
    code = "import sys, noteexec.cli, noteexec.site.serve, noteexec.site.build; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert result.stdout.strip() == "False"
