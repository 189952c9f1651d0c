"""An ``oxigraph serve`` server reached over the SPARQL 1.1 Protocol and Graph Store Protocol.

This is the scale-out mode: several TwinGraph processes share one Oxigraph server, where an
embedded store admits a single process. Results come back in Oxigraph's own formats and are
parsed with pyoxigraph, so callers get the same result objects as in embedded mode.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from urllib.parse import urlencode

import httpx
from pyoxigraph import Quad, QueryResultsFormat, RdfFormat, Triple, parse, parse_query_results

from app.errors import QueryTimeoutError, UnavailableError
from app.graph.store import (
    GraphTriples,
    QueryResult,
    Term,
    replace_update,
    term_to_sparql,
    triples_about_query,
)

_SERVER_POSITION = re.compile(r"error at (\d+):(\d+)")


class RemoteStore:
    mode = "remote"

    def __init__(self, base_url: str, *, timeout_s: float = 300.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout_s)
        try:
            self._http.get("/query", params={"query": "ASK {}"}).raise_for_status()
        except httpx.HTTPError as exc:
            raise UnavailableError(
                f"Cannot reach the Oxigraph server at {self.base_url}: {exc}",
                code="store_unreachable",
            ) from exc

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
        if substitutions:
            sparql = _append_values(sparql, substitutions)
        params: list[tuple[str, str | int | float | bool | None]] = []
        dataset = [("default-graph-uri", g) for g in default_graphs or ()]
        dataset += [("named-graph-uri", g) for g in named_graphs or ()]
        if not default_graphs and union_default:
            params.append(("union-default-graph", ""))
        headers = {"Accept": "application/sparql-results+json, application/n-triples;q=0.9"}
        if dataset:
            # A dataset of hundreds of graphs does not fit in a URL: a form-encoded body.
            body = urlencode([("query", sparql), *dataset]).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        else:
            body = sparql.encode()
            headers["Content-Type"] = "application/sparql-query"
        try:
            resp = self._http.post(
                "/query",
                params=params,
                content=body,
                headers=headers,
                timeout=timeout_s if timeout_s is not None else httpx.USE_CLIENT_DEFAULT,
            )
        except httpx.TimeoutException as exc:
            raise QueryTimeoutError(
                f"The query did not finish within {timeout_s} s. Narrow it or add a LIMIT."
            ) from exc
        except httpx.HTTPError as exc:
            raise UnavailableError(f"Oxigraph server error: {exc}", code="store_error") from exc
        if resp.status_code == 400:
            raise _syntax_error(resp.text)
        _raise_for_status(resp)
        ctype = resp.headers.get("content-type", "").split(";")[0].strip()
        if ctype == "application/n-triples":
            return GraphTriples(q.triple for q in parse(resp.content, format=RdfFormat.N_TRIPLES))
        return parse_query_results(resp.content, format=QueryResultsFormat.JSON)

    def update(self, sparql: str) -> None:
        resp = self._http.post(
            "/update",
            content=sparql.encode(),
            headers={"Content-Type": "application/sparql-update"},
        )
        if resp.status_code == 400:
            raise _syntax_error(resp.text)
        _raise_for_status(resp)

    def bulk_load(self, graph: str, data: bytes, fmt: RdfFormat) -> None:
        resp = self._http.post(
            "/store",
            params={"graph": graph},
            content=data,
            headers={"Content-Type": fmt.media_type},
        )
        if resp.status_code == 400:
            raise _syntax_error(resp.text)
        _raise_for_status(resp)

    def bulk_add(self, quads: Sequence[Quad]) -> None:
        # The server loads a POSTed dataset in one transaction.
        from pyoxigraph import serialize

        data = serialize(quads, format=RdfFormat.N_QUADS) or b""
        resp = self._http.post(
            "/store", content=data, headers={"Content-Type": "application/n-quads"}
        )
        if resp.status_code == 400:
            raise _syntax_error(resp.text)
        _raise_for_status(resp)

    def replace(self, graphs: Sequence[str], quads: Sequence[Quad]) -> None:
        self.update(replace_update(graphs, quads))

    def triples_about(self, graph: str, iris: Sequence[str]) -> list[Triple]:
        return list(self.query(triples_about_query(graph, iris), union_default=False))  # type: ignore[arg-type]

    def graph_names(self) -> list[str]:
        res = self.query("SELECT DISTINCT ?g WHERE { GRAPH ?g { } }", union_default=False)
        return sorted(row["g"].value for row in res)  # type: ignore[union-attr]

    def graph_sizes(self) -> dict[str, int]:
        res = self.query(
            "SELECT ?g (COUNT(*) AS ?n) WHERE { GRAPH ?g { ?s ?p ?o } } GROUP BY ?g",
            union_default=False,
        )
        sizes = {g: 0 for g in self.graph_names()}
        for row in res:  # type: ignore[union-attr]
            sizes[row["g"].value] = int(row["n"].value)
        return sizes

    def dump(self, graph: str | None, fmt: RdfFormat) -> bytes:
        if graph is None:
            resp = self._http.get("/store", headers={"Accept": "application/n-quads"})
        elif graph == "":
            resp = self._http.get("/store?default", headers={"Accept": fmt.media_type})
        else:
            resp = self._http.get(
                "/store", params={"graph": graph}, headers={"Accept": fmt.media_type}
            )
        if resp.status_code == 404:
            return b""
        _raise_for_status(resp)
        return resp.content

    def close(self) -> None:
        self._http.close()


def _append_values(sparql: str, substitutions: Mapping[str, Term]) -> str:
    """Bind variables with a trailing VALUES clause (the server has no substitution API)."""
    names = " ".join(f"?{k}" for k in substitutions)
    values = " ".join(term_to_sparql(v) for v in substitutions.values())
    return f"{sparql}\nVALUES ({names}) {{ ({values}) }}"


def _syntax_error(text: str) -> SyntaxError:
    err = SyntaxError(text.strip())
    match = _SERVER_POSITION.search(text)
    if match:
        err.lineno, err.offset = int(match.group(1)), int(match.group(2))
    return err


def _raise_for_status(resp: httpx.Response) -> None:
    if resp.is_success:
        return
    text = resp.text.strip()
    if "timeout" in text.lower() or "timed out" in text.lower():
        raise QueryTimeoutError(f"The Oxigraph server stopped the query: {text[:500]}")
    raise UnavailableError(
        f"Oxigraph server answered {resp.status_code}: {text[:500]}", code="store_error"
    )
