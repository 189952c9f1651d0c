"""Small Brick 1.5 models for tests, written as Turtle so tests read like real input."""

from __future__ import annotations

PREFIXES = """@prefix brick: <https://brickschema.org/schema/Brick#> .
@prefix rec: <https://w3id.org/rec#> .
@prefix ref: <https://brickschema.org/schema/Brick/ref#> .
@prefix unit: <http://qudt.org/vocab/unit/> .
@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .
@prefix ex: <urn:ex:> .
"""


def vav_model(
    name: str = "vav1",
    *,
    unit: str = "unit:DEG_C",
    ts: str = "3f2a6c3e-0000-4000-8000-000000000001",
) -> str:
    """An AHU feeding one VAV with a zone temperature sensor."""
    return (
        PREFIXES
        + f"""
ex:ahu-{name} a brick:AHU ; rdfs:label "AHU {name}" ; brick:feeds ex:{name} .
ex:{name} a brick:VAV ; rdfs:label "VAV {name}" ; brick:hasPoint ex:{name}-zat .
ex:{name}-zat a brick:Zone_Air_Temperature_Sensor ;
    rdfs:label "{name} zone air temperature" ;
    brick:hasUnit {unit} ;
    brick:isPointOf ex:{name} ;
    ref:hasExternalReference [ a ref:TimeseriesReference ; ref:hasTimeseriesId "{ts}" ] .
"""
    )


def broken_unit_model(name: str = "bad") -> str:
    """A model whose only problem is a unit that is not a QUDT unit."""
    return vav_model(name, unit="unit:NOT_A_UNIT")
