"""Pausing Python's cyclic garbage collector while many long-lived objects are made."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    """For work that builds objects kept to its end and makes no cycles worth freeing (parsed
    tokens, loaded results): the collector would only scan them again and again as they pile
    up, which costs more than the work itself once there are hundreds of thousands."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()
