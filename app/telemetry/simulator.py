"""A building that talks: plausible live readings for a list of points, over MQTT.

``make run`` starts it beside the platform so a newcomer sees data move; tests use it to
exercise the ingest end to end. Values follow mean-reverting random walks
(Ornstein-Uhlenbeck) around kind-specific set levels, so plots look like a building
rather than noise: zone temperatures wander around their setpoints, dampers and valves
modulate, occupancy flips now and then, energy meters only count up.

    python -m app.telemetry.simulator --url mqtt://127.0.0.1:1883 --points-file points.json

``points.json`` is a list of ``{"uuid": "<timeseries id>", "kind": "<Brick class>"}``; the
kind is matched on keywords (``Zone_Air_Temperature_Sensor``, ``Damper_Position_Command``,
``CO2_Level_Sensor``, ...), anything unrecognised gets a generic 0-100 signal.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from app.domain.telemetry import Value
from app.telemetry.mqtt_ingest import parse_url
from app.telemetry.mqtt_topics import point_topic, telemetry_topic

#: Readings per telemetry batch message in ``batch`` mode.
BATCH_SIZE = 1000


@dataclass(frozen=True, slots=True)
class PointSpec:
    point: uuid.UUID
    kind: str


class Signal:
    """A mean-reverting walk clipped to ``[lo, hi]``; ``theta`` is the pull to ``mean``."""

    def __init__(
        self,
        rng: random.Random,
        mean: float,
        sigma: float,
        lo: float,
        hi: float,
        *,
        theta: float = 0.05,
        digits: int = 2,
    ) -> None:
        self.rng, self.mean, self.sigma, self.lo, self.hi = rng, mean, sigma, lo, hi
        self.theta, self.digits = theta, digits
        self.x = min(max(rng.gauss(mean, sigma * 3), lo), hi)

    def next(self) -> Value:
        self.x += self.theta * (self.mean - self.x) + self.rng.gauss(0, self.sigma)
        self.x = min(max(self.x, self.lo), self.hi)
        return round(self.x, self.digits)


class Setpoint(Signal):
    """Constant, moved by an operator now and then in half-degree steps."""

    def next(self) -> Value:
        if self.rng.random() < 0.002:
            self.x = min(max(self.x + self.rng.choice((-0.5, 0.5)), self.lo), self.hi)
        return self.x


class Binary:
    """A status or occupancy that flips with probability ``p`` per reading."""

    def __init__(self, rng: random.Random, p: float, start: bool = True) -> None:
        self.rng, self.p, self.state = rng, p, start

    def next(self) -> Value:
        if self.rng.random() < self.p:
            self.state = not self.state
        return self.state


class Meter:
    """An energy counter: increases by a noisy positive amount per reading."""

    def __init__(self, rng: random.Random, rate: float) -> None:
        self.rng, self.rate, self.total = rng, rate, round(rng.uniform(1e4, 1e5), 1)

    def next(self) -> Value:
        self.total = round(self.total + abs(self.rng.gauss(self.rate, self.rate / 4)), 3)
        return self.total


Behaviour = Signal | Binary | Meter


def behaviour_for(kind: str, rng: random.Random) -> Behaviour:
    """Pick a plausible signal from keywords of a Brick class name (case-insensitive)."""
    k = kind.lower()
    if "setpoint" in k and "temp" in k:
        return Setpoint(rng, rng.choice((21.0, 21.5, 22.0, 22.5)), 0, 19, 25, digits=1)
    if "temp" in k:
        if "outside" in k or "outdoor" in k:
            return Signal(rng, 12, 0.2, -20, 40, theta=0.01)
        if "supply" in k or "discharge" in k:
            return Signal(rng, 14, 0.15, 10, 20)
        if "water" in k:
            return Signal(rng, 45 if "hot" in k else 7, 0.2, 2, 80)
        return Signal(rng, rng.uniform(21, 23), 0.08, 15, 30, theta=0.03)
    if "damper" in k or "valve" in k or "speed" in k or "frequency" in k:
        return Signal(rng, rng.uniform(25, 70), 2.0, 0, 100, digits=1)
    if "humidity" in k:
        return Signal(rng, 45, 0.5, 20, 80, digits=1)
    if "co2" in k:
        return Signal(rng, 650, 15, 400, 2000, digits=0)
    if "flow" in k:
        return Signal(rng, rng.uniform(150, 500), 8, 0, 1500, digits=1)
    if "pressure" in k:
        return Signal(rng, 250, 5, 0, 600, digits=1)
    if "occupancy" in k:
        return Binary(rng, 0.01)
    if "energy" in k:
        return Meter(rng, 0.05)
    if "power" in k:
        return Signal(rng, rng.uniform(5, 20), 0.3, 0, 100)
    if any(w in k for w in ("status", "command", "enable", "alarm", "fault")):
        return Binary(rng, 0.002, start="alarm" not in k and "fault" not in k)
    return Signal(rng, 50, 1.0, 0, 100)


class Simulator:
    """Publishes one reading per point every ``interval_s`` (QoS 1).

    ``batch=False`` sends ``{"time", "value"}`` to each point's topic, as a device would;
    ``batch=True`` sends telemetry batches, as a gateway would.
    """

    def __init__(
        self,
        url: str,
        points: Sequence[PointSpec],
        *,
        site: str = "demo",
        interval_s: float = 1.0,
        batch: bool = False,
        seed: int | None = None,
        client_id: str = "",
    ) -> None:
        rng = random.Random(seed)
        self.points = [(p.point, behaviour_for(p.kind, rng)) for p in points]
        self.site, self.interval_s, self.batch = site, interval_s, batch
        self.published = 0
        address = parse_url(url)
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
        )
        if address.username is not None:
            self._client.username_pw_set(address.username, address.password)
        if address.tls:
            self._client.tls_set()
        self._client.connect_async(address.host, address.port)
        self._client.loop_start()
        self._last: mqtt.MQTTMessageInfo | None = None

    def wait_connected(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not self._client.is_connected():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def tick(self) -> None:
        """One reading per point. While the broker is unreachable readings are skipped,
        as a real sensor's would be, instead of piling up in memory."""
        if not self._client.is_connected():
            return
        now = datetime.now(UTC).isoformat()
        rows = [(point, b.next()) for point, b in self.points]
        if self.batch:
            for i in range(0, len(rows), BATCH_SIZE):
                body = [
                    {"point": str(p), "time": now, "value": v} for p, v in rows[i : i + BATCH_SIZE]
                ]
                self._publish(telemetry_topic(self.site), {"readings": body})
        else:
            for point, value in rows:
                self._publish(point_topic(self.site, point), {"time": now, "value": value})
        self.published += len(rows)

    def _publish(self, topic: str, body: dict[str, Any]) -> None:
        self._last = self._client.publish(topic, json.dumps(body), qos=1)

    def run(self, *, ticks: int | None = None) -> None:
        """Tick on a fixed schedule (no drift) for ``ticks`` ticks, or until interrupted."""
        self.wait_connected(10)
        start = time.monotonic()
        n = 0
        while ticks is None or n < ticks:
            self.tick()
            n += 1
            time.sleep(max(0.0, start + n * self.interval_s - time.monotonic()))

    def close(self, timeout: float = 10) -> None:
        """Wait for what was published to reach the broker, then disconnect."""
        if self._last is not None and self._client.is_connected():
            self._last.wait_for_publish(timeout)  # the broker acks QoS 1 in order
        self._client.disconnect()
        self._client.loop_stop()


