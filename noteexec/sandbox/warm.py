"""What the zygote does once a run has several notes, so that every later fork costs less.

Two things, in this order: the parts of torch that notes load lazily are imported (before the
next note), so that each note's process finds them loaded; then the zygote's memory is backed by
2 MiB pages, a stretch at a time between orders, so that each fork copies fewer page-table entries.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import importlib
import os
import struct
import tempfile

WARM_UP = ("torch._dynamo", "torch.profiler._cupti_monitor")
"""Parts of torch that notes load lazily (an optimizer's first step imports torch._dynamo and
sympy: a second and 100 MiB); the zygote imports them once so that later forks have them."""
MADV_COLLAPSE = 25
HUGE_PAGE = 2 << 20
_PAGE = os.sysconf("SC_PAGE_SIZE")
_PAGES_PER_HUGE_PAGE = HUGE_PAGE // _PAGE
_libc = ctypes.CDLL(None, use_errno=True)


def torch_cache_folder() -> str | None:
    """A fresh folder for torch's compile cache, unless the user chose one: torch._dynamo makes
    one as it is imported (by default ``torchinductor_<user>`` in the temporary folder) and
    would leave it behind. The worker makes it, so that it can remove it whatever happens."""
    return None if "TORCHINDUCTOR_CACHE_DIR" in os.environ else tempfile.mkdtemp(prefix="noteexec-torch-")


def import_lazy_parts(cache: str | None) -> bool:
    """Import ``WARM_UP`` with torch's compile cache in ``cache`` (see :func:`torch_cache_folder`).
    Returns whether an import started a thread that still runs (forked children would then risk
    torch's deadlock)."""
    threads = set(os.listdir("/proc/self/task"))
    if cache is not None:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache
    try:
        for name in WARM_UP:
            with contextlib.suppress(Exception):
                importlib.import_module(name)
    finally:
        if cache is not None:
            del os.environ["TORCHINDUCTOR_CACHE_DIR"]
    return bool(set(os.listdir("/proc/self/task")) - threads)


class HugePages:
    """The densely used parts of this process's anonymous memory, to back with 2 MiB pages one
    stretch at a time.

    ``fork`` copies one page-table entry per present 4 KiB page of anonymous memory, and the
    child tears them all down again at exit: for a process holding torch (150-250 MiB) that was
    most of a note's cost. A huge page is one entry for 512 pages; copy-on-write in a child still
    copies 4 KiB at a time. Only 2 MiB stretches whose pages are (nearly) all present are
    collapsed, and nothing is marked ``MADV_HUGEPAGE``, so no memory is added: new allocations
    keep getting 4 KiB pages. Best effort: without ``MADV_COLLAPSE`` (Linux < 6.1) nothing
    changes.

    One stretch at a time, because collapsing is costly where fresh memory is (a virtual machine
    whose host takes back the guest's free memory: some 8 ms a stretch, over a second in all):
    the zygote collapses while it has no order to serve, so notes start at once and share the
    CPUs with it, instead of waiting for all of it.
    """

    def __init__(self) -> None:
        self.pending: list[int] = []
        """Start addresses of the stretches still to collapse, the last one next."""
        self._retried: set[int] = set()
        try:
            self._pagemap = os.open("/proc/self/pagemap", os.O_RDONLY)
        except OSError:
            return
        try:
            with open("/proc/self/maps") as maps:
                regions = [line.split() for line in maps]
            for fields in regions:
                if fields[1] != "rw-p" or (len(fields) > 5 and fields[5] != "[heap]"):
                    continue
                start, end = (int(bound, 16) for bound in fields[0].split("-"))
                first, last = -(-start // HUGE_PAGE) * HUGE_PAGE, end // HUGE_PAGE * HUGE_PAGE
                self.pending.extend(chunk for chunk in range(first, last, HUGE_PAGE) if self._dense(chunk))
        except OSError:  # best effort: a zygote that cannot read its own maps forks as it is
            self.pending.clear()
        self.pending.reverse()
        if not self.pending:
            os.close(self._pagemap)

    def _dense(self, chunk: int) -> bool:
        entries = os.pread(self._pagemap, 8 * _PAGES_PER_HUGE_PAGE, chunk // _PAGE * 8)
        present = sum(entry >> 63 for (entry,) in struct.iter_unpack("<Q", entries))
        return bool(present >= _PAGES_PER_HUGE_PAGE * 15 // 16)

    def collapse_next(self) -> int:
        """Collapse the next stretch, if it is still dense: the bytes now on a huge page. A
        stretch the kernel could not collapse for the moment (``EAGAIN``: one of its pages was
        busy, as a page a child has just copied is, one in twelve here) is tried again, last."""
        chunk = self.pending.pop()
        try:
            if self._dense(chunk):
                address, length = ctypes.c_void_p(chunk), ctypes.c_size_t(HUGE_PAGE)
                if _libc.madvise(address, length, MADV_COLLAPSE) == 0:
                    return HUGE_PAGE
                if ctypes.get_errno() == errno.EAGAIN and chunk not in self._retried:
                    self._retried.add(chunk)
                    self.pending.insert(0, chunk)
            return 0
        finally:
            if not self.pending:
                os.close(self._pagemap)
