"""The twin service against the real stores (embedded Oxigraph and `oxigraph serve`) and
PostgreSQL: twins of graph entities, desired/reported sync with JSON Schema, commands,
writable points confirmed by telemetry, bulk jobs, and twin state as of a time."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pyoxigraph import RdfFormat

from app.domain.telemetry import Reading
from app.errors import ConflictError, InvalidInputError, NotFoundError
from app.events.model import EventFilter
from app.platform import Platform
from app.twins import credentials
from app.twins.history import apply_event
from app.twins.jobs import Selector
from app.twins.model import POINT_VALUE, LabelSelector, json_equal
from app.twins.service import TwinService, TwinSettings
from tests.factories import PREFIXES

BRICK = "https://brickschema.org/schema/Brick#"


def twin_model(name: str, setpoint_ts: str, sensor_ts: str) -> str:
    """A site > building > level > room holding a VAV with a writable setpoint and a sensor."""
    return (
        PREFIXES
        + f"""
ex:{name}-site a rec:Site ; rdfs:label "{name} site" ; rec:hasPart ex:{name}-bldg .
ex:{name}-bldg a rec:Building ; rdfs:label "{name} building" ; rec:isPartOf ex:{name}-site ;
    rec:hasPart ex:{name}-l1 .
ex:{name}-l1 a rec:Level ; rdfs:label "{name} level 1" ; rec:isPartOf ex:{name}-bldg ;
    rec:hasPart ex:{name}-room .
ex:{name}-room a rec:Office ; rdfs:label "{name} office" ; rec:isPartOf ex:{name}-l1 .
ex:{name}-vav a brick:VAV ; rdfs:label "{name} VAV" ; brick:hasLocation ex:{name}-room ;
    brick:hasPoint ex:{name}-sp, ex:{name}-zat .
ex:{name}-sp a brick:Zone_Air_Temperature_Setpoint ; rdfs:label "{name} setpoint" ;
    brick:hasUnit unit:DEG_C ; brick:isPointOf ex:{name}-vav ;
    ref:hasExternalReference [ a ref:TimeseriesReference ; ref:hasTimeseriesId "{setpoint_ts}" ] .
ex:{name}-zat a brick:Zone_Air_Temperature_Sensor ; rdfs:label "{name} temperature" ;
    brick:hasUnit unit:DEG_C ; brick:isPointOf ex:{name}-vav ;
    ref:hasExternalReference [ a ref:TimeseriesReference ; ref:hasTimeseriesId "{sensor_ts}" ] .
