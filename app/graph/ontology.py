"""Which ontologies TwinGraph loads, keeping them loaded, and their class hierarchy.

Loaded, each into its own named graph ``urn:twingraph:ontology:<name>``:

- ``brick``: Brick 1.5 from the ``brickschema`` package (it carries the RealEstateCore
  classes, the ``ref:`` schema and Brick's SHACL shapes);
- ``qudt-schema``, ``qudt-units``, ``qudt-quantitykinds``: QUDT 3.1.0 from the
  ``@vocabulary/qudt``, ``@vocabulary/unit`` and ``@vocabulary/quantitykind`` npm packages
  (installed under ``ontologies/node_modules`` by ``make``), so the units and quantity kinds
  that models use resolve;
- ``extra-<n>``: any file listed in ``TWINGRAPH_ONTOLOGY_PATHS``.

A graph is reloaded when the file behind it changes (by content hash), so an upgrade of a
package takes effect at the next start.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import brickschema
from pyoxigraph import RdfFormat

from app.domain.classes import superclass_closure
from app.domain.iris import (
    ONTOLOGY_GRAPH_PREFIX,
    OWL,
    RDFS,
    STAGING_GRAPH_PREFIX,
    SYSTEM_GRAPH,
    ontology_graph,
)
from app.graph.store import GraphStore

SOURCE_HASH = "urn:twingraph:sourceHash"


@dataclass(frozen=True, slots=True)
class OntologySource:
    name: str
    path: Path

    @property
    def graph(self) -> str:
        return ontology_graph(self.name)

    @property
    def format(self) -> RdfFormat:
        fmt = RdfFormat.from_extension(self.path.suffix.lstrip("."))
        if fmt is None:
            raise ValueError(f"Unknown RDF format for ontology file {self.path}")
        return fmt


def brick_path() -> Path:
    return Path(brickschema.__file__).parent / "ontologies" / "1.5" / "Brick.ttl"


def default_sources(qudt_dir: Path, extra: Sequence[Path] = ()) -> list[OntologySource]:
    """Brick always; QUDT when its packages are installed; then the configured extras."""
    sources = [OntologySource("brick", brick_path())]
    for name, rel in (
        ("qudt-schema", "qudt/qudt.nq"),
        ("qudt-units", "unit/unit.nq"),
        ("qudt-quantitykinds", "quantitykind/quantitykind.nq"),
    ):
        path = qudt_dir / rel
        if path.is_file():
            sources.append(OntologySource(name, path))
    sources += [OntologySource(f"extra-{i}", Path(p)) for i, p in enumerate(extra)]
    return sources


def file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def ensure_loaded(
    store: GraphStore, sources: Iterable[OntologySource], *, force: bool = False
) -> list[str]:
    """Load each ontology whose graph is missing or stale; return the names (re)loaded."""
    current = loaded_hashes(store)
    reloaded: list[str] = []
    for src in sources:
        digest = file_hash(src.path)
        if current.get(src.graph) == digest and not force:
            continue
        # Not atomic, and need not be: the hash marker below is the commit record, so a
        # crash part-way leaves a graph whose marker is missing and it is reloaded.
        store.update(
            f"DROP SILENT GRAPH <{src.graph}> ;\n"
            f"DELETE WHERE {{ GRAPH <{SYSTEM_GRAPH}> {{ <{src.graph}> <{SOURCE_HASH}> ?h }} }}"
        )
        data = src.path.read_bytes()
        fmt = src.format
        if fmt == RdfFormat.N_QUADS:
            # The packages put every quad in their own graph: flatten into ours.
            from pyoxigraph import parse, serialize

            triples = (q.triple for q in parse(data, format=RdfFormat.N_QUADS))
            data = serialize(triples, format=RdfFormat.N_TRIPLES) or b""
            fmt = RdfFormat.N_TRIPLES
        store.bulk_load(src.graph, data, fmt)
        store.update(
            f'INSERT DATA {{ GRAPH <{SYSTEM_GRAPH}> {{ <{src.graph}> <{SOURCE_HASH}> "{digest}" }} }}'
        )
        reloaded.append(src.name)
    return reloaded


def drop_staging(store: GraphStore) -> list[str]:
    """Remove staging graphs a crash may have left behind."""
    stale = [g for g in store.graph_names() if g.startswith(STAGING_GRAPH_PREFIX)]
    if stale:
        store.update(" ;\n".join(f"DROP SILENT GRAPH <{g}>" for g in stale))
    return stale


def loaded_hashes(store: GraphStore) -> dict[str, str]:
    res = store.query(
        f"SELECT ?g ?h WHERE {{ GRAPH <{SYSTEM_GRAPH}> {{ ?g <{SOURCE_HASH}> ?h }} }}",
        union_default=False,
    )
    return {row["g"].value: row["h"].value for row in res}  # type: ignore[union-attr]


class ClassHierarchy:
    """``rdfs:subClassOf`` (and ``owl:equivalentClass``) closure over the loaded ontologies.

    Used to materialise inferred types at ingest, so that ``rdf:type/rdfs:subClassOf*``
    queries can be answered from an index instead of a property-path walk.
    """

    def __init__(self, parents: dict[str, set[str]]) -> None:
        self._parents = parents
        self._closure = lru_cache(maxsize=None)(self._compute)

    @classmethod
    def from_store(cls, store: GraphStore) -> ClassHierarchy:
        res = store.query(
            "SELECT ?c ?p ?eq WHERE { GRAPH ?g {"
            f" {{ ?c <{RDFS}subClassOf> ?p BIND(false AS ?eq) }}"
            f" UNION {{ ?c <{OWL}equivalentClass> ?p BIND(true AS ?eq) }} }}"
            f' FILTER(STRSTARTS(STR(?g), "{ONTOLOGY_GRAPH_PREFIX}") && isIRI(?p) && isIRI(?c)) }}',
            union_default=False,
        )
        parents: dict[str, set[str]] = {}
        for row in res:  # type: ignore[union-attr]
            c, p = row["c"].value, row["p"].value
            parents.setdefault(c, set()).add(p)
            if row["eq"].value == "true":
                parents.setdefault(p, set()).add(c)
        return cls(parents)

    def with_local(self, pairs: Iterable[tuple[str, str]]) -> ClassHierarchy:
        """This hierarchy plus subclass declarations a model makes itself."""
        pairs = list(pairs)
        if not pairs:
            return self
        merged = {k: set(v) for k, v in self._parents.items()}
        for c, p in pairs:
            merged.setdefault(c, set()).add(p)
        return ClassHierarchy(merged)

    def known(self, cls: str) -> bool:
        return cls in self._parents

    def superclasses(self, cls: str) -> frozenset[str]:
        """Every class ``cls`` is a subclass of, itself included."""
        return self._closure(cls)

    def _compute(self, cls: str) -> frozenset[str]:
        return superclass_closure(self._parents, cls)
