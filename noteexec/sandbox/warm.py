"""What the worker does once, before its notes, so that every later fork costs less.

Two things, in this order: the parts of torch that notes load lazily are imported, so that each
note's process finds them loaded; and the worker's memory is backed by 2 MiB pages, so that each
fork copies fewer page-table entries. The first half of the collapse runs on a thread while the
import runs on the main one: the start of a run used one CPU for a third of a second less.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import os
import struct
import tempfile
import threading

WARM_UP = ("torch._dynamo", "torch.profiler._cupti_monitor")
"""Parts of torch that notes load lazily (an optimizer's first step imports torch._dynamo and
sympy: a second and 100 MiB); the zygote imports them once so that later forks have them."""
MADV_COLLAPSE = 25
HUGE_PAGE = 2 << 20
_PAGE = os.sysconf("SC_PAGE_SIZE")
_PAGES_PER_HUGE_PAGE = HUGE_PAGE // _PAGE
_libc = ctypes.CDLL(None, use_errno=True)  # releases the GIL in each call: the import goes on


def torch_cache_folder() -> str | None:
    """A fresh folder for torch's compile cache, unless the user chose one: torch._dynamo makes
    one as it is imported (by default ``torchinductor_<user>`` in the temporary folder) and
    would leave it behind. The worker makes it, so that it can remove it whatever happens."""
    return None if "TORCHINDUCTOR_CACHE_DIR" in os.environ else tempfile.mkdtemp(prefix="noteexec-torch-")


def import_lazy_parts(cache: str | None) -> bool:
    """Import ``WARM_UP`` while a thread backs what is already mapped with huge pages, with
    torch's compile cache in ``cache`` (see :func:`torch_cache_folder`). Returns whether an
    import started a thread that still runs (forked children would then risk torch's deadlock)."""
    threads = set(os.listdir("/proc/self/task"))
    if cache is not None:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache
    collapsing = threading.Thread(target=back_with_huge_pages)
    collapsing.start()
    try:
        for name in WARM_UP:
            with contextlib.suppress(Exception):
                importlib.import_module(name)
    finally:
        collapsing.join()
        if cache is not None:
            del os.environ["TORCHINDUCTOR_CACHE_DIR"]
    return bool(set(os.listdir("/proc/self/task")) - threads - {str(collapsing.native_id)})


def back_with_huge_pages() -> int:
    """Back the densely used parts of this process's anonymous memory with 2 MiB pages.

    ``fork`` copies one page-table entry per present 4 KiB page of anonymous memory, and the
    child tears them all down again at exit: for a worker holding torch (150-250 MiB) that was
    most of a note's cost. A huge page is one entry for 512 pages; copy-on-write in a child still
    copies 4 KiB at a time. Only 2 MiB stretches whose pages are (nearly) all present are
    collapsed, and nothing is marked ``MADV_HUGEPAGE``, so no memory is added: new allocations
    keep getting 4 KiB pages. Best effort: without ``MADV_COLLAPSE`` (Linux < 6.1) nothing
    changes. Returns the bytes collapsed.
    """
    try:
        pagemap = os.open("/proc/self/pagemap", os.O_RDONLY)
    except OSError:
        return 0
    collapsed = 0
    try:
        with open("/proc/self/maps") as maps:
            regions = [line.split() for line in maps]
        for fields in regions:
            if fields[1] != "rw-p" or (len(fields) > 5 and fields[5] != "[heap]"):
                continue
            start, end = (int(bound, 16) for bound in fields[0].split("-"))
            for chunk in range(-(-start // HUGE_PAGE) * HUGE_PAGE, end // HUGE_PAGE * HUGE_PAGE, HUGE_PAGE):
                entries = os.pread(pagemap, 8 * _PAGES_PER_HUGE_PAGE, chunk // _PAGE * 8)
                present = sum(entry >> 63 for (entry,) in struct.iter_unpack("<Q", entries))
                if present >= _PAGES_PER_HUGE_PAGE * 15 // 16:
                    address, length = ctypes.c_void_p(chunk), ctypes.c_size_t(HUGE_PAGE)
                    if _libc.madvise(address, length, MADV_COLLAPSE) == 0:
                        collapsed += HUGE_PAGE
    finally:
        os.close(pagemap)
    return collapsed
