"""Which ontologies TwinGraph loads, keeping them loaded, and their class hierarchy.

Loaded, each into its own named graph ``urn:twingraph:ontology:<name>``:

- ``brick``: Brick from the ``brickschema`` package, 1.5 unless ``TWINGRAPH_BRICK_VERSION``
  picks another version it ships and we support (:data:`BRICK_VERSIONS`); the file carries
  the RealEstateCore classes, the ``ref:`` schema and Brick's SHACL shapes;
- ``brick-errata``: fixes upstream Brick made after the release loaded, as our own Turtle
  (``ontologies/errata/brick-<release>.ttl``, each entry citing its upstream change), unless
  ``TWINGRAPH_BRICK_ERRATA=false`` (see :func:`errata_path`);
- ``qudt-schema``, ``qudt-units``, ``qudt-quantitykinds``: QUDT 3.1.0 from the
  ``@vocabulary/qudt``, ``@vocabulary/unit`` and ``@vocabulary/quantitykind`` npm packages
  (installed under ``ontologies/node_modules`` by ``make``), so the units and quantity kinds
  that models use resolve;
- ``223p-*``: with ``TWINGRAPH_ONTOLOGY_EXTENSIONS=223p``, ASHRAE 223P and Brick's bridge to
  it, also from ``brickschema`` (see :func:`extension_sources`);
- ``extra-<n>``: any file listed in ``TWINGRAPH_ONTOLOGY_PATHS``.

A graph is reloaded when the file behind it changes (by content hash), so an upgrade of a
package or a change of Brick version takes effect at the next start; an ontology graph no
configured source names any more (an extension switched off) is dropped.
"""

from __future__ import annotations

import hashlib
import logging
import re
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

log = logging.getLogger("twingraph")


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


#: Brick versions the platform can load (brickschema 0.8 ships 1.1-1.5). 1.1 and 1.2 have
#: no RealEstateCore classes or ``ref:`` schema (1.1 no embedded shapes either); 1.3's
#: shapes want QUDT 2.1 quantity kinds that our QUDT 3.1.0 lacks (2 of Brick's 25
#: examples conform under it).
BRICK_VERSIONS = ("1.4", "1.5")
DEFAULT_BRICK_VERSION = "1.5"
#: Optional extensions, by the name ``TWINGRAPH_ONTOLOGY_EXTENSIONS`` uses.
EXTENSIONS = ("223p",)
#: Our errata files, one per Brick release (``brick-1.5.0.ttl``).
ERRATA_DIR = Path(__file__).resolve().parents[2] / "ontologies" / "errata"
_RELEASE = re.compile(rb'owl:versionInfo "(\d+\.\d+\.\d+)"')


def _brickschema_dir() -> Path:
    return Path(brickschema.__file__).parent / "ontologies"


def brick_path(version: str = DEFAULT_BRICK_VERSION) -> Path:
    if version not in BRICK_VERSIONS:
        raise ValueError(
            f"Brick version {version!r} is not supported; choose one of {', '.join(BRICK_VERSIONS)}"
        )
    return _brickschema_dir() / version / "Brick.ttl"


def release_of(path: Path) -> str | None:
    """The release (``1.5.0``) a Brick Turtle file declares, or None if it names none or
    several. A byte scan, not a parse: it runs on every start and costs ~10 ms."""
    found = set(_RELEASE.findall(path.read_bytes()))
    return found.pop().decode() if len(found) == 1 else None


def errata_path(brick_version: str = DEFAULT_BRICK_VERSION) -> Path | None:
    """Our errata for the Brick release this version resolves to, if we keep any.

    Keyed by the full release the brickschema file declares, not by ``1.5``: errata written
    for 1.5.0 say nothing about a later 1.5.x, which may carry the fixes (or break them).
    """
    release = release_of(brick_path(brick_version))
    path = ERRATA_DIR / f"brick-{release}.ttl"
    return path if release is not None and path.is_file() else None


