"""MQTT ingest throughput vs the broker's own, both measured in this run on this machine.

Two shapes, each against a local mosquitto (target: ingest >= 0.8x the stock client):

* **drain**: N QoS 1 messages wait in a persistent session; time until the consumer has
  them all. This isolates the consumer (after a restart or outage, the ingest's job is
  exactly this), so it is the ratio that matters.
* **live**: the consumer is connected while ``mosquitto_pub`` publishes N messages; both
  consumers are then bounded by the publisher, and the ratio shows we keep up.

The reference consumer is ``mosquitto_sub -q 1`` (C, acknowledges on receipt); ours parses
every payload, calls the store once per batch (here a no-op counting store) and acks
after it returns. A last figure, readings/s for 100-reading telemetry batches, has no
broker counterpart and is printed for information.

Each consumer runs ``--repeat`` times, interleaved with the other, and its best run
counts: on a shared machine the load of other processes swings single runs by +-40%.
The per-run ratios are printed too.

``python -m bench.bench_mqtt [--messages 20000] [--repeat 3]``
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from app.domain.telemetry import Reading
from app.errors import UnavailableError
from app.telemetry.broker import LocalMosquitto, find_mosquitto
from app.telemetry.mqtt_ingest import MqttIngest
from app.telemetry.mqtt_topics import point_topic, telemetry_topic

POINT = uuid.UUID("3f2a6c3e-0000-4000-8000-0000000000be")


class _CountingStore:
    def __init__(self, target: int) -> None:
        self.count, self.target, self.done = 0, target, threading.Event()
        self.calls = 0

    def __call__(self, readings: list[Reading]) -> None:
        self.count += len(readings)
        self.calls += 1
        if self.count >= self.target:
            self.done.set()


def _publish(port: int, topic: str, lines: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        ["mosquitto_pub", "-p", str(port), "-q", "1", "-t", topic, "-l"],
        stdin=lines.open("rb"),
    )


def _sub_args(port: int, topic: str, client_id: str) -> list[str]:
    return ["mosquitto_sub", "-p", str(port), "-q", "1", "-c", "-i", client_id, "-t", topic]


def _stock(port: int, topic: str, lines: Path, n: int, *, live: bool) -> float:
    """Seconds for mosquitto_sub to receive n messages."""
    cid = f"bench-sub-{uuid.uuid4().hex[:6]}"
    subprocess.run([*_sub_args(port, topic, cid), "-E"], check=True)  # the persistent session
    if not live:
        _publish(port, topic, lines).wait()
    t0 = time.perf_counter()
    sub = subprocess.Popen([*_sub_args(port, topic, cid), "-C", str(n)], stdout=subprocess.DEVNULL)
    pub = _publish(port, topic, lines) if live else None
    sub.wait(300)
    elapsed = time.perf_counter() - t0
    if pub is not None:
        pub.wait()
    return elapsed


def _ours(url: str, port: int, topic: str, lines: Path, n: int, *, live: bool) -> float:
    """Seconds for MqttIngest to store n readings (no-op store), from start()."""
    cid = f"bench-ingest-{uuid.uuid4().hex[:6]}"
    with MqttIngest(url, client_id=cid, store=_CountingStore(0)) as ingest:  # the session
        ingest.wait_connected(10)
        time.sleep(0.2)  # the SUBACK
    if not live:
        _publish(port, topic, lines).wait()
    store = _CountingStore(n)
    ingest = MqttIngest(url, client_id=cid, store=store)
    t0 = time.perf_counter()
    ingest.start()
    pub = _publish(port, topic, lines) if live else None
    finished = store.done.wait(300)
    elapsed = time.perf_counter() - t0
    if pub is not None:
        pub.wait()
    ingest.stop()
    if not finished:
        raise RuntimeError(f"ingest stored only {store.count} of {n} readings")
    return elapsed


def _paho(port: int, topic: str, lines: Path, n: int) -> float:
    """Seconds for a bare paho-mqtt client (auto-ack, no-op callback) to drain n messages:
    the ceiling of any paho-based consumer, to tell our overhead from the library's."""
    cid = f"bench-paho-{uuid.uuid4().hex[:6]}"

    def client() -> mqtt.Client:
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=cid, protocol=mqtt.MQTTv5)
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval, props.ReceiveMaximum = 3600, 65535
        c.connect("127.0.0.1", port, clean_start=False, properties=props)
        return c

    c = client()
    subscribed = threading.Event()
    c.on_subscribe = lambda *_: subscribed.set()
    c.loop_start()
    c.subscribe(topic, 1)
    subscribed.wait(10)
    c.disconnect()
    c.loop_stop()
    _publish(port, topic, lines).wait()
    got, done = [0], threading.Event()

    def on_message(_c: mqtt.Client, _u: object, _m: mqtt.MQTTMessage) -> None:
        got[0] += 1
        if got[0] >= n:
            done.set()

    t0 = time.perf_counter()
    c = client()
    c.on_message = on_message
    c.loop_start()
    done.wait(300)
    elapsed = time.perf_counter() - t0
    c.disconnect()
    c.loop_stop()
    return elapsed


