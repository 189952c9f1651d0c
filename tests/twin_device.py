"""A simulated device speaking TwinGraph's MQTT device channel (run as its own process).

    python -m tests.twin_device --url mqtt://127.0.0.1:1883 --twin vav-1.01 --secret tgd_... \
        --log device.jsonl

It keeps nothing across restarts (like a device that cannot persist its configuration):
at start it announces itself with a ``boot`` heartbeat and expects the platform to send
its whole desired state and every command it has not acknowledged. It applies desired
properties and reports them back with the version applied, acknowledges each command,
executes it and reports the result (commands named by ``--fail`` fail), ignores messages
whose signature is not the platform's, and on SIGTERM says it is going offline. Its will
message says the same if it dies. Each thing it receives is appended to ``--log`` as one
JSON object per line, so a test can check what arrived and in which order.

``Device`` also serves several twins over one connection, for in-process simulators.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

ROOT = "twingraph/devices"


def seal(key: bytes, topic: str, body: Mapping[str, Any]) -> bytes:
    """Written independently of app.twins.credentials: the documented envelope."""
    text = json.dumps(body, separators=(",", ":"))
    sig = hmac.new(key, f"{topic}\n{text}".encode(), hashlib.sha256).hexdigest()
    return json.dumps({"body": text, "sig": sig}).encode()


def unseal(key: bytes, topic: str, payload: bytes) -> dict[str, Any] | None:
    try:
        envelope = json.loads(payload)
        text, sig = envelope["body"], envelope["sig"]
    except (ValueError, KeyError, TypeError):
        return None
    good = hmac.new(key, f"{topic}\n{text}".encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(good, sig):
        return None
    body: dict[str, Any] = json.loads(text)
    return body


def key_of(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


class Device:
    """One MQTT connection answering for the twins in ``secrets`` (twin id -> secret)."""

    def __init__(
        self,
        url: str,
        secrets: Mapping[str, str],
        *,
        record: Callable[[dict[str, Any]], None] = lambda entry: None,
        fail: frozenset[str] = frozenset(),
        heartbeat_s: float = 2.0,
        client_id: str | None = None,
    ) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 1883
        self.keys = {twin: key_of(secret) for twin, secret in secrets.items()}
        self.record = record
        self.fail = fail
        self.heartbeat_s = heartbeat_s
        self.state: dict[str, dict[str, Any]] = {twin: {} for twin in secrets}
        self.applied: dict[str, int] = {twin: 0 for twin in secrets}
        self.seen_commands: set[int] = set()
        self.ready = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or f"device-{'-'.join(sorted(secrets))[:40]}-{time.time_ns()}",
            protocol=mqtt.MQTTv5,
        )
        if len(self.keys) == 1:
            twin, key = next(iter(self.keys.items()))
            will = f"{ROOT}/{twin}/heartbeat"
            self.client.will_set(
                will, seal(key, will, {"ts": time.time(), "status": "offline"}), qos=1
            )
        # The broker login (documented in the README): the URL's user if it names one,
        # else a one-twin device's own, its twin id (":" written "%3A") and secret.
        if parts.username:
            self.client.username_pw_set(unquote(parts.username), unquote(parts.password or ""))
        elif len(secrets) == 1:
            twin, secret = next(iter(secrets.items()))
            self.client.username_pw_set(twin.replace(":", "%3A"), secret)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = 0
        self.client.connect(self.host, self.port, keepalive=30, clean_start=True, properties=props)
        self.client.loop_start()
        threading.Thread(target=self._beat, daemon=True).start()

    def stop(self, *, say_offline: bool = True) -> None:
        self._stop.set()
        if say_offline:
            infos = [self.publish(twin, "heartbeat", {"status": "offline"}) for twin in self.keys]
            for info in infos:
                info.wait_for_publish(5)
        self.client.disconnect()
        self.client.loop_stop()

    def publish(self, twin: str, kind: str, body: dict[str, Any]) -> mqtt.MQTTMessageInfo:
        topic = f"{ROOT}/{twin}/{kind}"
        return self.client.publish(
            topic, seal(self.keys[twin], topic, {"ts": time.time(), **body}), qos=1
        )

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            if self.ready.is_set():
                for twin in self.keys:
                    self.publish(twin, "heartbeat", {"status": "online"})

    # -- MQTT callbacks ----------------------------------------------------------------------

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        sock = client.socket()
        if isinstance(sock, socket.socket):  # small packets leave at once (no Nagle delay)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        topics = [
            (f"{ROOT}/{t}/{k}", 1) for t in self.keys for k in ("desired", "commands", "errors")
        ]
        client.subscribe(topics)

    def _on_subscribe(self, *_args: Any) -> None:
        for twin in self.keys:
            self.publish(twin, "heartbeat", {"status": "online", "boot": True})
        self.ready.set()

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        parts = msg.topic.split("/")
        twin, kind = parts[2], parts[3]
        key = self.keys.get(twin)
        body = unseal(key, msg.topic, bytes(msg.payload)) if key else None
        if body is None:
            self.record({"event": "bad_signature", "topic": msg.topic})
            return
        with self._lock:
            if kind == "desired":
                self._desired(twin, body)
            elif kind == "commands":
                self._command(twin, body)
            else:
                self.record({"event": "error", "twin": twin, **body})

    def _desired(self, twin: str, body: dict[str, Any]) -> None:
        version = int(body["version"])
        self.record(
            {
                "event": "desired",
                "twin": twin,
                "version": version,
                "full": body["full"],
                "props": body["props"],
            }
        )
        if version < self.applied[twin] or (version == self.applied[twin] and not body["full"]):
            return
        state = {} if body["full"] else dict(self.state[twin])
        for name, value in body["props"].items():
            if value is None:
                state.pop(name, None)
            else:
                state[name] = value
        self.state[twin] = state
        self.applied[twin] = version
        if state or version:
            self.publish(twin, "reported", {"props": state, "desiredVersion": version})

    def _command(self, twin: str, body: dict[str, Any]) -> None:
        cid = int(body["id"])
        self.record({"event": "command", "twin": twin, "id": cid, "name": body["name"]})
        if cid in self.seen_commands:
            return
        self.seen_commands.add(cid)
        self.publish(twin, "ack", {"command": cid})
        if body["name"] in self.fail:
            self.publish(twin, "result", {"command": cid, "ok": False, "error": "refused"})
        else:
            output = {"done": body["name"], "input": body.get("input")}
            self.publish(twin, "result", {"command": cid, "ok": True, "output": output})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--twin", help="the twin to answer for (with --secret)")
    parser.add_argument("--secret")
    parser.add_argument("--secrets", type=Path, help="JSON {twin id: secret}: answer for many")
    parser.add_argument("--log", type=Path, required=True)
    parser.add_argument("--fail", action="append", default=[])
    parser.add_argument("--heartbeat", type=float, default=1.0)
    args = parser.parse_args(argv)
    log_lock = threading.Lock()

    def record(entry: dict[str, Any]) -> None:
        with log_lock, args.log.open("a") as fh:
            fh.write(json.dumps(entry) + "\n")

    secrets = json.loads(args.secrets.read_text()) if args.secrets else {}
    if args.twin:
        secrets[args.twin] = args.secret
    if not secrets:
        parser.error("give --twin and --secret, or --secrets")
    device = Device(
        args.url,
        secrets,
        record=record,
        fail=frozenset(args.fail),
        heartbeat_s=args.heartbeat,
    )
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    device.start()
    if not device.ready.wait(10):
        print("not connected", file=sys.stderr)
        return 1
    print("ready", flush=True)
    done.wait()
    device.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
