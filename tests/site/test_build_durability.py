"""``noteexec build`` killed with SIGKILL at many moments, and two builds into one folder at once.

A vault of 60 notes (with attachments, so writing the site takes a measurable while) exists in two
versions; an uninterrupted build of each gives the manifests of the old and the new site (every
file's path and SHA-256, every folder). A real ``noteexec build --no-run`` of the new version into
OUT, which holds the old site, is then killed at 15 moments spread over its run: while Python
starts and renders, at fractions of the writing phase (measured from the moment its staging
folder appears) and just after the swap. After each kill OUT must be exactly the old site or
exactly the new one; staging folders a killed build leaves are not cleaned by the test, and later
builds must succeed anyway and leave none behind. Two builds started at once into the same OUT
both succeed and leave one complete site; a unit test holds the first mid-write to make that race
certain.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import REPO

NOTES = 60
ATTACHMENTS = 40


def write_vault(root: Path, version: int) -> Path:
    """60 notes linking to each other and to attachments; ``version`` changes every note's text."""
    root.mkdir(parents=True)
    for index in range(ATTACHMENTS):
        # 256 KiB each (writing the site takes a while), different per version
        seed = f"{version}-{index}".encode()
        block = b"".join(hashlib.sha256(seed + bytes([n])).digest() for n in range(256))
        (root / f"figure-{index:02}.png").write_bytes(block * 32)
    for index in range(NOTES):
        folder = root / f"part-{index % 6}"
        folder.mkdir(exist_ok=True)
        links = " ".join(f"[[note-{(index + step) % NOTES:02}]]" for step in (1, 7, 13))
        body = "\n\n".join(
            f"Paragraph {n} of note {index}, version {version}: gradients flow backwards. {links}"
            for n in range(40)
        )
        (folder / f"note-{index:02}.md").write_text(
            f"---\ntags: [v{version}, part-{index % 6}]\n---\n# Note {index} (version {version})\n\n"
            f"![[figure-{index % ATTACHMENTS:02}.png]]\n\n{body}\n\n"
            f"```python\nx = {index} + {version}\nprint(x)\n```\n",
            encoding="utf-8",
        )
    return root


def manifest(out: Path) -> dict[str, str]:
    """Every file (path → SHA-256) and folder (path → ``dir``) under ``out``."""
    found: dict[str, str] = {}
    for path in sorted(out.rglob("*")):
        rel = path.relative_to(out).as_posix()
        found[rel] = "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def start_build(vault: Path, out: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "noteexec", "build", str(vault), "-o", str(out), "--no-run", "--offline"],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def build(vault: Path, out: Path) -> None:
    process = start_build(vault, out)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr.decode()


def strays(out: Path) -> list[str]:
    """What a build left beside OUT (staging folders, a previous site moved aside)."""
    return sorted(path.name for path in out.parent.iterdir() if path.name.startswith(f".{out.name}."))


def restore(out: Path, old_site: Path) -> None:
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(old_site, out)


