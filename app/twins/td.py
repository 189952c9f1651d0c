"""W3C Web of Things Thing Descriptions (TD 1.1) rendered from a twin, and read back.

Rendered: the twin's entity is the Thing (``id`` = its IRI, ``@type`` = its most specific
classes). Properties are the twin's schema-qualified properties (their JSON Schema is the
data schema) and, for equipment, its points from the graph (unit, read-only unless the
point is writable); actions are the twin's declared commands; events are the twin events
of ``/events``. Forms point at the HTTP API (relative to ``base``) and the MQTT topics.

Registration: a device posts its TD; ``id`` must name an equipment or point in the graph,
property names must be schema-qualified, and each property's data schema becomes the
JSON Schema enforced on writes; actions become the twin's commands.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from app.domain.iris import BRICK, REC
from app.errors import InvalidInputError
from app.twins import topics
from app.twins.entities import PointInfo
from app.twins.model import POINT_VALUE, TwinState

TD_CONTEXT = "https://www.w3.org/2022/wot/td/v1.1"
TD_CONTEXTS = frozenset({TD_CONTEXT, "https://www.w3.org/2019/wot/td/v1"})
EXTENSION = "urn:twingraph:td#"
#: Terms of a TD interaction affordance that are not part of its data schema.
_AFFORDANCE_ONLY = frozenset({"forms", "observable", "@type", "uriVariables"})
TWIN_EVENTS = (
    "desired.set",
    "reported",
    "synced",
    "command.delivered",
    "command.acknowledged",
    "command.succeeded",
    "command.failed",
    "command.expired",
    "device.online",
    "device.offline",
)


def _curie(iri: str) -> str:
    for prefix, ns in (("brick", BRICK), ("rec", REC)):
        if iri.startswith(ns):
            return f"{prefix}:{iri[len(ns) :]}"
    return iri


def render(
    state: TwinState,
    *,
    types: Sequence[str],
    title: str | None,
    points: Sequence[PointInfo],
    base: str,
    mqtt_url: str | None,
) -> dict[str, Any]:
    twin = quote(state.id, safe="")
    # The broker's address without its user info: a TD is readable by any reader.
    mqtt_url = _public_url(mqtt_url) if mqtt_url else None
    properties: dict[str, Any] = {}
    names = set(state.schemas) | set(state.properties)
    for name in sorted(names):
        schema = dict(state.schemas.get(name, {}))
        forms: list[dict[str, Any]] = [
            {"href": f"twins/{twin}", "op": ["readproperty"], "contentType": "application/json"},
            {
                "href": f"twins/{twin}/desired",
                "op": ["writeproperty"],
                "htv:methodName": "PATCH",
                "contentType": "application/json",
            },
        ]
        if mqtt_url:
            forms.append(
                {
                    "href": f"{mqtt_url}/{topics.topic(state.id, 'desired')}",
                    "op": ["writeproperty"],
                    "subprotocol": "mqtt",
                }
            )
        writable = name != POINT_VALUE or state.writable
        properties[name] = {**schema, "observable": True, "readOnly": not writable, "forms": forms}
    for p in points:
        key = f"point.{p.uuid}"
        ops = ["readproperty", "writeproperty"] if p.writable else ["readproperty"]
        prop: dict[str, Any] = {
            "title": p.label or p.iri,
            "@type": sorted(_curie(c) for c in p.classes if c.startswith(BRICK))[:8],
            "readOnly": not p.writable,
            "observable": True,
            "twingraph:point": p.iri,
            "forms": [
                {"href": f"points/{p.uuid}/value", "op": ops, "contentType": "application/json"},
                {
                    "href": f"events/readings?point={p.uuid}",
                    "op": ["observeproperty"],
                    "subprotocol": "sse",
                    "contentType": "text/event-stream",
                },
            ],
        }
        if p.unit:
            prop["unit"] = p.unit
        properties[key] = prop
    actions: dict[str, Any] = {}
    for name, spec in sorted(state.actions.items()):
        action = {k: v for k, v in spec.items() if k in ("title", "description", "input", "output")}
        action["forms"] = [
            {
                "href": f"twins/{twin}/commands",
                "op": ["invokeaction"],
                "htv:methodName": "POST",
                "contentType": "application/json",
            }
        ]
        actions[name] = action
    events = {
        name: {
            "data": {"type": "object"},
            "forms": [
                {
                    "href": f"events?twin={quote(state.iri, safe='')}&type={name}",
                    "op": ["subscribeevent"],
                    "subprotocol": "sse",
                    "contentType": "text/event-stream",
                }
            ],
        }
        for name in TWIN_EVENTS
    }
    return {
        "@context": [TD_CONTEXT, {"twingraph": EXTENSION, "brick": BRICK, "rec": REC}],
        "@type": [_curie(t) for t in types],
        "id": state.iri,
        "title": title or state.id,
        "twingraph:twinId": state.id,
        "twingraph:site": state.site,
        "twingraph:labels": dict(state.labels),
        "base": base.rstrip("/") + "/",
        "securityDefinitions": {"bearer_sc": {"scheme": "bearer", "in": "header"}},
        "security": ["bearer_sc"],
        "properties": properties,
        "actions": actions,
        "events": events,
    }


@dataclass(frozen=True, slots=True)
class Registration:
    entity: str
    twin_id: str | None
    labels: dict[str, Any]
    schemas: dict[str, Any]
    actions: dict[str, Any]
    td: dict[str, Any]


def parse(td: Any) -> Registration:
    """What a posted TD asks for; InvalidInputError (``bad_td``) says what is wrong."""
    if not isinstance(td, dict):
        raise InvalidInputError("A Thing Description is a JSON object", code="bad_td")
    context = td.get("@context")
    contexts = context if isinstance(context, list) else [context]
    if not any(isinstance(c, str) and c in TD_CONTEXTS for c in contexts):
        raise InvalidInputError(
            f"@context must include {TD_CONTEXT} (or the TD 1.0 context)", code="bad_td"
        )
    entity = td.get("id")
    if not isinstance(entity, str) or not entity:
        raise InvalidInputError(
            "The TD's id must be the IRI of the equipment or point in the graph", code="bad_td"
        )
    if not isinstance(td.get("title"), str):
        raise InvalidInputError("A TD needs a title", code="bad_td")
    schemas: dict[str, Any] = {}
    for name, affordance in _section(td, "properties").items():
        if name.startswith("point."):
            continue  # rendered from the graph; not the device's to declare
        schemas[name] = {k: v for k, v in affordance.items() if k not in _AFFORDANCE_ONLY}
    actions: dict[str, Any] = {}
    for name, affordance in _section(td, "actions").items():
        actions[name] = {
            k: v for k, v in affordance.items() if k in ("title", "description", "input", "output")
        }
    labels = td.get("twingraph:labels", {})
    twin_id = td.get("twingraph:twinId")
    if not isinstance(labels, dict) or (twin_id is not None and not isinstance(twin_id, str)):
        raise InvalidInputError(
            "twingraph:labels must be an object and twingraph:twinId a string", code="bad_td"
        )
    return Registration(entity, twin_id, labels, schemas, actions, td)


def _section(td: Mapping[str, Any], name: str) -> dict[str, dict[str, Any]]:
    section = td.get(name, {})
    if not isinstance(section, dict) or not all(isinstance(v, dict) for v in section.values()):
        raise InvalidInputError(f"The TD's {name} must map names to objects", code="bad_td")
    return section


def _public_url(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
