"""Read-only SPARQL for analysts: limits, content negotiation, class-path rewriting.

Limits: the query text has a maximum length; evaluation runs on a bounded pool of worker
threads with a wall-clock limit; the serialized result has a maximum size. pyoxigraph
cannot interrupt a query, so a query past its limit is answered with ``query_timeout`` and
its worker is stopped at the next result it produces; a query that produces nothing until
the end (one big aggregate) keeps its worker until Oxigraph finishes. When every worker is
taken, new queries are refused with 503 rather than queued without bound.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import suppress
from dataclasses import dataclass
from functools import partial

from pyoxigraph import QueryBoolean, QueryResultsFormat, QuerySolutions, RdfFormat

from app.domain.iris import STANDARD_PREFIXES
from app.errors import (
    InvalidInputError,
    NotAcceptableError,
    PayloadTooLargeError,
    QueryTimeoutError,
    UnavailableError,
)
from app.graph.rewrite import rewrite_subclass_paths
from app.graph.store import GraphStore, QueryResult, Term

RESULT_FORMATS: dict[str, QueryResultsFormat] = {
    "application/sparql-results+json": QueryResultsFormat.JSON,
    "application/json": QueryResultsFormat.JSON,
    "application/sparql-results+xml": QueryResultsFormat.XML,
    "application/xml": QueryResultsFormat.XML,
    "text/csv": QueryResultsFormat.CSV,
    "text/tab-separated-values": QueryResultsFormat.TSV,
}
GRAPH_FORMATS: dict[str, RdfFormat] = {
    "text/turtle": RdfFormat.TURTLE,
    "application/n-triples": RdfFormat.N_TRIPLES,
    "application/ld+json": RdfFormat.JSON_LD,
    "application/rdf+xml": RdfFormat.RDF_XML,
    "application/n-quads": RdfFormat.N_QUADS,
    "application/trig": RdfFormat.TRIG,
    "text/plain": RdfFormat.N_TRIPLES,
}
#: Short names for ``?format=`` and the CLI.
FORMAT_ALIASES = {
    "json": "application/sparql-results+json",
    "xml": "application/sparql-results+xml",
    "csv": "text/csv",
    "tsv": "text/tab-separated-values",
    "turtle": "text/turtle",
    "ttl": "text/turtle",
    "nt": "application/n-triples",
    "ntriples": "application/n-triples",
    "jsonld": "application/ld+json",
    "rdfxml": "application/rdf+xml",
}


@dataclass(frozen=True, slots=True)
class QueryLimits:
    timeout_s: float = 30.0
    max_result_bytes: int = 64 * 1024 * 1024
    max_query_length: int = 256 * 1024
    workers: int = 4


@dataclass(frozen=True, slots=True)
class QueryAnswer:
    body: bytes
    media_type: str
    rewritten_paths: int
    seconds: float


@dataclass(frozen=True, slots=True)
class _Job:
    future: Future[tuple[bytes, str]]
    timeout: float
    started: float
    rewritten: int


def _translate(exc: BaseException, timeout: float, max_bytes: int) -> BaseException:
    if isinstance(exc, FutureTimeout | TimeoutError | _DeadlinePassed):
        return QueryTimeoutError(
            f"The query did not finish within {timeout:g} s. Narrow it, add a LIMIT, or "
            "ask an operator for a longer limit."
        )
    if isinstance(exc, _ResultTooLarge):
        return PayloadTooLargeError(
            f"The result exceeds {max_bytes} bytes. Add a LIMIT or select fewer variables.",
            code="result_too_large",
        )
    return exc


class _ResultTooLarge(Exception):
    pass


class _DeadlinePassed(Exception):
    pass


class _BoundedBuffer:
    """A write target that stops serialization past a size or a deadline."""

    def __init__(self, limit: int, deadline: float) -> None:
        self._parts: list[bytes] = []
        self._size = 0
        self._limit = limit
        self._deadline = deadline

    def write(self, data: bytes) -> int:
        self._size += len(data)
        if self._size > self._limit:
            raise _ResultTooLarge()
        if time.monotonic() > self._deadline:
            raise _DeadlinePassed()
        self._parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        return None

    def getvalue(self) -> bytes:
        return b"".join(self._parts)


class SparqlService:
    def __init__(
        self,
        *,
        store: GraphStore,
        limits: QueryLimits,
        hidden_graphs: Callable[[], frozenset[str]] = frozenset,
    ) -> None:
        self.store = store
        self._hidden = hidden_graphs
        self.limits = limits
        self._pool = ThreadPoolExecutor(max_workers=limits.workers, thread_name_prefix="sparql")
        self._slots = threading.BoundedSemaphore(limits.workers)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def run(
        self,
        query: str,
        *,
        accept: str | None = None,
        default_graphs: Sequence[str] = (),
        named_graphs: Sequence[str] = (),
        substitutions: Mapping[str, Term] | None = None,
        rewrite: bool = True,
        timeout_s: float | None = None,
    ) -> QueryAnswer:
        """Evaluate and serialize a query on a worker, waiting up to the time limit."""
        job = self._start(
            query, accept, default_graphs, named_graphs, substitutions, rewrite, timeout_s
        )
        try:
            body, media_type = job.future.result(timeout=job.timeout + 0.05)
        except BaseException as exc:
            raise _translate(exc, job.timeout, self.limits.max_result_bytes) from exc
        return QueryAnswer(body, media_type, job.rewritten, time.monotonic() - job.started)

    async def run_async(
        self,
        query: str,
        *,
        accept: str | None = None,
        default_graphs: Sequence[str] = (),
        named_graphs: Sequence[str] = (),
        store: GraphStore | None = None,
    ) -> QueryAnswer:
        """:meth:`run` for the event loop: no thread is blocked while the query runs.
        ``store``: evaluate against another store (a view of the model as of a time)."""
        job = self._start(query, accept, default_graphs, named_graphs, None, True, None, store)
        # One loop future, settled from the worker by one call_soon_threadsafe, and a timer:
        # wait_for(shield(wrap_future())) costs three futures and several loop turns, which
        # is a visible share of a small query's time.
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[tuple[bytes, str]] = loop.create_future()
        job.future.add_done_callback(partial(_notify, loop, waiter))
        timer = loop.call_later(job.timeout + 0.05, _expire, waiter)
        try:
            body, media_type = await waiter
        except BaseException as exc:
            raise _translate(exc, job.timeout, self.limits.max_result_bytes) from exc
        finally:
            timer.cancel()
        return QueryAnswer(body, media_type, job.rewritten, time.monotonic() - job.started)

    def _start(
        self,
        query: str,
        accept: str | None,
        default_graphs: Sequence[str],
        named_graphs: Sequence[str],
        substitutions: Mapping[str, Term] | None,
        rewrite: bool,
        timeout_s: float | None,
        store: GraphStore | None = None,
    ) -> _Job:
        if len(query.encode()) > self.limits.max_query_length:
            raise PayloadTooLargeError(
                f"The query is {len(query.encode())} bytes; the limit is "
                f"{self.limits.max_query_length}.",
                code="query_too_long",
            )
        rewritten = 0
        # Every form the rewrite acts on names rdfs:subClassOf (an IRI or prefix:subClassOf):
        # without that word there is nothing to rewrite, and its scan is skipped.
        if rewrite and not default_graphs and not named_graphs and "subClassOf" in query:
            query, rewritten = rewrite_subclass_paths(query, predeclared=STANDARD_PREFIXES)
        timeout = min(timeout_s or self.limits.timeout_s, self.limits.timeout_s)
        if not self._slots.acquire(blocking=False):
            raise UnavailableError(
                "All query workers are busy (long-running queries); retry shortly.",
                code="query_capacity",
            )
        hidden = self._hidden()
        if hidden:
            # A model is being bulk-loaded: name the dataset explicitly, without it.
            visible = [g for g in self.store.graph_names() if g not in hidden]
            default_graphs = default_graphs or visible
            named_graphs = [g for g in named_graphs if g not in hidden] or visible
        started = time.monotonic()
        try:
            future = self._pool.submit(
                self._evaluate,
                query,
                accept,
                list(default_graphs),
                list(named_graphs),
                substitutions,
                started + timeout,
                timeout,
                store or self.store,
            )
        except BaseException:
            self._slots.release()
            raise
        future.add_done_callback(lambda _f: self._slots.release())
        return _Job(future, timeout, started, rewritten)

    def _evaluate(
        self,
        query: str,
        accept: str | None,
        default_graphs: list[str],
        named_graphs: list[str],
        substitutions: Mapping[str, Term] | None,
        deadline: float,
        timeout: float,
        store: GraphStore,
    ) -> tuple[bytes, str]:
        try:
            result = store.query(
                _with_prefixes(query),
                union_default=not default_graphs,
                default_graphs=default_graphs or None,
                named_graphs=named_graphs or None,
                substitutions=substitutions,
                timeout_s=timeout,
            )
        except SyntaxError as exc:
            raise sparql_syntax_error(exc, line_offset=1) from None
        try:
            return serialize_bounded(result, accept, self.limits.max_result_bytes, deadline)
        except BaseException as exc:
            # pyoxigraph results must die on the thread that made them: drop every frame
            # (and so every reference to ``result``) before the error crosses threads.
            del result
            _detach(exc)
            raise exc from None


def _notify(
    loop: asyncio.AbstractEventLoop,
    waiter: asyncio.Future[tuple[bytes, str]],
    future: Future[tuple[bytes, str]],
) -> None:
    """On the worker: hand a finished evaluation to the loop that awaits it."""
    with suppress(RuntimeError):  # the loop is closed: nobody waits for this answer any more
        loop.call_soon_threadsafe(_settle, waiter, future)


def _settle(waiter: asyncio.Future[tuple[bytes, str]], future: Future[tuple[bytes, str]]) -> None:
    if waiter.done():  # timed out or the request was cancelled
        return
    if future.cancelled():  # the pool was shut down before the query started
        waiter.set_exception(UnavailableError("The query service is shutting down."))
        return
    exc = future.exception()
    if exc is not None:
        waiter.set_exception(exc)
    else:
        waiter.set_result(future.result())


def _expire(waiter: asyncio.Future[tuple[bytes, str]]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


def serialize_bounded(
    result: QueryResult, accept: str | None, max_bytes: int, deadline: float
) -> tuple[bytes, str]:
    buffer = _BoundedBuffer(max_bytes, deadline)
    if isinstance(result, QuerySolutions | QueryBoolean):
        media = negotiate(accept, RESULT_FORMATS, "application/sparql-results+json")
        rfmt = RESULT_FORMATS[media]
        try:
            result.serialize(buffer, format=rfmt)  # type: ignore[arg-type]  # any writable works
        except OSError as exc:  # pyoxigraph wraps exceptions raised by write()
            _reraise_cause(exc)
            raise
    else:
        media = negotiate(accept, GRAPH_FORMATS, "text/turtle")
        gfmt = GRAPH_FORMATS[media]
        from pyoxigraph import QueryTriples, serialize

        try:
            if isinstance(result, QueryTriples):
                result.serialize(buffer, format=gfmt)  # type: ignore[arg-type]
            else:
                serialize(list(result), buffer, format=gfmt)  # type: ignore[arg-type]
        except OSError as exc:
            _reraise_cause(exc)
            raise
    if media == "text/plain":
        media = "application/n-triples"
    return buffer.getvalue(), media


_POSITION = re.compile(r"^error at (\d+):(\d+): ")


def sparql_syntax_error(exc: SyntaxError, *, line_offset: int = 0) -> InvalidInputError:
    """A parser error as our error, with the position in the user's own text."""
    message = str(exc.msg or exc)
    line, column = exc.lineno, exc.offset
    match = _POSITION.match(message)
    if match:
        line, column = int(match.group(1)), int(match.group(2))
        message = message[match.end() :]
    if line is not None:
        line -= line_offset
    where = f" at line {line}, column {column}" if line and line > 0 else ""
    return InvalidInputError(
        f"SPARQL syntax error{where}: {message}",
        code="sparql_syntax_error",
        line=line if where else None,
        column=column if where else None,
    )


