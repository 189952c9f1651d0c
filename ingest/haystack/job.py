"""The Haystack ingest job: grids -> records -> triples (and history grids -> readings)."""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable

from app.domain.telemetry import Reading, Value
from ingest.haystack.mapping import MappingResult, map_records
from ingest.haystack.values import NA, DateTime, Grid, HaystackParseError, Number, Record


def haystack_to_triples(records: Iterable[Record], *, base: str | None = None) -> MappingResult:
    """Map Haystack records to Brick/REC triples; see ``ingest.haystack.mapping``."""
    return map_records(records, base=base)


def _reading_value(val: object) -> Value:
    if val is None or isinstance(val, NA):
        return None
    if isinstance(val, Number):
        return None if not math.isfinite(val.value) else val.value
    if isinstance(val, bool | str):
        return val
    raise HaystackParseError(f"history value {val!r} is not a number, boolean or string")


def his_to_readings(grid: Grid, point_uuid: uuid.UUID) -> list[Reading]:
    """A hisRead grid (``ts``, ``val`` columns) as readings of one point.

    NA and non-finite numbers become explicit null readings; rows without ``ts`` are an error.
    """
    out: list[Reading] = []
    for i, row in enumerate(grid.rows):
        ts = row.get("ts")
        if not isinstance(ts, DateTime):
            raise HaystackParseError(f"history row {i} has no date-time 'ts'")
        out.append(Reading(point=point_uuid, time=ts.value, value=_reading_value(row.get("val"))))
    return out
