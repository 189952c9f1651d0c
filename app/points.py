"""Where the graph meets telemetry: which time-series ids the models declare.

Telemetry is keyed by the UUID a point carries in the graph
(``ref:hasExternalReference/ref:hasTimeseriesId``). Real models do not always use UUIDs
there (``"LowerSetp[cor]"``, a stream name): such an id is mapped to a stable UUID, the
UUIDv5 of the id in TwinGraph's namespace, and the original id is kept, so its readings are
stored and queried like any other. Points with no time-series id at all (models that link
points to trend columns only by ``rdfs:label``) get the UUIDv5 of their IRI.

The directory is built from the graph and rebuilt when a model changes (this process's
writes bump a version) or when it is older than ``max_age_s`` (writes by other processes
sharing a remote store).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from app.domain.iris import BRICK, RDFS, REF
from app.graph.store import GraphStore

#: Namespace for UUIDs derived from time-series ids that are not UUIDs themselves.
TIMESERIES_NAMESPACE = uuid.UUID("5d1f6b0e-8a4c-5e2b-9f3a-7c1d2e4b6a90")

# Every point (materialised types make ``a brick:Point`` cover all subclasses), and every
# other node that declares a time-series id.
_QUERY = f"""SELECT DISTINCT ?point ?id ?label WHERE {{
  {{ ?point a <{BRICK}Point> }} UNION {{ ?point <{REF}hasExternalReference>/<{REF}hasTimeseriesId> ?any }}
  OPTIONAL {{ ?point <{REF}hasExternalReference>/<{REF}hasTimeseriesId> ?id }}
  OPTIONAL {{ ?point <{RDFS}label> ?label }}
}}"""


def point_uuid(point_iri: str) -> uuid.UUID:
    """The UUID of a point that declares no time-series id."""
    return uuid.uuid5(TIMESERIES_NAMESPACE, "point:" + point_iri)


def timeseries_uuid(ts_id: str) -> uuid.UUID:
    """The UUID readings of this time-series id are stored under."""
    try:
        return uuid.UUID(ts_id.strip())
    except ValueError:
        return uuid.uuid5(TIMESERIES_NAMESPACE, ts_id)


@dataclass(frozen=True, slots=True)
class PointRef:
    uuid: uuid.UUID
    point: str
    #: As declared in the graph; None where the point declares none.
    timeseries_id: str | None
    label: str | None


class PointDirectory:
    def __init__(
        self,
        store: GraphStore,
        *,
        version: Callable[[], int] = lambda: 0,
        max_age_s: float = 5.0,
    ) -> None:
        self._store = store
        self._version = version
        self._max_age_s = max_age_s
        self._lock = threading.Lock()
        self._built_version = -1
        self._built_at = 0.0
        self._by_uuid: dict[uuid.UUID, PointRef] = {}
        self._by_label: dict[str, list[PointRef]] = {}

    def _current(self) -> dict[uuid.UUID, PointRef]:
        version = self._version()
        fresh = time.monotonic() - self._built_at < self._max_age_s
        if version == self._built_version and fresh:
            return self._by_uuid
        with self._lock:
            if version != self._built_version or not fresh:
                self._rebuild(version)
        return self._by_uuid

    def _rebuild(self, version: int) -> None:
        by_uuid: dict[uuid.UUID, PointRef] = {}
        by_label: dict[str, list[PointRef]] = {}
        for row in self._store.query(_QUERY):  # type: ignore[union-attr]
            point = row["point"].value
            ts_id = row["id"].value if row["id"] is not None else None
            label = row["label"].value if row["label"] is not None else None
            key = timeseries_uuid(ts_id) if ts_id else point_uuid(point)
            ref = PointRef(key, point, ts_id, label)
            by_uuid[ref.uuid] = ref
            if label:
                by_label.setdefault(label, []).append(ref)
        self._by_uuid, self._by_label = by_uuid, by_label
        self._built_version, self._built_at = version, time.monotonic()

    def get(self, point: uuid.UUID) -> PointRef | None:
        return self._current().get(point)

    def known(self, point: uuid.UUID) -> bool:
        return point in self._current()

    def unknown(self, points: Iterable[uuid.UUID]) -> list[uuid.UUID]:
        current = self._current()
        return sorted({p for p in points if p not in current}, key=str)

    def by_label(self, label: str) -> list[PointRef]:
        self._current()
        return list(self._by_label.get(label, ()))

    def resolve(self, key: str) -> PointRef | None:
        """A point by time-series UUID, time-series id, point IRI or unique label."""
        current = self._current()
        ref = current.get(timeseries_uuid(key))
        if ref is not None:
            return ref
        for candidate in current.values():
            if candidate.point == key:
                return candidate
        matches = self.by_label(key)
        return matches[0] if len(matches) == 1 else None

    def all(self) -> list[PointRef]:
        return list(self._current().values())
