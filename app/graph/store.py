"""The storage contract every graph backend meets.

Two backends implement it: :class:`~app.graph.embedded.EmbeddedStore` (pyoxigraph on disk,
one writer process) and :class:`~app.graph.remote.RemoteStore` (an ``oxigraph serve`` server
over the SPARQL 1.1 Protocol and Graph Store Protocol, the scale-out path). Services above
this line never know which one they hold.

Atomicity: a backend offers non-atomic bulk loading into a graph (used only for staging
graphs) and atomic SPARQL updates. Replacing a model is therefore "bulk-load a staging
graph, then one update that MOVEs it into place": readers see the old model or the new one,
never half of either, and a crash leaves at most a staging graph that start-up drops.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Protocol, TypeAlias

from pyoxigraph import (
    BlankNode,
    Literal,
    NamedNode,
    Quad,
    QueryBoolean,
    QueryResultsFormat,
    QuerySolutions,
    QueryTriples,
    RdfFormat,
    Triple,
    serialize,
)

Term: TypeAlias = NamedNode | BlankNode | Literal | Triple


class GraphTriples:
    """CONSTRUCT/DESCRIBE results as plain triples, whatever backend produced them."""

    def __init__(self, triples: Iterator[Triple] | Sequence[Triple]) -> None:
        self._triples = iter(triples)

    def __iter__(self) -> Iterator[Triple]:
        return self._triples


QueryResult: TypeAlias = QuerySolutions | QueryBoolean | QueryTriples | GraphTriples


class GraphStore(Protocol):
    """What TwinGraph needs from an RDF store."""

    mode: str

    def query(
        self,
        sparql: str,
        *,
        union_default: bool = True,
        default_graphs: Sequence[str] | None = None,
        named_graphs: Sequence[str] | None = None,
        substitutions: Mapping[str, Term] | None = None,
        timeout_s: float | None = None,
    ) -> QueryResult:
        """Evaluate a query. Raises ``SyntaxError`` for a malformed query."""
        ...

    def update(self, sparql: str) -> None:
        """Apply a SPARQL 1.1 Update atomically."""
        ...

    def bulk_load(self, graph: str, data: bytes, fmt: RdfFormat) -> None:
        """Load triples into ``graph`` fast and without atomicity.

        Only for data whose completeness is recorded elsewhere (ontologies: a hash marker
        written afterwards; new models: a loading marker removed afterwards).
        """
        ...

    def bulk_add(self, quads: Sequence[Quad]) -> None:
        """Add quads fast and without atomicity (see :meth:`bulk_load`)."""
        ...

    def replace(self, graphs: Sequence[str], quads: Sequence[Quad]) -> None:
        """Atomically drop ``graphs`` and add ``quads``: readers see before or after."""
        ...

    def graph_names(self) -> list[str]: ...

    def triples_about(self, graph: str, iris: Sequence[str]) -> list[Triple]:
        """Triples of ``graph`` with one of ``iris`` as subject or object, plus the triples
        of blank nodes those point to (so ``ref:hasExternalReference [...]`` comes whole)."""
        ...

    def graph_sizes(self) -> dict[str, int]:
        """Triple count per named graph."""
        ...

    def dump(self, graph: str | None, fmt: RdfFormat) -> bytes:
        """Serialize one named graph (``""``: the default graph), or (``None``) the whole
        dataset as N-Quads."""
        ...

    def close(self) -> None: ...


def serialize_result(result: QueryResult, fmt: QueryResultsFormat | RdfFormat) -> bytes:
    """Serialize any query result to bytes in ``fmt`` (a results format or an RDF format)."""
    if isinstance(result, QuerySolutions | QueryBoolean):
        if not isinstance(fmt, QueryResultsFormat):
            raise TypeError("SELECT and ASK results need a query results format")
        out = result.serialize(format=fmt)
    elif isinstance(result, QueryTriples):
        if not isinstance(fmt, RdfFormat):
            raise TypeError("CONSTRUCT and DESCRIBE results need an RDF format")
        out = result.serialize(format=fmt)
    else:
        if not isinstance(fmt, RdfFormat):
            raise TypeError("CONSTRUCT and DESCRIBE results need an RDF format")
        out = serialize(list(result), format=fmt)
    assert out is not None
    return out


def insert_data(quads: Sequence[Quad]) -> str:
    """An ``INSERT DATA`` operation for quads (N-Triples syntax is valid SPARQL)."""
    from pyoxigraph import DefaultGraph

    by_graph: dict[str, list[Triple]] = {}
    for q in quads:
        g = "" if isinstance(q.graph_name, DefaultGraph) else str(q.graph_name)
        by_graph.setdefault(g, []).append(q.triple)
    parts = []
    for g, triples in by_graph.items():
        body = serialize(triples, format=RdfFormat.N_TRIPLES) or b""
        parts.append(f"GRAPH {g} {{\n{body.decode()}}}" if g else body.decode())
    return "INSERT DATA {\n" + "\n".join(parts) + "}"


def replace_update(graphs: Sequence[str], quads: Sequence[Quad]) -> str:
    """Drop ``graphs`` (``""``: the default graph) and insert ``quads``, as one update."""
    ops = ["DROP SILENT DEFAULT" if g == "" else f"DROP SILENT GRAPH <{g}>" for g in graphs]
    if quads:
        ops.append(insert_data(quads))
    return " ;\n".join(ops)


def triples_about_query(graph: str, iris: Sequence[str]) -> str:
    """The CONSTRUCT behind :meth:`GraphStore.triples_about` for stores without indexes."""
    values = " ".join(f"<{i}>" for i in iris)
    return f"""CONSTRUCT {{ ?s ?p ?o }} WHERE {{ GRAPH <{graph}> {{
        VALUES ?n {{ {values} }}
        {{ ?n ?p ?o BIND(?n AS ?s) }}
        UNION {{ ?s ?p ?n BIND(?n AS ?o) }}
        UNION {{ ?n ?p0 ?s FILTER(isBlank(?s)) ?s ?p ?o }}
    }} }}"""


def term_to_sparql(term: Term) -> str:
    """A term in SPARQL/N-Triples syntax (pyoxigraph's ``str`` already is)."""
    return str(term)