def run(messages: int = 20_000, repeat: int = 3) -> dict[str, float]:
    try:
        find_mosquitto()
    except UnavailableError:
        print("\n== MQTT ingest: skipped (mosquitto not installed: apt-get install mosquitto) ==")
        return {}
    if shutil.which("mosquitto_pub") is None:
        print("\n== MQTT ingest: skipped (apt-get install mosquitto-clients) ==")
        return {}
    print(f"\n== MQTT ingest vs mosquitto_sub ({messages:,} QoS 1 messages, loopback) ==")
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        broker = LocalMosquitto(Path(tmp) / "mosquitto")
        broker.start()
        try:
            lines = Path(tmp) / "points.txt"
            lines.write_text("".join(f"{20 + (i % 500) / 100}\n" for i in range(messages)))
            topic = point_topic("bench", POINT)
            for shape in ("drain", "live"):
                live = shape == "live"
                stocks: list[float] = []
                ourses: list[float] = []
                for _ in range(repeat):  # interleaved, so both see the same machine load
                    stocks.append(messages / _stock(broker.port, topic, lines, messages, live=live))
                    ourses.append(
                        messages / _ours(broker.url, broker.port, topic, lines, messages, live=live)
                    )
                stock, ours = max(stocks), max(ourses)
                results[f"{shape}_stock_msg_s"], results[f"{shape}_ingest_msg_s"] = stock, ours
                results[f"{shape}_ratio"] = ours / stock
                print(
                    f"{shape:>5}: mosquitto_sub {stock:>9,.0f} msg/s | MqttIngest {ours:>9,.0f} "
                    f"msg/s | ratio {ours / stock:.2f}x (target >= 0.8x; best of {repeat}; "
                    f"runs {' '.join(f'{o / s:.2f}' for o, s in zip(ourses, stocks, strict=True))})"
                )
            paho = max(messages / _paho(broker.port, topic, lines, messages) for _ in range(repeat))
            results["drain_paho_msg_s"] = paho
            print(
                f"drain: bare paho-mqtt {paho:,.0f} msg/s (auto-ack; the client the ingest used "
                f"before: MqttIngest is {results['drain_ingest_msg_s'] / paho:.2f}x of it)"
            )
            per = 100
            batches = Path(tmp) / "batches.txt"
            body = ",".join(f'{{"point":"{POINT}","value":{i}}}' for i in range(per))
            n_batches = max(1, messages // per)
            batches.write_text(f'{{"readings":[{body}]}}\n' * n_batches)
            t = _ours(
                broker.url, broker.port, telemetry_topic("bench"), batches, n_batches * per,
                live=False,
            )  # fmt: skip
            results["batch_readings_s"] = n_batches * per / t
            print(
                f"batch: {n_batches * per / t:,.0f} readings/s from {per}-reading batches (drain)"
            )
        finally:
            broker.stop()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs per consumer; the best counts (load noise)"
    )
    args = parser.parse_args()
    run(args.messages, args.repeat)


if __name__ == "__main__":
    main()
