"""Present values -> telemetry: polling rounds or COV subscriptions.

Readings are keyed by each point's time-series UUID (the one the model declares), so they
land on the points the ingest created. Polling reads every point's present value with
ReadPropertyMultiple, one request per device and batch, every ``interval_s`` seconds; COV
subscribes to each point (unconfirmed notifications) and records every notified present
value, the first one right after subscribing.

Binary present values become booleans (``active`` -> true); multi-state values stay numbers.
A point that cannot be read in a round is counted and reported, not written as null.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bacpypes3.apdu import ErrorRejectAbortNack
from bacpypes3.pdu import Address
from bacpypes3.primitivedata import ObjectIdentifier

from app.domain.telemetry import Reading, Value
from ingest.bacnet.client import (
    BacnetUnavailableError,
    Network,
    application,
    plain,
    read_properties,
)
from ingest.bacnet.mapping import MappedPoint

#: Writes a batch of readings; returns (inserted, already stored).
Sink = Callable[[list[Reading]], tuple[int, int]]

_BINARY = {"active": True, "inactive": False}


@dataclass(slots=True)
class PollResult:
    rounds: int = 0
    readings: int = 0
    inserted: int = 0
    duplicates: int = 0
    failures: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {
            "rounds": self.rounds,
            "readings": self.readings,
            "inserted": self.inserted,
            "duplicates": self.duplicates,
            "failures": self.failures[:50],
        }


def reading_value(obj_type: str, value: object) -> Value:
    """A present value as a telemetry value."""
    v = plain(value)
    if obj_type.startswith("binary-") and isinstance(v, str):
        return _BINARY.get(v, v)
    return v


async def _store(sink: Sink, readings: list[Reading], result: PollResult) -> None:
    if not readings:
        return
    inserted, duplicates = await asyncio.to_thread(sink, readings)
    result.readings += len(readings)
    result.inserted += inserted
    result.duplicates += duplicates


def _by_device(points: Sequence[MappedPoint]) -> dict[str, list[MappedPoint]]:
    groups: dict[str, list[MappedPoint]] = {}
    for p in points:
        groups.setdefault(p.device.address, []).append(p)
    return groups


async def poll(
    net: Network,
    points: Sequence[MappedPoint],
    sink: Sink,
    *,
    interval_s: float,
    rounds: int | None = 1,
    duration_s: float | None = None,
    on_round: Callable[[int, int], None] | None = None,
) -> PollResult:
    """Read every point's present value each ``interval_s`` for ``rounds`` rounds or until
    ``duration_s`` has passed (whichever is given; both: whichever comes first)."""
    result = PollResult()
    groups = _by_device(points)
    started = time.monotonic()
    async with application(net) as app:
        while True:
            round_start = time.monotonic()
            batch: list[Reading] = []
            for address, members in groups.items():
                batch += await _read_round(app, net, address, members, result)
            await _store(sink, batch, result)
            result.rounds += 1
            if on_round:
                on_round(result.rounds, len(batch))
            if rounds is not None and result.rounds >= rounds:
                break
            if duration_s is not None and time.monotonic() - started + interval_s > duration_s:
                break
            await asyncio.sleep(max(0.0, interval_s - (time.monotonic() - round_start)))
    return result


async def _read_round(
    app: Any, net: Network, address: str, members: list[MappedPoint], result: PollResult
) -> list[Reading]:
    out: list[Reading] = []
    target = Address(address)
    for start in range(0, len(members), net.batch):
        chunk = members[start : start + net.batch]
        ids = [ObjectIdentifier(p.obj.identifier) for p in chunk]
        try:
            values = await read_properties(app, target, ids, ("present-value",))
        except (BacnetUnavailableError, ErrorRejectAbortNack) as exc:
            detail = exc.detail if isinstance(exc, BacnetUnavailableError) else repr(exc)
            result.failures.append(f"round {result.rounds + 1}, {address}: {detail}")
            continue
        now = datetime.now(UTC)
        for p in chunk:
            raw = values.get((p.obj.identifier, "present-value"))
            if raw is None:
                result.failures.append(
                    f"round {result.rounds + 1}: no present-value for {p.obj.identifier} "
                    f"of device {p.device.instance}"
                )
                continue
            out.append(Reading(point=p.timeseries, time=now, value=reading_value(p.obj.type, raw)))
    return out


async def follow_cov(
    net: Network,
    points: Sequence[MappedPoint],
    sink: Sink,
    *,
    duration_s: float,
    lifetime_s: int = 300,
    flush_s: float = 0.5,
    on_flush: Callable[[int], None] | None = None,
) -> PollResult:
    """Subscribe to COV on every point for ``duration_s`` and store what is notified."""
    result = PollResult()
    pending: list[Reading] = []

    async def follow(app: Any, p: MappedPoint) -> None:
        try:
            async with app.change_of_value(
                Address(p.device.address),
                ObjectIdentifier(p.obj.identifier),
                None,
                False,
                lifetime_s,
            ) as subscription:
                while True:
                    prop, value = await subscription.get_value()
                    if str(prop) == "present-value":
                        pending.append(
                            Reading(
                                point=p.timeseries,
                                time=datetime.now(UTC),
                                value=reading_value(p.obj.type, value),
                            )
                        )
        except ErrorRejectAbortNack as exc:
            result.failures.append(
                f"COV on {p.obj.identifier} of device {p.device.instance}: {exc!r}"
            )

    async with application(net) as app:
        tasks = [asyncio.create_task(follow(app, p)) for p in points]
        deadline = time.monotonic() + duration_s
        try:
            while time.monotonic() < deadline:
                await asyncio.sleep(min(flush_s, max(0.0, deadline - time.monotonic())))
                batch, pending[:] = list(pending), []
                await _store(sink, batch, result)
                result.rounds += 1
                if on_flush:
                    on_flush(len(batch))
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    await _store(sink, pending, result)
    return result
