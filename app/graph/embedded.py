"""pyoxigraph on disk: the default, single-process backend."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from pyoxigraph import BlankNode, DefaultGraph, NamedNode, Quad, RdfFormat, Store, Triple, Variable

from app.errors import UnavailableError
from app.graph.store import QueryResult, Term, replace_update

_BULK_THRESHOLD = 16 * 1024 * 1024


class EmbeddedStore:
    mode = "embedded"

    def __init__(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        try:
            self._store = Store(str(path))
        except OSError as exc:
            if "LOCK" in str(exc) or "lock" in str(exc):
                raise UnavailableError(
                    f"The graph store at {path} is open in another process. An embedded store "
                    "admits one process: stop the other one, or run an Oxigraph server and set "
                    "TWINGRAPH_GRAPH_URL.",
                    code="store_locked",
                ) from exc
            raise
        self.path = path

    @classmethod
    def in_memory(cls) -> EmbeddedStore:
        self = cls.__new__(cls)
        self._store = Store()
        self.path = Path()
        return self

    @property
    def raw(self) -> Store:
        """The pyoxigraph store itself, for benchmarks and tests that compare against it."""
        return self._store

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
        # timeout_s is enforced one level up (SparqlService): pyoxigraph cannot interrupt.
        return self._store.query(
            sparql,
            use_default_graph_as_union=union_default and not default_graphs,
            default_graph=[NamedNode(g) for g in default_graphs] if default_graphs else None,
            named_graphs=[NamedNode(g) for g in named_graphs] if named_graphs else None,
            substitutions=(
                {Variable(k): v for k, v in substitutions.items()} if substitutions else None
            ),
        )

    def update(self, sparql: str) -> None:
        self._store.update(sparql)

    def bulk_load(self, graph: str, data: bytes, fmt: RdfFormat) -> None:
        # bulk_load writes fresh files on every call: worth it only for large inputs.
        if len(data) > _BULK_THRESHOLD:
            self._store.bulk_load(data, format=fmt, to_graph=NamedNode(graph))
        else:
            self._store.load(data, format=fmt, to_graph=NamedNode(graph))

    def bulk_add(self, quads: Sequence[Quad]) -> None:
        self._store.bulk_extend(quads)

    def replace(self, graphs: Sequence[str], quads: Sequence[Quad]) -> None:
        if not graphs or (
            "" not in graphs
            and not any(self._store.contains_named_graph(NamedNode(g)) for g in graphs)
        ):
            self._store.extend(quads)  # one transaction, and the fastest atomic write
        else:
            self._store.update(replace_update(graphs, quads))

    def triples_about(self, graph: str, iris: Sequence[str]) -> list[Triple]:
        # Direct index lookups: several times faster than the equivalent CONSTRUCT.
        g = NamedNode(graph)
        out: list[Triple] = []
        blanks: list[BlankNode] = []
        for iri in iris:
            node = NamedNode(iri)
            for q in self._store.quads_for_pattern(node, None, None, g):
                out.append(q.triple)
                if isinstance(q.object, BlankNode):
                    blanks.append(q.object)
            out.extend(q.triple for q in self._store.quads_for_pattern(None, None, node, g))
        for b in blanks:
            out.extend(q.triple for q in self._store.quads_for_pattern(b, None, None, g))
        return out

    def graph_names(self) -> list[str]:
        return sorted(g.value for g in self._store.named_graphs() if isinstance(g, NamedNode))

    def graph_sizes(self) -> dict[str, int]:
        res = self._store.query(
            "SELECT ?g (COUNT(*) AS ?n) WHERE { GRAPH ?g { ?s ?p ?o } } GROUP BY ?g"
        )
        sizes = {g: 0 for g in self.graph_names()}
        for row in res:  # type: ignore[union-attr]
            sizes[row["g"].value] = int(row["n"].value)
        return sizes

    def dump(self, graph: str | None, fmt: RdfFormat) -> bytes:
        if graph is None:
            out = self._store.dump(format=RdfFormat.N_QUADS)
        elif graph == "":
            out = self._store.dump(format=fmt, from_graph=DefaultGraph())
        else:
            out = self._store.dump(format=fmt, from_graph=NamedNode(graph))
        assert out is not None
        return out

    def close(self) -> None:
        self._store.flush()
        del self._store