def load_points(path: Path) -> list[PointSpec]:
    """``[{"uuid": ..., "kind": ...}]``; ``point`` and ``class`` are accepted as aliases."""
    doc = json.loads(path.read_text())
    return [
        PointSpec(
            uuid.UUID(str(item.get("uuid", item.get("point")))),
            str(item.get("kind", item.get("class", ""))),
        )
        for item in doc
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.telemetry.simulator", description=__doc__)
    parser.add_argument("--url", default="mqtt://127.0.0.1:1883")
    parser.add_argument("--points-file", type=Path, required=True)
    parser.add_argument("--site", default="demo")
    parser.add_argument(
        "--interval", type=float, default=1.0, help="seconds between readings of a point"
    )
    parser.add_argument(
        "--batch", action="store_true", help="publish telemetry batches, not per point"
    )
    parser.add_argument("--ticks", type=int, default=None, help="stop after this many rounds")
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    points = load_points(args.points_file)
    sim = Simulator(
        args.url, points, site=args.site, interval_s=args.interval, batch=args.batch, seed=args.seed
    )
    print(
        f"simulating {len(points)} points every {args.interval:g} s on {args.url} (site {args.site})",
        file=sys.stderr,
    )
    try:
        sim.run(ticks=args.ticks)
    except KeyboardInterrupt:
        pass
    finally:
        sim.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
