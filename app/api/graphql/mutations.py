"""Mutations: model graphs (validated) and readings.

Results that are part of the domain - a model that breaks its shapes - are union members
(``ModelResult = ModelUpdated | ValidationFailed``), not errors, so clients branch on
``__typename``. Twin state (desired values, commands) will follow the same pattern: one
mutation per intent, each with its own result union.
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Annotated, Any

import strawberry
from pyoxigraph import RdfFormat
from starlette.concurrency import run_in_threadpool
from strawberry.scalars import JSON

from app.api.graphql.context import Info
from app.api.graphql.fields import mutation
from app.domain.telemetry import Reading
from app.errors import (
    InvalidInputError,
    PayloadTooLargeError,
    UnavailableError,
    ValidationFailedError,
)
from app.graph.models import IngestResult
from app.platform import Platform


@strawberry.enum
class ModelFormat(enum.Enum):
    TURTLE = "turtle"
    NTRIPLES = "ntriples"
    JSONLD = "jsonld"
    RDFXML = "rdfxml"


_FORMATS = {
    ModelFormat.TURTLE: RdfFormat.TURTLE,
    ModelFormat.NTRIPLES: RdfFormat.N_TRIPLES,
    ModelFormat.JSONLD: RdfFormat.JSON_LD,
    ModelFormat.RDFXML: RdfFormat.RDF_XML,
}


@strawberry.enum
class ModelMode(enum.Enum):
    REPLACE = "replace"
    MERGE = "merge"


@strawberry.type(description="One SHACL result.")
class ValidationIssue:
    focus_node: str
    path: str | None
    message: str
    severity: str
    value: str | None
    shape: str | None

    @staticmethod
    def of(result: dict[str, Any]) -> ValidationIssue:
        return ValidationIssue(
            focus_node=str(result.get("focus_node")),
            path=result.get("path"),
            message=str(result.get("message")),
            severity=str(result.get("severity")),
            value=result.get("value"),
            shape=result.get("shape"),
        )


@strawberry.type(description="The model was stored.")
class ModelUpdated:
    graph: str
    mode: ModelMode
    triples_in: int
    graph_triples: int
    inferred_triples: int
    warnings: list[ValidationIssue]
    notes: list[str]


@strawberry.type(description="The model breaks its shapes; nothing was stored.")
class ValidationFailed:
    graph: str
    message: str
    violations: list[ValidationIssue]
    warnings: list[ValidationIssue]


ModelResult = Annotated[ModelUpdated | ValidationFailed, strawberry.union("ModelResult")]


@strawberry.type
class GraphDeleted:
    graph: str


@strawberry.input
class ReadingInput:
    point: str = strawberry.field(
        description="Time-series UUID, time-series id, point IRI or unique label."
    )
    time: datetime
    value: JSON | None = None


@strawberry.type
class ReadingsWritten:
    accepted: int
    inserted: int
    duplicates: int


def _author(info: Info) -> str | None:
    principal = info.context.principal
    return principal.label if principal else None


def _updated(result: IngestResult) -> ModelUpdated:
    report = result.report.as_dict() if result.report else {"results": []}
    results: list[dict[str, Any]] = report.get("results", [])  # type: ignore[assignment]
    return ModelUpdated(
        graph=result.graph,
        mode=ModelMode(result.mode),
        triples_in=result.triples_in,
        graph_triples=result.graph_triples,
        inferred_triples=result.inferred_triples,
        warnings=[ValidationIssue.of(r) for r in results if r.get("severity") != "Violation"],
        notes=list(result.notes),
    )


def _put_model(
    platform: Platform,
    graph: str,
    data: str,
    fmt: ModelFormat,
    mode: ModelMode,
    migrate: bool,
    author: str | None,
) -> ModelUpdated | ValidationFailed:
    body = data.encode()
    if len(body) > platform.settings.max_upload_bytes:
        raise PayloadTooLargeError(f"The model exceeds {platform.settings.max_upload_bytes} bytes")
    try:
        result = platform.models.ingest(
            graph=graph,
            data=body,
            fmt=_FORMATS[fmt],
            mode=mode.value,
            migrate_legacy=migrate,
            source="GraphQL putModel",
            author=author,
        )
    except ValidationFailedError as exc:
        report: dict[str, Any] = exc.extra.get("report") or {}
        results: list[dict[str, Any]] = report.get("results", [])
        return ValidationFailed(
            graph=graph,
            message=exc.detail,
            violations=[ValidationIssue.of(r) for r in results if r.get("severity") == "Violation"],
            warnings=[ValidationIssue.of(r) for r in results if r.get("severity") != "Violation"],
        )
    return _updated(result)


def _write_readings(platform: Platform, readings: list[ReadingInput]) -> ReadingsWritten:
    if platform.telemetry is None:
        raise UnavailableError("Telemetry storage is not configured", code="no_telemetry")
    if len(readings) > platform.settings.telemetry_max_batch:
        raise PayloadTooLargeError(
            f"{len(readings)} readings; the limit is {platform.settings.telemetry_max_batch}",
            code="batch_too_large",
        )
    keys: dict[str, uuid.UUID | None] = {}
    for r in readings:
        if r.point not in keys:
            ref = platform.points.resolve(r.point)
            keys[r.point] = ref.uuid if ref else None
    unknown = sorted(k for k, v in keys.items() if v is None)
    if unknown:
        raise InvalidInputError(
            f"{len(unknown)} point(s) are not in the graph (first: {unknown[0]}); nothing "
            "was stored.",
            code="unknown_points",
            unknown=unknown[:100],
        )
    try:
        batch = [Reading(keys[r.point], r.time, r.value) for r in readings]  # type: ignore[arg-type]
    except ValueError as exc:
        raise InvalidInputError(str(exc), code="bad_reading") from None
    for reading in batch:
        if not isinstance(reading.value, float | int | bool | str | None):
            raise InvalidInputError(
                "a reading's value is a number, boolean, string or null", code="bad_reading"
            )
    result = platform.telemetry.write(readings=batch)
    return ReadingsWritten(
        accepted=len(batch), inserted=result.inserted, duplicates=result.duplicates
    )


@strawberry.type
class Mutation:
    @mutation(
        "Upload a model into a named graph: parsed, SHACL-validated, then "
        "committed atomically (replace, or merge into what is there)."
    )
    async def put_model(
        self,
        info: Info,
        graph: str,
        data: str,
        format: ModelFormat = ModelFormat.TURTLE,
        mode: ModelMode = ModelMode.REPLACE,
        migrate: bool = False,
    ) -> ModelResult:
        return await run_in_threadpool(
            _put_model, info.context.platform, graph, data, format, mode, migrate, _author(info)
        )

    @mutation("Delete a model graph and its inferred types.")
    async def delete_graph(self, info: Info, graph: str) -> GraphDeleted:
        await run_in_threadpool(
            lambda: info.context.platform.models.delete(graph, author=_author(info))
        )
        return GraphDeleted(graph=graph)

    @mutation("Store readings (all or nothing).")
    async def write_readings(self, info: Info, readings: list[ReadingInput]) -> ReadingsWritten:
        return await run_in_threadpool(_write_readings, info.context.platform, readings)
