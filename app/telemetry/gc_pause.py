"""Pausing Python's garbage collector around bulk allocations.

Decoding or encoding a batch creates tens of thousands of small objects at once, which
triggers several collections, each walking the whole heap of a running platform: measured,
that doubled the time of a 20k-reading batch. Nothing allocated there can be garbage yet,
so the collector is paused for the duration and resumed after.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def gc_paused() -> Iterator[None]:
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