"""
    )


class Building:
    def __init__(self, platform: Platform, name: str) -> None:
        self.name = name
        self.setpoint_ts = uuid.uuid4()
        self.sensor_ts = uuid.uuid4()
        self.graph = f"urn:twingraph:model:twins-{name}"
        platform.models.ingest(
            graph=self.graph,
            data=twin_model(name, str(self.setpoint_ts), str(self.sensor_ts)).encode(),
            fmt=RdfFormat.TURTLE,
        )

    def iri(self, part: str) -> str:
        return f"urn:ex:{self.name}-{part}"


@pytest.fixture
def twins(platform: Platform) -> TwinService:
    assert platform.twins is not None and platform.events is not None
    return platform.twins


@pytest.fixture
def building(platform: Platform) -> Building:
    return Building(platform, f"t{uuid.uuid4().hex[:8]}")


def events_of(platform: Platform, iri: str, *types: str) -> list[Any]:
    assert platform.events is not None
    return platform.events.fetch(filter=EventFilter.of(types=types, twins=[iri]))


def eventually(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := check()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
    return result


def test_a_twin_mirrors_its_graph_entity(
    platform: Platform, twins: TwinService, building: Building
) -> None:
    state, secret = twins.create(entity=building.iri("vav"), labels={"type": "vav", "floor": 1})
    assert state.id == f"{building.name}-vav" and state.kind == "equipment"
    assert state.site == building.iri("site") and state.graph == building.graph
    assert {BRICK + "VAV", BRICK + "Equipment"} <= set(state.classes)
    assert state.labels == {"type": "vav", "floor": "1"} and not state.online
    assert secret.startswith("tgd_") and twins.authenticate_device(secret) == state.id
    assert twins.authenticate_device(secret + "x") is None
    # Found by id, IRI, CURIE-free IRI, and label; the secret is stored only as a digest.
    for key in (state.id, building.iri("vav"), f"{building.name} VAV"):
        assert twins.get(key).id == state.id
    assert twins.device_keys([state.id]) == {state.id: credentials.digest(secret)}
    registered = events_of(platform, building.iri("vav"), "twin.registered")
    assert registered[0].site == building.iri("site") and BRICK + "VAV" in registered[0].classes

    with pytest.raises(ConflictError) as exists:
        twins.create(entity=building.iri("vav"))
    assert exists.value.code == "twin_exists"
    with pytest.raises(InvalidInputError) as level:
        twins.create(entity=building.iri("l1"))
    assert level.value.code == "not_a_twin_entity"
    with pytest.raises(NotFoundError) as missing:
        twins.create(entity="urn:ex:nothing-here")
    assert missing.value.code == "entity_not_found"
    with pytest.raises(InvalidInputError) as bad_id:
        twins.create(entity=building.iri("zat"), twin_id="points")
    assert bad_id.value.code == "bad_twin_id"
    with pytest.raises(NotFoundError):
        twins.get("no-such-twin")


def test_desired_and_reported_come_in_sync_and_schemas_are_enforced(
    platform: Platform, twins: TwinService, building: Building
) -> None:
    schema = {"type": "integer", "minimum": 1, "maximum": 3600}
    state, _ = twins.create(entity=building.iri("vav"), schemas={"sensor.v1.SampleRate": schema})
    tid = state.id

    with pytest.raises(InvalidInputError) as bad:
        twins.set_desired(tid, {"sensor.v1.SampleRate": 0})
    assert bad.value.code == "schema_violation" and "minimum" in bad.value.detail
    with pytest.raises(InvalidInputError) as unqualified:
        twins.set_desired(tid, {"SampleRate": 5})
    assert unqualified.value.code == "bad_property_name"
    assert twins.get(tid).desired == {} and twins.get(tid).desired_version == 0  # untouched
    refused = events_of(platform, building.iri("vav"), "desired.set")
    assert [(e.ok, e.data["code"]) for e in refused] == [
        (False, "schema_violation"),
        (False, "bad_property_name"),
    ]

    state = twins.set_desired(tid, {"sensor.v1.SampleRate": 10, "sensor.v1.Mode": "eco"})
    assert state.desired_version == 1 and not state.synced
    assert state.properties["sensor.v1.SampleRate"].status == "pending"
    with pytest.raises(InvalidInputError):
        twins.report(tid, {"sensor.v1.SampleRate": "fast"}, source="test")  # schema holds too
    reported = twins.report(tid, {"sensor.v1.SampleRate": 10.0}, source="test", desired_version=1)
    assert reported is not None
    assert reported.properties["sensor.v1.SampleRate"].status == "synced"
    assert reported.properties["sensor.v1.Mode"].status == "acknowledged"  # acked, not applied
    reported = twins.report(tid, {"sensor.v1.Mode": "eco", "sensor.v1.Uptime": 5}, source="test")
    assert reported is not None and reported.synced
    assert reported.properties["sensor.v1.Uptime"].status == "reported"
    synced = events_of(platform, building.iri("vav"), "synced")
    assert [(e.data["props"], e.data["twinSynced"]) for e in synced] == [
        (["sensor.v1.SampleRate"], False),
        (["sensor.v1.Mode"], True),
    ]
    # A merge patch with null removes a desired property; the removal is a new version.
    state = twins.set_desired(tid, {"sensor.v1.Mode": None})
    assert "sensor.v1.Mode" not in state.desired and state.desired_version == 2
    # The device acknowledged version 1 (with its report): only the removal is new to it.
    assert twins.desired_for_delivery(tid, full=False) == (2, {"sensor.v1.Mode": None})
    assert twins.desired_for_delivery(tid, full=True) == (2, {"sensor.v1.SampleRate": 10})
    # The device refusing a version marks what it covers failed.
    state = twins.set_desired(tid, {"sensor.v1.SampleRate": 20})
    state = twins.acknowledge_desired(tid, 3, error="rate not supported")
    assert state.properties["sensor.v1.SampleRate"].status == "failed"
    with pytest.raises(ConflictError):
        twins.acknowledge_desired(tid, 99)


def test_commands_queue_with_ttl_idempotency_and_states(
    platform: Platform, twins: TwinService, building: Building
) -> None:
    state, _ = twins.create(
        entity=building.iri("vav"),
        actions={"reboot": {"input": {"type": "object", "required": ["delay"]}}},
    )
    tid = state.id
    other, _ = twins.create(entity=building.iri("zat"))
    cmd, created = twins.commands.send(
        tid, name="reboot", input={"delay": 5}, ttl_s=60, idempotency_key="op-1"
    )
    assert created and cmd.state == "queued" and cmd.expires > datetime.now(UTC)
    again, created = twins.commands.send(
        tid, name="reboot", input={"delay": 5}, ttl_s=60, idempotency_key="op-1"
    )
    assert not created and again.id == cmd.id
    with pytest.raises(ConflictError) as reused:
        twins.commands.send(tid, name="reboot", input={"delay": 9}, idempotency_key="op-1")
    assert reused.value.code == "idempotency_key_reused"
    with pytest.raises(InvalidInputError) as bad_input:
        twins.commands.send(tid, name="reboot", input={})
    assert bad_input.value.code == "bad_command_input"
    with pytest.raises(InvalidInputError) as unknown:
        twins.commands.send(tid, name="selfdestruct")
    assert unknown.value.code == "unknown_action"
    with pytest.raises(InvalidInputError):
        twins.commands.send(tid, name="reboot", input={"delay": 1}, ttl_s=0)

    short, _ = twins.commands.send(tid, name="reboot", input={"delay": 1}, ttl_s=0.2)
    assert [c.id for c in twins.commands.pending(tid)] == [cmd.id, short.id]
    assert twins.commands.mark_delivered(tid, [cmd.id])[0].state == "delivered"
    # Another twin's device cannot acknowledge this command.
    with pytest.raises(NotFoundError):
        twins.commands.acknowledge(other.id, cmd.id)
    assert twins.commands.acknowledge(tid, cmd.id).state == "acknowledged"
    assert twins.commands.acknowledge(tid, cmd.id).state == "acknowledged"  # repeated: same
    done = twins.commands.complete(tid, cmd.id, ok=True, output={"uptime": 0})
    assert done.state == "succeeded" and done.result == {"uptime": 0} and done.finished
    with pytest.raises(ConflictError):
        twins.commands.complete(tid, cmd.id, ok=False, error="late")

    time.sleep(0.25)
    # The sweeper of the session's test server runs on this platform too and may have
    # expired it first; either way it expires exactly once.
    swept = [c.id for c in twins.commands.expire_due() if c.twin == tid]
    assert swept in ([short.id], [])
    assert twins.commands.get(tid, short.id).state == "expired"
    assert twins.commands.pending(tid) == []
    assert len(events_of(platform, building.iri("vav"), "command.expired")) == 1
    with pytest.raises(ConflictError) as late:
        twins.commands.acknowledge(tid, short.id)
    assert late.value.code == "command_expired"
    types = [e.type for e in events_of(platform, building.iri("vav"), "command.*") if e.ok]
    assert types == [
        "command.queued",
        "command.queued",
        "command.delivered",
        "command.acknowledged",
        "command.succeeded",
    ]
    assert [e.ok for e in events_of(platform, building.iri("vav"), "command.expired")] == [False]


def test_writable_point_is_confirmed_by_its_reading(
    platform: Platform, twins: TwinService, building: Building
) -> None:
    assert platform.events is not None and platform.telemetry is not None
    platform.events.start()
    undo = platform.events.on_readings(twins.on_readings)
    try:
        with pytest.raises(ConflictError) as read_only:
            twins.set_point_value(str(building.sensor_ts), 21.0)
        assert read_only.value.code == "point_not_writable"

        state = twins.set_point_value(str(building.setpoint_ts), 22.5)
        assert state.kind == "point" and state.writable and state.point == building.setpoint_ts
        assert state.properties[POINT_VALUE].status == "pending"
        t = datetime.now(UTC)
        platform.telemetry.write(readings=[Reading(building.setpoint_ts, t, 22.5)])
        confirmed = eventually(
            lambda: twins.get(state.id).properties[POINT_VALUE].status == "synced"
        )
        assert confirmed
        value = twins.point_value(building.iri("sp"))
        assert value.latest is not None and value.latest.value == 22.5
        assert value.as_dict()["sync"] == "synced" and value.writable
        # An older reading arriving late does not replace the newer reported value.
        platform.telemetry.write(
            readings=[Reading(building.setpoint_ts, t - timedelta(minutes=5), 19.0)]
        )
        later = t + timedelta(seconds=1)
        platform.telemetry.write(readings=[Reading(building.setpoint_ts, later, 23.0)])
        eventually(lambda: twins.get(state.id).reported[POINT_VALUE] == 23.0)
        drifted = twins.get(state.id)  # the point moved away from its setpoint
        assert drifted.properties[POINT_VALUE].status == "pending" and not drifted.synced
        assert drifted.properties[POINT_VALUE].reported.time == later  # type: ignore[union-attr]
    finally:
        undo()


def test_bulk_jobs_by_label_and_sparql_selectors(
    platform: Platform, twins: TwinService, building: Building
) -> None:
    vav, _ = twins.create(entity=building.iri("vav"), labels={"job": building.name, "k": "vav"})
    zat, _ = twins.create(entity=building.iri("zat"), labels={"job": building.name, "k": "pt"})
    job = twins.jobs.set_desired(
        Selector(labels=f"job={building.name},k!=pt"), {"acme.v1.Mode": "auto"}
    )
    assert (job.total, job.succeeded) == (1, 1) and job.results[0].twin == vav.id
    assert twins.get(vav.id).desired == {"acme.v1.Mode": "auto"}
    selector = f"SELECT ?p WHERE {{ <{building.iri('vav')}> brick:hasPoint ?p }}"
    job = twins.jobs.send_command(Selector(sparql=selector), name="calibrate", ttl_s=60)
    by_target = {r.target: r for r in job.results}
    assert by_target[building.iri("zat")].ok and by_target[building.iri("zat")].code == "queued"
    assert by_target[building.iri("sp")].code == "no_twin" and not by_target[building.iri("sp")].ok
    assert (job.total, job.succeeded, job.failed) == (2, 1, 1)
    assert twins.jobs.get(job.id) == job
    assert twins.commands.find(zat.id)[0].job == job.id
    with pytest.raises(InvalidInputError):
        twins.jobs.send_command(Selector(labels="bad key=1"), name="x")


def test_twin_state_as_of_a_time_with_delta_sampled_snapshots(
    platform: Platform, twins: TwinService, building: Building
) -> None:
    assert platform.db is not None and platform.events is not None
    # A service with a short delta, over the same stores: snapshots at most every 0.4 s.
    sampled = TwinService(
        pool=platform.db,
        bus=platform.events,
        entities=twins.entities,
        points=platform.points,
        sparql=platform.sparql,
        settings=TwinSettings(snapshot_delta_s=0.4),
    )
    before = datetime.now(UTC)
    time.sleep(0.01)
    state, _ = sampled.create(entity=building.iri("vav"))
    tid = state.id
    instants = []
    for value in (1, 2, 3, 4, 5, 6):
        sampled.set_desired(tid, {"acme.v1.Level": value})
        time.sleep(0.01)
        instants.append(datetime.now(UTC))
        time.sleep(0.12)
    sampled.heartbeat(tid, transport="http")
    after_online = datetime.now(UTC)

    for value, when in zip((1, 2, 3, 4, 5, 6), instants, strict=True):
        past = sampled.get(tid, as_of=when)
        assert past.desired == {"acme.v1.Level": value} and past.as_of == when
        assert past.desired_version == value and not past.online
    assert sampled.get(tid, as_of=after_online).online
    with pytest.raises(NotFoundError) as too_early:
        sampled.get(tid, as_of=before)
    assert too_early.value.code == "twin_not_found_at"
    # Six changes over ~0.8 s, delta 0.4 s: the first snapshot and at most two more.
    snaps = sampled.history.snapshots(tid)
    assert 2 <= len(snaps) <= 3
    gaps = [(b[0] - a[0]).total_seconds() for a, b in zip(snaps, snaps[1:], strict=False)]
    assert all(g > 0.4 for g in gaps)
    # The same as-of answer comes from the platform's service (60 s delta: one snapshot).
    assert twins.get(tid, as_of=instants[2]).desired == {"acme.v1.Level": 3}
    assert len(twins.history.snapshots(tid)) == len(snaps)


def test_silent_devices_go_offline_and_model_changes_reach_twins(
    platform: Platform, twins: TwinService, building: Building
) -> None:
    assert platform.db is not None and platform.events is not None
    quick = TwinService(
        pool=platform.db,
        bus=platform.events,
        entities=twins.entities,
        points=platform.points,
        sparql=platform.sparql,
        settings=TwinSettings(heartbeat_timeout_s=0.3),
    )
    state, _ = quick.create(entity=building.iri("vav"))
    assert quick.heartbeat(state.id, transport="mqtt", boot=True)
    assert quick.heartbeat(state.id, transport="mqtt")  # still online: no second event
    assert quick.get(state.id).online and quick.get(state.id).transport == "mqtt"
    assert state.id not in quick.sweep_offline()
    time.sleep(0.4)
    assert state.id in quick.sweep_offline()
    assert not quick.get(state.id).online
    quick.heartbeat(state.id, transport="http")
    quick.heartbeat(state.id, transport="http", status="offline")
    seen = events_of(platform, building.iri("vav"), "device.*")
    assert [(e.type, e.data.get("reason")) for e in seen] == [
        ("device.online", None),
        ("device.offline", "heartbeat timeout"),
        ("device.online", None),
        ("device.offline", "device"),
    ]
    with pytest.raises(InvalidInputError):
        quick.heartbeat(state.id, transport="http", status="asleep")

    rvav = BRICK + "Variable_Air_Volume_Box_With_Reheat"
    assert rvav not in twins.get(state.id).classes
    platform.models.ingest(
        graph=building.graph,
        data=(
            PREFIXES + f"ex:{building.name}-vav a brick:Variable_Air_Volume_Box_With_Reheat ."
        ).encode(),
        fmt=RdfFormat.TURTLE,
        mode="merge",
    )
    assert twins.refresh_entities() >= 1
    assert rvav in twins.get(state.id).classes


def test_pure_pieces() -> None:
    sel = LabelSelector.parse("type=sensor, level=1,!retired,zone")
    assert sel.matches({"type": "sensor", "level": "1", "zone": "a"})
    assert not sel.matches({"type": "sensor", "level": "1", "zone": "a", "retired": "y"})
    assert not sel.matches({"type": "sensor", "level": "2", "zone": "a"})
    for bad in ("", "a=b,", "bad key=1", "a=b c"):
        with pytest.raises(InvalidInputError):
            LabelSelector.parse(bad)
    assert json_equal(1, 1.0) and not json_equal(1, True) and json_equal({"a": [1]}, {"a": [1.0]})
    key = credentials.digest("tgd_secret")
    sealed = credentials.seal(key, "twingraph/devices/a/reported", {"ts": 1})
    assert credentials.open_body(key, "twingraph/devices/a/reported", sealed) == {"ts": 1}
    with pytest.raises(credentials.EnvelopeError):
        credentials.open_body(key, "twingraph/devices/b/reported", sealed)
    doc: dict[str, Any] = {"desired": {}, "reported": {}, "desiredVersion": 0}
    t = datetime.now(UTC)
    apply_event(doc, "desired.set", t, {"version": 2, "props": {"a.v1.B": 1}})
    apply_event(doc, "desired.set", t, {"version": 2, "props": {"a.v1.B": 1}})  # idempotent
    assert doc["desired"]["a.v1.B"]["value"] == 1 and doc["desiredVersion"] == 2