def _detach(exc: BaseException) -> None:
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        cur.__traceback__ = None
        nxt = cur.__cause__ or cur.__context__
        cur.__cause__ = cur.__context__ = None
        cur = nxt


def _reraise_cause(exc: BaseException) -> None:
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, _ResultTooLarge | _DeadlinePassed):
            raise cause
        cause = cause.__cause__ or cause.__context__
    text = str(exc)
    if "_ResultTooLarge" in text:
        raise _ResultTooLarge() from exc
    if "_DeadlinePassed" in text:
        raise _DeadlinePassed() from exc


def negotiate(accept: str | None, offered: Mapping[str, object], default: str) -> str:
    """Pick the best media type from an Accept header among those offered."""
    if not accept or not accept.strip():
        return default
    if accept.strip().lower() in FORMAT_ALIASES:
        alias = FORMAT_ALIASES[accept.strip().lower()]
        if alias in offered:
            return alias
    ranges: list[tuple[float, int, str]] = []
    for i, part in enumerate(accept.split(",")):
        fields = [f.strip() for f in part.split(";")]
        media = fields[0].lower()
        q = 1.0
        for f in fields[1:]:
            if f.startswith("q="):
                try:
                    q = float(f[2:])
                except ValueError:
                    q = 0.0
        if media and q > 0:
            ranges.append((-q, i, media))
    for _, _, media in sorted(ranges):
        if media in ("*/*", "application/*", "text/*"):
            return default
        if media in offered:
            return media
    raise NotAcceptableError(
        f"None of the requested types ({accept}) fits this result; available: "
        + ", ".join(offered),
    )


def _with_prefixes(query: str) -> str:
    """Predeclare the standard prefixes; a query's own PREFIX lines still win."""
    return _PROLOGUE + query


#: One line, so error positions shift by exactly one line (undone in _syntax_error).
_PROLOGUE = " ".join(f"PREFIX {k}: <{v}>" for k, v in STANDARD_PREFIXES.items()) + "\n"
