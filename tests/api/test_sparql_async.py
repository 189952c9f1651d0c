"""The event-loop side of SPARQL evaluation: answers, errors, time limits and cancellation
crossing from the query workers to the loop, and tokens checked per request."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pyoxigraph import NamedNode, Quad

from app.errors import (
    InvalidInputError,
    PayloadTooLargeError,
    QueryTimeoutError,
    UnavailableError,
)
from app.graph.embedded import EmbeddedStore
from app.graph.sparql import QueryLimits, SparqlService
from app.security.tokens import Scope
from tests.conftest import Server

CROSS_PRODUCT = "SELECT * WHERE { ?a ?b ?c . ?d ?e ?f }"


@pytest.fixture
def store(tmp_path: Path) -> EmbeddedStore:
    """300 triples on disk: their cross product streams for minutes."""
    store = EmbeddedStore(tmp_path / "store")
    g = NamedNode("urn:ex:g")
    p = NamedNode("urn:ex:p")
    store.bulk_add(
        [Quad(NamedNode(f"urn:ex:s{i}"), p, NamedNode(f"urn:ex:o{i}"), g) for i in range(300)]
    )
    return store


@pytest.fixture
def service(store: EmbeddedStore) -> Iterator[SparqlService]:
    service = SparqlService(
        store=store, limits=QueryLimits(timeout_s=0.5, max_result_bytes=1 << 40, workers=1)
    )
    yield service
    service.close()


async def _until_free(service: SparqlService, deadline_s: float = 10.0) -> dict[str, Any]:
    """ASK once the (single) worker is free again; the slow query holds it until its next
    result after its deadline."""
    end = time.monotonic() + deadline_s
    while True:
        try:
            answer = await service.run_async("ASK { ?s ?p ?o }")
            return dict(json.loads(answer.body))
        except UnavailableError:
            if time.monotonic() > end:
                raise
            await asyncio.sleep(0.05)


def test_answers_and_errors_cross_from_the_worker(service: SparqlService) -> None:
    async def scenario() -> None:
        answer = await service.run_async("ASK { ?s <urn:ex:p> ?o }")
        assert json.loads(answer.body) == {"head": {}, "boolean": True}
        assert answer.media_type == "application/sparql-results+json"
        csv = await service.run_async("SELECT ?s WHERE { ?s ?p ?o } LIMIT 2", accept="text/csv")
        assert csv.media_type == "text/csv" and csv.body.count(b"\n") == 3
        with pytest.raises(InvalidInputError) as bad:
            await service.run_async("SELECT ?s WHERE { ?s ?p }")
        assert bad.value.code == "sparql_syntax_error" and bad.value.extra["line"] == 1
        tiny = SparqlService(store=service.store, limits=QueryLimits(max_result_bytes=500))
        try:
            with pytest.raises(PayloadTooLargeError) as big:
                await tiny.run_async("SELECT * WHERE { ?s ?p ?o }")
            assert big.value.code == "result_too_large"
        finally:
            tiny.close()

    asyncio.run(scenario())


def test_a_query_past_its_limit_answers_at_the_limit_and_frees_its_worker(
    service: SparqlService,
) -> None:
    async def scenario() -> None:
        t0 = time.monotonic()
        with pytest.raises(QueryTimeoutError):
            await service.run_async(CROSS_PRODUCT)
        assert 0.45 < time.monotonic() - t0 < 2.0
        assert (await _until_free(service))["boolean"] is True

    asyncio.run(scenario())


def test_a_cancelled_request_stops_waiting_and_its_late_answer_is_dropped(
    service: SparqlService,
) -> None:
    problems: list[dict[str, Any]] = []

    async def scenario() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda _loop, ctx: problems.append(ctx))
        task = asyncio.create_task(service.run_async(CROSS_PRODUCT))
        await asyncio.sleep(0.1)
        t0 = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert time.monotonic() - t0 < 0.3  # not held until the query's time limit
        # The worker ends the query at its deadline; its answer reaches a waiter that is
        # gone, which must be neither an error nor a leak of the worker.
        assert (await _until_free(service))["boolean"] is True

    asyncio.run(scenario())
    assert problems == []


def test_a_slow_query_over_http_is_a_503_problem_at_its_limit(server: Server) -> None:
    platform = server.platform
    regular = platform.sparql
    slow = SparqlService(store=platform.store, limits=QueryLimits(timeout_s=0.5, workers=1))
    platform.sparql = slow
    try:
        t0 = time.monotonic()
        r = httpx.post(
            f"{server.url}/sparql",
            content=CROSS_PRODUCT,
            headers={**server.auth("read"), "Content-Type": "application/sparql-query"},
            timeout=30,
        )
        assert time.monotonic() - t0 < 3.0
        assert r.status_code == 503
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["code"] == "query_timeout"
    finally:
        platform.sparql = regular
        slow.close()


def test_a_revoked_token_is_refused_by_the_next_query(server: Server) -> None:
    tokens = server.platform.tokens
    token = tokens.create(Scope.READ, label="revoked between queries")
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/sparql-query"}
    url = f"{server.url}/sparql"
    assert httpx.post(url, content="ASK {}", headers=headers).status_code == 200
    assert httpx.post(url, content="ASK {}", headers=headers).status_code == 200  # cached
    assert tokens.revoke(token.split("_")[1])
    r = httpx.post(url, content="ASK {}", headers=headers)
    assert r.status_code == 401 and r.json()["code"] == "invalid_token"
    # A token with too small a scope is still told so, with the endpoint's own checks.
    r = httpx.post(
        url,
        content='INSERT DATA { <urn:ex:a> <urn:ex:b> "c" }',
        headers={**server.auth("read"), "Content-Type": "application/sparql-update"},
    )
    assert r.status_code == 403 and r.json()["code"] == "insufficient_scope"
