"""Bulk operations: set desired properties on, or send a command to, every selected twin.

A selector is a label selector (``type=sensor,level=1``), a SPARQL SELECT whose first
variable binds entities ("every VAV on level 3"), or both (the intersection). A job runs
at once and records one result per target: a selected entity without a twin is a failed
result (``no_twin``), as is a twin that refuses the change (its error code), so a job
never stops half-way on one bad twin.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from psycopg.types.json import Jsonb

from app.errors import AppError, InvalidInputError, NotFoundError
from app.events.selectors import resolve_selector
from app.telemetry.db import translate_errors
from app.twins.model import Job, JobResult, LabelSelector

if TYPE_CHECKING:
    from app.twins.service import TwinService


@dataclass(frozen=True, slots=True)
class Selector:
    labels: str | None = None
    sparql: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in (("labels", self.labels), ("sparql", self.sparql)) if v}


class JobService:
    def __init__(self, twins: TwinService) -> None:
        self._twins = twins
        self._pool = twins.pool

    def targets(self, selector: Selector) -> list[tuple[str, str | None]]:
        """(target, twin id or None) for everything the selector picks, in a stable order."""
        if not selector.labels and not selector.sparql:
            raise InvalidInputError(
                "A selector needs labels (type=sensor,level=1) or sparql (a SELECT)",
                code="bad_selector",
            )
        labels = LabelSelector.parse(selector.labels) if selector.labels else None
        store = self._twins.store
        if selector.sparql:
            iris = resolve_selector(self._twins.sparql, selector.sparql)
            with_twins = store.ids_for_iris(iris)
            if labels is not None:
                keep = set(store.select_ids(labels=labels, iris=with_twins))
                return sorted((iri, tid) for iri, tid in with_twins.items() if tid in keep)
            return sorted((iri, with_twins.get(iri)) for iri in iris)
        return [(tid, tid) for tid in store.select_ids(labels=labels)]

    def set_desired(
        self, selector: Selector, props: Mapping[str, Any], *, author: str | None = None
    ) -> Job:
        if not props:
            raise InvalidInputError("No properties given", code="no_properties")
        targets = self.targets(selector)
        results = []
        for target, twin_id in targets:
            if twin_id is None:
                results.append(JobResult(target, None, False, "no_twin", "the entity has no twin"))
                continue
            try:
                state = self._twins.set_desired(twin_id, props, author=author)
                results.append(JobResult(target, twin_id, True, "set", f"v{state.desired_version}"))
            except AppError as exc:
                results.append(JobResult(target, twin_id, False, exc.code, exc.detail))
        return self._record("desired", selector, {"props": dict(props)}, results, author)

    def send_command(
        self,
        selector: Selector,
        *,
        name: str,
        input: Any = None,
        ttl_s: float | None = None,
        idempotency_key: str | None = None,
        author: str | None = None,
    ) -> Job:
        targets = self.targets(selector)
        request = {"name": name, "input": input, "ttl": ttl_s, "idempotencyKey": idempotency_key}
        job_id = self._create("command", selector, request, author)
        try:
            outcomes = self._twins.commands.send_many(
                [tid for _t, tid in targets if tid is not None],
                name=name,
                input=input,
                ttl_s=ttl_s,
                idempotency_key=idempotency_key,
                author=author,
                job=job_id,
            )
        except AppError:  # the request itself is bad: no job
            with translate_errors("job delete"), self._pool.connection() as conn:
                conn.execute("DELETE FROM twin_jobs WHERE id = %s", (job_id,))
            raise
        results = []
        for target, twin_id in targets:
            outcome = outcomes.get(twin_id) if twin_id is not None else None
            if twin_id is None or outcome is None:
                results.append(JobResult(target, None, False, "no_twin", "the entity has no twin"))
            elif isinstance(outcome, AppError):
                results.append(JobResult(target, twin_id, False, outcome.code, outcome.detail))
            else:
                cmd, created = outcome
                code = "queued" if created else "duplicate"
                results.append(JobResult(target, twin_id, True, code, None, cmd.id))
        return self._finish(job_id, results)

    def _create(
        self, operation: str, selector: Selector, request: Mapping[str, Any], author: str | None
    ) -> int:
        with translate_errors("job create"), self._pool.connection() as conn:
            row = conn.execute(
                "INSERT INTO twin_jobs (author, operation, selector, request) "
                "VALUES (%s, %s, %s, %s) RETURNING id",
                (author, operation, Jsonb(selector.as_dict()), Jsonb(dict(request))),
            ).fetchone()
        assert row is not None
        return int(row[0])

    def _record(
        self,
        operation: str,
        selector: Selector,
        request: Mapping[str, Any],
        results: list[JobResult],
        author: str | None,
    ) -> Job:
        return self._finish(self._create(operation, selector, request, author), results)

    def _finish(self, job_id: int, results: list[JobResult]) -> Job:
        ok = sum(1 for r in results if r.ok)
        with translate_errors("job results"), self._pool.connection() as conn:
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO twin_job_results (job, target, twin, ok, code, detail, command) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s)",
                    [
                        (job_id, r.target, r.twin, r.ok, r.code, r.detail, r.command)
                        for r in results
                    ],
                )
            conn.execute(
                "UPDATE twin_jobs SET total = %s, succeeded = %s, failed = %s WHERE id = %s",
                (len(results), ok, len(results) - ok, job_id),
            )
        return self.get(job_id)

    def get(self, job_id: int) -> Job:
        with translate_errors("job read"), self._pool.connection() as conn:
            row = conn.execute(
                "SELECT id, operation, created, author, selector, request, total, succeeded, "
                "failed FROM twin_jobs WHERE id = %s",
                (job_id,),
            ).fetchone()
            if row is None:
                raise NotFoundError(f"No job {job_id}", code="job_not_found")
            results = conn.execute(
                "SELECT target, twin, ok, code, detail, command FROM twin_job_results "
                "WHERE job = %s ORDER BY target",
                (job_id,),
            ).fetchall()
        return Job(*row, results=tuple(JobResult(*r) for r in results))  # type: ignore[misc]
