"""The MQTT device channel: device messages in, desired state and commands out.

One MQTT 5 session with a fixed client id and ``clean_start`` off, subscribed at QoS 1 to
the device topics (``app.twins.topics``), so messages devices send while the platform is
down wait at the broker. A message is acknowledged to the broker only after it has been
handled (committed, or refused), so a crash in between means redelivery, not loss.

Each message must be a signed envelope for the twin its topic names (see
``app.twins.credentials``): a device holding one twin's secret cannot write another
twin's topics. Messages whose ``ts`` is further than ``clock_skew_s`` from now are
refused (an "offline" heartbeat excepted: it may be a will message set at connect time),
and a signature seen in the last ``clock_skew_s`` is dropped as a replay. Refusals are
published as ``device.rejected`` events (``ok=False``) and, for twins that exist, to the
device's ``errors`` topic.
"""

from __future__ import annotations

import logging
import queue
import ssl
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from app.errors import AppError, InvalidInputError, UnavailableError
from app.telemetry.mqtt_client import LeanClient, Message, Options
from app.telemetry.mqtt_ingest import parse_url
from app.twins import credentials, topics
from app.twins.model import Command
from app.twins.service import TwinService

log = logging.getLogger("twingraph.twins.mqtt")

_STOP = object()
KEY_CACHE_S = 10.0
MAX_SEEN = 100_000