@pytest.fixture(scope="module")
def versions(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """Both vault versions and their uninterrupted sites with manifests (vault folders share a name,
    so the sites' titles agree and only the notes differ)."""
    base = tmp_path_factory.mktemp("durability")
    old_vault = write_vault(base / "v1" / "notes", 1)
    new_vault = write_vault(base / "v2" / "notes", 2)
    old_site, new_site = base / "old" / "site", base / "new" / "site"
    build(old_vault, old_site)
    build(new_vault, new_site)
    old, new = manifest(old_site), manifest(new_site)
    assert len(old) > NOTES + ATTACHMENTS and old != new
    assert set(old) & set(new) and (set(old) ^ set(new))  # shared paths and paths of one version
    return {
        "old_vault": old_vault,
        "new_vault": new_vault,
        "old_site": old_site,
        "old": old,
        "new": new,
    }


def measure(vault: Path, out: Path) -> tuple[float, float]:
    """(seconds until the staging folder appears, seconds until the build exits)."""
    started = time.monotonic()
    process = start_build(vault, out)
    staged = None
    while process.poll() is None:
        if staged is None and strays(out):
            staged = time.monotonic() - started
        time.sleep(0.001)
    total = time.monotonic() - started
    assert process.returncode == 0 and staged is not None
    return staged, total


def test_a_build_killed_at_any_moment_leaves_the_old_site_or_the_new(
    versions: dict[str, object], tmp_path: Path
) -> None:
    old, new = versions["old"], versions["new"]
    old_site, new_vault = Path(str(versions["old_site"])), Path(str(versions["new_vault"]))
    out = tmp_path / "site"
    restore(out, old_site)
    staged, total = measure(new_vault, out)
    assert manifest(out) == new
    writing = total - staged
    # 4 moments while Python starts and renders, 10 spread over writing, swapping and exiting,
    # and one just after the swap (the staging folder, then holding the old site, is gone)
    plan = [("from start", staged * fraction) for fraction in (0.1, 0.4, 0.7, 0.95)]
    plan += [("into writing", writing * step / 9) for step in range(10)]
    plan += [("after the swap", 0.0)]
    outcomes = []
    for anchor, delay in plan:
        restore(out, old_site)  # stray staging folders from earlier kills stay where they are
        earlier = set(strays(out))
        process = start_build(new_vault, out)
        if anchor != "from start":  # from the moment this build's staging folder appears
            while not set(strays(out)) - earlier and process.poll() is None:
                time.sleep(0.0005)
        if anchor == "after the swap":  # until it is gone again
            while set(strays(out)) - earlier and process.poll() is None:
                time.sleep(0.0005)
        time.sleep(delay)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        after = manifest(out)
        state = "old" if after == old else "new" if after == new else "corrupt"
        outcomes.append((anchor, round(delay, 3), process.returncode, state, strays(out)))
        assert state != "corrupt", (outcomes, sorted(set(after) ^ set(old)), sorted(set(after) ^ set(new)))
    killed_while_writing = [item for item in outcomes if item[2] == -signal.SIGKILL and item[4]]
    assert killed_while_writing, outcomes  # some kills landed while the new site was being written
    assert {item[3] for item in outcomes} == {"old", "new"}, outcomes
    # what the killed builds left behind does not stop the next build, which cleans it up
    restore(out, old_site)
    build(new_vault, out)
    assert manifest(out) == new
    assert strays(out) == []


def test_two_builds_into_one_folder_at_once_leave_one_complete_site(
    versions: dict[str, object], tmp_path: Path
) -> None:
    old, new = versions["old"], versions["new"]
    out = tmp_path / "site"
    restore(out, Path(str(versions["old_site"])))
    for skew in (0.0, 0.02, 0.05, 0.1):
        first = start_build(Path(str(versions["old_vault"])), out)
        time.sleep(skew)
        second = start_build(Path(str(versions["new_vault"])), out)
        results = [process.communicate(timeout=120) for process in (first, second)]
        codes = [first.returncode, second.returncode]
        assert codes == [0, 0], (skew, codes, [stderr.decode()[-500:] for _, stderr in results])
        assert manifest(out) in (old, new), skew
        assert strays(out) == []


def test_a_second_build_waits_for_the_first_instead_of_deleting_its_staging_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same race, made certain: the first build is held in the middle of writing."""
    from noteexec.site import write as write_module

    out = tmp_path / "site"
    source = tmp_path / "figure.png"
    source.write_bytes(b"png")
    copy = shutil.copyfile
    held, release = threading.Event(), threading.Event()

    def slow_copy(source: Path, target: Path) -> object:
        if threading.current_thread().name == "first":
            held.set()
            release.wait(timeout=30)
        return copy(source, target)

    monkeypatch.setattr(write_module.shutil, "copyfile", slow_copy)
    failures: list[BaseException] = []

    def run(files: dict[str, bytes | Path]) -> None:
        try:
            write_module.write_site(files, out)
        except BaseException as error:  # reported by the assertion below
            failures.append(error)

    first = threading.Thread(target=run, args=({"a.png": source, "index.html": b"first"},), name="first")
    second = threading.Thread(target=run, args=({"index.html": b"second"},), name="second")
    first.start()
    assert held.wait(timeout=30)
    second.start()
    second.join(timeout=0.5)
    assert second.is_alive()  # waiting for the first build, not deleting its staging folder
    release.set()
    first.join(timeout=30)
    second.join(timeout=30)
    assert failures == []
    assert (out / "index.html").read_bytes() == b"second" and not (out / "a.png").exists()
    assert strays(out) == []


def test_a_killed_rename_fallback_is_undone_by_the_next_build(
    versions: dict[str, object], tmp_path: Path
) -> None:
    """Where folders cannot be swapped in one step, a build renames OUT aside, then the new site
    in; killed between the two, OUT is missing: the next build puts the previous site back first."""
    out = tmp_path / "site"
    restore(out, Path(str(versions["old_site"])))
    os.rename(out, out.parent / f".{out.name}.abc123.old")  # what such a kill leaves
    (out.parent / f".{out.name}.def456.tmp").mkdir()  # and its half-written staging folder
    from noteexec.site.write import BuildError, write_site

    with pytest.raises(BuildError):  # this build fails after its recovery step, while writing
        write_site({"index.html": tmp_path / "missing.html"}, out)
    assert manifest(out) == versions["old"]  # the previous site is back in its place
    assert strays(out) == []
