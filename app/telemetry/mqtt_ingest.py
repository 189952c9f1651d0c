"""MQTT ingest: subscribe to the TwinGraph topics and hand readings to a store, at least once.

A reading must survive ``kill -9`` of the platform, so the PUBACK may only go out after
the store callback has committed it. The MQTT client is our own lean MQTT 5 subscriber
(``app.telemetry.mqtt_client``): paho-mqtt 2 supports manual acks too, but its per-message
cost capped the ingest at ~10k msg/s, a tenth of what mosquitto delivers; aiomqtt
acknowledges on receipt. The store callback is synchronous (COPY into PostgreSQL), so the
ingest runs in two threads: the client's network thread and a batching worker.

Delivery contract:

* MQTT 5, QoS 1 subscriptions, fixed client id, ``clean_start=False`` and a session expiry,
  so the broker queues messages while we are away (restart, crash, broker restart) and
  redelivers the unacknowledged ones when we reconnect.
* Messages are batched (up to ``batch_max`` readings, ``batch_ms`` after the first
  message, or as soon as the stream pauses for ``batch_idle_ms``), stored with one call,
  and only then acknowledged, in arrival order. If ``store`` raises, the batch is retried
  with backoff and stays unacknowledged; ``stop()`` abandons it for redelivery.
* Consequently a reading can be stored twice (crash between commit and PUBACK, reconnect
  while a batch is in flight): the store must be idempotent on (point, time).
* Payloads that do not parse, and readings of points ``known_point`` refuses, are
  published to ``twingraph/<site>/errors`` and counted in ``rejected``; the good readings
  of the same batch are stored.
* Readings without a ``time`` get the time their network read was received (one clock
  reading per read of up to 256 KiB, not per message).
"""

from __future__ import annotations

import logging
import queue
import ssl
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from urllib.parse import unquote, urlsplit

from app.domain.telemetry import Reading
from app.telemetry.gc_pause import gc_paused
from app.telemetry.mqtt_client import LeanClient, Message, Options
from app.telemetry.mqtt_topics import (
    SUBSCRIPTIONS,
    Parsed,
    errors_topic,
    parse_message,
    site_of,
)

log = logging.getLogger(__name__)

Store = Callable[[list[Reading]], None]

#: MQTT 5 Receive Maximum we announce: how many unacknowledged QoS 1 messages the broker
#: may send us. Large, because we hold acks for a whole batch.
RECEIVE_MAXIMUM = 65535


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    host: str
    port: int
    tls: bool
    username: str | None
    password: str | None


