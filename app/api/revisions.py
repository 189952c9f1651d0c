"""``/revisions``: the history of every model change, diffs, and the model as of a time."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from app.api.deps import PlatformDep, ReaderDep
from app.errors import InvalidInputError, UnavailableError
from app.history.asof import AsOfViews
from app.history.revisions import RevisionStore
from app.platform import Platform

router = APIRouter(tags=["revisions"])


def revisions_of(platform: Platform) -> RevisionStore:
    if platform.revisions is None:
        raise UnavailableError("Revisions need the database (telemetry is off)", code="no_history")
    return platform.revisions


def history_of(platform: Platform) -> AsOfViews:
    if platform.history is None:
        raise UnavailableError(
            "Time travel needs the database (telemetry is off)", code="no_history"
        )
    return platform.history


def parse_as_of(text: str) -> datetime:
    """An RFC 3339 instant for ``asOf``; one without a zone is refused (ambiguous)."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInputError(f"asOf {text!r} is not an RFC 3339 time", code="bad_time") from None
    if when.tzinfo is None:
        raise InvalidInputError(
            f"asOf {text!r} has no time zone; add Z or an offset", code="bad_time"
        )
    return when


@router.get("/revisions", summary="Model revisions, oldest first (paged by ?after=)")
def list_revisions(
    platform: PlatformDep,
    _caller: ReaderDep,
    graph: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    after: int = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> JSONResponse:
    found = revisions_of(platform).find(
        graph=graph, since=since, until=until, after_id=after, limit=limit
    )
    return JSONResponse(
        {
            "revisions": [r.as_dict() for r in found],
            "next_after": found[-1].id if len(found) == limit else None,
        }
    )


def _nt(lines: set[bytes] | list[bytes]) -> str:
    return "\n".join(sorted(line.decode() for line in lines))


@router.get("/revisions/diff", summary="Net change between two revisions (0 = the start)")
def revision_diff(
    platform: PlatformDep,
    _caller: ReaderDep,
    from_: Annotated[int, Query(alias="from", ge=0)],
    to: Annotated[int, Query(ge=0)],
    graph: str | None = None,
) -> JSONResponse:
    diff = revisions_of(platform).diff(from_, to, graph=graph)
    graphs = sorted(set(diff.added) | set(diff.removed))
    return JSONResponse(
        {
            "from": from_,
            "to": to,
            "graphs": {
                g: {
                    "added": _nt(diff.added.get(g, set())),
                    "removed": _nt(diff.removed.get(g, set())),
                    "added_triples": len(diff.added.get(g, ())),
                    "removed_triples": len(diff.removed.get(g, ())),
                }
                for g in graphs
            },
        }
    )


@router.get("/revisions/{revision_id}", summary="One revision with its diff (N-Triples)")
def get_revision(platform: PlatformDep, _caller: ReaderDep, revision_id: int) -> JSONResponse:
    revision, added, removed = revisions_of(platform).get(revision_id)
    return JSONResponse(
        {**revision.as_dict(), "diff": {"added": _nt(added), "removed": _nt(removed)}}
    )


@router.get("/model", summary="Every model graph as of a time (N-Quads)")
async def model_as_of(
    platform: PlatformDep,
    _caller: ReaderDep,
    asOf: str,  # noqa: N803
) -> Response:
    when = parse_as_of(asOf)
    views = history_of(platform)

    def dump() -> tuple[bytes, int]:
        revision = revisions_of(platform).latest_id(until=when)
        graphs = views.graphs_at(revision)
        lines = [
            line[:-1] + f"<{g}> .".encode()
            for g, content in sorted(graphs.items())
            for line in sorted(content)
        ]
        return b"\n".join(lines) + (b"\n" if lines else b""), revision

    body, revision = await run_in_threadpool(dump)
    return Response(
        body,
        media_type="application/n-quads",
        headers={"X-TwinGraph-Revision": str(revision)},
    )
