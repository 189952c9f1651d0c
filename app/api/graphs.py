"""``/graphs`` (what is stored) and ``/validate`` (check a model without storing it)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from app.api.body import read_body
from app.api.deps import PlatformDep, ReaderDep
from app.graph.rdf_io import format_from_media_type

router = APIRouter(tags=["models"])


@router.get("/graphs")
def list_graphs(platform: PlatformDep, _: ReaderDep, kind: str | None = None) -> dict[str, object]:
    graphs = [g for g in platform.models.graphs() if kind is None or g.kind == kind]
    return {"graphs": [{"iri": g.iri, "triples": g.triples, "kind": g.kind} for g in graphs]}


@router.post("/validate")
async def validate(request: Request, platform: PlatformDep, _: ReaderDep) -> dict[str, object]:
    fmt = format_from_media_type(request.headers.get("content-type"))
    data = await read_body(request, platform.settings.max_upload_bytes)
    lenient = request.query_params.get("lenient", "false").lower() in ("1", "true", "yes")
    migrate = request.query_params.get("migrate", "false").lower() in ("1", "true", "yes")

    def run() -> dict[str, object]:
        triples, migration, notes = platform.models.parse(
            data, fmt, lenient=lenient, migrate_legacy=migrate
        )
        report = platform.models.validate(triples)
        out = report.as_dict()
        out["notes"] = [*notes, *report.notes]
        out["migration"] = migration.as_dict() if migration else None
        return out

    return await run_in_threadpool(run)