def parse_url(url: str) -> BrokerAddress:
    """``mqtt://[user:pass@]host[:1883]`` or ``mqtts://...[:8883]`` (TLS, system CAs)."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "tcp", "mqtts", "ssl"):
        raise ValueError(f"unsupported MQTT URL scheme {parts.scheme!r} (use mqtt:// or mqtts://)")
    if not parts.hostname:
        raise ValueError(f"MQTT URL has no host: {url!r}")
    tls = parts.scheme in ("mqtts", "ssl")
    return BrokerAddress(
        host=parts.hostname,
        port=parts.port or (8883 if tls else 1883),
        tls=tls,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )


@dataclass(frozen=True, slots=True)
class _Chunk:
    """The messages of one network read."""

    generation: int
    received: datetime
    messages: list[Message]


_STOP = object()


@dataclass(frozen=True, slots=True)
class _Run:
    """What one start()..stop() owns, so a worker stuck in a store call past ``stop()``
    can never touch the client or queue of a later ``start()``."""

    client: LeanClient
    queue: queue.SimpleQueue[_Chunk | object]
    stopping: threading.Event


@dataclass(slots=True)
class _Batch:
    readings: list[Reading]
    errors: list[Parsed]
    acks: list[tuple[int, list[int]]]  # (generation, packet ids), in arrival order
    messages: int = 0


class MqttIngest:
    """Subscribes on ``start()`` and runs until ``stop()``; usable as a context manager.

    Two threads: the MQTT client's network loop (reconnects with exponential backoff
    between 1 s and ``reconnect_max_s``, resubscribes on every connect) and a batching
    worker that calls ``store`` and acknowledges.
    """

    def __init__(
        self,
        url: str,
        *,
        client_id: str,
        store: Store,
        known_point: Callable[[uuid.UUID], bool] | None = None,
        batch_max: int = 5000,
        batch_ms: int = 50,
        batch_idle_ms: int = 5,
        session_expiry_s: int = 7 * 24 * 3600,
        reconnect_max_s: int = 30,
        keepalive_s: int = 30,
    ) -> None:
        self._address = parse_url(url)
        self._client_id = client_id
        self._store = store
        self._known_point = known_point
        self._batch_max = batch_max
        self._batch_s = batch_ms / 1000
        # Brokers cap unacknowledged deliveries (mosquitto: max_inflight_messages for
        # MQTT 3, EMQX: max_inflight); when the cap is hit the stream stops until we ack,
        # so a pause means "flush now", not "wait for the deadline".
        self._idle_s = min(batch_idle_ms, batch_ms) / 1000
        self._session_expiry_s = session_expiry_s
        self._reconnect_max_s = reconnect_max_s
        self._keepalive_s = keepalive_s

        self._run: _Run | None = None
        self._worker: threading.Thread | None = None
        self._connected = threading.Event()

        self.received = 0  #: messages taken from the broker (redeliveries count again)
        self.stored = 0  #: readings the store callback accepted
        self.rejected = 0  #: rejections published to the errors topics
        self.store_errors = 0  #: store calls that raised (the batch is retried)
        self.connects = 0  #: successful (re)connects

    # -- lifecycle -----------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    def start(self) -> None:
        """Connect in the background: an unreachable broker is retried, never raised."""
        if self._run is not None:
            raise RuntimeError("MqttIngest is already started")
        address = self._address
        chunks: queue.SimpleQueue[_Chunk | object] = queue.SimpleQueue()
        stopping = threading.Event()

        def on_messages(generation: int, messages: list[Message]) -> None:
            self.received += len(messages)
            chunks.put(_Chunk(generation, datetime.now(UTC), messages))

        def on_disconnect(reason: str) -> None:
            self._connected.clear()
            if not stopping.is_set():
                log.warning("MQTT connection lost (%s); reconnecting", reason)

        client = LeanClient(
            Options(
                host=address.host,
                port=address.port,
                client_id=self._client_id,
                # Resubscribed on every connect: cheap, and correct when the broker lost
                # the session.
                subscriptions=[(topic, 1) for topic in SUBSCRIPTIONS],
                tls=ssl.create_default_context() if address.tls else None,
                username=address.username,
                password=address.password,
                keepalive_s=self._keepalive_s,
                clean_start=False,
                session_expiry_s=self._session_expiry_s,
                receive_maximum=RECEIVE_MAXIMUM,
                reconnect_max_s=self._reconnect_max_s,
            ),
            on_messages=on_messages,
            on_connect=self._on_connect,
            on_disconnect=on_disconnect,
        )
        run = _Run(client, chunks, stopping)
        self._run = run
        self._worker = threading.Thread(
            target=self._run_worker, args=(run,), name=f"mqtt-ingest-{self._client_id}", daemon=True
        )
        self._worker.start()
        client.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Store and acknowledge what has been received, then disconnect.

        Gives up after ``timeout`` seconds (a store that blocks or keeps failing); what is
        left unacknowledged stays in the broker's session and is redelivered next time.
        The subscriptions are kept: unsubscribing would make the broker forget them and
        drop what is published while we are down.
        """
        run, worker = self._run, self._worker
        if run is None or worker is None:
            return
        run.queue.put(_STOP)
        worker.join(timeout)
        run.stopping.set()  # from here on nothing is acknowledged
        run.client.stop()  # sends the acks already given, then DISCONNECT
        self._connected.clear()
        self._run = self._worker = None

    def __enter__(self) -> MqttIngest:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- client callbacks (network thread: keep them short) -----------------------------

    def _on_connect(self, session_present: bool) -> None:
        self.connects += 1
        self._connected.set()
        log.info(
            "MQTT connected to %s:%d (session present: %s)",
            self._address.host,
            self._address.port,
            session_present,
        )

    # -- worker ------------------------------------------------------------------------

    def _run_worker(self, run: _Run) -> None:
        carry: _Chunk | None = None
        while True:
            first = carry if carry is not None else run.queue.get()
            if first is _STOP:
                return
            assert isinstance(first, _Chunk)
            batch, carry, stop = self._collect(run, first)
            self._publish_rejections(run, batch.errors)
            if batch.readings and not self._store_with_retry(run, batch.readings):
                return  # stopping: leave the batch unacknowledged
            self.stored += len(batch.readings)
            self._ack(run, batch)
            if stop:
                return

    def _collect(self, run: _Run, first: _Chunk) -> tuple[_Batch, _Chunk | None, bool]:
        """Take messages until the batch is full, old, or the stream pauses: the batch,
        what is left of the last chunk, and whether ``stop()`` was asked for."""
        batch = _Batch([], [], [])
        deadline = time.monotonic() + self._batch_s
        item: _Chunk | object = first
        while True:
            if item is _STOP:
                return batch, None, True
            assert isinstance(item, _Chunk)
            rest = self._take(item, batch)
            if rest is not None:
                return batch, rest, False
            remaining = deadline - time.monotonic()
            if len(batch.readings) >= self._batch_max or remaining <= 0:
                return batch, None, False
            try:
                item = run.queue.get(timeout=min(remaining, self._idle_s))
            except queue.Empty:
                return batch, None, False

    def _take(self, chunk: _Chunk, batch: _Batch) -> _Chunk | None:
        """Parse the chunk into the batch; what does not fit once it is full, if any.
        (The hot loop of the ingest: keep it lean.)"""
        readings, errors, limit = batch.readings, batch.errors, self._batch_max
        received, known_point = chunk.received, self._known_point
        extend, messages = readings.extend, chunk.messages
        taken = 0
        with gc_paused():  # see app.telemetry.gc_pause: a chunk allocates in bulk
            for topic, payload, _qos, _packet_id in messages:
                parsed = parse_message(topic, payload, received=received, known_point=known_point)
                extend(parsed.readings)
                if parsed.rejections:
                    errors.append(parsed)
                taken += 1
                if len(readings) >= limit:
                    break
        rest: _Chunk | None = None
        if taken < len(messages):
            rest = _Chunk(chunk.generation, received, messages[taken:])
            messages = messages[:taken]
        batch.messages += taken
        # QoS 0 messages have no packet id and need no ack.
        if ids := [m[3] for m in messages if m[3]]:
            batch.acks.append((chunk.generation, ids))
        return rest

    def _publish_rejections(self, run: _Run, errors: list[Parsed]) -> None:
        now = datetime.now(UTC)
        for parsed in errors:
            for rejection in parsed.rejections:
                self.rejected += 1
                log.info("MQTT rejected %s: %s", rejection.topic, rejection.reason)
                if (site := site_of(rejection.topic)) is not None:
                    run.client.publish(errors_topic(site), rejection.to_json(now), qos=1)

    def _store_with_retry(self, run: _Run, readings: list[Reading]) -> bool:
        """Retry until the store accepts; False once ``stop()`` has given up waiting."""
        delay = 0.1
        while not run.stopping.is_set():
            try:
                self._store(readings)
                return True
            except Exception:
                self.store_errors += 1
                log.exception("storing %d MQTT readings failed; will retry", len(readings))
            run.stopping.wait(delay)
            delay = min(delay * 2, 5.0)
        return False

    def _ack(self, run: _Run, batch: _Batch) -> None:
        for generation, ids in batch.acks:
            if run.stopping.is_set():
                return
            # A message delivered on an earlier connection is redelivered by the broker on
            # this one, where its packet id may name another message: the client refuses
            # to ack it here.
            run.client.ack(generation, ids)
