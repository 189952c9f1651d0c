"""Haystack watches: the entities a client follows, and what changed since it last polled.

A watch belongs to the caller that opened it (its token id; ``anonymous`` for anonymous
readers) and lives until its lease runs out without a poll. A poll answers the watched
entities whose record (tags, ``curVal``) differs from what the previous poll or the
subscription answered. Watches are held in memory by the process that serves them.
"""

from __future__ import annotations

import datetime as dt
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from app.errors import InvalidInputError, NotFoundError

DEFAULT_LEASE = dt.timedelta(minutes=5)
MAX_LEASE = dt.timedelta(hours=1)
MAX_WATCHES = 1_000
MAX_IDS = 20_000


@dataclass(slots=True)
class Watch:
    id: str
    dis: str
    owner: str
    lease: dt.timedelta
    expires: float
    #: Watched ids in subscription order -> fingerprint of the record last answered.
    seen: dict[str, str | None] = field(default_factory=dict)


class WatchRegistry:
    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._watches: dict[str, Watch] = {}
        self._lock = threading.Lock()

    def _purge(self, now: float) -> None:
        for wid in [w.id for w in self._watches.values() if w.expires < now]:
            del self._watches[wid]

    def subscribe(
        self,
        *,
        owner: str,
        dis: str | None,
        watch_id: str | None,
        ids: Iterable[str],
        lease: dt.timedelta | None,
    ) -> Watch:
        now = self._clock()
        with self._lock:
            self._purge(now)
            if watch_id:
                watch = self._owned(owner, watch_id)
            else:
                if len(self._watches) >= MAX_WATCHES:
                    raise InvalidInputError(
                        f"Too many open watches ({MAX_WATCHES}); close some with watchUnsub",
                        code="haystack_too_many_watches",
                    )
                watch = Watch(
                    id="w-" + secrets.token_hex(8),
                    dis=dis or "watch",
                    owner=owner,
                    lease=DEFAULT_LEASE,
                    expires=0.0,
                )
                self._watches[watch.id] = watch
            if lease is not None:
                watch.lease = min(max(lease, dt.timedelta(seconds=1)), MAX_LEASE)
            for hid in ids:
                watch.seen.setdefault(hid, None)
            if len(watch.seen) > MAX_IDS:
                raise InvalidInputError(
                    f"A watch follows at most {MAX_IDS} entities", code="haystack_watch_too_big"
                )
            watch.expires = now + watch.lease.total_seconds()
            return watch

    def _owned(self, owner: str, watch_id: str) -> Watch:
        watch = self._watches.get(watch_id)
        if watch is None or watch.owner != owner:
            raise NotFoundError(
                f"Unknown watch {watch_id!r} (closed, expired or not yours)",
                code="haystack_unknown_watch",
            )
        return watch

    def poll(self, *, owner: str, watch_id: str) -> Watch:
        now = self._clock()
        with self._lock:
            self._purge(now)
            watch = self._owned(owner, watch_id)
            watch.expires = now + watch.lease.total_seconds()
            return watch

    def unsubscribe(self, *, owner: str, watch_id: str, ids: Iterable[str] | None) -> None:
        with self._lock:
            self._purge(self._clock())
            watch = self._owned(owner, watch_id)
            if ids is None:
                del self._watches[watch_id]
                return
            for hid in ids:
                watch.seen.pop(hid, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._watches)
