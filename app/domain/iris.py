"""Namespaces and the IRIs of the graphs TwinGraph manages.

Graph naming contract (every store mode follows it):

- a model lives in a named graph chosen by the user (any absolute IRI);
- the types inferred for that model live in ``inferred_graph_for(model)``;
- ontologies live under ``urn:twingraph:ontology:<name>``;
- ``urn:twingraph:staging:*`` graphs are scratch space for atomic replaces and are
  dropped at start-up if a crash left one behind.
"""

from __future__ import annotations

from urllib.parse import quote

BRICK = "https://brickschema.org/schema/Brick#"
BSH = "https://brickschema.org/schema/BrickShape#"
REF = "https://brickschema.org/schema/Brick/ref#"
TAG = "https://brickschema.org/schema/BrickTag#"
REC = "https://w3id.org/rec#"
QUDT = "http://qudt.org/schema/qudt/"
UNIT = "http://qudt.org/vocab/unit/"
QUDTQK = "http://qudt.org/vocab/quantitykind/"
RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
RDFS = "http://www.w3.org/2000/01/rdf-schema#"
OWL = "http://www.w3.org/2002/07/owl#"
SH = "http://www.w3.org/ns/shacl#"
XSD = "http://www.w3.org/2001/XMLSchema#"
SKOS = "http://www.w3.org/2004/02/skos/core#"
BACNET = "http://data.ashrae.org/bacnet/2020#"

RDF_TYPE = RDF + "type"
RDFS_SUBCLASS_OF = RDFS + "subClassOf"

#: Prefixes every SPARQL query may use without declaring them.
STANDARD_PREFIXES: dict[str, str] = {
    "brick": BRICK,
    "bsh": BSH,
    "ref": REF,
    "tag": TAG,
    "rec": REC,
    "qudt": QUDT,
    "unit": UNIT,
    "qudtqk": QUDTQK,
    "rdf": RDF,
    "rdfs": RDFS,
    "owl": OWL,
    "sh": SH,
    "xsd": XSD,
    "skos": SKOS,
}

ONTOLOGY_GRAPH_PREFIX = "urn:twingraph:ontology:"
INFERRED_GRAPH_PREFIX = "urn:twingraph:inferred:"
STAGING_GRAPH_PREFIX = "urn:twingraph:staging:"
SYSTEM_GRAPH_PREFIX = "urn:twingraph:"

DEFAULT_MODEL_GRAPH = "urn:twingraph:model:default"


def ontology_graph(name: str) -> str:
    return ONTOLOGY_GRAPH_PREFIX + name


def inferred_graph_for(model_graph: str) -> str:
    """The derived graph holding the types inferred for ``model_graph``."""
    return INFERRED_GRAPH_PREFIX + quote(model_graph, safe="")


SYSTEM_GRAPH = "urn:twingraph:system"


def is_managed_graph(iri: str) -> bool:
    """Ontology, inferred, staging and system graphs: written by TwinGraph, not by users."""
    return iri == SYSTEM_GRAPH or iri.startswith(
        (ONTOLOGY_GRAPH_PREFIX, INFERRED_GRAPH_PREFIX, STAGING_GRAPH_PREFIX)
    )
