"""Telemetry values shared by the telemetry store, ingest paths and the API."""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import TypeAlias

#: What a point can report: numbers (the bulk), booleans (binary points), strings
#: (enumeration labels, text values), or None (an explicit "no value", e.g. offline).
Value: TypeAlias = float | int | bool | str | None


@dataclass(frozen=True, slots=True)
class Reading:
    """One reading of one point. ``time`` is timezone-aware; ``point`` is the point's
    time-series UUID as carried in the graph (``ref:hasTimeseriesId``)."""

    point: uuid.UUID
    time: datetime
    value: Value = None

    def __post_init__(self) -> None:
        if self.time.tzinfo is None:
            raise ValueError("reading times must carry a time zone")
        if isinstance(self.value, float) and not math.isfinite(self.value):
            raise ValueError("NaN and infinite values are not readings")
