"""Pausing Python's garbage collector around bulk allocations.

Decoding or encoding a batch creates tens of thousands of small objects at once, which
triggers several collections, each walking the whole heap of a running platform: measured,
that doubled the time of a 20k-reading batch. Nothing allocated there can be garbage yet,
so the collector is paused for the duration and resumed after. Pause around the whole
life of the batch (decode, store, announce): resumed while the rows are still alive, the
collector would move them into the older generations and walk them again later.

The collector is one per process, so pauses from several threads are counted: it resumes
when the last of them ends (and only if it was running when the first began).
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class _Pauses:
    """How many pauses are open, and whether the collector ran before the first."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.open = 0
        self.resume = False


# One per process, like the collector it guards.
_PAUSES = _Pauses()


@contextmanager
def gc_paused() -> Iterator[None]:
    with _PAUSES.lock:
        if _PAUSES.open == 0:
            _PAUSES.resume = gc.isenabled()
            gc.disable()
        _PAUSES.open += 1
    try:
        yield
    finally:
        with _PAUSES.lock:
            _PAUSES.open -= 1
            if _PAUSES.open == 0 and _PAUSES.resume:
                gc.enable()