class DeviceChannel:
    def __init__(
        self,
        url: str,
        *,
        twins: TwinService,
        client_id: str = "twingraph-twins",
        clock_skew_s: float = 300.0,
        reconnect_min_s: float = 0.5,
    ) -> None:
        address = parse_url(url)
        self.url = url
        self._twins = twins
        self._skew = clock_skew_s
        self._queue: queue.SimpleQueue[tuple[int, list[Message]] | object] = queue.SimpleQueue()
        self._keys: dict[str, tuple[float, bytes | None]] = {}
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._beats: dict[str, float] = {}
        self._connected = threading.Event()
        self._stopping = threading.Event()
        self._worker: threading.Thread | None = None
        #: Called (on the network thread) after every connect: the runtime re-sends.
        self.on_connected: Callable[[], None] | None = None
        self.handled = 0
        self.rejected = 0
        self.client = LeanClient(
            Options(
                host=address.host,
                port=address.port,
                client_id=client_id,
                subscriptions=list(topics.SUBSCRIPTIONS),
                tls=ssl.create_default_context() if address.tls else None,
                username=address.username,
                password=address.password,
                reconnect_min_s=reconnect_min_s,
                reconnect_max_s=10.0,
            ),
            on_messages=lambda generation, msgs: self._queue.put((generation, msgs)),
            on_connect=self._on_connect,
            on_disconnect=lambda reason: self._connected.clear(),
        )

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    def start(self) -> None:
        self._worker = threading.Thread(target=self._work, name="twin-mqtt", daemon=True)
        self._worker.start()
        self.client.start()

    def stop(self) -> None:
        """Disconnect; messages received but not handled yet stay unacknowledged, so the
        broker hands them to the next session."""
        self._stopping.set()
        self.client.stop()
        self._queue.put(_STOP)
        if self._worker is not None:
            self._worker.join(10)
            self._worker = None

    def _on_connect(self, session_present: bool) -> None:
        self._connected.set()
        if self.on_connected is not None:
            self.on_connected()

    # -- sending -----------------------------------------------------------------------------

    def _send(self, twin_id: str, kind: str, body: dict[str, Any]) -> bool:
        key = self._key(twin_id)
        if key is None:
            return False
        name = topics.topic(twin_id, kind)
        self.client.publish(name, credentials.seal(key, name, {"twin": twin_id, **body}))
        return True

    def send_desired(
        self, twin_id: str, version: int, props: dict[str, Any], *, full: bool
    ) -> bool:
        return self._send(
            twin_id,
            "desired",
            {"ts": time.time(), "version": version, "full": full, "props": props},
        )

    def send_command(self, twin_id: str, cmd: Command) -> bool:
        return self._send(
            twin_id,
            "commands",
            {
                "ts": time.time(),
                "id": cmd.id,
                "name": cmd.name,
                "input": cmd.input,
                "expires": cmd.expires.isoformat(),
            },
        )

    def send_error(self, twin_id: str, topic: str, code: str, detail: str) -> None:
        self._send(
            twin_id,
            "errors",
            {"ts": time.time(), "topic": topic, "code": code, "detail": detail},
        )

    def forget(self, twin_id: str | None = None) -> None:
        """Drop cached signing keys (a secret was rotated, a twin deleted)."""
        if twin_id is None:
            self._keys.clear()
        else:
            self._keys.pop(twin_id, None)

    def _key(self, twin_id: str) -> bytes | None:
        now = time.monotonic()
        hit = self._keys.get(twin_id)
        if hit is not None and now - hit[0] < KEY_CACHE_S:
            return hit[1]
        key = self._twins.device_keys([twin_id]).get(twin_id)
        if len(self._keys) > 100_000:
            self._keys.clear()
        self._keys[twin_id] = (now, key)
        return key

    # -- receiving ---------------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if not isinstance(item, tuple):
                return  # _STOP
            generation: int = item[0]
            messages: list[Message] = item[1]
            handled: list[int] = []
            for topic_name, payload, qos, pid in messages:
                if not self._handle_retrying(topic_name, payload):
                    break  # stopping: the rest stays unacknowledged, for redelivery
                if qos:
                    handled.append(pid)
            self.client.ack(generation, handled)

    def _handle_retrying(self, topic_name: str, payload: bytes) -> bool:
        """Handle one message, retrying with backoff while the platform fails (the
        database is down): a message is acknowledged only once handled. False if the
        channel stops first."""
        backoff = 0.2
        while not self._stopping.is_set():
            try:
                self._handle(topic_name, payload)
                return True
            except UnavailableError as exc:
                log.warning("device message on %s waits: %s", topic_name, exc.detail)
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, 5.0)
            except Exception:  # a bug: retrying cannot help, and must not wedge the channel
                log.exception("device message on %s failed; dropped", topic_name)
                return True
        return False

    def _handle(self, topic_name: str, payload: bytes) -> None:
        parsed = topics.parse(topic_name)
        if parsed is None or parsed[1] not in topics.FROM_DEVICE:
            return
        twin_id, kind = parsed
        key = self._key(twin_id)
        if key is None:
            self._reject(
                twin_id, topic_name, "unknown_twin", "no twin with a credential has this id"
            )
            return
        try:
            text, signature = credentials.unseal(payload)
            if not credentials.verify(key, topic_name, text, signature):
                raise credentials.EnvelopeError("bad signature")
            body = credentials.parse_body(text)
        except credentials.EnvelopeError as exc:
            code = "bad_signature" if str(exc) == "bad signature" else "bad_envelope"
            self._reject(twin_id, topic_name, code, str(exc))
            return
        offline = kind == "heartbeat" and body.get("status") == "offline"
        ts = body.get("ts")
        if not isinstance(ts, int | float) or isinstance(ts, bool):
            self._reject(twin_id, topic_name, "bad_message", "ts (Unix seconds) is required")
            return
        if not offline and abs(time.time() - ts) > self._skew:
            self._reject(
                twin_id,
                topic_name,
                "stale_message",
                f"ts is more than {self._skew:.0f} s from the platform's clock",
            )
            return
        if self._replayed(signature):
            return
        try:
            self._dispatch(twin_id, kind, body)
            self.handled += 1
        except UnavailableError:
            raise  # not the device's fault: handled again once the platform recovers
        except AppError as exc:
            self.rejected += 1
            self.send_error(twin_id, topic_name, exc.code, exc.detail)
        self._seen[signature] = time.monotonic()

    def _replayed(self, signature: str) -> bool:
        """Seen within the freshness window (a replay, or the broker redelivering)."""
        now = time.monotonic()
        while self._seen:
            oldest, at = next(iter(self._seen.items()))
            if now - at <= self._skew and len(self._seen) < MAX_SEEN:
                break
            self._seen.pop(oldest)
        return signature in self._seen

    def _alive(self, twin_id: str) -> None:
        """Any message is a sign of life; recorded at most every few seconds per twin (a
        twin cannot time out in between: the window is a quarter of the timeout)."""
        now = time.monotonic()
        window = min(5.0, self._twins.settings.heartbeat_timeout_s / 4)
        if now - self._beats.get(twin_id, -window) >= window:
            self._twins.heartbeat(twin_id, transport="mqtt")
            if len(self._beats) > 100_000:
                self._beats.clear()
            self._beats[twin_id] = now

    def _dispatch(self, twin_id: str, kind: str, body: dict[str, Any]) -> None:
        twins = self._twins
        if kind == "heartbeat":
            status = str(body.get("status", "online"))
            twins.heartbeat(
                twin_id, transport="mqtt", status=status, boot=bool(body.get("boot", False))
            )
            if status == "online":
                self._beats[twin_id] = time.monotonic()
            else:
                self._beats.pop(twin_id, None)
            return
        self._alive(twin_id)
        if kind == "reported":
            props = body.get("props")
            if not isinstance(props, dict):
                raise InvalidInputError("reported needs props: {name: value}", code="bad_message")
            twins.report(
                twin_id,
                props,
                source="mqtt",
                desired_version=_int(body.get("desiredVersion"), "desiredVersion", optional=True),
            )
        elif kind == "ack" and "desired" in body:
            version = _int(body["desired"], "desired")
            assert version is not None
            error = body.get("error")
            twins.acknowledge_desired(twin_id, version, error=str(error) if error else None)
        elif kind == "ack":
            command = _int(body.get("command"), "command")
            assert command is not None
            error = body.get("error")
            twins.commands.acknowledge(
                twin_id,
                command,
                accepted=bool(body.get("accepted", True)),
                error=str(error) if error else None,
            )
        elif kind == "result":
            command = _int(body.get("command"), "command")
            assert command is not None
            if not isinstance(body.get("ok"), bool):
                raise InvalidInputError("result needs ok: true|false", code="bad_message")
            error = body.get("error")
            twins.commands.complete(
                twin_id,
                command,
                ok=body["ok"],
                output=body.get("output"),
                error=str(error) if error else None,
            )

    def _reject(self, twin_id: str, topic_name: str, code: str, detail: str) -> None:
        self.rejected += 1
        log.warning("refused device message on %s: %s (%s)", topic_name, code, detail)
        try:
            ref = self._twins.store.ref(twin_id)
        except AppError:
            ref = None
        if ref is None:
            return
        self._twins.emit(
            ref, "device.rejected", {"topic": topic_name, "code": code, "detail": detail}, ok=False
        )
        if code != "bad_signature":
            self.send_error(twin_id, topic_name, code, detail)


def _int(value: Any, name: str, *, optional: bool = False) -> int | None:
    if value is None and optional:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidInputError(f"{name} must be an integer", code="bad_message")
    return value