def extension_sources(
    name: str, brick_version: str = DEFAULT_BRICK_VERSION
) -> list[OntologySource]:
    """The files of one extension for one Brick version, all from the ``brickschema`` package.

    ``223p``: the ASHRAE 223P bundle (``1.5/extensions/223p.ttl``; it does not import Brick)
    plus, for the chosen Brick version, Brick's bridge to it and what the bridge
    ``owl:imports`` (``s223_extension`` shapes: ``brick:Equipment`` is an ``s223:Equipment``,
    ``brick:isPointOf`` may name a connection point; ``interpret_223`` rules and their
    ``mappings_223``). For Brick 1.4 brickschema also ships an earlier 223P draft
    (``brick_extension_MODEL_SP223_*-v1.0``); it is not used: it requires an ``rdfs:label``
    on every ``s223:Concept`` without the published standard's rule that supplies one, so
    with the bridge every unlabelled Brick equipment would fail.
    """
    if name not in EXTENSIONS:
        raise ValueError(
            f"unknown ontology extension {name!r}; choose among {', '.join(EXTENSIONS)}"
        )
    brick_path(brick_version)  # rejects an unsupported version
    bridge = _brickschema_dir() / brick_version / "extensions"
    return [
        OntologySource("223p", _brickschema_dir() / "1.5" / "extensions" / "223p.ttl"),
        OntologySource("223p-brick", bridge / "brick_extension_s223_extension.shapes.ttl"),
        OntologySource("223p-interpret", bridge / "brick_extension_interpret_223.shapes.ttl"),
        OntologySource("223p-mappings", bridge / "brick_extension_mappings_223.ttl"),
    ]


def default_sources(
    qudt_dir: Path,
    extra: Sequence[Path] = (),
    *,
    brick_version: str = DEFAULT_BRICK_VERSION,
    extensions: Sequence[str] = (),
    errata: bool = True,
) -> list[OntologySource]:
    """Brick always, then our errata for its release (if any, and ``errata``); QUDT when its
    packages are installed; extensions; the configured extras."""
    sources = [OntologySource("brick", brick_path(brick_version))]
    fixes = errata_path(brick_version) if errata else None
    if fixes is not None:
        sources.append(OntologySource("brick-errata", fixes))
    for name, rel in (
        ("qudt-schema", "qudt/qudt.nq"),
        ("qudt-units", "unit/unit.nq"),
        ("qudt-quantitykinds", "quantitykind/quantitykind.nq"),
    ):
        path = qudt_dir / rel
        if path.is_file():
            sources.append(OntologySource(name, path))
    for name in dict.fromkeys(extensions):
        sources += extension_sources(name, brick_version)
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
    """Load each ontology whose graph is missing or stale; return the names (re)loaded.

    Ontology graphs no source names any more are dropped first (see :func:`drop_unconfigured`).
    """
    sources = list(sources)
    dropped = drop_unconfigured(store, sources)
    if dropped:
        log.info("ontology graphs no longer configured, dropped: %s", ", ".join(dropped))
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


def drop_unconfigured(store: GraphStore, sources: Iterable[OntologySource]) -> list[str]:
    """Drop ontology graphs (and their hash markers) that none of ``sources`` names.

    Switching the Brick version reloads ``brick`` in place; switching an extension off, or
    removing a file from ``TWINGRAPH_ONTOLOGY_PATHS``, would otherwise leave its graph behind,
    still seen by queries and by the class hierarchy.
    """
    wanted = {src.graph for src in sources}
    present = {g for g in store.graph_names() if g.startswith(ONTOLOGY_GRAPH_PREFIX)}
    stale = sorted((present | set(loaded_hashes(store))) - wanted)
    if stale:
        store.update(
            " ;\n".join(
                f"DROP SILENT GRAPH <{g}> ;\n"
                f"DELETE WHERE {{ GRAPH <{SYSTEM_GRAPH}> {{ <{g}> <{SOURCE_HASH}> ?h }} }}"
                for g in stale
            )
        )
    return [g.removeprefix(ONTOLOGY_GRAPH_PREFIX) for g in stale]


def drop_staging(store: GraphStore) -> list[str]:
    """Remove staging graphs a crash may have left behind."""
    stale = [g for g in store.graph_names() if g.startswith(STAGING_GRAPH_PREFIX)]
    if stale:
        store.update(" ;\n".join(f"DROP SILENT GRAPH <{g}>" for g in stale))
    return stale


def brick_release(store: GraphStore) -> str | None:
    """The full version (``owl:versionInfo``, e.g. ``1.4.4``) of the Brick graph loaded."""
    res = store.query(
        f"SELECT ?v WHERE {{ GRAPH <{ontology_graph('brick')}> {{ ?o a <{OWL}Ontology> ;"
        f' <{OWL}versionInfo> ?v FILTER(STRSTARTS(STR(?o), "https://brickschema.org/schema/")) }}'
        "} ORDER BY ?v LIMIT 1",
        union_default=False,
    )
    rows = list(res)  # type: ignore[arg-type]
    return str(rows[0]["v"].value) if rows else None


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
