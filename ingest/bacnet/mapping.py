"""A BACnet scan + point classes -> Brick 1.5 triples with BACnet references.

Contract (terms as Brick 1.5, the version TwinGraph loads, defines them; its BACnet
namespace is ``http://data.ashrae.org/bacnet/``):

- a device -> ``<base>device-<instance>``, ``a brick:BACnet_Controller, bacnet:device``,
  ``rdfs:label`` its object-name, ``bacnet:device-instance``; its address, vendor and model
  are kept under ``urn:twingraph:bacnet#``;
- a point object -> ``<base>device-<instance>/<object-type>-<instance>``, typed with its
  (guessed or reviewed) Brick class, ``rdfs:label`` its object-name, ``brick:hasUnit`` the
  QUDT unit of its BACnet units, ``brick:isHostedBy`` the device (and the device
  ``brick:hosts`` it);
- ``ref:hasExternalReference <point>/bacnet``, ``a ref:BACnetReference`` with
  ``bacnet:object-identifier`` (``analog-input,1``), ``bacnet:object-type``,
  ``bacnet:object-name``, ``bacnet:description``, ``bacnet:units`` (the ASHRAE enumeration
  value), ``ref:BACnetURI`` (``bacnet://599/analog-input,1/present-value``) and
  ``bacnet:contains`` the device (Brick 1.5's name for "the device hosting this object");
- ``ref:hasExternalReference <point>/timeseries``, ``a ref:TimeseriesReference``,
  ``ref:hasTimeseriesId`` the UUIDv5 of ``bacnet:<device instance>:<object identifier>`` in
  TwinGraph's time-series namespace (:func:`app.points.timeseries_uuid`), so a re-scan gives
  the same id and readings stay attached;
- how the class was chosen: ``tgb:classSource`` (heuristic/review), ``tgb:classConfidence``,
  ``tgb:classReason`` (``tgb:`` = ``urn:twingraph:bacnet#``), queryable with SPARQL.

No blank nodes and a fixed order: mapping the same scan twice gives identical triples, so a
re-ingest stores nothing new. Present values are telemetry, not part of the model.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from pyoxigraph import Literal, NamedNode, Triple

from app.domain.iris import BRICK, RDF_TYPE, RDFS, REF, XSD
from app.points import timeseries_uuid
from ingest.bacnet.classify import Guess
from ingest.bacnet.scan import BacnetDevice, BacnetObject, Scan
from ingest.bacnet.units import NO_UNITS, qudt_unit

#: The BACnet namespace of Brick 1.5's ref schema (``bacnet1:`` in Brick.ttl).
BACNET = "http://data.ashrae.org/bacnet/"
#: TwinGraph's own terms for what the BACnet and Brick vocabularies do not cover.
TGB = "urn:twingraph:bacnet#"
DEFAULT_BASE = "urn:twingraph:bacnet:"

_A = NamedNode(RDF_TYPE)

#: (device instance, object identifier) -> a point's key everywhere in the job.
PointKey = tuple[int, str]


@dataclass(frozen=True, slots=True)
class MappedPoint:
    device: BacnetDevice
    obj: BacnetObject
    guess: Guess
    iri: str
    timeseries: uuid.UUID

    @property
    def key(self) -> PointKey:
        return (self.device.instance, self.obj.identifier)


@dataclass(slots=True)
class BacnetMapping:
    triples: list[Triple]
    points: list[MappedPoint] = field(default_factory=list)
    devices: int = 0
    #: Point objects left out on the review's word.
    skipped: list[PointKey] = field(default_factory=list)
    #: Objects that are not points (schedules, trend logs, network ports, ...).
    not_points: Counter[str] = field(default_factory=Counter)
    #: BACnet units with no QUDT equivalent, and how often they occurred.
    unknown_units: Counter[str] = field(default_factory=Counter)

    @property
    def classified(self) -> list[MappedPoint]:
        return [p for p in self.points if not p.guess.generic]

    @property
    def unclassified(self) -> list[MappedPoint]:
        return [p for p in self.points if p.guess.generic]

    @property
    def low_confidence(self) -> list[MappedPoint]:
        return [p for p in self.points if p.guess.low_confidence]

    @property
    def coverage(self) -> float:
        """Share of mapped points typed more specifically than Point/Sensor/Command/..."""
        return len(self.classified) / len(self.points) if self.points else 0.0

    def summary(self) -> dict[str, object]:
        return {
            "devices": self.devices,
            "points": len(self.points),
            "classified": len(self.classified),
            "unclassified": len(self.unclassified),
            "low_confidence": len(self.low_confidence),
            "reviewed": sum(1 for p in self.points if p.guess.source == "review"),
            "skipped": len(self.skipped),
            "coverage": round(self.coverage, 4),
            "not_points": dict(sorted(self.not_points.items())),
            "unknown_units": dict(sorted(self.unknown_units.items())),
            "triples": len(self.triples),
        }


def series_id(device_instance: int, object_identifier: str) -> uuid.UUID:
    """The time-series UUID of one BACnet object: stable across scans and machines."""
    return timeseries_uuid(f"bacnet:{device_instance}:{object_identifier}")


def normalise_base(base: str | None) -> str:
    if not base:
        return DEFAULT_BASE
    return base if base.endswith(("/", "#", ":")) else base + "/"


def device_iri(base: str, device: BacnetDevice) -> str:
    return f"{base}device-{device.instance}"


def point_iri(base: str, device: BacnetDevice, obj: BacnetObject) -> str:
    return f"{device_iri(base, device)}/{obj.type}-{obj.instance}"


class _Builder:
    """Collects triples; each IRI is parsed into a NamedNode once (most repeat)."""

    def __init__(self) -> None:
        self.triples: list[Triple] = []
        self.typed: set[str] = set()
        self._nodes: dict[str, NamedNode] = {}

    def node(self, iri: str) -> NamedNode:
        node = self._nodes.get(iri)
        if node is None:
            node = self._nodes[iri] = NamedNode(iri)
        return node

    def add(self, s: str, p: str, o: str | Literal) -> None:
        obj = self.node(o) if isinstance(o, str) else o
        self.triples.append(Triple(self.node(s), self.node(p), obj))

    def text(self, s: str, p: str, value: str | None) -> None:
        if value:
            self.add(s, p, Literal(value))


def map_scan(
    scan: Scan,
    guesses: Mapping[PointKey, Guess],
    *,
    base: str | None = None,
    skip: frozenset[PointKey] = frozenset(),
) -> BacnetMapping:
    """Triples for every point object of the scan that has a guess and is not skipped."""
    prefix = normalise_base(base)
    b = _Builder()
    out = BacnetMapping(triples=b.triples)
    for device in sorted(scan.devices, key=lambda d: d.instance):
        dev = device_iri(prefix, device)
        out.devices += 1
        b.add(dev, RDF_TYPE, BRICK + "BACnet_Controller")
        b.add(dev, RDF_TYPE, BACNET + "device")
        b.text(dev, RDFS + "label", device.name or f"BACnet device {device.instance}")
        b.add(dev, BACNET + "device-instance", Literal(str(device.instance), datatype=_XSD_INT))
        b.text(dev, BACNET + "description", device.description)
        b.text(dev, TGB + "address", device.address)
        b.text(dev, TGB + "vendorName", device.vendor_name)
        b.text(dev, TGB + "modelName", device.model_name)
        for obj in sorted(device.objects, key=lambda o: (o.type, o.instance)):
            key = (device.instance, obj.identifier)
            if not obj.is_point:
                out.not_points[obj.type] += 1
                continue
            if key in skip:
                out.skipped.append(key)
                continue
            guess = guesses.get(key)
            if guess is None:
                continue
            point = _point(b, out, prefix, device, obj, guess)
            out.points.append(point)
    return out


_XSD_INT = NamedNode(XSD + "integer")
_XSD_DECIMAL = NamedNode(XSD + "decimal")


def _decimal(value: float) -> str:
    """Two decimals in the canonical form stores keep (``1``, ``0.9``), so a re-ingest
    compares equal to what is stored."""
    return format(Decimal(f"{value:.2f}").normalize(), "f")


def _point(
    b: _Builder,
    out: BacnetMapping,
    prefix: str,
    device: BacnetDevice,
    obj: BacnetObject,
    guess: Guess,
) -> MappedPoint:
    dev = device_iri(prefix, device)
    pt = point_iri(prefix, device, obj)
    ts = series_id(device.instance, obj.identifier)
    b.add(pt, RDF_TYPE, BRICK + guess.brick_class)
    b.text(pt, RDFS + "label", obj.name or obj.identifier)
    unit = qudt_unit(obj.units)
    if unit:
        b.add(pt, BRICK + "hasUnit", unit)
    elif obj.units and obj.units not in NO_UNITS:
        out.unknown_units[obj.units] += 1
    b.add(pt, BRICK + "isHostedBy", dev)
    b.add(dev, BRICK + "hosts", pt)
    b.add(pt, TGB + "classSource", Literal(guess.source))
    b.add(pt, TGB + "classConfidence", Literal(_decimal(guess.confidence), datatype=_XSD_DECIMAL))
    b.text(pt, TGB + "classReason", guess.reason)

    ref = pt + "/bacnet"
    b.add(pt, REF + "hasExternalReference", ref)
    b.add(ref, RDF_TYPE, REF + "BACnetReference")
    b.add(ref, BACNET + "object-identifier", Literal(obj.identifier))
    b.add(ref, BACNET + "object-type", Literal(obj.type))
    b.text(ref, BACNET + "object-name", obj.name)
    b.text(ref, BACNET + "description", obj.description)
    if obj.units:
        enum = f"{BACNET}EngineeringUnits.{obj.units}"
        b.add(ref, BACNET + "units", enum)
        if enum not in b.typed:
            b.typed.add(enum)
            b.add(enum, RDF_TYPE, BACNET + "EngineeringUnitsEnumerationValue")
    b.add(
        ref,
        REF + "BACnetURI",
        Literal(f"bacnet://{device.instance}/{obj.identifier}/present-value"),
    )
    b.add(ref, BACNET + "contains", dev)

    series = pt + "/timeseries"
    b.add(pt, REF + "hasExternalReference", series)
    b.add(series, RDF_TYPE, REF + "TimeseriesReference")
    b.add(series, REF + "hasTimeseriesId", Literal(str(ts)))
    return MappedPoint(device, obj, guess, pt, ts)
