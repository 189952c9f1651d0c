"""Telemetry over HTTP: ingest batches, read ranges, buckets and latest values."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from app.api.body import read_body
from app.api.deps import PlatformDep, ReaderDep, WriterDep
from app.domain.telemetry import Reading
from app.errors import InvalidInputError, NotFoundError, PayloadTooLargeError, UnavailableError
from app.platform import Platform
from app.telemetry.batch import parse_json_batch
from app.telemetry.csv_import import parse_csv_bytes
from app.telemetry.gc_pause import gc_paused
from app.telemetry.readings import EncodedBatch, encode_rows

router = APIRouter(tags=["telemetry"])
Agg = Literal["avg", "min", "max", "sum", "count", "first", "last"]
_DURATION = re.compile(r"^(\d+)\s*(ms|s|m|min|h|d|w)$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_bucket(text: str | None) -> timedelta | None:
    if not text:
        return None
    match = _DURATION.match(text.strip())
    if not match or int(match.group(1)) == 0:
        raise InvalidInputError(
            f"bucket {text!r} is not a duration like 30s, 5m, 1h or 1d", code="bad_bucket"
        )
    return timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])


def parse_time(text: str | None, default: datetime, name: str) -> datetime:
    if not text:
        return default
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInputError(
            f"{name} {text!r} is not an RFC 3339 time", code="bad_time"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _telemetry(platform: Platform) -> Any:
    if platform.telemetry is None:
        raise UnavailableError("Telemetry storage is not configured", code="no_telemetry")
    return platform.telemetry


def _point(platform: Platform, key: str) -> uuid.UUID:
    ref = platform.points.resolve(key)
    if ref is None:
        raise NotFoundError(
            f"No point with time-series id, UUID, IRI or label {key!r} in the graph",
            code="unknown_point",
        )
    return ref.uuid


def _reading_json(r: Reading) -> dict[str, Any]:
    return {"time": r.time.isoformat(), "value": r.value}


def _row_json(row: Any) -> dict[str, Any]:
    if isinstance(row, Reading):
        return _reading_json(row)
    return {"time": row.start.isoformat(), "value": row.value}


def _store_checked(platform: Platform, readings: list[Reading]) -> dict[str, Any]:
    return _store_encoded(platform, encode_rows(readings))


def _store_encoded(platform: Platform, encoded: EncodedBatch) -> dict[str, Any]:
    rows, newest = encoded
    unknown = platform.points.unknown(newest)  # every point of the batch, once
    if unknown:
        raise InvalidInputError(
            f"{len(unknown)} point UUID(s) are not in the graph (first: {unknown[0]}); "
            "nothing was stored. Model the points first, with "
            "ref:hasExternalReference/ref:hasTimeseriesId.",
            code="unknown_points",
            unknown=[str(u) for u in unknown[:100]],
        )
    result = _telemetry(platform).write_encoded(encoded)
    return {
        "accepted": len(rows),
        "inserted": result.inserted,
        "duplicates": result.duplicates,
    }


@router.post("/telemetry")
async def ingest(request: Request, platform: PlatformDep, _: WriterDep) -> dict[str, Any]:
    body = await read_body(request, platform.settings.max_upload_bytes)
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    max_readings = platform.settings.telemetry_max_batch

    def work() -> dict[str, Any]:
        if media == "text/csv":
            parsed = parse_csv_bytes(body, resolve=lambda k: _resolved(platform, k))
            if parsed.unmatched and request.query_params.get("skip_unknown") not in ("1", "true"):
                raise InvalidInputError(
                    f"CSV columns name no known point: {', '.join(parsed.unmatched[:20])}; "
                    "nothing was stored (pass skip_unknown=true to import the rest)",
                    code="unknown_columns",
                    unmatched=parsed.unmatched,
                )
            if len(parsed.readings) > max_readings:
                raise PayloadTooLargeError(
                    f"The CSV holds {len(parsed.readings)} readings; the limit is {max_readings}",
                    code="batch_too_large",
                )
            out = _store_checked(platform, parsed.readings)
            out["unmatched_columns"] = parsed.unmatched
            return out
        if media in ("application/json", ""):
            with gc_paused():  # the batch's rows live until it is stored and announced
                return _store_encoded(platform, parse_json_batch(body, max_readings=max_readings))
        raise InvalidInputError(
            f"POST /telemetry takes application/json or text/csv, not {media!r}",
            code="unsupported_media_type",
        )

    return await run_in_threadpool(work)


def _resolved(platform: Platform, key: str) -> uuid.UUID | None:
    ref = platform.points.resolve(key)
    return ref.uuid if ref else None


@router.get("/points/{key:path}/readings")
def readings(
    key: str,
    platform: PlatformDep,
    _: ReaderDep,
    start: str | None = None,
    end: str | None = None,
    bucket: str | None = None,
    agg: Agg = "avg",
    limit: Annotated[int, Query(ge=1, le=1_000_000)] = 100_000,
) -> dict[str, Any]:
    point = _point(platform, key)
    stop = parse_time(end, datetime.now(UTC), "end")
    begin = parse_time(start, stop - timedelta(days=1), "start")
    width = parse_bucket(bucket)
    store = _telemetry(platform)
    if width is None:
        rows = store.range(point=point, start=begin, end=stop, agg=agg, limit=limit)
    else:
        rows = store.range(point=point, start=begin, end=stop, bucket=width, agg=agg)
    return {
        "point": str(point),
        "start": begin.isoformat(),
        "end": stop.isoformat(),
        "bucket": bucket,
        "agg": agg if width else None,
        "readings": [_row_json(r) for r in rows],
    }


@router.get("/points/{key:path}/latest")
def latest(key: str, platform: PlatformDep, _: ReaderDep) -> dict[str, Any]:
    point = _point(platform, key)
    found = _telemetry(platform).latest(points=[point]).get(point)
    if found is None:
        raise NotFoundError(f"Point {point} has no readings yet", code="no_readings")
    return {"point": str(point), **_reading_json(found)}


class RangeQuery(BaseModel):
    points: list[str] = Field(min_length=1, max_length=10_000)
    start: str | None = None
    end: str | None = None
    bucket: str | None = None
    agg: Agg = "avg"
    latest: bool = False


@router.post("/telemetry/query")
def query_many(body: RangeQuery, platform: PlatformDep, _: ReaderDep) -> dict[str, Any]:
    """Ranges (or buckets) for many points in one SQL round trip, plus latest values."""
    keys = {k: _point(platform, k) for k in body.points}
    stop = parse_time(body.end, datetime.now(UTC), "end")
    begin = parse_time(body.start, stop - timedelta(days=1), "start")
    width = parse_bucket(body.bucket)
    store = _telemetry(platform)
    rows = store.range_many(
        points=list(keys.values()), start=begin, end=stop, bucket=width, agg=body.agg
    )
    latest_values: dict[uuid.UUID, Reading] = (
        store.latest(points=list(keys.values())) if body.latest else {}
    )
    out: dict[str, Any] = {}
    for key, point in keys.items():
        entry: dict[str, Any] = {
            "uuid": str(point),
            "readings": [_row_json(r) for r in rows[point]],
        }
        if body.latest:
            last = latest_values.get(point)
            entry["latest"] = _reading_json(last) if last else None
        out[key] = entry
    return {
        "start": begin.isoformat(),
        "end": stop.isoformat(),
        "bucket": body.bucket,
        "points": out,
    }
